// Inference pass: MatMul followed by a multiplication by a scalar constant -> one
// "MatMulScale" node, the scale applied to the product as it is written (cuBLASLt's alpha), not
// by a second pass over it. Attention's scores: Hugging Face's eager BERT computes
// matmul(q, k^T) * head_size^-0.5, a [batch, heads, seq, seq] tensor (24 MB for a batch of 8 at
// sequence 251) written, read and written again for one multiplication.
#pragma once

#include "common/status.h"
#include "onnx_loader/graph.h"

namespace ps::onnx_loader::passes {

// For every live MatMul(A, B) -> P whose only reader is Mul(P, s), Mul(s, P) or Div(P, s) -> Y,
// where s is a float scalar constant (every dim 1) of P's dtype, Y has P's static shape and P
// is not a graph output: replaces both with MatMulScale(A, B) -> Y, attribute alpha = s (Mul)
// or 1 / s (Div, only where s is a power of two, so that 1 / s is exact and the product is the
// division's to the bit), at the Mul's place in the order. Returns the number of fusions.
Result<int> fuse_matmul_scale(Graph& graph);

}  // namespace ps::onnx_loader::passes
