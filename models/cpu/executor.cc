#include "models/cpu/executor.h"

#include <utility>
#include <vector>

#include "models/cpu/ops.h"

namespace ps::models::cpu {
namespace {

using pipeswitch::psm::Manifest;
using TensorProto = pipeswitch::psm::Tensor;

Shape shape_of(const TensorProto& t) { return Shape(t.shape().begin(), t.shape().end()); }

// Checks that `t` has the dtype and shape the manifest records for tensor `index`.
Status check_matches(const Manifest& manifest, uint32_t index, const Tensor& t,
                     const std::string& what) {
  const TensorProto& spec = manifest.tensors(static_cast<int>(index));
  PS_ASSIGN_OR_RETURN(DType dtype, dtype_from_psm(spec.dtype()));
  if (t.dtype() != dtype || t.shape() != shape_of(spec)) {
    return invalid_argument(what, ": tensor ", index, " '", spec.name(), "' is ", t.description(),
                            ", the manifest says ", dtype_name(dtype),
                            shape_string(shape_of(spec)));
  }
  return Status::OK();
}

}  // namespace

Result<std::map<std::string, Tensor>> run_model(
    const Manifest& manifest, std::span<const uint8_t> weights,
    const std::map<std::string, const Tensor*>& inputs) {
  std::map<uint32_t, Tensor> values;  // by tensor index

  // Weights borrow the blob; inputs are read-only views of the caller's tensors.
  size_t inputs_used = 0;
  for (int i = 0; i < manifest.tensors_size(); ++i) {
    const TensorProto& spec = manifest.tensors(i);
    const auto index = static_cast<uint32_t>(i);
    if (spec.kind() == TensorProto::WEIGHT) {
      PS_ASSIGN_OR_RETURN(DType dtype, dtype_from_psm(spec.dtype()));
      const Shape shape = shape_of(spec);
      const uint64_t bytes = static_cast<uint64_t>(element_count(shape)) * dtype_size(dtype);
      if (bytes != spec.byte_size() || spec.weight_offset() > weights.size() ||
          bytes > weights.size() - spec.weight_offset()) {
        return corrupt("weight tensor ", i, " '", spec.name(), "' (", dtype_name(dtype),
                       shape_string(shape), ", byte_size ", spec.byte_size(), ") at offset ",
                       spec.weight_offset(), " does not fit the ", weights.size(),
                       "-byte weight blob");
      }
      values.emplace(index, Tensor::borrow(dtype, shape, static_cast<const void*>(
                                                                  weights.data() + spec.weight_offset())));
    } else if (spec.kind() == TensorProto::INPUT) {
      auto it = inputs.find(spec.name());
      if (it == inputs.end() || it->second == nullptr) {
        return invalid_argument("run_model: no value given for input '", spec.name(), "'");
      }
      PS_TRY(check_matches(manifest, index, *it->second, "run_model: input"));
      values.emplace(index, it->second->view());
      ++inputs_used;
    }
  }
  if (inputs_used != inputs.size()) {
    return invalid_argument("run_model: ", inputs.size(), " inputs given, the manifest has ",
                            inputs_used);
  }

  // The last layer reading each activation; model outputs are never freed.
  std::vector<int> last_use(static_cast<size_t>(manifest.tensors_size()), -1);
  for (int l = 0; l < manifest.layers_size(); ++l) {
    for (uint32_t in : manifest.layers(l).inputs()) last_use[in] = l;
  }
  for (uint32_t out : manifest.outputs()) last_use[out] = manifest.layers_size();

  for (int l = 0; l < manifest.layers_size(); ++l) {
    const pipeswitch::psm::Layer& layer = manifest.layers(l);
    const std::string where = str_cat("layer ", l, " (", layer.op(), " '", layer.name(), "')");
    std::vector<const Tensor*> args;
    args.reserve(static_cast<size_t>(layer.inputs_size()));
    for (uint32_t in : layer.inputs()) {
      auto it = values.find(in);
      if (it == values.end()) {
        return internal_error(where, ": input tensor ", in, " has no value yet");
      }
      args.push_back(&it->second);
    }
    auto outs = run_op_allocating(layer.op(), layer.attributes(), args,
                                       static_cast<size_t>(layer.outputs_size()));
    if (!outs.ok()) return outs.status().with_context(where);
    if (outs->size() != static_cast<size_t>(layer.outputs_size())) {
      return internal_error(where, ": ", outs->size(), " outputs for ", layer.outputs_size(),
                            " slots");
    }
    for (int o = 0; o < layer.outputs_size(); ++o) {
      const uint32_t out = layer.outputs(o);
      Tensor& t = (*outs)[static_cast<size_t>(o)];
      PS_TRY(check_matches(manifest, out, t, where));
      values.insert_or_assign(out, std::move(t));
    }
    for (uint32_t in : layer.inputs()) {
      const TensorProto::Kind kind = manifest.tensors(static_cast<int>(in)).kind();
      if (last_use[in] == l && kind != TensorProto::WEIGHT && kind != TensorProto::INPUT) {
        values.erase(in);
      }
    }
  }

  std::map<std::string, Tensor> results;
  for (uint32_t out : manifest.outputs()) {
    const TensorProto& spec = manifest.tensors(static_cast<int>(out));
    auto it = values.find(out);
    if (it == values.end()) {
      return internal_error("run_model: output '", spec.name(), "' was never produced");
    }
    PS_ASSIGN_OR_RETURN(Tensor copy, it->second.clone());  // owned even if it was a view
    results.insert_or_assign(spec.name(), std::move(copy));
  }
  return results;
}

}  // namespace ps::models::cpu
