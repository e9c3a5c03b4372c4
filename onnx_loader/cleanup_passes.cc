#include "onnx_loader/cleanup_passes.h"

#include <algorithm>

#include "onnx_loader/supported_ops.h"

namespace ps::onnx_loader {
namespace {

bool is_graph_input(const Graph& graph, int v) {
  return std::find(graph.inputs.begin(), graph.inputs.end(), v) != graph.inputs.end();
}

// A Dropout that is the identity: inference mode, whatever the ratio.
bool is_inference_dropout(const Graph& graph, const Node& node) {
  if (node.inputs.size() < 3 || node.inputs[2] < 0) return true;
  const ConstTensor& mode = graph.values[node.inputs[2]].constant;
  return mode && mode->elements() == 1 && mode->bytes[0] == 0;
}

// Turns a used Dropout mask into an all-true constant. False when its shape is unknown.
bool make_mask_constant(Graph& graph, Node& node) {
  if (node.outputs.size() < 2) return true;
  Value& mask = graph.values[node.outputs[1]];
  if (graph.consumers(node.outputs[1]).empty() && !graph.is_output(node.outputs[1])) return true;
  if (!mask.shape) return false;
  auto data = std::make_shared<TensorData>();
  data->dtype = DType::kBool;
  data->shape = *mask.shape;
  data->bytes.assign(element_count(*mask.shape), 1);
  mask.dtype = DType::kBool;
  mask.constant = std::move(data);
  mask.literal = true;
  mask.producer = -1;
  return true;
}

}  // namespace

Status remove_identity_and_dropout(Graph& graph, int* removed) {
  int count = 0;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    Node& node = graph.nodes[i];
    if (node.dead || !node.domain.empty()) continue;
    const bool dropout = node.op == "Dropout";
    if (node.op != "Identity" && !dropout) continue;
    if (dropout && !is_inference_dropout(graph, node)) continue;
    if (node.inputs.empty() || node.inputs[0] < 0 || node.outputs.empty()) {
      return invalid_argument(describe_node(graph, static_cast<int>(i)), ": has no input");
    }
    const int x = node.inputs[0];
    const int y = node.outputs[0];
    if (dropout && !make_mask_constant(graph, node)) continue;

    Value& in = graph.values[x];
    Value& out = graph.values[y];
    const int producer = in.producer;
    if (!graph.is_output(y)) {
      graph.replace_uses(y, x);
    } else if (in.constant) {
      out.constant = in.constant;
      out.literal = in.literal;
      out.dtype = in.dtype;
      out.shape = in.shape;
      out.producer = -1;
    } else if (producer >= 0 && !graph.nodes[producer].dead && !graph.is_output(x) &&
               !is_graph_input(graph, x)) {
      // Keep the output's name: the producer of x writes y, and x's readers read y.
      Node& p = graph.nodes[producer];
      std::replace(p.outputs.begin(), p.outputs.end(), x, y);
      graph.replace_uses(x, y);
      out.producer = producer;
      in.producer = -1;
    } else {
      // y = input or output under another name: a copy the executor makes.
      if (dropout) {
        node.op = "Identity";
        node.inputs.resize(1);
        node.outputs.resize(1);
        node.attrs.clear();
      }
      continue;
    }
    node.dead = true;
    ++count;
  }
  if (removed != nullptr) *removed = count;
  return Status::OK();
}

Status eliminate_dead_code(Graph& graph) {
  std::vector<char> needed(graph.values.size(), 0);
  for (int v : graph.outputs) {
    if (v >= 0) needed[v] = 1;
  }
  for (size_t i = graph.nodes.size(); i-- > 0;) {
    Node& node = graph.nodes[i];
    if (node.dead) continue;
    const bool used = std::any_of(node.outputs.begin(), node.outputs.end(),
                                  [&](int v) { return v >= 0 && needed[v]; });
    if (!used) {
      node.dead = true;
      continue;
    }
    for (int v : node.inputs) {
      if (v >= 0) needed[v] = 1;
    }
  }
  graph.compact();
  return Status::OK();
}

void mark_weights(Graph& graph) {
  std::vector<char> data_use(graph.values.size(), 0);
  for (int v : graph.outputs) {
    if (v >= 0) data_use[v] = 1;
  }
  for (const Node& node : graph.nodes) {
    if (node.dead) continue;
    const SupportedOp* op = find_supported_op(node.domain, node.op, graph.opset);
    const uint32_t static_inputs = op ? op->static_inputs : 0;
    for (size_t k = 0; k < node.inputs.size(); ++k) {
      const int v = node.inputs[k];
      if (v >= 0 && !(k < 32 && (static_inputs >> k & 1u))) data_use[v] = 1;
    }
  }
  for (size_t v = 0; v < graph.values.size(); ++v) {
    Value& value = graph.values[v];
    value.is_weight = value.constant != nullptr && data_use[v];
  }
}

}  // namespace ps::onnx_loader
