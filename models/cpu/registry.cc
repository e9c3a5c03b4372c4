// run_op: the table from op names to implementations.
#include <algorithm>
#include <string_view>

#include "models/cpu/kernels.h"
#include "models/cpu/ops.h"

namespace ps::models::cpu {

namespace {

using Kernel = Status (*)(const OpContext&);

struct Entry {
  std::string_view op;
  Kernel kernel;
};

// Sorted by op name (checked on first use).
constexpr Entry kTable[] = {
    {"Abs", run_unary},
    {"Add", run_binary},
    {"AddLayerNormalization", run_layer_norm},
    {"AddSoftmax", run_softmax},
    {"And", run_binary},
    {"AttentionContext", run_attention_context},
    {"AttentionScores", run_attention_scores},
    {"AveragePool", run_average_pool},
    {"BatchNormalization", run_batch_norm},
    {"Cast", run_cast},
    {"Ceil", run_unary},
    {"Clip", run_unary},
    {"Concat", run_concat},
    {"ConstantOfShape", run_constant_of_shape},
    {"Conv", run_conv},
    {"Cos", run_unary},
    {"Div", run_binary},
    {"Dropout", run_reshape_like},
    {"Equal", run_binary},
    {"Erf", run_unary},
    {"Exp", run_unary},
    {"Expand", run_expand},
    {"Flatten", run_reshape_like},
    {"Floor", run_unary},
    {"FusedAttention", run_fused_attention},
    {"FusedConv", run_conv},
    {"Gather", run_gather},
    {"Gelu", run_unary},
    {"Gemm", run_gemm},
    {"GlobalAveragePool", run_global_pool},
    {"GlobalMaxPool", run_global_pool},
    {"Greater", run_binary},
    {"GreaterOrEqual", run_binary},
    {"HeadSlice", run_head_slice},
    {"Identity", run_reshape_like},
    {"IsInf", run_unary},
    {"IsNaN", run_unary},
    {"LayerNormalization", run_layer_norm},
    {"LeakyRelu", run_unary},
    {"Less", run_binary},
    {"LessOrEqual", run_binary},
    {"Log", run_unary},
    {"LogSoftmax", run_softmax},
    {"MatMul", run_matmul},
    {"MatMulBias", run_matmul},
    {"MatMulScale", run_matmul},
    {"MatMulTransB", run_matmul},
    {"Max", run_variadic},
    {"MaxPool", run_max_pool},
    {"Mean", run_variadic},
    {"Min", run_variadic},
    {"Mul", run_binary},
    {"Neg", run_unary},
    {"Not", run_unary},
    {"Or", run_binary},
    {"Pow", run_binary},
    {"Range", run_range},
    {"Reciprocal", run_unary},
    {"ReduceMax", run_reduce},
    {"ReduceMean", run_reduce},
    {"ReduceMin", run_reduce},
    {"ReduceProd", run_reduce},
    {"ReduceSum", run_reduce},
    {"Relu", run_unary},
    {"Reshape", run_reshape_like},
    {"Shape", run_shape},
    {"Sigmoid", run_unary},
    {"Sin", run_unary},
    {"Size", run_shape},
    {"Slice", run_slice},
    {"Softmax", run_softmax},
    {"Split", run_split},
    {"Sqrt", run_unary},
    {"Squeeze", run_reshape_like},
    {"Sub", run_binary},
    {"Sum", run_variadic},
    {"Tanh", run_unary},
    {"Transpose", run_transpose},
    {"Unsqueeze", run_reshape_like},
    {"Where", run_where},
    {"Xor", run_binary},
};

const Entry* find_entry(std::string_view op) {
  static const bool sorted =
      std::is_sorted(std::begin(kTable), std::end(kTable),
                     [](const Entry& a, const Entry& b) { return a.op < b.op; });
  PS_CHECK(sorted);
  const Entry* it =
      std::lower_bound(std::begin(kTable), std::end(kTable), op,
                       [](const Entry& e, std::string_view name) { return e.op < name; });
  return it != std::end(kTable) && it->op == op ? it : nullptr;
}

}  // namespace

Status run_op(const std::string& op, const Attributes& attrs, std::span<const Tensor* const> inputs,
              std::span<Tensor* const> outputs) {
  const Entry* entry = find_entry(op);
  if (entry == nullptr) return unsupported("operator '", op, "' has no CPU implementation");
  const OpContext ctx(op, attrs, inputs, outputs);
  return entry->kernel(ctx).with_context(op);
}

Result<std::vector<Tensor>> run_op_allocating(const std::string& op, const Attributes& attrs,
                                              std::span<const Tensor* const> inputs,
                                              size_t num_outputs) {
  const Entry* entry = find_entry(op);
  if (entry == nullptr) return unsupported("operator '", op, "' has no CPU implementation");
  if (num_outputs == 0) return invalid_argument(op, ": at least one output must be requested");
  std::vector<Tensor> outputs(num_outputs);
  std::vector<Tensor*> slots;
  for (Tensor& t : outputs) slots.push_back(&t);
  const OpContext ctx(op, attrs, inputs, slots, /*allocate_outputs=*/true);
  PS_TRY(entry->kernel(ctx).with_context(op));
  return outputs;
}

bool is_supported(const std::string& op) { return find_entry(op) != nullptr; }

std::vector<std::string> supported_ops() {
  std::vector<std::string> ops;
  for (const Entry& e : kTable) ops.emplace_back(e.op);
  return ops;
}

}  // namespace ps::models::cpu
