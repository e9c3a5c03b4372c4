// Training pass: a 2-D Transpose read only as a MatMul's B -> one "MatMulTransB" node that
// reads B as it is stored. PyTorch exports nn.Linear in training mode as
// MatMul(X, Transpose(W, perm=[1,0])) with the weight W [out, in] a trainable parameter (in
// eval mode constant folding stores W^T instead, so inference imports never see the pattern):
// every step copied every linear weight once forward and its gradient once backward.
// The weight value and its name are unchanged, so trained weights, checkpoints and gradient
// dumps keep PyTorch's layout and names.
#pragma once

#include "common/status.h"
#include "onnx_loader/graph.h"

namespace ps::onnx_loader::passes {

// For every live default-domain Transpose(W) -> T with one input and one output, where W is a
// float32 value of static 2-D shape and perm is [1, 0] (or absent: reversed, the same for 2-D),
// whose only reader is a default-domain MatMul(A, T) -> Y with two inputs that reads T as its
// B only (not also as A), and T is not a graph output: replaces both with
// MatMulTransB(A, W) -> Y (docs/operators.md: Y = matmul(A, transpose(W))), at the MatMul's
// place in the order. Returns the number of fusions.
Result<int> fuse_matmul_transpose(Graph& graph);

}  // namespace ps::onnx_loader::passes
