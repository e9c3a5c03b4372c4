// Plan-time arithmetic of BERT's backward kernels (cuda/kernels/train_bert.cu): pure functions
// of shapes and attributes, no GPU, so CI tests them and runs the kernels on them under the
// host emulation (tests/models/gpu_train_bert_emulation_test.cc). The ops that launch them:
// grad_bert_ops.cc.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "common/shape.h"
#include "common/status.h"
#include "cuda/kernels/train_bert_params.h"

namespace ps::models::gpu {

// Erf, Tanh, Sqrt, Gelu, Neg, Exp over `count` elements. Errors: another op (kUnsupported).
Result<train_kernels::UnaryGradParams> plan_unary_grad(std::string_view op, int64_t count,
                                                       bool accumulate);
bool has_unary_grad(std::string_view op);

// Sub, Mul, Div, Pow of A and B broadcast to dY: the element-wise gradients at dY's shape
// (dims merged where A, B and dY all allow it). Accumulate flags are left 0 (the op sets them
// for a gradient written straight into its buffer). Errors: another op, A and B not
// broadcasting to dY, a merged rank above kMaxRank.
Result<train_kernels::BinaryGradParams> plan_binary_grad(std::string_view op, const Shape& a,
                                                         const Shape& b, const Shape& dy);

// ReduceMean backward: X's shape and the reduced axes (`reduced[d]`, rank of X; all false: a
// copy, noop_with_empty_axes): dX = dY / (elements averaged per output) spread over the
// reduced axes (dY's layout is the same with or without keepdims). Errors: a merged rank above
// kMaxRank, a flag count other than X's rank.
Result<train_kernels::SpreadParams> plan_reduce_mean_grad(const Shape& x,
                                                          const std::vector<bool>& reduced,
                                                          bool accumulate);

// Softmax along `axis` (normalized by the caller's rules here: -rank <= axis < rank) of Y.
Result<train_kernels::SoftmaxGradParams> plan_softmax_grad(const Shape& y, int64_t axis,
                                                           bool accumulate);

// LayerNormalization of X over the axes from `axis` (negative counts from the end) with
// epsilon; scale and bias must hold the normalized shape's element count (BERT's [H]; a
// smaller broadcast parameter is refused). The partial sums take chunks of rows (at most 1024
// chunks, at least 16 rows each). Errors: rank 0, axis out of range, parameter sizes.
Result<train_kernels::LayerNormGradParams> plan_layer_norm_grad(const Shape& x, int64_t axis,
                                                                float epsilon,
                                                                int64_t scale_count,
                                                                int64_t bias_count);
// Workspace of the LayerNorm backward: stats (2 floats per row; rows too long for a warp), then
// the partial sums (2 x chunks x inner floats) when a parameter gradient is wanted. Byte
// offsets, 256-aligned.
struct LayerNormGradWorkspace {
  size_t stats = 0;
  size_t partial = 0;
  size_t total = 0;
};
LayerNormGradWorkspace layer_norm_grad_workspace(const train_kernels::LayerNormGradParams& p,
                                                 bool params_wanted);

// Gather of data along `axis` by indices of `indices` shape. Errors: rank-0 data, axis out of
// range, 2^31 or more indices (the chain links are int32).
Result<train_kernels::GatherGradParams> plan_gather_grad(const Shape& data, const Shape& indices,
                                                         int64_t axis);
// Workspace of the Gather backward: rows (int64 per index), first and next (int32 each).
struct GatherGradWorkspace {
  size_t rows = 0;
  size_t first = 0;
  size_t next = 0;
  size_t total = 0;
};
GatherGradWorkspace gather_grad_workspace(const train_kernels::GatherGradParams& p);

// The inverse of a permutation (Transpose's backward perm). Errors: not a permutation.
Result<std::vector<int64_t>> inverse_permutation(const std::vector<int64_t>& perm);

}  // namespace ps::models::gpu
