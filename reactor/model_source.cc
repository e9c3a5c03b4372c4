#include "reactor/model_source.h"

#include <fcntl.h>

#include <cerrno>

#include "models/cpu/token_range.h"
#include "models/package_reader.h"
#include "models/zoo/zoo.h"
#include "onnx_loader/lower.h"
#include "onnx_loader/onnx_import.h"
#include "onnx_loader/pipeline.h"
#include "onnx_loader/psm_dtype.h"
#include "onnx_loader/supported_ops.h"

namespace ps::reactor {

namespace psm = pipeswitch::psm;

Result<HostModel> import_zoo_model(const std::string& zoo_model, uint32_t batch, uint32_t seq,
                                   bool training) {
  const onnx_loader::Mode mode =
      training ? onnx_loader::Mode::kTraining : onnx_loader::Mode::kInference;
  // A training graph: BERT models gain their classification head (models/zoo/zoo.h).
  zoo::ZooOptions zoo_options;
  zoo_options.training_graph = training;
  PS_ASSIGN_OR_RETURN(onnx::ModelProto proto, zoo::build_model(zoo_model, zoo_options));
  onnx_loader::ImportOptions import_options;
  import_options.dims = {{"batch", static_cast<int64_t>(batch)},
                         {"seq", static_cast<int64_t>(seq)}};
  // Training keeps the graph as exported (no constant folding into fused ops) and checks it is
  // executable after the passes, as psimport --mode training does.
  import_options.optimize = !training;
  import_options.require_executable = !training;
  PS_ASSIGN_OR_RETURN(onnx_loader::Graph graph,
                      onnx_loader::import_onnx_model(proto, import_options));
  PS_ASSIGN_OR_RETURN(onnx_loader::PipelineReport report, onnx_loader::run_passes(graph, mode));
  if (training) PS_TRY(onnx_loader::check_executable(graph));
  onnx_loader::LowerOptions lower_options;
  lower_options.mode = mode;
  lower_options.model_name = zoo_model;
  lower_options.producer = "pipeswitchd zoo";
  lower_options.passes = report.pass_names();
  PS_ASSIGN_OR_RETURN(onnx_loader::LoweredModel lowered, onnx_loader::lower(graph, lower_options));
  return HostModel{std::move(lowered.manifest), std::move(lowered.weights)};
}

Result<models::Package> open_package(const ModelSource& source) {
  if (!source.package_fd) return models::Package::open(source.package_path);
  UniqueFd fd(::fcntl(source.package_fd->get(), F_DUPFD_CLOEXEC, 0));
  if (!fd.valid()) {
    return io_error(source.package_path,
                    ": cannot duplicate its descriptor: ", errno_string(errno));
  }
  return models::Package::open_fd(std::move(fd), source.package_path);
}

Result<HostModel> read_model(const ModelSource& source, const LoadProgress& progress) {
  if (!source.zoo_model.empty()) {
    if (progress) progress("build zoo model", 0.0);
    auto model = import_zoo_model(source.zoo_model, source.zoo_batch, source.zoo_seq);
    if (!model.ok()) return model.status().with_context(str_cat("zoo model ", source.zoo_model));
    if (progress) progress("build zoo model", 1.0);
    return model;
  }
  auto package = open_package(source);
  if (!package.ok()) return package.status().with_context(source.package_path);
  HostModel model;
  model.manifest = package->manifest();
  model.weights.resize(package->weights_bytes());
  Status read =
      package->read_weights(model.weights.data(), model.weights.size(),
                            progress ? models::ProgressFn(progress) : models::ProgressFn());
  if (!read.ok()) return read.with_context(source.package_path);
  return model;
}

Result<std::optional<HostModel>> training_import(const std::string& name,
                                                 const ModelSource& source,
                                                 const psm::Manifest& registered) {
  if (registered.mode() == psm::Manifest::TRAINING) return std::optional<HostModel>();
  if (!source.zoo_model.empty()) {
    PS_ASSIGN_OR_RETURN(HostModel model,
                        import_zoo_model(source.zoo_model, source.zoo_batch, source.zoo_seq,
                                         /*training=*/true));
    return std::optional<HostModel>(std::move(model));
  }
  return unsupported("model '", name,
                     "' was imported for inference (its BatchNormalizations are folded into the "
                     "convolutions); import it with `psimport --mode training` to train it");
}

namespace {

Result<TensorSpec> spec_of(const psm::Manifest& manifest, uint32_t index) {
  const psm::Tensor& t = manifest.tensors(static_cast<int>(index));
  auto dtype = onnx_loader::dtype_from_psm(t.dtype());
  if (!dtype.ok()) return dtype.status().with_context(str_cat("tensor '", t.name(), "'"));
  TensorSpec spec;
  spec.name = t.name();
  spec.dtype = *dtype;
  spec.shape.assign(t.shape().begin(), t.shape().end());
  if (spec.shape.empty() || spec.shape[0] < 1) {
    return unsupported("tensor '", t.name(), "' has shape ", shape_string(spec.shape),
                       ": the server needs a leading batch dimension");
  }
  return spec;
}

}  // namespace

Result<ModelInfo> describe_model(const std::string& name, const std::string& source_label,
                                 const psm::Manifest& manifest) {
  ModelInfo info;
  info.name = name;
  info.source = source_label;
  info.weights_bytes = manifest.weights_bytes();
  info.training = manifest.mode() == psm::Manifest::TRAINING;
  if (manifest.inputs_size() == 0 || manifest.outputs_size() == 0) {
    return invalid_argument("model '", name, "' has no inputs or no outputs");
  }
  for (uint32_t index : manifest.inputs()) {
    PS_ASSIGN_OR_RETURN(TensorSpec spec, spec_of(manifest, index));
    if (spec.dtype == DType::kInt64 || spec.dtype == DType::kInt32)
      spec.value_bound = models::cpu::token_range(manifest, index);
    info.inputs.push_back(std::move(spec));
  }
  for (uint32_t index : manifest.outputs()) {
    PS_ASSIGN_OR_RETURN(TensorSpec spec, spec_of(manifest, index));
    info.outputs.push_back(std::move(spec));
  }
  const int64_t batch = info.inputs[0].shape[0];
  for (const auto* list : {&info.inputs, &info.outputs}) {
    for (const TensorSpec& spec : *list) {
      if (spec.shape[0] != batch) {
        return unsupported("model '", name, "': tensor '", spec.name, "' has shape ",
                           shape_string(spec.shape), " but the batch (dim 0 of '",
                           info.inputs[0].name, "') is ", batch);
      }
    }
  }
  if (batch > static_cast<int64_t>(kMaxBatch)) {
    return unsupported("model '", name, "': native batch ", batch, " is over ", kMaxBatch);
  }
  info.batch = static_cast<uint32_t>(batch);
  for (const psm::Tensor& t : manifest.tensors()) {
    if (t.kind() == psm::Tensor::WEIGHT && t.trainable()) {
      info.parameters +=
          static_cast<uint64_t>(element_count(Shape(t.shape().begin(), t.shape().end())));
    }
  }
  return info;
}

}  // namespace ps::reactor
