#include "onnx_loader/passes/fuse_layernorm.h"

#include <algorithm>

#include "onnx_loader/passes/pattern.h"

namespace ps::onnx_loader::passes {
namespace {

// True when `node` is a ReduceMean over the last axis of its (static-rank) input, keeping dims.
bool is_last_axis_mean(const Graph& graph, const Node& node) {
  if (node.op != "ReduceMean" || node.inputs.empty() || node.outputs.size() != 1) return false;
  if (node.attr_int("keepdims", 1) != 1) return false;
  const std::optional<Shape> shape = static_shape(graph, node.inputs[0]);
  if (!shape || shape->empty()) return false;
  std::vector<int64_t> axes;
  if (node.inputs.size() >= 2 && node.inputs[1] >= 0) {  // opset 18: axes as an input
    if (node.has_attr("axes")) return false;
    const TensorData* data = constant_of(graph, node.inputs[1]);
    if (data == nullptr || data->dtype != DType::kInt64) return false;
    const auto values = data->as<int64_t>();
    axes.assign(values.begin(), values.end());
  } else {
    axes = node.attr_ints("axes");
  }
  const int64_t rank = static_cast<int64_t>(shape->size());
  return axes.size() == 1 && (axes[0] == -1 || axes[0] == rank - 1);
}

// A constant of shape [n] and the given dtype.
bool is_channel_constant(const Graph& graph, int value, int64_t n, DType dtype) {
  const TensorData* data = constant_of(graph, value);
  return data != nullptr && data->dtype == dtype && data->shape == Shape{n} &&
         data->bytes.size() == static_cast<size_t>(n) * dtype_size(dtype);
}

// The sole consumer of `value` when it has op `op`, or -1.
int next_op(const Graph& graph, int value, const char* op) {
  const int index = sole_consumer(graph, value);
  if (index < 0 || graph.nodes[index].op != op || graph.nodes[index].outputs.size() != 1) return -1;
  return index;
}

bool try_fuse(Graph& graph, int mean_index) {
  const Node& mean = graph.nodes[mean_index];
  if (!is_last_axis_mean(graph, mean)) return false;
  const int x = mean.inputs[0];
  const std::optional<Shape> x_shape = static_shape(graph, x);
  const DType dtype = graph.values[x].dtype;

  const int sub_index = next_op(graph, mean.outputs[0], "Sub");
  if (sub_index < 0) return false;
  const Node& sub = graph.nodes[sub_index];
  if (sub.inputs.size() != 2 || sub.inputs[0] != x || sub.inputs[1] != mean.outputs[0]) {
    return false;
  }
  const int d = sub.outputs[0];
  if (graph.is_output(d)) return false;
  std::vector<int> d_readers = graph.consumers(d);
  std::sort(d_readers.begin(), d_readers.end());
  d_readers.erase(std::unique(d_readers.begin(), d_readers.end()), d_readers.end());
  if (d_readers.size() != 2) return false;
  int pow_index = -1;
  int div_index = -1;
  for (int reader : d_readers) {
    const std::string& op = graph.nodes[reader].op;
    if (op == "Pow") pow_index = reader;
    if (op == "Div") div_index = reader;
  }
  if (pow_index < 0 || div_index < 0) return false;
  const Node& pow = graph.nodes[pow_index];
  if (pow.inputs.size() != 2 || pow.inputs[0] != d || pow.outputs.size() != 1) return false;
  const std::optional<double> exponent = scalar_constant(graph, pow.inputs[1]);
  if (!exponent || *exponent != 2.0) return false;

  const int var_index = next_op(graph, pow.outputs[0], "ReduceMean");
  if (var_index < 0 || !is_last_axis_mean(graph, graph.nodes[var_index])) return false;
  const int var = graph.nodes[var_index].outputs[0];
  const int add_eps_index = next_op(graph, var, "Add");
  if (add_eps_index < 0) return false;
  const std::optional<double> epsilon =
      scalar_constant(graph, other_input(graph.nodes[add_eps_index], var));
  if (!epsilon || !(*epsilon > 0.0) || *epsilon > 1e-1) return false;
  const int sqrt_index = next_op(graph, graph.nodes[add_eps_index].outputs[0], "Sqrt");
  if (sqrt_index < 0) return false;
  const int s = graph.nodes[sqrt_index].outputs[0];
  if (sole_consumer(graph, s) != div_index) return false;
  const Node& div = graph.nodes[div_index];
  if (div.inputs.size() != 2 || div.inputs[0] != d || div.inputs[1] != s ||
      div.outputs.size() != 1) {
    return false;
  }

  const int64_t n = x_shape->back();
  const int normalized = div.outputs[0];
  const int mul_index = next_op(graph, normalized, "Mul");
  if (mul_index < 0) return false;
  const int gamma = other_input(graph.nodes[mul_index], normalized);
  if (!is_channel_constant(graph, gamma, n, dtype)) return false;
  const int scaled = graph.nodes[mul_index].outputs[0];
  const int add_index = next_op(graph, scaled, "Add");
  if (add_index < 0) return false;
  const int beta = other_input(graph.nodes[add_index], scaled);
  if (!is_channel_constant(graph, beta, n, dtype)) return false;

  Node fused;
  fused.op = "LayerNormalization";
  fused.name = fused_node_name(mean.name, "LayerNormalization");
  fused.inputs = {x, gamma, beta};
  fused.outputs = graph.nodes[add_index].outputs;
  fused.attrs["axis"] = Attribute{int64_t{-1}};
  fused.attrs["epsilon"] = Attribute{static_cast<float>(*epsilon)};
  replace_nodes(graph,
                {mean_index, sub_index, pow_index, var_index, add_eps_index, sqrt_index, div_index,
                 mul_index, add_index},
                add_index, std::move(fused));
  return true;
}

}  // namespace

Result<int> fuse_layernorm(Graph& graph) { return fuse_each(graph, "ReduceMean", try_fuse); }

}  // namespace ps::onnx_loader::passes
