#include "onnx_loader/passes/fuse_matmul_scale.h"

#include <cmath>

#include "onnx_loader/passes/pattern.h"

namespace ps::onnx_loader::passes {
namespace {

// 2^k for an integer k (mantissa exactly 0.5 in frexp's form), within float's normal range.
bool is_power_of_two(double v) {
  if (!(v > 0) || !std::isfinite(v)) return false;
  int exponent = 0;
  return std::frexp(v, &exponent) == 0.5 && exponent > -125 && exponent < 128;
}

bool try_fuse(Graph& graph, int matmul_index) {
  const Node& matmul = graph.nodes[matmul_index];
  if (!matmul.domain.empty() || matmul.inputs.size() != 2 || matmul.outputs.size() != 1) {
    return false;
  }
  const int product = matmul.outputs[0];
  const int scale_index = sole_consumer(graph, product);
  if (scale_index < 0) return false;
  const Node& scale = graph.nodes[scale_index];
  const bool divide = scale.op == "Div";
  if ((scale.op != "Mul" && !divide) || !scale.domain.empty() || scale.outputs.size() != 1) {
    return false;
  }
  const int s = other_input(scale, product);
  if (s < 0 || s == product || (divide && scale.inputs[0] != product)) return false;
  const TensorData* s_data = constant_of(graph, s);
  const std::optional<double> value = scalar_constant(graph, s);
  const DType dtype = graph.values[product].dtype;
  if (s_data == nullptr || !value || s_data->dtype != dtype || dtype != DType::kFloat32) {
    return false;
  }
  const std::optional<Shape> p_shape = static_shape(graph, product);
  const std::optional<Shape> y_shape = static_shape(graph, scale.outputs[0]);
  if (!p_shape || !y_shape || *p_shape != *y_shape) return false;
  if (divide && !is_power_of_two(std::fabs(*value))) return false;
  const double alpha = divide ? 1.0 / *value : *value;

  Node fused;
  fused.op = "MatMulScale";
  fused.name = fused_node_name(matmul.name, "MatMulScale");
  fused.inputs = {matmul.inputs[0], matmul.inputs[1]};
  fused.outputs = scale.outputs;
  fused.attrs["alpha"] = Attribute{static_cast<float>(alpha)};
  replace_nodes(graph, {matmul_index, scale_index}, scale_index, std::move(fused));
  return true;
}

}  // namespace

Result<int> fuse_matmul_scale(Graph& graph) { return fuse_each(graph, "MatMul", try_fuse); }

}  // namespace ps::onnx_loader::passes
