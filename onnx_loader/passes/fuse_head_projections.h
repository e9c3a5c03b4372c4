// Both modes: attention's query, key and value projections made ONE product.
//
// BERT's self-attention reads its input X through three nn.Linear layers (after
// fuse_linear_bias: MatMulTransB(X, W_q, b_q) and the key's and value's), each reshaped to
// [..., heads, head_size] and transposed into the head layout attention multiplies. Three
// [2008, 768] x [768, 768] products (BERT-base, batch 8) fill only 96 of an H100's 132 SMs each
// and their weight gradients 36 tiles each; one [2304, 768] product does the work of three in
// one launch, with its weight gradient one 108-tile product and X's gradient one product over
// k = 2304 instead of three accumulated.
//
// The pass rewrites such a group as
//   W = Concat(W_q, W_k, W_v; axis 0)   b = Concat(b_q, b_k, b_v)
//   P = MatMulTransB(X, W, b)           [..., 3 * hidden]
//   Q = HeadSlice(P; start 0, size hidden, heads, perm_q), K and V likewise
// where HeadSlice (common/head_slice.h) is the Reshape and Transpose reading its columns of P
// in place: the three head copies the Transposes made, no more. In training imports the
// parameters keep their values, names and shapes (the Concats are layers: their backward
// hands each parameter its rows of dW; the GPU trainer places them side by side so that both
// are views), so trained weights, checkpoints and gradient dumps stay PyTorch's. Inference
// imports take MatMulBias(X, W_i [K, N_i], b_i) (fuse_matmul_bias' form) and join the
// constants at import: one [K, sum N_i] weight and one bias, no Concat.
#pragma once

#include "common/status.h"
#include "onnx_loader/graph.h"

namespace ps::onnx_loader::passes {

// For every value X read by two or more live MatMulTransB(X, W_i, b_i) -> P_i where W_i is a
// float32 [N_i, K] constant (or MatMulBias with W_i [K, N_i]), b_i a float32 [N_i] constant, P_i is
// read only by a Reshape to P_i's leading dims + [heads, N_i / heads] (the same heads for all) and
// that only by a Transpose: replaces those nodes as above (in the order the MatMulTransBs had).
// Then reorders the graph's nodes topologically (stable). Returns the number of groups fused.
Result<int> fuse_head_projections(Graph& graph);

}  // namespace ps::onnx_loader::passes
