// The operator implementations behind run_op, one function per family; each reads its op name
// from the context when it serves several. Internal to models/cpu (registry.cc maps names).
#pragma once

#include <vector>

#include "common/attention.h"
#include "common/head_slice.h"
#include "common/status.h"
#include "models/cpu/op_context.h"

namespace ps::models::cpu {

// conv.cc: Conv, FusedConv.
Status run_conv(const OpContext& ctx);
// pool.cc: MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool.
Status run_max_pool(const OpContext& ctx);
Status run_average_pool(const OpContext& ctx);
Status run_global_pool(const OpContext& ctx);
// gemm.cc: Gemm; MatMul, MatMulBias, MatMulScale and MatMulTransB.
Status run_gemm(const OpContext& ctx);
Status run_matmul(const OpContext& ctx);
// elementwise.cc: Add Sub Mul Div Pow, Equal Less LessOrEqual Greater GreaterOrEqual,
// And Or Xor; Where; Max Min Sum Mean (variadic).
Status run_binary(const OpContext& ctx);
Status run_where(const OpContext& ctx);
Status run_variadic(const OpContext& ctx);
// activation.cc: the unary operators (Relu, Gelu, Erf, Tanh, Sigmoid, Sqrt, Clip, ...).
Status run_unary(const OpContext& ctx);
// reduce.cc: ReduceMean, ReduceSum, ReduceMax, ReduceMin, ReduceProd.
Status run_reduce(const OpContext& ctx);
// normalization.cc: BatchNormalization (inference), LayerNormalization; Softmax, LogSoftmax,
// AddSoftmax.
Status run_batch_norm(const OpContext& ctx);
Status run_layer_norm(const OpContext& ctx);
Status run_softmax(const OpContext& ctx);
// shape_ops.cc: Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout; Shape, Size,
// ConstantOfShape, Range; Cast.
Status run_reshape_like(const OpContext& ctx);
Status run_shape(const OpContext& ctx);
Status run_constant_of_shape(const OpContext& ctx);
Status run_range(const OpContext& ctx);
Status run_cast(const OpContext& ctx);
// layout_ops.cc: Transpose, Concat, Slice, Split, Expand, Gather; HeadSlice (ours,
// common/head_slice.h).
Status run_transpose(const OpContext& ctx);
Status run_head_slice(const OpContext& ctx);
// HeadSlice's attributes (start, size, heads, perm: all required) read and checked against
// X's shape; the forward and its backward (grad_elementwise.cc) share it.
Result<HeadSliceLayout> head_slice_attrs(const OpContext& ctx, const Shape& x);
Status run_concat(const OpContext& ctx);
Status run_slice(const OpContext& ctx);
Status run_split(const OpContext& ctx);
Status run_expand(const OpContext& ctx);
Status run_gather(const OpContext& ctx);
// attention_ops.cc: AttentionScores, AttentionContext (ours, common/attention.h), each run as
// the ops it replaces (HeadSlices, MatMulScale or MatMul, Transpose); FusedAttention, run as
// AttentionScores, Softmax and AttentionContext.
Status run_attention_scores(const OpContext& ctx);
Status run_attention_context(const OpContext& ctx);
// Their attributes read and checked against X's shape (heads, size and the op's starts are
// required; AttentionScores' alpha defaults to 1), with the attributes of the ops each is made
// of, so that the forward and its backward (grad_attention.cc) run exactly those.
struct AttentionAttrs {
  AttentionLayout layout;
  std::vector<int64_t> starts;     // AttentionScores: q_start, k_start; AttentionContext: v_start
  float alpha = 1.0f;              // AttentionScores
  std::vector<Attributes> slices;  // X's HeadSlices: Q (perm 0,2,1,3), K (0,2,3,1); or V
  Attributes product;              // MatMulScale's alpha (AttentionScores); MatMul's: none
  Attributes transpose;            // AttentionContext's Transpose: perm 0,2,1,3
};
Result<AttentionAttrs> attention_attrs(const OpContext& ctx, const Shape& x);
// FusedAttention (ours, inference: passes/fuse_attention_softmax.h): AttentionContext(
// Softmax(AttentionScores(X), last axis), X) in one op, attributes heads, size, q_start,
// k_start, v_start (required) and alpha (default 1). Read and checked against X's shape, with
// the attributes of the three ops it is made of (the CPU runs exactly those).
struct FusedAttentionAttrs {
  AttentionLayout layout;
  int64_t q_start = 0, k_start = 0, v_start = 0;
  float alpha = 1.0f;
  Attributes scores;   // AttentionScores': heads, size, q_start, k_start, alpha
  Attributes softmax;  // Softmax's: axis -1
  Attributes context;  // AttentionContext's: heads, size, v_start
};
Result<FusedAttentionAttrs> fused_attention_attrs(const OpContext& ctx, const Shape& x);
Status run_fused_attention(const OpContext& ctx);
// The HeadSlice of X that `slice` (one of AttentionAttrs::slices) describes, as an owned tensor
// (the CPU HeadSlice op's output).
Result<Tensor> attention_slice(const Attributes& slice, const Tensor& x);

}  // namespace ps::models::cpu
