#include "tests/models/zoo_lowering.h"

#include <random>

#include "models/zoo/zoo.h"
#include "onnx_loader/onnx_import.h"
#include "onnx_loader/supported_ops.h"

namespace ps::models::testing {

Result<onnx_loader::LoweredModel> lower_zoo_model(const ZooLowering& what) {
  using onnx_loader::Mode;
  const bool training = what.mode == Mode::kTraining;
  zoo::ZooOptions zoo_options;
  zoo_options.opset = what.opset;
  zoo_options.training_graph = training;  // BERT: with its classification head
  auto model = zoo::build_model(what.model, zoo_options);
  if (!model.ok()) return model.status().with_context(str_cat("build ", what.model));
  onnx_loader::ImportOptions import_options;
  import_options.dims = {{"batch", what.batch}, {"seq", what.seq}};
  import_options.optimize = !training;
  import_options.require_executable = !training;
  auto graph = onnx_loader::import_onnx_model(*model, import_options);
  if (!graph.ok()) return graph.status().with_context(str_cat("import ", what.model));
  auto report = onnx_loader::run_passes(*graph, what.mode);
  if (!report.ok()) return report.status().with_context(str_cat("passes ", what.model));
  if (training) PS_TRY(onnx_loader::check_executable(*graph));
  onnx_loader::LowerOptions lower_options;
  lower_options.mode = what.mode;
  lower_options.grouping = what.grouping;
  lower_options.model_name = what.model;
  lower_options.passes = report->pass_names();
  auto lowered = onnx_loader::lower(*graph, lower_options);
  if (!lowered.ok()) return lowered.status().with_context(str_cat("lower ", what.model));
  return std::move(lowered).value();
}

Result<std::map<std::string, cpu::Tensor>> make_model_inputs(
    const pipeswitch::psm::Manifest& manifest, uint64_t seed, int64_t vocab) {
  std::mt19937_64 rng(seed);
  std::map<std::string, cpu::Tensor> inputs;
  for (uint32_t index : manifest.inputs()) {
    const auto& spec = manifest.tensors(static_cast<int>(index));
    PS_ASSIGN_OR_RETURN(DType dtype, cpu::dtype_from_psm(spec.dtype()));
    PS_ASSIGN_OR_RETURN(cpu::Tensor t,
                        cpu::Tensor::allocate(dtype, Shape(spec.shape().begin(), spec.shape().end())));
    if (dtype == DType::kFloat32) {
      std::normal_distribution<float> normal(0.0f, 1.0f);
      float* p = t.mutable_data<float>();
      for (int64_t i = 0; i < t.numel(); ++i) p[i] = normal(rng);
    } else if (dtype == DType::kInt64) {
      const bool type_ids = spec.name().find("token_type") != std::string::npos;
      const bool mask = spec.name().find("mask") != std::string::npos;
      std::uniform_int_distribution<int64_t> ids(0, type_ids ? 1 : vocab - 1);
      int64_t* p = t.mutable_data<int64_t>();
      for (int64_t i = 0; i < t.numel(); ++i) p[i] = mask ? 1 : ids(rng);
    } else {
      return unsupported("input '", spec.name(), "' has dtype ", dtype_name(dtype),
                         ", which make_model_inputs does not fill");
    }
    inputs.emplace(spec.name(), std::move(t));
  }
  return inputs;
}

}  // namespace ps::models::testing
