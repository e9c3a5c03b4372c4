#include "onnx_loader/passes/fuse_conv.h"

#include "onnx_loader/passes/pattern.h"

namespace ps::onnx_loader::passes {
namespace {

// The Conv's attributes with ONNX defaults written out; nullopt when the Conv uses auto_pad
// or its weight shape is unknown.
std::optional<std::map<std::string, Attribute>> explicit_conv_attrs(const Graph& graph,
                                                                    const Node& conv) {
  const std::string auto_pad = conv.attr_string("auto_pad", "NOTSET");
  if (auto_pad != "NOTSET") return std::nullopt;
  const std::optional<Shape> weight_shape = static_shape(graph, conv.inputs[1]);
  if (!weight_shape || weight_shape->size() < 3) return std::nullopt;
  const size_t spatial = weight_shape->size() - 2;

  std::map<std::string, Attribute> attrs = conv.attrs;
  attrs.erase("auto_pad");
  const Shape kernel(weight_shape->begin() + 2, weight_shape->end());
  const std::vector<int64_t> kernel_attr = conv.attr_ints("kernel_shape", kernel);
  if (kernel_attr != kernel) return std::nullopt;
  const std::vector<int64_t> pads = conv.attr_ints("pads", std::vector<int64_t>(2 * spatial, 0));
  const std::vector<int64_t> strides = conv.attr_ints("strides", std::vector<int64_t>(spatial, 1));
  const std::vector<int64_t> dilations =
      conv.attr_ints("dilations", std::vector<int64_t>(spatial, 1));
  if (pads.size() != 2 * spatial || strides.size() != spatial || dilations.size() != spatial) {
    return std::nullopt;
  }
  attrs["kernel_shape"] = Attribute{kernel};
  attrs["pads"] = Attribute{pads};
  attrs["strides"] = Attribute{strides};
  attrs["dilations"] = Attribute{dilations};
  attrs["group"] = Attribute{conv.attr_int("group", 1)};
  return attrs;
}

bool is_plain_conv(const Graph& graph, int index) {
  if (index < 0) return false;
  const Node& node = graph.nodes[index];
  return !node.dead && node.op == "Conv" && node.outputs.size() == 1 && node.inputs.size() >= 2 &&
         node.inputs.size() <= 3;
}

// A residual operand: an activation with the same dtype and static shape as `conv_out`.
bool is_residual_operand(const Graph& graph, int residual, int conv_out) {
  if (residual < 0 || residual == conv_out || constant_of(graph, residual) != nullptr) {
    return false;
  }
  const std::optional<Shape> a = static_shape(graph, residual);
  const std::optional<Shape> b = static_shape(graph, conv_out);
  return a && b && *a == *b && graph.values[residual].dtype == graph.values[conv_out].dtype;
}

bool try_fuse(Graph& graph, int conv_index) {
  const Node& conv = graph.nodes[conv_index];
  const int conv_out = conv.outputs[0];
  std::optional<std::map<std::string, Attribute>> attrs = explicit_conv_attrs(graph, conv);
  if (!attrs) return false;

  int add_index = -1;
  int relu_index = -1;
  int residual = -1;
  int next = sole_consumer(graph, conv_out);
  if (next >= 0 && graph.nodes[next].op == "Add") {
    const int other = other_input(graph.nodes[next], conv_out);
    if (is_residual_operand(graph, other, conv_out)) {
      const int other_conv = live_producer(graph, other);
      const bool later_conv_fuses = other_conv > conv_index && is_plain_conv(graph, other_conv) &&
                                    sole_consumer(graph, other) == next &&
                                    explicit_conv_attrs(graph, graph.nodes[other_conv]);
      if (later_conv_fuses) return false;  // that Conv takes this Add when its turn comes
      add_index = next;
      residual = other;
      const int add_out = graph.nodes[next].outputs.size() == 1 ? graph.nodes[next].outputs[0] : -1;
      next = sole_consumer(graph, add_out);
    } else {
      next = -1;
    }
  }
  if (next >= 0 && graph.nodes[next].op == "Relu" && graph.nodes[next].inputs.size() == 1 &&
      graph.nodes[next].outputs.size() == 1) {
    relu_index = next;
  }
  if (add_index < 0 && relu_index < 0) return false;

  const int last = relu_index >= 0 ? relu_index : add_index;
  Node fused;
  fused.op = "FusedConv";
  fused.name = fused_node_name(conv.name, "FusedConv");
  fused.inputs = {conv.inputs[0], conv.inputs[1]};
  const bool has_bias = conv.inputs.size() == 3 && conv.inputs[2] >= 0;
  if (has_bias) fused.inputs.push_back(conv.inputs[2]);
  fused.outputs = graph.nodes[last].outputs;
  fused.attrs = std::move(*attrs);
  fused.attrs["activation"] = Attribute{std::string(relu_index >= 0 ? "relu" : "none")};
  fused.attrs["has_residual"] = Attribute{int64_t{residual >= 0 ? 1 : 0}};

  if (residual >= 0 && !has_bias) {
    const std::optional<Shape> weight_shape = static_shape(graph, conv.inputs[1]);
    const DType dtype = graph.values[conv_out].dtype;
    const int64_t channels = (*weight_shape)[0];
    TensorData zeros{dtype, Shape{channels},
                     std::vector<uint8_t>(static_cast<size_t>(channels) * dtype_size(dtype), 0)};
    const std::string name = graph.values[conv.inputs[1]].name + "/zero_bias";
    fused.inputs.push_back(add_constant(graph, name, std::move(zeros), false));
  }
  if (residual >= 0) fused.inputs.push_back(residual);

  replace_nodes(graph, {conv_index, add_index, relu_index}, last, std::move(fused));
  return true;
}

}  // namespace

Result<int> fuse_conv_activation(Graph& graph) {
  int fused = 0;
  for (int index = 0; index < static_cast<int>(graph.nodes.size()); ++index) {
    if (!is_plain_conv(graph, index)) continue;
    if (try_fuse(graph, index)) ++fused;
  }
  return fused;
}

}  // namespace ps::onnx_loader::passes
