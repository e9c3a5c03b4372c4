#include "onnx_loader/passes/fuse_matmul_bias.h"

#include "onnx_loader/passes/pattern.h"

namespace ps::onnx_loader::passes {
namespace {

// True when `bias` is a constant that adds one value per element of the last dimension of a
// tensor of shape `out` without broadcasting it to a larger shape.
bool is_last_dim_bias(const TensorData& bias, const Shape& out) {
  if (out.empty() || bias.shape.empty() || bias.shape.size() > out.size()) return false;
  for (size_t i = 0; i + 1 < bias.shape.size(); ++i) {
    if (bias.shape[i] != 1) return false;
  }
  return bias.shape.back() == out.back() &&
         bias.bytes.size() == static_cast<size_t>(out.back()) * dtype_size(bias.dtype);
}

bool try_fuse(Graph& graph, int matmul_index) {
  const Node& matmul = graph.nodes[matmul_index];
  if (matmul.inputs.size() != 2 || matmul.outputs.size() != 1) return false;
  const int product = matmul.outputs[0];
  const int add_index = sole_consumer(graph, product);
  if (add_index < 0 || graph.nodes[add_index].op != "Add") return false;
  const Node& add = graph.nodes[add_index];
  if (add.outputs.size() != 1) return false;
  const int bias = other_input(add, product);
  const TensorData* bias_data = constant_of(graph, bias);
  const std::optional<Shape> out_shape = static_shape(graph, product);
  if (bias_data == nullptr || !out_shape || bias == product) return false;
  if (bias_data->dtype != graph.values[product].dtype) return false;
  if (!is_last_dim_bias(*bias_data, *out_shape)) return false;

  int bias_value = bias;
  if (bias_data->shape.size() != 1) {
    TensorData flat = *bias_data;
    flat.shape = Shape{out_shape->back()};
    const Value& original = graph.values[bias];
    bias_value = add_constant(graph, original.name + "/flat", std::move(flat), original.is_weight);
  }
  Node fused;
  fused.op = "MatMulBias";
  fused.name = fused_node_name(graph.nodes[matmul_index].name, "MatMulBias");
  fused.inputs = {graph.nodes[matmul_index].inputs[0], graph.nodes[matmul_index].inputs[1],
                  bias_value};
  fused.outputs = graph.nodes[add_index].outputs;
  replace_nodes(graph, {matmul_index, add_index}, add_index, std::move(fused));
  return true;
}

}  // namespace

Result<int> fuse_matmul_bias(Graph& graph) { return fuse_each(graph, "MatMul", try_fuse); }

int count_linear_gemms(const Graph& graph) {
  int count = 0;
  for (const Node& node : graph.nodes) {
    if (node.dead || node.op != "Gemm" || node.inputs.size() < 2 || node.outputs.size() != 1) {
      continue;
    }
    if (node.attr_int("transA", 0) != 0 || node.attr_float("alpha", 1.0f) != 1.0f ||
        node.attr_float("beta", 1.0f) != 1.0f) {
      continue;
    }
    if (node.inputs.size() == 3 && node.inputs[2] >= 0) {
      const TensorData* bias = constant_of(graph, node.inputs[2]);
      const std::optional<Shape> out = static_shape(graph, node.outputs[0]);
      if (bias == nullptr || !out || out->size() != 2 || bias->shape != Shape{(*out)[1]}) {
        continue;
      }
    }
    ++count;
  }
  return count;
}

}  // namespace ps::onnx_loader::passes
