#include "onnx_loader/passes/remove_zero_add.h"

#include <cstring>

#include "onnx_loader/passes/pattern.h"
#include "onnx_loader/pipeline.h"

namespace ps::onnx_loader::passes {
namespace {

// Every element's bits, sign bit cleared by `mask`, are zero.
template <typename Bits>
bool all_zero_bits(const TensorData& data, Bits mask) {
  const size_t n = data.bytes.size() / sizeof(Bits);
  for (size_t i = 0; i < n; ++i) {
    Bits bits;
    std::memcpy(&bits, data.bytes.data() + i * sizeof(Bits), sizeof(Bits));
    if ((bits & mask) != 0) return false;
  }
  return true;
}

}  // namespace

bool is_all_zero(const TensorData& data) {
  if (data.bytes.empty()) return false;
  switch (data.dtype) {
    case DType::kFloat32:
      return all_zero_bits<uint32_t>(data, 0x7fffffffu);
    case DType::kFloat64:
      return all_zero_bits<uint64_t>(data, ~(uint64_t{1} << 63));
    case DType::kFloat16:
    case DType::kBFloat16:
      return all_zero_bits<uint16_t>(data, 0x7fffu);
    case DType::kInt64:
    case DType::kInt32:
    case DType::kInt8:
    case DType::kUInt8:
      return all_zero_bits<uint8_t>(data, 0xffu);
    default:
      return false;
  }
}

namespace {

bool try_remove(Graph& graph, int add_index, bool keep_parameters) {
  Node& node = graph.nodes[add_index];
  if (!node.domain.empty() || node.inputs.size() != 2 || node.outputs.size() != 1) return false;
  const int y = node.outputs[0];
  if (graph.is_output(y)) return false;
  for (int slot = 0; slot < 2; ++slot) {
    const int c = node.inputs[slot], x = node.inputs[1 - slot];
    const TensorData* zero = constant_of(graph, c);
    if (zero == nullptr || zero->dtype != graph.values[y].dtype || !is_all_zero(*zero)) continue;
    if (keep_parameters && is_parameter(graph.values[c])) continue;
    const std::optional<Shape> x_shape = static_shape(graph, x);
    const std::optional<Shape> y_shape = static_shape(graph, y);
    if (!x_shape || !y_shape || *x_shape != *y_shape || graph.values[x].dtype != zero->dtype) {
      continue;
    }
    graph.replace_uses(y, x);
    node.dead = true;
    return true;
  }
  return false;
}

bool try_remove_any(Graph& graph, int add_index) { return try_remove(graph, add_index, false); }
bool try_remove_keeping_parameters(Graph& graph, int add_index) {
  return try_remove(graph, add_index, true);
}

}  // namespace

Result<int> remove_zero_add(Graph& graph) { return fuse_each(graph, "Add", try_remove_any); }

Result<int> remove_zero_add_keeping_parameters(Graph& graph) {
  return fuse_each(graph, "Add", try_remove_keeping_parameters);
}

}  // namespace ps::onnx_loader::passes
