// Inference pass: MatMul + Add(bias over the last dimension) -> one "MatMulBias" node.
#pragma once

#include "common/status.h"
#include "onnx_loader/graph.h"

namespace ps::onnx_loader::passes {

// For every live MatMul(A, B) -> Y whose only reader is Add(Y, bias) or Add(bias, Y), where Y
// is not a graph output and bias is a constant of Y's dtype holding exactly N = Y.shape[-1]
// elements with shape [N] or [1, ..., 1, N] of rank <= rank(Y) (so the Add does not change
// Y's shape): replaces both with MatMulBias(A, B, bias[N]) producing the Add's output, at the
// Add's place in the order. Returns the number of fusions.
Result<int> fuse_matmul_bias(Graph& graph);

// Gemm nodes are left as they are (Gemm already carries its bias); this counts the live Gemm
// nodes in the form PyTorch exports for nn.Linear (transA 0, alpha 1, beta 1, C absent or a
// bias of [N]), which the executor runs as one GEMM with a bias epilogue. Other Gemm forms are
// still valid and run by the general Gemm operator.
int count_linear_gemms(const Graph& graph);

}  // namespace ps::onnx_loader::passes
