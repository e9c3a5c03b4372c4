// Our own kernels' builder table: every op the GPU executor runs on kernels of cuda/kernels/
// (the rest, cuDNN and cuBLAS, is in dnn_ops.cc). Builders live in elementwise_op.cc,
// layout_ops.cc, shape_ops.cc, norm_softmax_ops.cc and reduce_op.cc.
#include "models/gpu/kernel_op_util.h"
#include "models/gpu/op.h"

namespace ps::models::gpu {
namespace {

// Sorted by op name (registry.cc checks it on first use).
constexpr OpEntry kKernelOps[] = {
    {"Abs", build_unary},
    {"Add", build_binary},
    {"AddLayerNormalization", build_layer_norm},
    {"AddSoftmax", build_softmax},
    {"And", build_binary},
    {"Cast", build_cast},
    {"Ceil", build_unary},
    {"Clip", build_unary},
    {"Concat", build_concat},
    {"ConstantOfShape", build_constant_of_shape},
    {"Cos", build_unary},
    {"Div", build_binary},
    {"Dropout", build_reshape_like},
    {"Equal", build_binary},
    {"Erf", build_unary},
    {"Exp", build_unary},
    {"Expand", build_expand},
    {"Flatten", build_reshape_like},
    {"Floor", build_unary},
    {"FusedAttention", build_fused_attention},
    {"Gather", build_gather},
    {"Gelu", build_unary},
    {"Greater", build_binary},
    {"GreaterOrEqual", build_binary},
    {"HeadSlice", build_head_slice},
    {"Identity", build_reshape_like},
    {"IsInf", build_predicate},
    {"IsNaN", build_predicate},
    {"LayerNormalization", build_layer_norm},
    {"LeakyRelu", build_unary},
    {"Less", build_binary},
    {"LessOrEqual", build_binary},
    {"Log", build_unary},
    {"LogSoftmax", build_softmax},
    {"Max", build_variadic},
    {"Mean", build_variadic},
    {"Min", build_variadic},
    {"Mul", build_binary},
    {"Neg", build_unary},
    {"Not", build_predicate},
    {"Or", build_binary},
    {"Pow", build_binary},
    {"Range", build_range},
    {"Reciprocal", build_unary},
    {"ReduceMax", build_reduce},
    {"ReduceMean", build_reduce},
    {"ReduceMin", build_reduce},
    {"ReduceProd", build_reduce},
    {"ReduceSum", build_reduce},
    {"Relu", build_unary},
    {"Reshape", build_reshape_like},
    {"Shape", build_shape},
    {"Sigmoid", build_unary},
    {"Sin", build_unary},
    {"Size", build_shape},
    {"Slice", build_slice},
    {"Softmax", build_softmax},
    {"Split", build_split},
    {"Sqrt", build_unary},
    {"Squeeze", build_reshape_like},
    {"Sub", build_binary},
    {"Sum", build_variadic},
    {"Tanh", build_unary},
    {"Transpose", build_transpose},
    {"Unsqueeze", build_reshape_like},
    {"Where", build_where},
    {"Xor", build_binary},
};

}  // namespace

std::span<const OpEntry> kernel_op_table() { return kKernelOps; }

}  // namespace ps::models::gpu
