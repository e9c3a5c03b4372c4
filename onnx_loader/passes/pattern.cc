#include "onnx_loader/passes/pattern.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace ps::onnx_loader::passes {

int live_producer(const Graph& graph, int value) {
  if (value < 0 || value >= static_cast<int>(graph.values.size())) return -1;
  const int producer = graph.values[value].producer;
  if (producer < 0 || producer >= static_cast<int>(graph.nodes.size())) return -1;
  return graph.nodes[producer].dead ? -1 : producer;
}

int sole_consumer(const Graph& graph, int value) {
  if (value < 0 || graph.is_output(value)) return -1;
  std::vector<int> readers = graph.consumers(value);
  std::sort(readers.begin(), readers.end());
  readers.erase(std::unique(readers.begin(), readers.end()), readers.end());
  return readers.size() == 1 ? readers[0] : -1;
}

const TensorData* constant_of(const Graph& graph, int value) {
  if (value < 0 || value >= static_cast<int>(graph.values.size())) return nullptr;
  return graph.values[value].constant.get();
}

std::optional<double> scalar_constant(const Graph& graph, int value) {
  const TensorData* data = constant_of(graph, value);
  if (data == nullptr) return std::nullopt;
  for (int64_t dim : data->shape) {
    if (dim != 1) return std::nullopt;
  }
  if (data->bytes.size() != dtype_size(data->dtype)) return std::nullopt;
  switch (data->dtype) {
    case DType::kFloat32:
      return static_cast<double>(data->as<float>()[0]);
    case DType::kFloat64:
      return data->as<double>()[0];
    case DType::kInt64:
      return static_cast<double>(data->as<int64_t>()[0]);
    case DType::kInt32:
      return static_cast<double>(data->as<int32_t>()[0]);
    default:
      return std::nullopt;
  }
}

bool approx_equal(double a, double b, double tolerance) {
  return std::fabs(a - b) <= tolerance * std::max(1.0, std::fabs(b));
}

int other_input(const Node& node, int value) {
  if (node.inputs.size() != 2 || value < 0) return -1;
  if (node.inputs[0] == value) return node.inputs[1];
  if (node.inputs[1] == value) return node.inputs[0];
  return -1;
}

bool int_attr(const Node& node, const char* name, int64_t* out) {
  auto it = node.attrs.find(name);
  if (it == node.attrs.end()) return false;
  const auto* v = std::get_if<int64_t>(&it->second.value);
  if (v == nullptr) return false;
  *out = *v;
  return true;
}

std::optional<Shape> static_shape(const Graph& graph, int value) {
  if (value < 0 || value >= static_cast<int>(graph.values.size())) return std::nullopt;
  const Value& v = graph.values[value];
  if (v.constant) return v.constant->shape;
  if (!v.shape) return std::nullopt;
  for (int64_t dim : *v.shape) {
    if (dim < 0) return std::nullopt;
  }
  return v.shape;
}

std::string fused_node_name(const std::string& primary_name, const std::string& op) {
  const size_t slash = primary_name.rfind('/');
  const std::string scope = slash == std::string::npos ? "" : primary_name.substr(0, slash + 1);
  const std::string last =
      slash == std::string::npos ? primary_name : primary_name.substr(slash + 1);
  // Keep the exporter's "_<n>" suffix so names made from different nodes stay distinct.
  std::string suffix;
  const size_t underscore = last.rfind('_');
  if (underscore != std::string::npos && underscore + 1 < last.size() &&
      std::all_of(last.begin() + static_cast<long>(underscore) + 1, last.end(),
                  [](char c) { return c >= '0' && c <= '9'; })) {
    suffix = last.substr(underscore);
  }
  // Without a scope, no '/' is invented (it would read as one).
  if (scope.empty() && !last.empty() && suffix.empty()) return last + "_" + op;
  return scope + op + suffix;
}

std::vector<int> merged_onnx_nodes(const Graph& graph, std::initializer_list<int> nodes) {
  std::set<int> merged;
  for (int index : nodes) {
    if (index < 0) continue;
    const Node& node = graph.nodes[index];
    merged.insert(node.onnx_nodes.begin(), node.onnx_nodes.end());
  }
  return {merged.begin(), merged.end()};
}

int fuse_each(Graph& graph, std::string_view op, bool (*try_fuse)(Graph&, int)) {
  int fused = 0;
  for (int index = 0; index < static_cast<int>(graph.nodes.size()); ++index) {
    if (graph.nodes[index].dead || graph.nodes[index].op != op) continue;
    if (try_fuse(graph, index)) ++fused;
  }
  return fused;
}

void replace_nodes(Graph& graph, std::initializer_list<int> replaced, int slot, Node fused) {
  fused.onnx_nodes = merged_onnx_nodes(graph, replaced);
  for (int index : replaced) {
    if (index >= 0 && index != slot) graph.nodes[index].dead = true;
  }
  for (int output : fused.outputs) {
    if (output >= 0) graph.values[output].producer = slot;
  }
  graph.nodes[slot] = std::move(fused);
}

int add_constant(Graph& graph, const std::string& name, TensorData data, bool is_weight) {
  Value value;
  value.name = name;
  for (int n = 1; graph.find_value(value.name) >= 0; ++n) value.name = str_cat(name, '_', n);
  value.dtype = data.dtype;
  value.shape = data.shape;
  value.is_weight = is_weight;
  value.constant = std::make_shared<const TensorData>(std::move(data));
  return graph.add_value(std::move(value));
}

}  // namespace ps::onnx_loader::passes
