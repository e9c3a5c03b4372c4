// The operator implementations behind run_op, one function per family; each reads its op name
// from the context when it serves several. Internal to models/cpu (registry.cc maps names).
#pragma once

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

}  // namespace ps::models::cpu
