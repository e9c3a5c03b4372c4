// Import -> passes -> lowering on the built-in zoo's tiny models (genuine ONNX with the
// PyTorch exporter's names and patterns). Built only when the zoo library is part of the build.
#include <algorithm>
#include <catch2/catch.hpp>

#include "models/zoo/zoo.h"
#include "onnx_loader/lower.h"
#include "onnx_loader/onnx_import.h"
#include "onnx_loader/pipeline.h"
#include "onnx_loader/supported_ops.h"
#include "tests/onnx_loader/manifest_checks.h"

namespace ps::onnx_loader {
namespace {

namespace psm = pipeswitch::psm;

// Inference imports fold and clean up at import; training imports leave that to run_passes,
// which keeps the parameters (see run_passes).
Graph import_zoo(const std::string& name, int opset, Mode mode = Mode::kInference) {
  zoo::ZooOptions zoo_options;
  zoo_options.opset = opset;
  Result<onnx::ModelProto> model = zoo::build_model(name, zoo_options);
  REQUIRE(model.ok());
  ImportOptions options;
  options.dims = {{"batch", 2}, {"seq", 16}};
  options.libonnx_checks = false;  // the import tests cover the cross-check
  options.optimize = mode == Mode::kInference;
  options.require_executable = mode == Mode::kInference;
  Result<Graph> graph = import_onnx_model(*model, options);
  INFO(graph.status().to_string());
  REQUIRE(graph.ok());
  return std::move(graph).value();
}

int count_op(const Graph& graph, const std::string& op) {
  int n = 0;
  for (const Node& node : graph.nodes) n += (!node.dead && node.op == op) ? 1 : 0;
  return n;
}

int changes(const PipelineReport& report, const std::string& pass) {
  for (const PassCount& count : report.passes) {
    if (count.pass == pass) return count.changes;
  }
  FAIL("no pass " << pass);
  return -1;
}

std::vector<std::string> group_labels(const psm::Manifest& manifest) {
  std::vector<std::string> labels;
  for (const psm::Group& group : manifest.groups()) labels.push_back(group.label());
  return labels;
}

LoweredModel lower_checked(const Graph& graph, Mode mode, GroupingMode grouping,
                           const PipelineReport& report) {
  const Status executable = check_executable(graph);
  INFO(executable.to_string());
  REQUIRE(executable.ok());
  LowerOptions options;
  options.mode = mode;
  options.grouping = grouping;
  options.model_name = graph.name;
  options.passes = report.pass_names();
  Result<LoweredModel> lowered = lower(graph, options);
  INFO(lowered.status().to_string());
  REQUIRE(lowered.ok());
  testing::check_lowered(*lowered, graph, options);
  return std::move(lowered).value();
}

TEST_CASE("zoo resnet_tiny: BatchNorm folded, convs fused, one group per block", "[zoo]") {
  Graph graph = import_zoo("resnet_tiny", 13);
  const int batchnorms = count_op(graph, "BatchNormalization");
  const int convs = count_op(graph, "Conv");
  REQUIRE(batchnorms > 0);
  Result<PipelineReport> report = run_passes(graph, Mode::kInference);
  INFO(report.status().to_string());
  REQUIRE(report.ok());
  CHECK(changes(*report, "fold_batchnorm") == batchnorms);
  CHECK(count_op(graph, "BatchNormalization") == 0);
  CHECK(count_op(graph, "Relu") == 0);
  CHECK(count_op(graph, "Add") == 0);
  CHECK(count_op(graph, "FusedConv") + count_op(graph, "Conv") == convs);
  CHECK(report->linear_gemms == 1);

  const LoweredModel model = lower_checked(graph, Mode::kInference, GroupingMode::kBlocks, *report);
  CHECK(group_labels(model.manifest) == std::vector<std::string>{"conv1+maxpool", "layer1.0",
                                                                 "layer1.1", "layer2.0", "layer3.0",
                                                                 "layer4.0", "avgpool+fc"});
  CHECK(model.manifest.memory_plan().arena_bytes() > 0);
}

TEST_CASE("zoo resnet_tiny: training keeps every layer", "[zoo]") {
  Graph graph = import_zoo("resnet_tiny", 13, Mode::kTraining);
  const int batchnorms = count_op(graph, "BatchNormalization");
  Result<PipelineReport> report = run_passes(graph, Mode::kTraining);
  REQUIRE(report.ok());
  CHECK(count_op(graph, "BatchNormalization") == batchnorms);
  CHECK(count_op(graph, "FusedConv") == 0);
  const LoweredModel model = lower_checked(graph, Mode::kTraining, GroupingMode::kBlocks, *report);
  CHECK(model.manifest.groups_size() == 7);
  int statistics = 0;
  for (const psm::Tensor& t : model.manifest.tensors()) {
    if (t.kind() == psm::Tensor::WEIGHT && !t.trainable()) ++statistics;
  }
  CHECK(statistics >= 2 * batchnorms);
}

// Trainable tensors of a training package are exactly the model's parameters: their element
// count equals the count torchvision / Hugging Face give for the module.
TEST_CASE("zoo: trainable weights of training packages are the model's parameters", "[zoo]") {
  for (const auto& [name, opset] : std::vector<std::pair<std::string, int>>{
           {"resnet_tiny", 13}, {"inception_tiny", 13}, {"bert_tiny", 13}, {"bert_tiny", 17}}) {
    INFO(name << " opset " << opset);
    Result<zoo::ZooInfo> info = zoo::describe(name);
    REQUIRE(info.ok());
    Graph graph = import_zoo(name, opset, Mode::kTraining);
    Result<PipelineReport> report = run_passes(graph, Mode::kTraining);
    REQUIRE(report.ok());
    const LoweredModel model =
        lower_checked(graph, Mode::kTraining, GroupingMode::kPerLayer, *report);
    int64_t trainable = 0;
    for (const psm::Tensor& t : model.manifest.tensors()) {
      if (t.kind() != psm::Tensor::WEIGHT || !t.trainable()) continue;
      int64_t elements = 1;
      for (int64_t d : t.shape()) elements *= d;
      trainable += elements;
    }
    CHECK(trainable == info->parameters);
  }
}

TEST_CASE("zoo inception_tiny: one group per top-level block", "[zoo]") {
  Graph graph = import_zoo("inception_tiny", 13);
  Result<PipelineReport> report = run_passes(graph, Mode::kInference);
  REQUIRE(report.ok());
  CHECK(count_op(graph, "BatchNormalization") == 0);
  const LoweredModel model = lower_checked(graph, Mode::kInference, GroupingMode::kBlocks, *report);
  const std::vector<std::string> labels = group_labels(model.manifest);
  INFO(Catch::Detail::stringify(labels));
  REQUIRE(labels.size() >= 3);
  CHECK(labels.front() == "Conv2d_1a_3x3");
  CHECK(labels.back() == "avgpool+fc");
  for (const std::string& label : labels) {
    CHECK(label.find("maxpool") == std::string::npos);  // pools ride with a conv block
  }
}

TEST_CASE("zoo bert_tiny: LayerNorm, GELU, MatMul+bias and the attention scale recognised",
          "[zoo]") {
  for (int opset : {13, 17}) {
    INFO("opset " << opset);
    Graph graph = import_zoo("bert_tiny", opset);
    Result<PipelineReport> report = run_passes(graph, Mode::kInference);
    INFO(report.status().to_string());
    REQUIRE(report.ok());
    // Embeddings LayerNorm + two per layer, 2 layers; the four after a residual Add take it in
    // (the embeddings' sum adds a broadcast position table: not fused).
    CHECK(count_op(graph, "LayerNormalization") == 1);
    CHECK(count_op(graph, "AddLayerNormalization") == 4);
    CHECK(changes(*report, "fuse_layernorm") == (opset < 17 ? 5 : 0));
    CHECK(changes(*report, "fuse_add_layernorm") == 4);
    // The scores' division by sqrt(16) is their MatMul's alpha, and that MatMulScale of the
    // query's and key's heads one AttentionScores (then part of a FusedAttention).
    CHECK(count_op(graph, "MatMulScale") == 0);
    CHECK(count_op(graph, "Gelu") == 2);
    CHECK(count_op(graph, "Erf") == 0);
    CHECK(count_op(graph, "ReduceMean") == 0);
    // Q, K and V as one product, attention output, intermediate and output dense per layer;
    // the product's heads read in place by the two attention products (no HeadSlice copies
    // and no context Transpose left), which with the Softmax between them (no mask) are one
    // FusedAttention a layer.
    CHECK(count_op(graph, "MatMulBias") == 8);
    CHECK(count_op(graph, "HeadSlice") == 0);
    CHECK(count_op(graph, "FusedAttention") == 2);
    CHECK(count_op(graph, "AttentionScores") == 0);
    CHECK(count_op(graph, "AttentionContext") == 0);
    CHECK(count_op(graph, "Softmax") == 0);
    CHECK(count_op(graph, "AddSoftmax") == 0);
    CHECK(count_op(graph, "Transpose") == 0);
    CHECK(changes(*report, "fuse_head_projections") == 2);
    CHECK(changes(*report, "fuse_attention") == 4);
    CHECK(changes(*report, "fuse_attention_softmax") == 2);

    const LoweredModel model =
        lower_checked(graph, Mode::kInference, GroupingMode::kBlocks, *report);
    CHECK(group_labels(model.manifest) ==
          std::vector<std::string>{"embeddings", "encoder.layer.0.attention",
                                   "encoder.layer.0.intermediate", "encoder.layer.0.output",
                                   "encoder.layer.1.attention", "encoder.layer.1.intermediate",
                                   "encoder.layer.1.output", "pooler"});

    // Training keeps attention's Softmax apart (its backward wants the probabilities):
    // fuse_attention_softmax is not among its passes.
    Graph training = import_zoo("bert_tiny", opset, Mode::kTraining);
    Result<PipelineReport> training_report = run_passes(training, Mode::kTraining);
    INFO(training_report.status().to_string());
    REQUIRE(training_report.ok());
    CHECK(count_op(training, "FusedAttention") == 0);
    CHECK(count_op(training, "Softmax") == 2);
    const std::vector<std::string> names = training_report->pass_names();
    CHECK(std::find(names.begin(), names.end(), "fuse_attention_softmax") == names.end());
  }
}

}  // namespace
}  // namespace ps::onnx_loader
