#include "onnx_loader/lower.h"

#include <set>
#include <unordered_map>

#include "onnx_loader/psm_dtype.h"

namespace ps::onnx_loader {
namespace {

namespace psm = pipeswitch::psm;

uint64_t align_up(uint64_t bytes, uint64_t alignment) {
  return (bytes + alignment - 1) / alignment * alignment;
}


Status convert_attribute(const Graph& graph, int node_index, const std::string& key,
                         const Attribute& attribute, psm::Attribute* out) {
  out->set_name(key);
  const Attribute::Value& value = attribute.value;
  if (const auto* i = std::get_if<int64_t>(&value)) {
    out->set_i(*i);
  } else if (const auto* f = std::get_if<float>(&value)) {
    out->set_f(*f);
  } else if (const auto* s = std::get_if<std::string>(&value)) {
    out->set_s(*s);
  } else if (const auto* ints = std::get_if<std::vector<int64_t>>(&value)) {
    out->mutable_ints()->mutable_values()->Add(ints->begin(), ints->end());
  } else if (const auto* floats = std::get_if<std::vector<float>>(&value)) {
    out->mutable_floats()->mutable_values()->Add(floats->begin(), floats->end());
  } else if (const auto* tensor = std::get_if<ConstTensor>(&value)) {
    const TensorData* data = tensor->get();
    const bool sized =
        data != nullptr &&
        data->bytes.size() == static_cast<size_t>(data->elements()) * dtype_size(data->dtype);
    if (sized && data->dtype == DType::kFloat32) {
      for (float x : data->as<float>()) out->mutable_floats()->add_values(x);
    } else if (sized && data->dtype == DType::kInt64) {
      for (int64_t x : data->as<int64_t>()) out->mutable_ints()->add_values(x);
    } else if (sized && data->dtype == DType::kInt32) {
      for (int32_t x : data->as<int32_t>()) out->mutable_ints()->add_values(x);
    } else {
      return unsupported("lower: ", describe_node(graph, node_index), " attribute '", key,
                         "' is a tensor of ", data ? dtype_name(data->dtype) : "nothing",
                         ", which the manifest cannot hold (float32, int32, int64 only)");
    }
  }
  return Status::OK();
}

// Node inputs or outputs as manifest indices: trailing omitted ones dropped, an omitted one
// before a present one is an error (the manifest has no "absent" index).
Result<std::vector<int>> present_slots(const Graph& graph, int node_index,
                                       const std::vector<int>& slots, const char* what) {
  std::vector<int> present(slots);
  while (!present.empty() && present.back() < 0) present.pop_back();
  for (size_t i = 0; i < present.size(); ++i) {
    if (present[i] < 0) {
      return unsupported("lower: ", describe_node(graph, node_index), " omits optional ", what, " ",
                         i, " but not a later one; the manifest cannot express that");
    }
  }
  return present;
}

class Lowering {
 public:
  Lowering(const Graph& graph, const LowerOptions& options, const MemoryPlan& plan)
      : graph_(graph), options_(options), plan_(plan) {}

  Result<LoweredModel> run();

 private:
  // The manifest index of `value`, creating its tensor (and packing its bytes) on first use.
  Result<uint32_t> tensor_index(int value);
  void collect_statistics();

  const Graph& graph_;
  const LowerOptions& options_;
  const MemoryPlan& plan_;
  LoweredModel model_;
  std::unordered_map<int, uint32_t> tensor_of_value_;
  std::set<int> statistics_;  // values read as BatchNormalization mean / var
  uint64_t cursor_ = 0;       // end of the last weight packed
};

void Lowering::collect_statistics() {
  for (const Node& node : graph_.nodes) {
    if (node.dead || node.op != "BatchNormalization") continue;
    for (size_t slot = 3; slot < node.inputs.size() && slot < 5; ++slot) {
      statistics_.insert(node.inputs[slot]);
    }
  }
}

Result<uint32_t> Lowering::tensor_index(int value) {
  const auto found = tensor_of_value_.find(value);
  if (found != tensor_of_value_.end()) return found->second;

  const Value& v = graph_.values[value];
  psm::Manifest& manifest = model_.manifest;
  const auto index = static_cast<uint32_t>(manifest.tensors_size());
  psm::Tensor* tensor = manifest.add_tensors();
  tensor->set_name(v.name);
  if (v.constant) {
    const TensorData& data = *v.constant;
    const size_t element_bytes = dtype_size(data.dtype);
    if (element_bytes == 0 ||
        data.bytes.size() != static_cast<size_t>(data.elements()) * element_bytes) {
      return corrupt("lower: constant '", v.name, "' of ", dtype_name(data.dtype), " ",
                     shape_string(data.shape), " holds ", data.bytes.size(), " bytes");
    }
    tensor->set_dtype(dtype_to_psm(data.dtype));
    tensor->mutable_shape()->Add(data.shape.begin(), data.shape.end());
    tensor->set_kind(psm::Tensor::WEIGHT);
    const uint64_t offset = align_up(cursor_, options_.weight_alignment);
    tensor->set_weight_offset(offset);
    tensor->set_byte_size(data.bytes.size());
    tensor->set_trainable(is_parameter(v) && is_floating(data.dtype) && statistics_.count(value) == 0);
    model_.weights.resize(offset, 0);
    model_.weights.insert(model_.weights.end(), data.bytes.begin(), data.bytes.end());
    cursor_ = offset + data.bytes.size();
  } else {
    const PlannedTensor* planned = plan_.find(value);
    if (planned == nullptr) {
      return internal_error("lower: value '", v.name, "' is read but has no memory plan");
    }
    tensor->set_dtype(dtype_to_psm(v.dtype));
    tensor->mutable_shape()->Add(v.shape->begin(), v.shape->end());
    const bool is_input =
        std::find(graph_.inputs.begin(), graph_.inputs.end(), value) != graph_.inputs.end();
    tensor->set_kind(is_input                  ? psm::Tensor::INPUT
                     : graph_.is_output(value) ? psm::Tensor::OUTPUT
                                               : psm::Tensor::ACTIVATION);
    tensor->set_byte_size(planned->bytes);
    tensor->set_arena_offset(planned->offset);
  }
  tensor_of_value_.emplace(value, index);
  return index;
}

Result<LoweredModel> Lowering::run() {
  psm::Manifest& manifest = model_.manifest;
  collect_statistics();

  std::vector<int> layer_nodes;
  for (int index = 0; index < static_cast<int>(graph_.nodes.size()); ++index) {
    const Node& node = graph_.nodes[index];
    if (node.dead) continue;
    if (node.op == "Constant") {
      return unsupported("lower: ", describe_node(graph_, index),
                         " is still a node; constant folding must turn it into a value");
    }
    layer_nodes.push_back(index);
  }

  std::vector<LayerSummary> summaries(layer_nodes.size());
  std::vector<std::string> paths(layer_nodes.size());
  for (size_t i = 0; i < layer_nodes.size(); ++i) {
    const Node& node = graph_.nodes[layer_nodes[i]];
    paths[i] = module_path(node.name);
    summaries[i].module_path = paths[i];
    summaries[i].name = node.name;
    for (int input : node.inputs) {
      if (input >= 0 && is_parameter(graph_.values[input])) {
        summaries[i].has_parameters = true;
      }
    }
  }
  const std::vector<std::string> blocks = assign_blocks(paths);
  for (size_t i = 0; i < summaries.size(); ++i) summaries[i].block = blocks[i];
  PS_ASSIGN_OR_RETURN(std::vector<GroupSpan> spans, make_groups(summaries, options_.grouping));

  for (int input : graph_.inputs) {
    if (graph_.values[input].constant) {
      return unsupported("lower: model input '", graph_.values[input].name, "' is a constant");
    }
    PS_ASSIGN_OR_RETURN(uint32_t index, tensor_index(input));
    manifest.add_inputs(index);
  }

  size_t next_span = 0;
  uint64_t group_start = 0;
  for (size_t i = 0; i < layer_nodes.size(); ++i) {
    if (next_span < spans.size() && spans[next_span].first_layer == i) {
      group_start = align_up(cursor_, options_.weight_alignment);
    }
    const int node_index = layer_nodes[i];
    const Node& node = graph_.nodes[node_index];
    psm::Layer* layer = manifest.add_layers();
    layer->set_op(node.op);
    layer->set_name(node.name);
    layer->set_block(blocks[i]);
    layer->mutable_onnx_nodes()->Add(node.onnx_nodes.begin(), node.onnx_nodes.end());
    PS_ASSIGN_OR_RETURN(std::vector<int> inputs,
                        present_slots(graph_, node_index, node.inputs, "input"));
    for (int value : inputs) {
      PS_ASSIGN_OR_RETURN(uint32_t index, tensor_index(value));
      layer->add_inputs(index);
    }
    PS_ASSIGN_OR_RETURN(std::vector<int> outputs,
                        present_slots(graph_, node_index, node.outputs, "output"));
    for (int value : outputs) {
      PS_ASSIGN_OR_RETURN(uint32_t index, tensor_index(value));
      layer->add_outputs(index);
    }
    for (const auto& [key, attribute] : node.attrs) {
      PS_TRY(convert_attribute(graph_, node_index, key, attribute, layer->add_attributes()));
    }
    const GroupSpan& span = spans[next_span];
    if (i + 1 == span.first_layer + span.layer_count) {
      psm::Group* group = manifest.add_groups();
      group->set_first_layer(span.first_layer);
      group->set_layer_count(span.layer_count);
      group->set_label(span.label);
      group->set_blob_offset(group_start);
      group->set_byte_size(cursor_ > group_start ? cursor_ - group_start : 0);
      ++next_span;
    }
  }

  for (int output : graph_.outputs) {
    if (graph_.values[output].constant) {
      return unsupported("lower: model output '", graph_.values[output].name,
                         "' is a constant; no layer computes it");
    }
    PS_ASSIGN_OR_RETURN(uint32_t index, tensor_index(output));
    manifest.add_outputs(index);
  }

  model_.weights.resize(align_up(cursor_, options_.weight_alignment), 0);
  manifest.set_format_version(kManifestFormatVersion);
  manifest.set_model_name(options_.model_name);
  manifest.set_producer(options_.producer);
  manifest.set_opset(graph_.opset);
  manifest.set_mode(options_.mode == Mode::kInference ? psm::Manifest::INFERENCE
                                                      : psm::Manifest::TRAINING);
  manifest.mutable_memory_plan()->set_arena_bytes(plan_.arena_bytes);
  manifest.mutable_memory_plan()->set_alignment(static_cast<uint32_t>(plan_.alignment));
  manifest.set_weights_bytes(model_.weights.size());
  manifest.set_weight_alignment(options_.weight_alignment);
  for (const std::string& pass : options_.passes) manifest.add_passes(pass);
  for (const auto& [dim, size] : graph_.dims) (*manifest.mutable_dims())[dim] = size;
  manifest.set_grouping(grouping_name(options_.grouping));
  return std::move(model_);
}

}  // namespace

Result<LoweredModel> lower(const Graph& graph, const LowerOptions& options) {
  const uint32_t alignment = options.weight_alignment;
  if (alignment < 256 || (alignment & (alignment - 1)) != 0) {
    return invalid_argument("lower: weight alignment ", alignment,
                            " must be a power of two >= 256");
  }
  PS_TRY(graph.validate().with_context("lower"));
  PS_ASSIGN_OR_RETURN(MemoryPlan plan, plan_memory(graph, options.memory));
  Lowering lowering(graph, options, plan);
  return lowering.run();
}

}  // namespace ps::onnx_loader
