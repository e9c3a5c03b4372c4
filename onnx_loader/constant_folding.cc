#include "onnx_loader/constant_folding.h"

#include <algorithm>

#include "onnx_loader/constant_eval.h"
#include "onnx_loader/shape_inference.h"
#include "onnx_loader/supported_ops.h"

namespace ps::onnx_loader {

Status fold_constants(Graph& graph, int* folded) {
  int count = 0;
  std::vector<InputInfo> inputs;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    Node& node = graph.nodes[i];
    if (node.dead || !node.domain.empty() || !can_evaluate(node.op)) continue;
    const bool shapes_only = needs_only_shapes(node.op);

    inputs.assign(node.inputs.size(), InputInfo{});
    bool ready = true;
    bool literal = true;  // no input's data came from an initializer
    uint64_t input_bytes = 0;
    for (size_t k = 0; k < node.inputs.size() && ready; ++k) {
      const int v = node.inputs[k];
      if (v < 0) continue;
      const Value& value = graph.values[v];
      if (value.constant) {
        inputs[k] = InputInfo{true, value.name, value.constant->dtype, value.constant->shape,
                              value.constant.get()};
        input_bytes += value.constant->bytes.size();
        literal = literal && value.literal;
      } else if (shapes_only && value.shape && value.dtype != DType::kUndefined) {
        inputs[k] = InputInfo{true, value.name, value.dtype, *value.shape, nullptr};
      } else {
        ready = false;
      }
    }
    if (!ready) continue;

    const OpContext ctx(node, inputs, graph.opset, describe_node(graph, static_cast<int>(i)));
    PS_ASSIGN_OR_RETURN(auto types, infer_node_types(ctx));
    const SupportedOp* op = find_supported_op(node.domain, node.op, graph.opset);
    if (op != nullptr && op->kind == OpKind::kExecuted) {
      uint64_t output_bytes = 0;
      for (const OutputType& t : types)
        output_bytes += element_count(t.shape) * dtype_size(t.dtype);
      if (output_bytes > std::max(kMaxFoldGrowthBytes, input_bytes)) continue;
    }
    auto results = evaluate_node(ctx, types);
    if (!results.ok()) {
      if (results.status().code() == Code::kUnsupported) continue;  // e.g. training Dropout
      return results.status();
    }
    for (size_t k = 0; k < node.outputs.size(); ++k) {
      Value& out = graph.values[node.outputs[k]];
      out.dtype = types[k].dtype;
      out.shape = types[k].shape;
      out.constant = std::make_shared<const TensorData>(std::move((*results)[k]));
      out.literal = literal;
      out.producer = -1;
    }
    node.dead = true;
    ++count;
  }
  if (folded != nullptr) *folded = count;
  return Status::OK();
}

}  // namespace ps::onnx_loader
