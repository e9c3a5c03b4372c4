// The backward builders' table (sorted by forward op name) and build_grad_op.
#include <algorithm>
#include <array>

#include "models/gpu/grad_builders.h"

namespace ps::models::gpu {
namespace {

const GradEntry* find_grad(std::string_view op) {
  const std::span<const GradEntry> table = grad_op_table();
  auto it = std::lower_bound(table.begin(), table.end(), op,
                             [](const GradEntry& e, std::string_view name) { return e.op < name; });
  return it != table.end() && it->op == op ? &*it : nullptr;
}

}  // namespace

std::span<const GradEntry> grad_op_table() {
  static constexpr std::array<GradEntry, 36> kTable{{
      {"Add", build_add_grad},
      {"AddSoftmax", build_softmax_grad},
      {"AttentionContext", build_attention_grad},
      {"AttentionScores", build_attention_grad},
      {"AveragePool", build_pool_grad},
      {"BatchNormalization", build_batch_norm_grad},
      {"Concat", build_concat_grad},
      {"Conv", build_conv_grad},
      {"Div", build_binary_grad},
      {"Erf", build_unary_grad},
      {"Exp", build_unary_grad},
      {"Flatten", build_reshape_grad},
      {"Gather", build_gather_grad},
      {"Gelu", build_unary_grad},
      {"Gemm", build_gemm_grad},
      {"GlobalAveragePool", build_global_average_pool_grad},
      {"HeadSlice", build_head_slice_grad},
      {"Identity", build_reshape_grad},
      {"LayerNormalization", build_layer_norm_grad},
      {"MatMul", build_matmul_grad},
      {"MatMulScale", build_matmul_grad},
      {"MatMulTransB", build_matmul_grad},
      {"MaxPool", build_pool_grad},
      {"Mul", build_binary_grad},
      {"Neg", build_unary_grad},
      {"Pow", build_binary_grad},
      {"ReduceMean", build_reduce_mean_grad},
      {"Relu", build_relu_grad},
      {"Reshape", build_reshape_grad},
      {"Softmax", build_softmax_grad},
      {"Sqrt", build_unary_grad},
      {"Squeeze", build_reshape_grad},
      {"Sub", build_binary_grad},
      {"Tanh", build_unary_grad},
      {"Transpose", build_transpose_grad},
      {"Unsqueeze", build_reshape_grad},
  }};
  return kTable;
}

Result<std::unique_ptr<GpuOp>> build_grad_op(const GradSpec& spec, const OpEnv& env) {
  const OpSpec& f = spec.forward;
  const GradEntry* entry = find_grad(f.op);
  if (entry == nullptr) {
    return unsupported("no GPU backward for ", f.op, " (layer '", f.name, "')");
  }
  auto op = entry->build(spec, env);
  if (!op.ok()) return op.status().with_context(str_cat(f.op, " backward '", f.name, "'"));
  return op;
}

bool gpu_has_backward(std::string_view op) { return find_grad(op) != nullptr; }

}  // namespace ps::models::gpu
