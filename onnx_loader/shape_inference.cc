#include "onnx_loader/shape_inference.h"

#include "onnx_loader/constant_eval.h"
#include "onnx_loader/shape_functions.h"
#include "onnx_loader/tensor_data.h"

namespace ps::onnx_loader {
namespace {

// Shape arithmetic is evaluated on the side up to this many output elements; it is tiny in
// practice (shapes, indices), and anything bigger is left to constant folding.
constexpr int64_t kSideEvaluationElements = 1 << 14;

ShapeFunction find_shape_function(std::string_view op_type) {
  if (ShapeFunction f = find_tensor_shape_function(op_type)) return f;
  return find_nn_shape_function(op_type);
}

}  // namespace

bool has_shape_function(std::string_view op_type) {
  return find_shape_function(op_type) != nullptr;
}

Result<std::vector<OutputType>> infer_node_types(const OpContext& ctx) {
  const Node& node = ctx.node();
  ShapeFunction f = node.domain.empty() ? find_shape_function(node.op) : nullptr;
  if (f == nullptr) return unsupported(ctx.label(), ": no shape function for this op");
  PS_ASSIGN_OR_RETURN(auto types, f(ctx));
  if (types.size() != ctx.output_count()) {
    return ctx.error("has ", ctx.output_count(), " outputs, expected ", types.size());
  }
  return types;
}

Status infer_shapes(Graph& graph) { return infer_shapes(graph, kDefaultMaxTensorBytes); }

Status infer_shapes(Graph& graph, uint64_t max_tensor_bytes) {
  for (int v : graph.inputs) {
    const Value& value = graph.values[v];
    if (value.dtype == DType::kUndefined || !value.shape) {
      return invalid_argument("graph input '", value.name, "' has no static type and shape");
    }
    PS_TRY(check_tensor_size(*value.shape, value.dtype, max_tensor_bytes,
                             str_cat("graph input ", value.name)));
  }
  // Values known at import time: the graph's constants, and shape arithmetic evaluated below.
  std::vector<ConstTensor> known(graph.values.size());
  for (size_t v = 0; v < graph.values.size(); ++v) {
    Value& value = graph.values[v];
    if (!value.constant) continue;
    value.dtype = value.constant->dtype;
    value.shape = value.constant->shape;
    known[v] = value.constant;
  }

  std::vector<InputInfo> inputs;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& node = graph.nodes[i];
    if (node.dead) continue;
    const std::string label = describe_node(graph, static_cast<int>(i));
    inputs.assign(node.inputs.size(), InputInfo{});
    bool all_known = true;
    for (size_t k = 0; k < node.inputs.size(); ++k) {
      const int v = node.inputs[k];
      if (v < 0) continue;
      const Value& value = graph.values[v];
      if (value.dtype == DType::kUndefined || !value.shape) {
        return internal_error(label, ": input '", value.name, "' has no inferred type");
      }
      inputs[k] = InputInfo{true, value.name, value.dtype, *value.shape, known[v].get()};
      all_known = all_known && known[v] != nullptr;
    }
    const OpContext ctx(node, inputs, graph.opset, label);

    std::vector<OutputType> types;
    if (node.domain.empty() && has_shape_function(node.op)) {
      PS_ASSIGN_OR_RETURN(types, infer_node_types(ctx));
    } else {
      // A node made by a pass (or an op we cannot infer): keep the types it was given.
      for (int o : node.outputs) {
        const Value& out = graph.values[o];
        if (out.dtype == DType::kUndefined || !out.shape) {
          return unsupported(label, ": no shape function for this op, and output '", out.name,
                             "' has no type");
        }
      }
      continue;
    }

    int64_t produced = 0;
    for (size_t k = 0; k < node.outputs.size(); ++k) {
      Value& out = graph.values[node.outputs[k]];
      PS_TRY(check_tensor_size(types[k].shape, types[k].dtype, max_tensor_bytes,
                               str_cat("output ", out.name, " of ", label)));
      out.dtype = types[k].dtype;
      out.shape = types[k].shape;
      produced += element_count(types[k].shape);
    }

    const bool evaluable = needs_only_shapes(node.op) || all_known;
    if (evaluable && produced <= kSideEvaluationElements && can_evaluate(node.op)) {
      auto values = evaluate_node(ctx, types);
      if (!values.ok()) {
        // Ops the evaluator declines (training-mode Dropout) stay unknown; real errors
        // (an index out of range in constants) are the model's.
        if (values.status().code() == Code::kUnsupported) continue;
        return values.status();
      }
      for (size_t k = 0; k < node.outputs.size(); ++k) {
        known[node.outputs[k]] = std::make_shared<const TensorData>(std::move((*values)[k]));
      }
    }
  }
  return Status::OK();
}

}  // namespace ps::onnx_loader
