// Whole-model proof that the inference passes (BatchNorm folding, Conv/activation/residual
// fusion, MatMul+bias, LayerNorm and GELU fusion) preserve the model's function: each tiny zoo
// model is imported and lowered twice, fused for inference and unfused for training, both
// manifests are run by the CPU interpreter on the same seeded random inputs, and every output
// must agree to a relative error of 1e-5 (fp32 reassociation gives ~1e-7; an epsilon-sized
// slip in the BatchNorm fold gave 1.4e-5 on resnet_tiny and 4.9e-3 on inception_tiny).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "models/cpu/executor.h"
#include "models/cpu/tensor.h"
#include "models/zoo/zoo.h"
#include "onnx_loader/lower.h"
#include "onnx_loader/onnx_import.h"
#include "onnx_loader/pipeline.h"
#include "onnx_loader/supported_ops.h"
#include "tests/onnx_loader/onnx_builder.h"

namespace ps::models {
namespace {

using cpu::DType;
using cpu::Tensor;
using onnx_loader::Mode;
using pipeswitch::psm::Manifest;

constexpr int64_t kBatch = 2;
constexpr int64_t kSeq = 8;
constexpr int64_t kVocab = 100;  // bert_tiny's vocabulary
constexpr double kTolerance = 1e-5;

// Imports `model` and lowers it the way psimport does for `mode`.
onnx_loader::LoweredModel import_and_lower(const onnx::ModelProto& model, Mode mode,
                                           const std::vector<std::string>& skip = {}) {
  const bool training = mode == Mode::kTraining;
  onnx_loader::ImportOptions import_options;
  import_options.dims = {{"batch", kBatch}, {"seq", kSeq}};
  import_options.optimize = !training;
  import_options.require_executable = !training;
  auto graph = onnx_loader::import_onnx_model(model, import_options);
  INFO("import: " << graph.status().message());
  REQUIRE(graph.ok());
  auto report = onnx_loader::run_passes(*graph, mode, skip);
  INFO("run_passes: " << report.status().message());
  REQUIRE(report.ok());
  if (training) {
    Status executable = onnx_loader::check_executable(*graph);
    INFO("check_executable: " << executable.message());
    REQUIRE(executable.ok());
  }
  onnx_loader::LowerOptions lower_options;
  lower_options.mode = mode;
  lower_options.passes = report->pass_names();
  auto lowered = onnx_loader::lower(*graph, lower_options);
  INFO("lower: " << lowered.status().message());
  REQUIRE(lowered.ok());
  return std::move(*lowered);
}

int count_op(const Manifest& manifest, const std::string& op) {
  return static_cast<int>(std::count_if(manifest.layers().begin(), manifest.layers().end(),
                                        [&](const auto& layer) { return layer.op() == op; }));
}

// Seeded inputs for every INPUT tensor of `manifest`: floats ~N(0,1); int64 token type ids 0/1,
// attention masks 1, other int64 inputs (token ids) uniform in the vocabulary.
std::map<std::string, Tensor> make_inputs(const Manifest& manifest, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::map<std::string, Tensor> inputs;
  for (uint32_t index : manifest.inputs()) {
    const auto& spec = manifest.tensors(static_cast<int>(index));
    auto dtype = cpu::dtype_from_psm(spec.dtype());
    REQUIRE(dtype.ok());
    auto t = Tensor::allocate(*dtype, cpu::Shape(spec.shape().begin(), spec.shape().end()));
    REQUIRE(t.ok());
    if (*dtype == DType::kFloat32) {
      std::normal_distribution<float> normal(0.0f, 1.0f);
      float* p = t->mutable_data<float>();
      for (int64_t i = 0; i < t->numel(); ++i) p[i] = normal(rng);
    } else if (*dtype == DType::kInt64) {
      const bool type_ids = spec.name().find("token_type") != std::string::npos;
      const bool mask = spec.name().find("mask") != std::string::npos;
      std::uniform_int_distribution<int64_t> ids(0, type_ids ? 1 : kVocab - 1);
      int64_t* p = t->mutable_data<int64_t>();
      for (int64_t i = 0; i < t->numel(); ++i) p[i] = mask ? 1 : ids(rng);
    } else {
      FAIL("input '" << spec.name() << "' has a dtype this test does not fill");
    }
    inputs.emplace(spec.name(), std::move(*t));
  }
  return inputs;
}

// ||a - b||_inf / max(||b||_inf, 1e-6) over float32 tensors of the same shape.
double max_relative_error(const Tensor& a, const Tensor& b) {
  REQUIRE(a.dtype() == DType::kFloat32);
  REQUIRE(b.dtype() == DType::kFloat32);
  REQUIRE(a.shape() == b.shape());
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  double diff = 0.0;
  double norm = 0.0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(pa[i]) - pb[i]));
    norm = std::max(norm, std::fabs(static_cast<double>(pb[i])));
  }
  return diff / std::max(norm, 1e-6);
}

struct Lowered {
  onnx_loader::LoweredModel inference;
  onnx_loader::LoweredModel training;
};

Lowered build_both(const std::string& name, int opset) {
  zoo::ZooOptions options;
  options.opset = opset;
  auto model = zoo::build_model(name, options);
  INFO("build_model(" << name << "): " << model.status().message());
  REQUIRE(model.ok());
  Lowered both{import_and_lower(*model, Mode::kInference),
               import_and_lower(*model, Mode::kTraining)};
  REQUIRE(both.inference.manifest.mode() == Manifest::INFERENCE);
  REQUIRE(both.training.manifest.mode() == Manifest::TRAINING);
  return both;
}

// Runs both manifests on the same inputs and compares every output.
void check_equivalent(const std::string& label, const Lowered& both) {
  std::map<std::string, Tensor> inputs = make_inputs(both.inference.manifest, 20240611);
  std::map<std::string, const Tensor*> borrowed;
  for (const auto& [name, t] : inputs) borrowed.emplace(name, &t);

  auto fused = cpu::run_model(both.inference.manifest, both.inference.weights, borrowed);
  INFO(label << " inference run: " << fused.status().message());
  REQUIRE(fused.ok());
  auto unfused = cpu::run_model(both.training.manifest, both.training.weights, borrowed);
  INFO(label << " training run: " << unfused.status().message());
  REQUIRE(unfused.ok());

  REQUIRE(!unfused->empty());
  REQUIRE(fused->size() == unfused->size());
  for (const auto& [name, reference] : *unfused) {
    auto it = fused->find(name);
    INFO(label << ": output '" << name << "'");
    REQUIRE(it != fused->end());
    const double error = max_relative_error(it->second, reference);
    std::printf("%s: output %s %s max relative error %.3g\n", label.c_str(), name.c_str(),
                reference.description().c_str(), error);
    CHECK(error <= kTolerance);
  }
}

TEST_CASE("resnet_tiny: fused inference manifest computes what the training manifest does",
          "[equivalence]") {
  const Lowered both = build_both("resnet_tiny", 17);
  CHECK(count_op(both.inference.manifest, "FusedConv") > 0);
  CHECK(count_op(both.inference.manifest, "BatchNormalization") == 0);
  CHECK(count_op(both.training.manifest, "BatchNormalization") > 0);
  CHECK(count_op(both.training.manifest, "FusedConv") == 0);
  check_equivalent("resnet_tiny", both);
}

TEST_CASE("inception_tiny: fused inference manifest computes what the training manifest does",
          "[equivalence]") {
  const Lowered both = build_both("inception_tiny", 17);
  CHECK(count_op(both.inference.manifest, "FusedConv") > 0);
  CHECK(count_op(both.inference.manifest, "BatchNormalization") == 0);
  CHECK(count_op(both.training.manifest, "BatchNormalization") > 0);
  CHECK(count_op(both.training.manifest, "FusedConv") == 0);
  check_equivalent("inception_tiny", both);
}

TEST_CASE("bert_tiny: fused inference manifest computes what the training manifest does",
          "[equivalence]") {
  const int opset = GENERATE(13, 17);
  const std::string label = "bert_tiny opset " + std::to_string(opset);
  INFO(label);
  const Lowered both = build_both("bert_tiny", opset);
  const Manifest& fused = both.inference.manifest;
  const Manifest& unfused = both.training.manifest;
  CHECK(count_op(fused, "MatMulBias") > 0);
  // scores / sqrt(16): alpha 0.25 of the MatMulScale that, with the query's and key's
  // HeadSlices, became AttentionScores; the context's MatMul and Transpose AttentionContext;
  // those two and the Softmax between them one FusedAttention a layer (inference only).
  CHECK(count_op(fused, "MatMulScale") == 0);
  CHECK(count_op(fused, "FusedAttention") == 2);
  CHECK(count_op(fused, "AttentionScores") == 0);
  CHECK(count_op(fused, "AttentionContext") == 0);
  CHECK(count_op(fused, "Softmax") == 0);
  CHECK(count_op(fused, "HeadSlice") == 0);
  CHECK(count_op(unfused, "FusedAttention") == 0);
  CHECK(count_op(unfused, "Softmax") == 2);
  CHECK(count_op(fused, "AddLayerNormalization") > 0);  // the sub-layers' residual Adds
  CHECK(count_op(fused, "Gelu") > 0);
  CHECK(count_op(fused, "LayerNormalization") > 0);
  CHECK(count_op(fused, "Erf") == 0);
  CHECK(count_op(unfused, "MatMulBias") == 0);
  CHECK(count_op(unfused, "MatMulScale") > 0);  // training takes it too (no parameter)
  CHECK(count_op(unfused, "AddLayerNormalization") == 0);
  CHECK(count_op(unfused, "Gelu") > 0);  // as this one (parameter-free)
  CHECK(count_op(unfused, "Erf") == 0);
  // At opset 13 LayerNorm is exported decomposed: only the fusion can have made one.
  if (opset == 13) CHECK(count_op(unfused, "LayerNormalization") == 0);
  // The zoo writes its linear weights as [in, out] (what eval-mode exports fold them to), so
  // no Transpose of a weight is there to fuse: its Transposes are attention's 4-D ones.
  CHECK(count_op(unfused, "MatMulTransB") == 0);
  check_equivalent(label, both);
}

// fuse_attention_softmax: bert_tiny's inference package with FusedAttention against the same
// package without the pass (AttentionScores, Softmax, AttentionContext). The CPU runs
// FusedAttention as those three ops, so every output is the same to the bit.
TEST_CASE("bert_tiny: FusedAttention computes what its three ops do, to the bit", "[equivalence]") {
  const int opset = GENERATE(13, 17);
  const std::string label = "bert_tiny FusedAttention opset " + std::to_string(opset);
  INFO(label);
  zoo::ZooOptions options;
  options.opset = opset;
  auto model = zoo::build_model("bert_tiny", options);
  REQUIRE(model.ok());
  const Lowered pair{import_and_lower(*model, Mode::kInference),
                     import_and_lower(*model, Mode::kInference, {"fuse_attention_softmax"})};
  const Manifest& fused = pair.inference.manifest;
  const Manifest& skipped = pair.training.manifest;  // (the second of the pair: no pass)
  CHECK(count_op(fused, "FusedAttention") == 2);
  CHECK(count_op(fused, "AttentionScores") == 0);
  CHECK(count_op(fused, "Softmax") == 0);
  CHECK(count_op(fused, "AttentionContext") == 0);
  CHECK(count_op(skipped, "FusedAttention") == 0);
  CHECK(count_op(skipped, "AttentionScores") == 2);
  CHECK(count_op(skipped, "Softmax") == 2);
  CHECK(count_op(skipped, "AttentionContext") == 2);
  CHECK(fused.layers_size() + 4 == skipped.layers_size());

  std::map<std::string, Tensor> inputs = make_inputs(fused, 20240611);
  std::map<std::string, const Tensor*> borrowed;
  for (const auto& [name, t] : inputs) borrowed.emplace(name, &t);
  auto with = cpu::run_model(fused, pair.inference.weights, borrowed);
  INFO("fused run: " << with.status().message());
  REQUIRE(with.ok());
  auto without = cpu::run_model(skipped, pair.training.weights, borrowed);
  INFO("skipped run: " << without.status().message());
  REQUIRE(without.ok());
  REQUIRE(!without->empty());
  REQUIRE(with->size() == without->size());
  for (const auto& [name, reference] : *without) {
    INFO("output '" << name << "'");
    auto it = with->find(name);
    REQUIRE(it != with->end());
    const Tensor& got = it->second;
    REQUIRE(got.dtype() == reference.dtype());
    REQUIRE(got.shape() == reference.shape());
    CHECK(std::memcmp(got.raw(), reference.raw(), reference.byte_size()) == 0);
  }
}

// Two nn.Linear layers on a 3-D input as PyTorch exports them in training mode:
// Add(bias, MatMul(x, Transpose(W [out, in], perm=[1, 0]))). Inference folds the Transposes
// into [in, out] constants and fuses MatMulBias; training keeps W as stored and reads it
// through MatMulTransB (fuse_matmul_transpose), the bias taken in (fuse_linear_bias). Both must
// compute the same function.
TEST_CASE("linear layers in PyTorch's training form: MatMulTransB computes what MatMul of W^T does",
          "[equivalence]") {
  using onnx_loader::testing::attr;
  using onnx_loader::testing::floats;
  constexpr int64_t kIn = 8, kHidden = 16, kOut = 4;
  auto values = [](int64_t count, float phase) {
    std::vector<float> v(static_cast<size_t>(count));
    for (size_t i = 0; i < v.size(); ++i) v[i] = 0.3f * std::sin(phase + 0.37f * float(i));
    return v;
  };
  onnx_loader::testing::ModelBuilder b(17);
  b.input("x", onnx::TensorProto::FLOAT, {"batch", "seq", kIn})
      .output("y")
      .initializer(floats("fc1.weight", {kHidden, kIn}, values(kHidden * kIn, 0.1f)))
      .initializer(floats("fc1.bias", {kHidden}, values(kHidden, 0.2f)))
      .initializer(floats("fc2.weight", {kOut, kHidden}, values(kOut * kHidden, 0.3f)))
      .initializer(floats("fc2.bias", {kOut}, values(kOut, 0.4f)))
      .node("Transpose", {"fc1.weight"}, {"w1t"}, {attr("perm", std::vector<int64_t>{1, 0})},
            "/fc1/Transpose")
      .node("MatMul", {"x", "w1t"}, {"h0"}, {}, "/fc1/MatMul")
      .node("Add", {"fc1.bias", "h0"}, {"h1"}, {}, "/fc1/Add")
      .node("Relu", {"h1"}, {"h2"}, {}, "/act/Relu")
      .node("Transpose", {"fc2.weight"}, {"w2t"}, {attr("perm", std::vector<int64_t>{1, 0})},
            "/fc2/Transpose")
      .node("MatMul", {"h2", "w2t"}, {"h3"}, {}, "/fc2/MatMul")
      .node("Add", {"fc2.bias", "h3"}, {"y"}, {}, "/fc2/Add");
  Lowered both{import_and_lower(b.build(), Mode::kInference),
               import_and_lower(b.build(), Mode::kTraining)};
  const Manifest& fused = both.inference.manifest;
  const Manifest& training = both.training.manifest;
  CHECK(count_op(fused, "MatMulBias") == 2);
  CHECK(count_op(fused, "Transpose") == 0);
  CHECK(count_op(training, "MatMulTransB") == 2);
  CHECK(count_op(training, "Transpose") == 0);
  CHECK(count_op(training, "MatMul") == 0);
  CHECK(count_op(training, "Add") == 0);
  // The training package holds the weights as PyTorch does: same names, [out, in], trainable.
  std::map<std::string, std::vector<int64_t>> weights;
  for (const auto& t : training.tensors()) {
    if (t.kind() == pipeswitch::psm::Tensor::WEIGHT && t.trainable()) {
      weights[t.name()] = std::vector<int64_t>(t.shape().begin(), t.shape().end());
    }
  }
  CHECK(weights == std::map<std::string, std::vector<int64_t>>{{"fc1.weight", {kHidden, kIn}},
                                                               {"fc1.bias", {kHidden}},
                                                               {"fc2.weight", {kOut, kHidden}},
                                                               {"fc2.bias", {kOut}}});
  for (const auto& layer : training.layers()) {
    if (layer.op() != "MatMulTransB") continue;
    INFO(layer.name());
    CHECK(layer.attributes_size() == 0);
    REQUIRE(layer.inputs_size() == 3);  // its bias taken in too (fuse_linear_bias)
    CHECK(training.tensors(static_cast<int>(layer.inputs(1))).name().find(".weight") !=
          std::string::npos);
    CHECK(training.tensors(static_cast<int>(layer.inputs(2))).name().find(".bias") !=
          std::string::npos);
  }
  check_equivalent("two linear layers", both);
}

// Attention's mask Add before its Softmax (fuse_add_softmax), in both modes: the scores of a
// one-head self-attention plus a [batch, 1, seq] mask from a runtime input (an inference
// export's form) and a [batch, seq, seq] literal built by Constant nodes (a training export's
// folded form), each imported with and without the fusion. The fused AddSoftmax must compute
// what Add then Softmax do.
TEST_CASE("attention masks: AddSoftmax computes what the Add and Softmax do", "[equivalence]") {
  using onnx_loader::testing::attr;
  using onnx_loader::testing::floats;
  using onnx_loader::testing::int64s;
  constexpr int64_t kDim = 8;
  std::vector<float> wq(kDim * kDim), causal(kBatch * kSeq * kSeq);
  for (size_t i = 0; i < wq.size(); ++i) wq[i] = 0.3f * std::sin(0.37f * float(i));
  for (int64_t b = 0; b < kBatch; ++b) {
    for (int64_t r = 0; r < kSeq; ++r) {
      for (int64_t c = 0; c < kSeq; ++c) {
        causal[static_cast<size_t>((b * kSeq + r) * kSeq + c)] = c > r ? -10000.0f : 0.0f;
      }
    }
  }
  onnx_loader::testing::ModelBuilder b(17);
  b.input("x", onnx::TensorProto::FLOAT, {kBatch, kSeq, kDim})
      .input("mask", onnx::TensorProto::FLOAT, {kBatch, kSeq})
      .output("y")
      .initializer(floats("wq", {kDim, kDim}, wq))
      .initializer(int64s("axes", {1}, {1}))
      .node("MatMul", {"x", "wq"}, {"q"}, {}, "/attn/query/MatMul")
      .node("Transpose", {"x"}, {"kt"}, {attr("perm", std::vector<int64_t>{0, 2, 1})},
            "/attn/Transpose")
      .node("MatMul", {"q", "kt"}, {"scores"}, {}, "/attn/MatMul")
      .node("Unsqueeze", {"mask", "axes"}, {"m1"}, {}, "/attn/Unsqueeze")
      .node("Add", {"scores", "m1"}, {"s1"}, {}, "/attn/Add")
      .node("Constant", {}, {"causal"},
            {attr("value", floats("causal_value", {kBatch, kSeq, kSeq}, causal))}, "/attn/Constant")
      .node("Add", {"causal", "s1"}, {"s2"}, {}, "/attn/Add_1")
      .node("Softmax", {"s2"}, {"probs"}, {attr("axis", int64_t{-1})}, "/attn/Softmax")
      .node("MatMul", {"probs", "x"}, {"y"}, {}, "/attn/MatMul_1");
  for (const Mode mode : {Mode::kInference, Mode::kTraining}) {
    INFO(onnx_loader::mode_name(mode));
    Lowered pair{import_and_lower(b.build(), mode),
                 import_and_lower(b.build(), mode, {"fuse_add_softmax"})};
    // The causal literal joins the Softmax; the input's mask stays an Add before it.
    CHECK(count_op(pair.inference.manifest, "AddSoftmax") == 1);
    CHECK(count_op(pair.inference.manifest, "Softmax") == 0);
    CHECK(count_op(pair.training.manifest, "AddSoftmax") == 0);
    CHECK(count_op(pair.training.manifest, "Softmax") == 1);
    check_equivalent(str_cat("attention masks, ", onnx_loader::mode_name(mode)), pair);
  }
}

}  // namespace
}  // namespace ps::models
