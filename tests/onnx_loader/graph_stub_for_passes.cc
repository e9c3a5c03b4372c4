// TEST-ONLY stand-in for onnx_loader/graph.cc, which the import branch implements. Linked into
// test_onnx_passes only until that branch is merged; then delete this file and its line in
// tests/onnx_loader/CMakeLists.txt. It implements the header's contract plainly.
#include <algorithm>
#include <set>

#include "onnx_loader/graph.h"

namespace ps::onnx_loader {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
    case DType::kInt32:
      return 4;
    case DType::kFloat16:
    case DType::kBFloat16:
      return 2;
    case DType::kFloat64:
    case DType::kInt64:
      return 8;
    case DType::kInt8:
    case DType::kUInt8:
    case DType::kBool:
      return 1;
    case DType::kUndefined:
      break;
  }
  return 0;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return "float32";
    case DType::kFloat16:
      return "float16";
    case DType::kBFloat16:
      return "bfloat16";
    case DType::kFloat64:
      return "float64";
    case DType::kInt64:
      return "int64";
    case DType::kInt32:
      return "int32";
    case DType::kInt8:
      return "int8";
    case DType::kUInt8:
      return "uint8";
    case DType::kBool:
      return "bool";
    case DType::kUndefined:
      break;
  }
  return "undefined";
}

int64_t element_count(const Shape& shape) {
  int64_t count = 1;
  for (int64_t dim : shape) count *= dim;
  return count;
}

std::string shape_string(const Shape& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? "," : "") + std::to_string(shape[i]);
  return text + "]";
}

int64_t Node::attr_int(const std::string& key, int64_t fallback) const {
  auto it = attrs.find(key);
  if (it == attrs.end()) return fallback;
  const auto* v = std::get_if<int64_t>(&it->second.value);
  return v ? *v : fallback;
}
float Node::attr_float(const std::string& key, float fallback) const {
  auto it = attrs.find(key);
  if (it == attrs.end()) return fallback;
  const auto* v = std::get_if<float>(&it->second.value);
  return v ? *v : fallback;
}
std::string Node::attr_string(const std::string& key, const std::string& fallback) const {
  auto it = attrs.find(key);
  if (it == attrs.end()) return fallback;
  const auto* v = std::get_if<std::string>(&it->second.value);
  return v ? *v : fallback;
}
std::vector<int64_t> Node::attr_ints(const std::string& key,
                                     const std::vector<int64_t>& fallback) const {
  auto it = attrs.find(key);
  if (it == attrs.end()) return fallback;
  const auto* v = std::get_if<std::vector<int64_t>>(&it->second.value);
  return v ? *v : fallback;
}

int Graph::add_value(Value value) {
  values.push_back(std::move(value));
  return static_cast<int>(values.size()) - 1;
}

int Graph::add_node(Node node) {
  const int index = static_cast<int>(nodes.size());
  for (int output : node.outputs) {
    if (output >= 0) values[output].producer = index;
  }
  nodes.push_back(std::move(node));
  return index;
}

std::vector<int> Graph::consumers(int value) const {
  std::vector<int> readers;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].dead) continue;
    if (std::find(nodes[i].inputs.begin(), nodes[i].inputs.end(), value) != nodes[i].inputs.end()) {
      readers.push_back(static_cast<int>(i));
    }
  }
  return readers;
}

bool Graph::is_output(int value) const {
  return std::find(outputs.begin(), outputs.end(), value) != outputs.end();
}

int Graph::find_value(const std::string& value_name) const {
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i].name == value_name) return static_cast<int>(i);
  }
  return -1;
}

void Graph::replace_uses(int from, int to) {
  for (Node& node : nodes) {
    for (int& input : node.inputs) {
      if (input == from) input = to;
    }
  }
  for (int& output : outputs) {
    if (output == from) output = to;
  }
}

void Graph::compact() {
  std::vector<int> node_map(nodes.size(), -1);
  std::vector<Node> kept;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].dead) continue;
    node_map[i] = static_cast<int>(kept.size());
    kept.push_back(std::move(nodes[i]));
  }
  nodes = std::move(kept);
  std::vector<bool> used(values.size(), false);
  for (const Node& node : nodes) {
    for (int v : node.inputs)
      if (v >= 0) used[v] = true;
    for (int v : node.outputs)
      if (v >= 0) used[v] = true;
  }
  for (int v : inputs) used[v] = true;
  for (int v : outputs) used[v] = true;
  std::vector<int> value_map(values.size(), -1);
  std::vector<Value> kept_values;
  for (size_t i = 0; i < values.size(); ++i) {
    if (!used[i]) continue;
    value_map[i] = static_cast<int>(kept_values.size());
    Value value = std::move(values[i]);
    value.producer = value.producer >= 0 ? node_map[value.producer] : -1;
    kept_values.push_back(std::move(value));
  }
  values = std::move(kept_values);
  for (Node& node : nodes) {
    for (int& v : node.inputs)
      if (v >= 0) v = value_map[v];
    for (int& v : node.outputs)
      if (v >= 0) v = value_map[v];
  }
  for (int& v : inputs) v = value_map[v];
  for (int& v : outputs) v = value_map[v];
}

Status Graph::validate() const {
  const int value_count = static_cast<int>(values.size());
  std::vector<bool> available(values.size(), false);
  for (int v : inputs) {
    if (v < 0 || v >= value_count) return internal_error("input index ", v, " out of range");
    available[v] = true;
  }
  for (int v = 0; v < value_count; ++v) {
    if (values[v].constant) available[v] = true;
  }
  std::set<int> produced;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& node = nodes[i];
    if (node.dead) continue;
    for (int v : node.inputs) {
      if (v < -1 || v >= value_count) return internal_error("node ", i, " input out of range");
      if (v >= 0 && !available[v]) {
        return internal_error("node ", i, " '", node.name, "' reads '", values[v].name,
                              "' before it is produced");
      }
    }
    for (int v : node.outputs) {
      if (v < -1 || v >= value_count) return internal_error("node ", i, " output out of range");
      if (v < 0) continue;
      if (!produced.insert(v).second) return internal_error("value ", v, " produced twice");
      if (values[v].producer != static_cast<int>(i)) {
        return internal_error("value '", values[v].name, "' names producer ", values[v].producer,
                              " but node ", i, " produces it");
      }
      available[v] = true;
    }
  }
  for (int v : outputs) {
    if (v < 0 || v >= value_count || !available[v]) {
      return internal_error("output ", v, " is not produced");
    }
  }
  return Status::OK();
}

}  // namespace ps::onnx_loader
