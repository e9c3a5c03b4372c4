// build_op: finds an op's builder in the cuDNN/cuBLAS table or the kernel table.
#include <algorithm>
#include <array>

#include "models/gpu/op.h"

namespace ps::models::gpu {
namespace {

const OpEntry* find_entry(std::string_view op) {
  for (std::span<const OpEntry> table : {dnn_op_table(), kernel_op_table()}) {
    auto it = std::lower_bound(table.begin(), table.end(), op,
                               [](const OpEntry& e, std::string_view name) { return e.op < name; });
    if (it != table.end() && it->op == op) return &*it;
  }
  return nullptr;
}

void check_tables_sorted() {
  static const bool checked = [] {
    for (std::span<const OpEntry> table : {dnn_op_table(), kernel_op_table()}) {
      for (size_t i = 1; i < table.size(); ++i) {
        PS_CHECK(table[i - 1].op < table[i].op);  // sorted, no duplicates
      }
    }
    return true;
  }();
  (void)checked;
}

}  // namespace

std::string_view precision_name(Precision precision) {
  return precision == Precision::kFp32 ? "fp32" : "tf32";
}

Result<Precision> parse_precision(std::string_view text) {
  if (text == "fp32") return Precision::kFp32;
  if (text == "tf32") return Precision::kTf32;
  return invalid_argument("unknown precision '", text, "' (expected fp32 or tf32)");
}

Result<std::unique_ptr<GpuOp>> build_op(const OpSpec& spec, const OpEnv& env) {
  check_tables_sorted();
  const OpEntry* entry = find_entry(spec.op);
  if (entry == nullptr) {
    return unsupported("the GPU executor has no operator ", spec.op, " (layer '", spec.name,
                       "')");
  }
  auto op = entry->build(spec, env);
  if (!op.ok()) return op.status().with_context(str_cat(spec.op, " '", spec.name, "'"));
  return op;
}

bool gpu_supports(std::string_view op) {
  check_tables_sorted();
  return find_entry(op) != nullptr;
}

std::vector<std::string> gpu_supported_ops() {
  std::vector<std::string> ops;
  for (std::span<const OpEntry> table : {dnn_op_table(), kernel_op_table()}) {
    for (const OpEntry& e : table) ops.emplace_back(e.op);
  }
  std::sort(ops.begin(), ops.end());
  return ops;
}

}  // namespace ps::models::gpu
