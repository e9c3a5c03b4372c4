#include "onnx_loader/passes/fuse_add_layernorm.h"

#include "onnx_loader/passes/pattern.h"

namespace ps::onnx_loader::passes {
namespace {

bool try_fuse(Graph& graph, int norm_index) {
  const Node& norm = graph.nodes[norm_index];
  if (!norm.domain.empty() || norm.inputs.size() < 2 || norm.outputs.size() != 1) return false;
  const int x = norm.inputs[0];
  const int add_index = live_producer(graph, x);
  if (add_index < 0 || sole_consumer(graph, x) != norm_index) return false;
  const Node& add = graph.nodes[add_index];
  if (add.op != "Add" || !add.domain.empty() || add.inputs.size() != 2 || add.outputs.size() != 1) {
    return false;
  }
  const std::optional<Shape> x_shape = static_shape(graph, x);
  if (!x_shape || graph.values[x].dtype != DType::kFloat32) return false;
  for (int operand : add.inputs) {
    if (operand < 0 || graph.values[operand].dtype != DType::kFloat32 ||
        static_shape(graph, operand) != x_shape) {
      return false;
    }
  }

  Node fused;
  fused.op = "AddLayerNormalization";
  fused.name = fused_node_name(norm.name, "AddLayerNormalization");
  fused.inputs = {add.inputs[0], add.inputs[1]};
  fused.inputs.insert(fused.inputs.end(), norm.inputs.begin() + 1, norm.inputs.end());
  fused.outputs = norm.outputs;
  fused.attrs = norm.attrs;
  replace_nodes(graph, {add_index, norm_index}, norm_index, std::move(fused));
  return true;
}

}  // namespace

Result<int> fuse_add_layernorm(Graph& graph) {
  return fuse_each(graph, "LayerNormalization", try_fuse);
}

}  // namespace ps::onnx_loader::passes
