// Test helper: builds small graphs directly in the IR (no ONNX file needed).
#pragma once

#include <cstring>
#include <string>
#include <vector>

#include "onnx_loader/graph.h"

namespace ps::onnx_loader::testing {

// (memcpy from an empty vector's null data() is undefined behaviour even for 0 bytes: UBSan
// says so, hence the guards.)

inline TensorData float_tensor(const Shape& shape, const std::vector<float>& data) {
  TensorData tensor{DType::kFloat32, shape, std::vector<uint8_t>(data.size() * sizeof(float))};
  if (!data.empty()) std::memcpy(tensor.bytes.data(), data.data(), tensor.bytes.size());
  return tensor;
}

inline TensorData int64_tensor(const Shape& shape, const std::vector<int64_t>& data) {
  TensorData tensor{DType::kInt64, shape, std::vector<uint8_t>(data.size() * sizeof(int64_t))};
  if (!data.empty()) std::memcpy(tensor.bytes.data(), data.data(), tensor.bytes.size());
  return tensor;
}

inline std::vector<float> floats_of(const TensorData& tensor) {
  auto span = tensor.as<float>();
  return {span.begin(), span.end()};
}

// 0.1, 0.2, ... distinct, deterministic values.
inline std::vector<float> ramp(size_t count, float start = 0.1f, float step = 0.1f) {
  std::vector<float> values(count);
  for (size_t i = 0; i < count; ++i) values[i] = start + step * static_cast<float>(i);
  return values;
}

class Builder {
 public:
  Graph graph;

  int input(const std::string& name, const Shape& shape, DType dtype = DType::kFloat32) {
    Value value;
    value.name = name;
    value.dtype = dtype;
    value.shape = shape;
    const int index = graph.add_value(std::move(value));
    graph.inputs.push_back(index);
    return index;
  }

  int constant(const std::string& name, TensorData data, bool is_weight) {
    Value value;
    value.name = name;
    value.dtype = data.dtype;
    value.shape = data.shape;
    value.is_weight = is_weight;
    value.constant = std::make_shared<const TensorData>(std::move(data));
    return graph.add_value(std::move(value));
  }
  int weight(const std::string& name, const Shape& shape, const std::vector<float>& data) {
    return constant(name, float_tensor(shape, data), true);
  }
  int scalar(const std::string& name, float x, const Shape& shape = {}) {
    return constant(name, float_tensor(shape, {x}), false);
  }

  // Adds a node with one output value of `shape`; returns the output value.
  int node(const std::string& op, const std::string& name, std::vector<int> inputs,
           const Shape& shape, std::map<std::string, Attribute> attrs = {},
           DType dtype = DType::kFloat32) {
    Value value;
    value.name = name + ":0";
    value.dtype = dtype;
    value.shape = shape;
    const int out = graph.add_value(std::move(value));
    Node node;
    node.op = op;
    node.name = name;
    node.inputs = std::move(inputs);
    node.outputs = {out};
    node.attrs = std::move(attrs);
    node.onnx_nodes = {onnx_index_++};
    graph.add_node(std::move(node));
    return out;
  }

  void output(int value) { graph.outputs.push_back(value); }

  // Live nodes with op `op`.
  int count(const std::string& op) const {
    int n = 0;
    for (const Node& node : graph.nodes) n += (!node.dead && node.op == op) ? 1 : 0;
    return n;
  }
  // The first live node with op `op`, or nullptr.
  const Node* find(const std::string& op) const {
    for (const Node& node : graph.nodes) {
      if (!node.dead && node.op == op) return &node;
    }
    return nullptr;
  }
  int live() const {
    int n = 0;
    for (const Node& node : graph.nodes) n += node.dead ? 0 : 1;
    return n;
  }

 private:
  int onnx_index_ = 0;
};

}  // namespace ps::onnx_loader::testing
