#include "tests/models/zoo_lowering.h"

#include <cmath>
#include <random>

#include "models/zoo/zoo.h"
#include "onnx_loader/onnx_import.h"
#include "onnx_loader/supported_ops.h"
#include "tests/onnx_loader/onnx_builder.h"

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

onnx::ModelProto attention_classifier_model() {
  using onnx_loader::testing::attr;
  using onnx_loader::testing::floats;
  using onnx_loader::testing::int64s;
  constexpr int64_t kDim = 16, kHeads = 2, kHead = 8;
  std::mt19937_64 rng(7);
  std::normal_distribution<float> normal(0.0f, 0.3f);
  auto values = [&](int64_t n) {
    std::vector<float> v(static_cast<size_t>(n));
    for (float& f : v) f = normal(rng);
    return v;
  };
  onnx_loader::testing::ModelBuilder b(17);
  b.input("x", onnx::TensorProto::FLOAT, {"batch", "seq", kDim})
      .output("logits")
      .initializer(int64s("heads_shape", {4}, {0, 0, kHeads, kHead}))
      .initializer(int64s("merged_shape", {3}, {0, 0, kDim}))
      .initializer(floats("sqrt_head", {}, {std::sqrt(static_cast<float>(kHead))}));
  const std::string scope = "/attention/self/";
  for (const char* name : {"query", "key", "value"}) {
    const std::string p = str_cat("attention.self.", name);
    const std::string s = str_cat(scope, name, "/");
    b.initializer(floats(p + ".weight", {kDim, kDim}, values(kDim * kDim)))
        .initializer(floats(p + ".bias", {kDim}, values(kDim)))
        .node("Transpose", {p + ".weight"}, {p + ".wt"}, {attr("perm", std::vector<int64_t>{1, 0})},
              s + "Transpose")
        .node("MatMul", {"x", p + ".wt"}, {p + ".mm"}, {}, s + "MatMul")
        .node("Add", {p + ".bias", p + ".mm"}, {p + ".out"}, {}, s + "Add")
        .node("Reshape", {p + ".out", "heads_shape"}, {p + ".heads"}, {}, s + "Reshape");
  }
  b.node("Transpose", {"attention.self.query.heads"}, {"q"},
         {attr("perm", std::vector<int64_t>{0, 2, 1, 3})}, scope + "Transpose")
      .node("Transpose", {"attention.self.key.heads"}, {"kt"},
            {attr("perm", std::vector<int64_t>{0, 2, 3, 1})}, scope + "Transpose_1")
      .node("Transpose", {"attention.self.value.heads"}, {"v"},
            {attr("perm", std::vector<int64_t>{0, 2, 1, 3})}, scope + "Transpose_2")
      .node("MatMul", {"q", "kt"}, {"scores"}, {}, scope + "MatMul")
      .node("Div", {"scores", "sqrt_head"}, {"scaled"}, {}, scope + "Div")
      .node("Softmax", {"scaled"}, {"probs"}, {attr("axis", int64_t{-1})}, scope + "Softmax")
      .node("MatMul", {"probs", "v"}, {"context"}, {}, scope + "MatMul_1")
      .node("Transpose", {"context"}, {"merged"}, {attr("perm", std::vector<int64_t>{0, 2, 1, 3})},
            scope + "Transpose_3")
      .node("Reshape", {"merged", "merged_shape"}, {"hidden"}, {}, scope + "Reshape_3")
      .node("ReduceMean", {"hidden"}, {"logits"},
            {attr("axes", std::vector<int64_t>{1}), attr("keepdims", int64_t{0})},
            "/pool/ReduceMean");
  return b.build();
}

Result<onnx_loader::LoweredModel> lower_onnx_model(const onnx::ModelProto& model,
                                                   onnx_loader::Mode mode,
                                                   const std::vector<std::string>& skip,
                                                   int64_t batch, int64_t seq) {
  const bool training = mode == onnx_loader::Mode::kTraining;
  onnx_loader::ImportOptions import_options;
  import_options.dims = {{"batch", batch}, {"seq", seq}};
  import_options.optimize = !training;
  import_options.require_executable = !training;
  auto graph = onnx_loader::import_onnx_model(model, import_options);
  if (!graph.ok()) return graph.status().with_context("import");
  auto report = onnx_loader::run_passes(*graph, mode, skip);
  if (!report.ok()) return report.status().with_context("passes");
  if (training) PS_TRY(onnx_loader::check_executable(*graph));
  onnx_loader::LowerOptions lower_options;
  lower_options.mode = mode;
  lower_options.passes = report->pass_names();
  auto lowered = onnx_loader::lower(*graph, lower_options);
  if (!lowered.ok()) return lowered.status().with_context("lower");
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
