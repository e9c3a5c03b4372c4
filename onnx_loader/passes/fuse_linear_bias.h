// Training pass: a linear layer's bias Add taken into its MatMulTransB.
//
// nn.Linear exported in training mode is MatMul(X, Transpose(W)) then Add(., b) (or Add(b, .));
// after fuse_matmul_transpose the first is MatMulTransB(X, W). This pass makes the pair one
// MatMulTransB(X, W, b): the product [..., N] and the bias [N] added as the product is written
// (cuBLASLt's BIAS epilogue on the GPU), and the bias gradient (dY summed over every row) made
// by the layer's backward. The bias keeps its value, name and shape: trained weights,
// checkpoints and gradient dumps stay PyTorch's. BERT-base at batch 8: 72 element-wise passes
// over [2008, 768..3072] products a step fewer forward, and their Add backward's copies.
#pragma once

#include "common/status.h"
#include "onnx_loader/graph.h"

namespace ps::onnx_loader::passes {

// For every live two-input MatMulTransB(X, W) -> P whose only reader is Add(P, b) or Add(b, P)
// -> Y, where b is a 1-D float32 constant of P's last dimension N (a parameter, or any
// constant), P is not a graph output and Y has P's static shape: replaces both with
// MatMulTransB(X, W, b) -> Y at the Add's place. Returns the number of fusions.
Result<int> fuse_linear_bias(Graph& graph);

}  // namespace ps::onnx_loader::passes
