#include "onnx_loader/passes/fold_batchnorm.h"

#include <cmath>

#include "onnx_loader/passes/pattern.h"

namespace ps::onnx_loader::passes {
namespace {

// A float32 constant of shape [channels], or nullptr.
const TensorData* channel_vector(const Graph& graph, int value, int64_t channels) {
  const TensorData* data = constant_of(graph, value);
  if (data == nullptr || data->dtype != DType::kFloat32) return nullptr;
  if (data->shape != Shape{channels}) return nullptr;
  if (data->bytes.size() != static_cast<size_t>(channels) * sizeof(float)) return nullptr;
  return data;
}

bool bn_is_inference_form(const Graph& graph, const Node& bn) {
  if (bn.inputs.size() != 5 || bn.outputs.empty()) return false;
  if (bn.attr_int("training_mode", 0) != 0 || bn.attr_int("spatial", 1) != 1) return false;
  for (size_t i = 1; i < bn.outputs.size(); ++i) {
    const int extra = bn.outputs[i];
    if (extra >= 0 && (!graph.consumers(extra).empty() || graph.is_output(extra))) return false;
  }
  return true;
}

// Folds `bn` into `conv`; returns false (graph untouched) when a precondition fails.
bool try_fold(Graph& graph, int conv_index, int bn_index) {
  const Node& conv = graph.nodes[conv_index];
  const Node& bn = graph.nodes[bn_index];
  if (conv.inputs.size() < 2 || conv.inputs.size() > 3 || conv.outputs.size() != 1) return false;
  if (!bn_is_inference_form(graph, bn) || bn.inputs[0] != conv.outputs[0]) return false;

  const TensorData* weight = constant_of(graph, conv.inputs[1]);
  if (weight == nullptr || weight->dtype != DType::kFloat32 || weight->shape.size() < 3) {
    return false;
  }
  const int64_t channels = weight->shape[0];
  if (channels <= 0 || weight->bytes.size() != static_cast<size_t>(weight->elements()) * 4) {
    return false;
  }
  const TensorData* bias = nullptr;
  if (conv.inputs.size() == 3 && conv.inputs[2] >= 0) {
    bias = channel_vector(graph, conv.inputs[2], channels);
    if (bias == nullptr) return false;
  }
  const TensorData* gamma = channel_vector(graph, bn.inputs[1], channels);
  const TensorData* beta = channel_vector(graph, bn.inputs[2], channels);
  const TensorData* mean = channel_vector(graph, bn.inputs[3], channels);
  const TensorData* var = channel_vector(graph, bn.inputs[4], channels);
  if (gamma == nullptr || beta == nullptr || mean == nullptr || var == nullptr) return false;
  const double epsilon = bn.attr_float("epsilon", 1e-5f);

  TensorData new_weight = *weight;
  TensorData new_bias{DType::kFloat32, Shape{channels},
                      std::vector<uint8_t>(static_cast<size_t>(channels) * sizeof(float))};
  auto w = new_weight.as_mutable<float>();
  auto b = new_bias.as_mutable<float>();
  const int64_t per_channel = weight->elements() / channels;
  for (int64_t m = 0; m < channels; ++m) {
    const double variance = var->as<float>()[m];
    if (variance + epsilon <= 0.0) return false;
    const double scale = gamma->as<float>()[m] / std::sqrt(variance + epsilon);
    for (int64_t k = 0; k < per_channel; ++k) {
      float& element = w[m * per_channel + k];
      element = static_cast<float>(element * scale);
    }
    const double old_bias = bias ? bias->as<float>()[m] : 0.0;
    b[m] = static_cast<float>((old_bias - mean->as<float>()[m]) * scale + beta->as<float>()[m]);
  }

  const std::string weight_name = graph.values[conv.inputs[1]].name;
  const std::string bias_name = bias ? graph.values[conv.inputs[2]].name : weight_name + "/bias";
  const int weight_value =
      add_constant(graph, weight_name + "/bn_folded", std::move(new_weight), true);
  const int bias_value = add_constant(graph, bias_name + "/bn_folded", std::move(new_bias), true);

  // add_value may have grown the vectors: index again.
  Node& fused = graph.nodes[conv_index];
  Node& dead_bn = graph.nodes[bn_index];
  fused.inputs.resize(3);
  fused.inputs[1] = weight_value;
  fused.inputs[2] = bias_value;
  fused.outputs[0] = dead_bn.outputs[0];
  graph.values[fused.outputs[0]].producer = conv_index;
  fused.onnx_nodes = merged_onnx_nodes(graph, {conv_index, bn_index});
  dead_bn.dead = true;
  return true;
}

}  // namespace

Result<int> fold_batchnorm_into_conv(Graph& graph) {
  int folded = 0;
  for (int index = 0; index < static_cast<int>(graph.nodes.size()); ++index) {
    if (graph.nodes[index].dead || graph.nodes[index].op != "BatchNormalization") continue;
    if (graph.nodes[index].inputs.empty()) continue;
    const int conv_index = live_producer(graph, graph.nodes[index].inputs[0]);
    if (conv_index < 0 || graph.nodes[conv_index].op != "Conv") continue;
    if (graph.nodes[conv_index].outputs.size() != 1) continue;
    if (sole_consumer(graph, graph.nodes[conv_index].outputs[0]) != index) continue;
    if (try_fold(graph, conv_index, index)) ++folded;
  }
  return folded;
}

}  // namespace ps::onnx_loader::passes
