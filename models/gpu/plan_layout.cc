#include "models/gpu/plan_layout.h"

#include <algorithm>

#include "onnx_loader/psm_dtype.h"

namespace ps::models::gpu {
namespace {

using pipeswitch::psm::Manifest;
using TensorProto = pipeswitch::psm::Tensor;

std::string layer_label(const Manifest& m, int l) {
  const auto& layer = m.layers(l);
  return str_cat("layer ", l, " (", layer.op(), " '", layer.name(), "')");
}

// The spec and place of tensor `index`, read by (or written by) layer `l`.
Status describe_operand(const Manifest& m, int l, uint32_t index, TensorSpec* spec,
                        OperandPlace* place) {
  if (index >= static_cast<uint32_t>(m.tensors_size())) {
    return corrupt(layer_label(m, l), ": tensor index ", index, " is out of range (",
                   m.tensors_size(), " tensors)");
  }
  const TensorProto& t = m.tensors(static_cast<int>(index));
  auto dtype = onnx_loader::dtype_from_psm(t.dtype());
  if (!dtype.ok()) {
    return corrupt(layer_label(m, l), ": tensor ", index, " '", t.name(), "': ",
                   dtype.status().message());
  }
  spec->dtype = *dtype;
  spec->shape.assign(t.shape().begin(), t.shape().end());
  for (int64_t d : spec->shape) {
    if (d < 0) {
      return corrupt(layer_label(m, l), ": tensor ", index, " '", t.name(), "' has shape ",
                     shape_string(spec->shape));
    }
  }
  spec->is_weight = t.kind() == TensorProto::WEIGHT;
  place->tensor = index;
  place->bytes = spec->bytes();
  if (spec->is_weight) {
    place->region = Region::kWeights;
    place->offset = t.weight_offset();
    if (place->offset > m.weights_bytes() || place->bytes > m.weights_bytes() - place->offset) {
      return corrupt(layer_label(m, l), ": weight tensor ", index, " '", t.name(), "' (",
                     place->bytes, " bytes at ", place->offset, ") lies outside the ",
                     m.weights_bytes(), "-byte weight blob");
    }
    return Status::OK();
  }
  if (t.kind() == TensorProto::KIND_UNDEFINED) {
    return corrupt(layer_label(m, l), ": tensor ", index, " '", t.name(), "' has no kind");
  }
  place->region = Region::kArena;
  place->offset = t.arena_offset();
  const uint64_t arena = m.memory_plan().arena_bytes();
  if (place->offset > arena || place->bytes > arena - place->offset) {
    return corrupt(layer_label(m, l), ": activation ", index, " '", t.name(), "' (",
                   place->bytes, " bytes at ", place->offset, ") lies outside the ", arena,
                   "-byte arena");
  }
  return Status::OK();
}

Result<IoSpec> io_spec(const Manifest& m, uint32_t index, const char* what) {
  if (index >= static_cast<uint32_t>(m.tensors_size())) {
    return corrupt("model ", what, " tensor index ", index, " is out of range");
  }
  const TensorProto& t = m.tensors(static_cast<int>(index));
  IoSpec io;
  io.name = t.name();
  io.tensor = index;
  auto dtype = onnx_loader::dtype_from_psm(t.dtype());
  if (!dtype.ok()) return corrupt("model ", what, " '", t.name(), "': ", dtype.status().message());
  io.dtype = *dtype;
  io.shape.assign(t.shape().begin(), t.shape().end());
  io.bytes = static_cast<uint64_t>(element_count(io.shape)) * dtype_size(io.dtype);
  io.arena_offset = t.arena_offset();
  if (t.kind() == TensorProto::WEIGHT) {
    return unsupported("model ", what, " '", t.name(),
                       "' is a weight; the GPU plan expects it in the arena");
  }
  const uint64_t arena = m.memory_plan().arena_bytes();
  if (io.arena_offset > arena || io.bytes > arena - io.arena_offset) {
    return corrupt("model ", what, " '", t.name(), "' lies outside the ", arena, "-byte arena");
  }
  return io;
}

}  // namespace

Result<PlanLayout> build_layout(const Manifest& m, uint64_t host_read_min_bytes) {
  if (m.layers_size() == 0) return invalid_argument("model '", m.model_name(), "' has no layers");
  PlanLayout layout;
  layout.arena_bytes = m.memory_plan().arena_bytes();
  layout.weights_bytes = m.weights_bytes();
  layout.layers.resize(static_cast<size_t>(m.layers_size()));
  for (int l = 0; l < m.layers_size(); ++l) {
    const auto& layer = m.layers(l);
    LayerLayout& out = layout.layers[static_cast<size_t>(l)];
    out.input_specs.resize(static_cast<size_t>(layer.inputs_size()));
    out.inputs.resize(out.input_specs.size());
    for (int i = 0; i < layer.inputs_size(); ++i) {
      PS_TRY(describe_operand(m, l, layer.inputs(i), &out.input_specs[i], &out.inputs[i]));
    }
    out.output_specs.resize(static_cast<size_t>(layer.outputs_size()));
    out.outputs.resize(out.output_specs.size());
    for (int o = 0; o < layer.outputs_size(); ++o) {
      PS_TRY(describe_operand(m, l, layer.outputs(o), &out.output_specs[o], &out.outputs[o]));
      if (out.outputs[o].region == Region::kWeights) {
        return corrupt(layer_label(m, l), ": output ", o, " is a weight tensor");
      }
    }
    layout.max_operands = std::max(layout.max_operands, out.inputs.size() + out.outputs.size());
  }
  for (uint32_t index : m.inputs()) {
    PS_ASSIGN_OR_RETURN(IoSpec io, io_spec(m, index, "input"));
    layout.inputs.push_back(std::move(io));
  }
  for (uint32_t index : m.outputs()) {
    PS_ASSIGN_OR_RETURN(IoSpec io, io_spec(m, index, "output"));
    layout.outputs.push_back(std::move(io));
  }
  layout.host_readable = host_readable_weights(m, host_read_min_bytes);
  for (LayerLayout& lay : layout.layers) {
    for (OperandPlace& p : lay.inputs) {
      if (p.region != Region::kWeights) continue;
      for (const WeightRange& r : layout.host_readable) {
        if (r.tensor == p.tensor) p.host_readable = true;
      }
    }
  }
  uint32_t next = 0;
  for (int g = 0; g < m.groups_size(); ++g) {
    const auto& group = m.groups(g);
    if (group.first_layer() != next || group.layer_count() == 0) {
      return corrupt("group ", g, " ('", group.label(), "') starts at layer ", group.first_layer(),
                     " with ", group.layer_count(), " layers; expected a non-empty group at ",
                     next);
    }
    layout.group_first_layer.push_back(next);
    next += group.layer_count();
  }
  if (m.groups_size() > 0 && next != static_cast<uint32_t>(m.layers_size())) {
    return corrupt("the groups cover ", next, " of ", m.layers_size(), " layers");
  }
  return layout;
}

std::string describe_unsupported(std::span<const UnsupportedLayer> layers) {
  std::string text;
  for (const UnsupportedLayer& u : layers) {
    if (!text.empty()) text += "; ";
    text += str_cat("layer ", u.index, " (", u.op, " '", u.name, "'): ", u.reason);
  }
  return text;
}

std::vector<UnsupportedLayer> find_unsupported_layers(
    const Manifest& manifest, const std::function<bool(std::string_view op)>& supported) {
  std::vector<UnsupportedLayer> out;
  for (int l = 0; l < manifest.layers_size(); ++l) {
    const auto& layer = manifest.layers(l);
    if (!supported(layer.op())) {
      out.push_back(UnsupportedLayer{static_cast<uint32_t>(l), layer.op(), layer.name(),
                                     "no GPU operator"});
    }
  }
  return out;
}

size_t plan_workspace_bytes(std::span<const size_t> per_op, size_t alignment) {
  PS_CHECK(alignment > 0 && (alignment & (alignment - 1)) == 0);
  size_t most = 0;
  for (size_t b : per_op) most = std::max(most, b);
  return (most + alignment - 1) & ~(alignment - 1);
}

}  // namespace ps::models::gpu
