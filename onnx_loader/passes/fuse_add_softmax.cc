#include "onnx_loader/passes/fuse_add_softmax.h"

#include <vector>

#include "onnx_loader/passes/pattern.h"
#include "onnx_loader/pipeline.h"

namespace ps::onnx_loader::passes {
namespace {

// Whether a parameter (pipeline.h's is_parameter) reaches `value` through live nodes: then
// training would want the mask's gradient, which the GPU's AddSoftmax backward does not make.
bool reached_by_parameter(const Graph& graph, int value) {
  std::vector<bool> seen(graph.values.size(), false);
  std::vector<int> stack = {value};
  while (!stack.empty()) {
    const int v = stack.back();
    stack.pop_back();
    if (v < 0 || seen[static_cast<size_t>(v)]) continue;
    seen[static_cast<size_t>(v)] = true;
    if (is_parameter(graph.values[v])) return true;
    const int producer = live_producer(graph, v);
    if (producer >= 0) {
      for (int input : graph.nodes[producer].inputs) stack.push_back(input);
    }
  }
  return false;
}

bool try_fuse(Graph& graph, int softmax_index) {
  const Node& softmax = graph.nodes[softmax_index];
  if (!softmax.domain.empty() || softmax.inputs.size() != 1 || softmax.outputs.size() != 1) {
    return false;
  }
  const int sum = softmax.inputs[0];
  const std::optional<Shape> s_shape = static_shape(graph, sum);
  if (!s_shape || s_shape->empty() || graph.values[sum].dtype != DType::kFloat32) return false;
  const auto rank = static_cast<int64_t>(s_shape->size());
  const int64_t axis = softmax.attr_int("axis", -1);
  if (axis != -1 && axis != rank - 1) return false;
  const int add_index = live_producer(graph, sum);
  if (add_index < 0 || sole_consumer(graph, sum) != softmax_index) return false;
  const Node& add = graph.nodes[add_index];
  if (add.op != "Add" || !add.domain.empty() || add.inputs.size() != 2 ||
      add.outputs.size() != 1) {
    return false;
  }
  std::optional<Shape> shapes[2];
  for (int i = 0; i < 2; ++i) {
    const int operand = add.inputs[static_cast<size_t>(i)];
    if (operand < 0 || graph.values[operand].dtype != DType::kFloat32) return false;
    shapes[i] = static_shape(graph, operand);
    if (!shapes[i]) return false;
  }
  // M: an addend that broadcasts to the sum and no parameter reaches; X: the other, of the
  // sum's shape. The second addend is tried first (the Add's order kept when both would do).
  int m_slot = -1;
  for (const int slot : {1, 0}) {
    if (shapes[1 - slot] == s_shape && broadcast_shapes(*shapes[slot], *s_shape) == s_shape &&
        !reached_by_parameter(graph, add.inputs[static_cast<size_t>(slot)])) {
      m_slot = slot;
      break;
    }
  }
  if (m_slot < 0) return false;
  const int mask = add.inputs[static_cast<size_t>(m_slot)];

  Node fused;
  fused.op = "AddSoftmax";
  fused.name = fused_node_name(softmax.name, "AddSoftmax");
  fused.inputs = {add.inputs[static_cast<size_t>(1 - m_slot)], mask};
  fused.outputs = softmax.outputs;
  fused.attrs = softmax.attrs;
  replace_nodes(graph, {add_index, softmax_index}, softmax_index, std::move(fused));
  return true;
}

}  // namespace

Result<int> fuse_add_softmax(Graph& graph) { return fuse_each(graph, "Softmax", try_fuse); }

}  // namespace ps::onnx_loader::passes
