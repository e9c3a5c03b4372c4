#include "onnx_loader/passes/fuse_linear_bias.h"

#include "onnx_loader/passes/pattern.h"

namespace ps::onnx_loader::passes {
namespace {

bool try_fuse(Graph& graph, int matmul_index) {
  const Node& matmul = graph.nodes[matmul_index];
  if (!matmul.domain.empty() || matmul.inputs.size() != 2 || matmul.outputs.size() != 1) {
    return false;
  }
  const int product = matmul.outputs[0];
  const int add_index = sole_consumer(graph, product);
  if (add_index < 0) return false;
  const Node& add = graph.nodes[add_index];
  if (add.op != "Add" || !add.domain.empty() || add.inputs.size() != 2 ||
      add.outputs.size() != 1) {
    return false;
  }
  const int bias = other_input(add, product);
  if (bias < 0 || bias == product) return false;
  const TensorData* bias_data = constant_of(graph, bias);
  const std::optional<Shape> p_shape = static_shape(graph, product);
  const std::optional<Shape> y_shape = static_shape(graph, add.outputs[0]);
  if (bias_data == nullptr || !p_shape || p_shape->empty() || y_shape != p_shape) return false;
  if (bias_data->dtype != DType::kFloat32 || graph.values[product].dtype != DType::kFloat32 ||
      bias_data->shape != Shape{p_shape->back()}) {
    return false;
  }
  Node fused;
  fused.op = "MatMulTransB";
  fused.name = matmul.name;
  fused.inputs = {matmul.inputs[0], matmul.inputs[1], bias};
  fused.outputs = add.outputs;
  replace_nodes(graph, {matmul_index, add_index}, add_index, std::move(fused));
  return true;
}

}  // namespace

Result<int> fuse_linear_bias(Graph& graph) { return fuse_each(graph, "MatMulTransB", try_fuse); }

}  // namespace ps::onnx_loader::passes
