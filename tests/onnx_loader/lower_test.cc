// Grouping and lowering to the .psm manifest: alignment, contiguous groups, offsets in bounds,
// arena offsets equal to the memory plan.
#include "onnx_loader/lower.h"

#include <catch2/catch.hpp>
#include <cstring>
#include <set>

#include "onnx_loader/grouping.h"
#include "onnx_loader/onnx_import.h"
#include "onnx_loader/pipeline.h"
#include "tests/onnx_loader/graph_builder.h"
#include "tests/onnx_loader/manifest_checks.h"
#include "tests/onnx_loader/onnx_builder.h"

namespace ps::onnx_loader {
namespace {

namespace psm = pipeswitch::psm;
using testing::Builder;
using testing::check_lowered;
using testing::ramp;

Attribute ints(std::vector<int64_t> v) { return Attribute{std::move(v)}; }

// ---------------------------------------------------------------------------------------------
// Grouping

TEST_CASE("module_path reads the exporter's scopes", "[grouping]") {
  CHECK(module_path("/layer1/layer1.0/conv1/Conv") == "layer1.0.conv1");
  CHECK(module_path("/layer1/layer1.0/downsample/downsample.0/Conv") == "layer1.0.downsample.0");
  CHECK(module_path("/encoder/layer.3/attention/self/query/MatMul") ==
        "encoder.layer.3.attention.self.query");
  CHECK(module_path("/bert/encoder/layer.3/output/Add") == "bert.encoder.layer.3.output");
  CHECK(module_path("/Mixed_5b/branch1x1/conv/Conv") == "Mixed_5b.branch1x1.conv");
  CHECK(module_path("/conv1/FusedConv") == "conv1");
  CHECK(module_path("/Flatten") == "");
  CHECK(module_path("Conv_0") == "");
  CHECK(module_path("") == "");
}

TEST_CASE("assign_blocks: ResNet, BERT and Inception blocks", "[grouping]") {
  SECTION("ResNet: bottleneck blocks, top-level stem and head modules") {
    const std::vector<std::string> paths = {"conv1",
                                            "maxpool",
                                            "layer1.0.conv1",
                                            "layer1.0.conv2",
                                            "layer1.0.downsample.0",
                                            "layer1.0",
                                            "layer1.1.conv1",
                                            "avgpool",
                                            "",
                                            "fc"};
    CHECK(assign_blocks(paths) == std::vector<std::string>{"conv1", "maxpool", "layer1.0",
                                                           "layer1.0", "layer1.0", "layer1.0",
                                                           "layer1.1", "avgpool", "", "fc"});
  }
  SECTION("BERT: attention / intermediate / output of each layer") {
    const std::vector<std::string> paths = {"",
                                            "bert.embeddings.word_embeddings",
                                            "bert.embeddings",
                                            "bert.embeddings.LayerNorm",
                                            "bert.encoder.layer.0.attention.self.query",
                                            "bert.encoder.layer.0.attention.self",
                                            "bert.encoder.layer.0.attention.output.dense",
                                            "bert.encoder.layer.0.intermediate.dense",
                                            "bert.encoder.layer.0.intermediate.intermediate_act_fn",
                                            "bert.encoder.layer.0.output.dense",
                                            "bert.encoder.layer.0.output",
                                            "bert.encoder.layer.1.attention.self.key",
                                            "bert.pooler.dense",
                                            "bert.pooler.activation",
                                            "classifier"};
    CHECK(assign_blocks(paths) ==
          std::vector<std::string>{
              "", "bert.embeddings", "bert.embeddings", "bert.embeddings",
              "bert.encoder.layer.0.attention", "bert.encoder.layer.0.attention",
              "bert.encoder.layer.0.attention", "bert.encoder.layer.0.intermediate",
              "bert.encoder.layer.0.intermediate", "bert.encoder.layer.0.output",
              "bert.encoder.layer.0.output", "bert.encoder.layer.1.attention", "bert.pooler",
              "bert.pooler", "classifier"});
  }
  SECTION("Inception: top-level blocks") {
    const std::vector<std::string> paths = {"Conv2d_1a_3x3.conv",        "maxpool1",
                                            "Mixed_5b.branch1x1.conv",   "Mixed_5b",
                                            "Mixed_5b.branch_pool.conv", "fc"};
    CHECK(assign_blocks(paths) == std::vector<std::string>{"Conv2d_1a_3x3", "maxpool1", "Mixed_5b",
                                                           "Mixed_5b", "Mixed_5b", "fc"});
  }
}

std::vector<LayerSummary> summaries(const std::vector<std::pair<std::string, bool>>& layers) {
  std::vector<std::string> paths;
  for (const auto& [name, params] : layers) paths.push_back(module_path(name));
  const std::vector<std::string> blocks = assign_blocks(paths);
  std::vector<LayerSummary> out;
  for (size_t i = 0; i < layers.size(); ++i) {
    out.push_back({paths[i], blocks[i], layers[i].first, layers[i].second});
  }
  return out;
}

std::vector<std::string> labels(const std::vector<GroupSpan>& groups) {
  std::vector<std::string> out;
  for (const GroupSpan& g : groups) out.push_back(g.label);
  return out;
}

void check_cover(const std::vector<GroupSpan>& groups, size_t layers) {
  uint32_t next = 0;
  for (const GroupSpan& g : groups) {
    CHECK(g.first_layer == next);
    CHECK(g.layer_count > 0);
    next += g.layer_count;
  }
  CHECK(next == layers);
}

TEST_CASE("make_groups: the original PipeSwitch's blocks", "[grouping]") {
  SECTION("ResNet: stem, one group per bottleneck, head") {
    const auto layers = summaries({{"/conv1/FusedConv", true},
                                   {"/maxpool/MaxPool", false},
                                   {"/layer1/layer1.0/conv1/FusedConv", true},
                                   {"/layer1/layer1.0/conv2/FusedConv", true},
                                   {"/layer1/layer1.1/conv1/FusedConv", true},
                                   {"/layer1/layer1.1/conv2/FusedConv", true},
                                   {"/avgpool/GlobalAveragePool", false},
                                   {"/Flatten", false},
                                   {"/fc/Gemm", true}});
    Result<std::vector<GroupSpan>> groups = make_groups(layers, GroupingMode::kBlocks);
    REQUIRE(groups.ok());
    check_cover(*groups, layers.size());
    CHECK(labels(*groups) ==
          std::vector<std::string>{"conv1+maxpool", "layer1.0", "layer1.1", "avgpool+fc"});
  }
  SECTION("Inception: parameter-free pools ride with the block before") {
    const auto layers = summaries({{"/Mul", false},  // transform_input, unscoped
                                   {"/Conv2d_1a_3x3/conv/FusedConv", true},
                                   {"/Conv2d_2b_3x3/conv/FusedConv", true},
                                   {"/maxpool1/MaxPool", false},
                                   {"/Mixed_5b/branch1x1/conv/FusedConv", true},
                                   {"/Mixed_5b/Concat", false},
                                   {"/avgpool/GlobalAveragePool", false},
                                   {"/Flatten", false},
                                   {"/fc/Gemm", true}});
    Result<std::vector<GroupSpan>> groups = make_groups(layers, GroupingMode::kBlocks);
    REQUIRE(groups.ok());
    check_cover(*groups, layers.size());
    CHECK(labels(*groups) ==
          std::vector<std::string>{"Conv2d_1a_3x3", "Conv2d_2b_3x3", "Mixed_5b", "avgpool+fc"});
    CHECK((*groups)[0].layer_count == 2);  // the unscoped Mul joined the first block
    CHECK((*groups)[1].layer_count == 2);  // maxpool1 joined Conv2d_2b_3x3
  }
  SECTION("BERT") {
    const auto layers =
        summaries({{"/Unsqueeze", false},
                   {"/embeddings/word_embeddings/Gather", true},
                   {"/embeddings/LayerNorm/LayerNormalization", true},
                   {"/encoder/layer.0/attention/self/query/MatMulBias", true},
                   {"/encoder/layer.0/attention/self/Softmax", false},
                   {"/encoder/layer.0/attention/output/dense/MatMulBias", true},
                   {"/encoder/layer.0/intermediate/dense/MatMulBias", true},
                   {"/encoder/layer.0/intermediate/intermediate_act_fn/Gelu", false},
                   {"/encoder/layer.0/output/dense/MatMulBias", true},
                   {"/encoder/layer.0/output/Add", false},
                   {"/pooler/Gather", false},
                   {"/pooler/dense/Gemm", true},
                   {"/pooler/activation/Tanh", false}});
    Result<std::vector<GroupSpan>> groups = make_groups(layers, GroupingMode::kBlocks);
    REQUIRE(groups.ok());
    check_cover(*groups, layers.size());
    CHECK(labels(*groups) == std::vector<std::string>{"embeddings", "encoder.layer.0.attention",
                                                      "encoder.layer.0.intermediate",
                                                      "encoder.layer.0.output", "pooler"});
  }
}

TEST_CASE("make_groups: per-layer, whole-model, and errors", "[grouping]") {
  const auto layers = summaries({{"/a/Conv", true}, {"/b/Relu", false}, {"/c/Gemm", true}});
  Result<std::vector<GroupSpan>> per_layer = make_groups(layers, GroupingMode::kPerLayer);
  REQUIRE(per_layer.ok());
  CHECK(per_layer->size() == 3);
  check_cover(*per_layer, 3);
  CHECK((*per_layer)[1].label == "/b/Relu");
  Result<std::vector<GroupSpan>> whole = make_groups(layers, GroupingMode::kWholeModel);
  REQUIRE(whole.ok());
  REQUIRE(whole->size() == 1);
  CHECK((*whole)[0].layer_count == 3);
  const auto unscoped = summaries({{"Conv_0", true}, {"Relu_1", false}});
  CHECK_FALSE(make_groups(unscoped, GroupingMode::kBlocks).ok());
  REQUIRE(make_groups({}, GroupingMode::kBlocks).ok());
  CHECK(make_groups({}, GroupingMode::kBlocks)->empty());

  CHECK(parse_grouping("blocks").ok());
  CHECK(*parse_grouping("whole-model") == GroupingMode::kWholeModel);
  CHECK_FALSE(parse_grouping("optimal?").ok());
}

// ---------------------------------------------------------------------------------------------
// Lowering

// A two-block ResNet in miniature, with the PyTorch exporter's node names.
Builder make_tiny_resnet() {
  Builder b;
  int counter = 0;
  auto conv_bn = [&](const std::string& scope, const std::string& conv, const std::string& bn,
                     int in, int64_t cin, int64_t cout, int64_t k, int64_t hw) {
    const int w = b.weight(scope + conv + ".weight", {cout, cin, k, k},
                           ramp(static_cast<size_t>(cout * cin * k * k), 0.01f * ++counter, 0.01f));
    const int64_t pad = k / 2;
    const std::string prefix = scope.empty() ? ""
                                             : "/" + scope.substr(0, scope.find('.')) + "/" +
                                                   scope.substr(0, scope.size() - 1);
    const int c = b.node("Conv", prefix + "/" + conv + "/Conv", {in, w}, {1, cout, hw, hw},
                         {{"kernel_shape", ints({k, k})}, {"pads", ints({pad, pad, pad, pad})}});
    const int g = b.weight(scope + bn + ".weight", {cout}, ramp(cout, 1.0f, 0.1f));
    const int beta = b.weight(scope + bn + ".bias", {cout}, ramp(cout, -0.1f, 0.05f));
    const int mean = b.weight(scope + bn + ".running_mean", {cout}, ramp(cout, 0.0f, 0.01f));
    const int var = b.weight(scope + bn + ".running_var", {cout}, ramp(cout, 0.5f, 0.1f));
    return b.node("BatchNormalization", prefix + "/" + bn + "/BatchNormalization",
                  {c, g, beta, mean, var}, {1, cout, hw, hw});
  };
  const int x = b.input("input", {1, 3, 8, 8});
  int v = conv_bn("", "conv1", "bn1", x, 3, 4, 3, 8);
  v = b.node("Relu", "/relu/Relu", {v}, {1, 4, 8, 8});
  v = b.node("MaxPool", "/maxpool/MaxPool", {v}, {1, 4, 4, 4},
             {{"kernel_shape", ints({2, 2})}, {"strides", ints({2, 2})}});
  for (const std::string block : {"layer1.0.", "layer1.1."}) {
    const std::string scope = "/layer1/" + block.substr(0, block.size() - 1);
    int y = conv_bn(block, "conv1", "bn1", v, 4, 4, 1, 4);
    y = b.node("Relu", scope + "/relu/Relu", {y}, {1, 4, 4, 4});
    y = conv_bn(block, "conv2", "bn2", y, 4, 4, 3, 4);
    y = b.node("Add", scope + "/Add", {y, v}, {1, 4, 4, 4});
    v = b.node("Relu", scope + "/relu_1/Relu", {y}, {1, 4, 4, 4});
  }
  v = b.node("GlobalAveragePool", "/avgpool/GlobalAveragePool", {v}, {1, 4, 1, 1});
  v = b.node("Flatten", "/Flatten", {v}, {1, 4}, {{"axis", Attribute{int64_t{1}}}});
  const int fw = b.weight("fc.weight", {10, 4}, ramp(40));
  const int fb = b.weight("fc.bias", {10}, ramp(10));
  b.output(b.node("Gemm", "/fc/Gemm", {v, fw, fb}, {1, 10}, {{"transB", Attribute{int64_t{1}}}}));
  b.graph.name = "tiny_resnet";
  b.graph.opset = 13;
  b.graph.dims["batch"] = 1;
  return b;
}

TEST_CASE("lower: fused tiny ResNet with block groups", "[lower]") {
  Builder b = make_tiny_resnet();
  Result<PipelineReport> report = run_passes(b.graph, Mode::kInference);
  REQUIRE(report.ok());
  LowerOptions options;
  options.mode = Mode::kInference;
  options.grouping = GroupingMode::kBlocks;
  options.model_name = "tiny_resnet";
  options.producer = "test";
  options.passes = report->pass_names();
  Result<LoweredModel> lowered = lower(b.graph, options);
  REQUIRE(lowered.ok());
  check_lowered(*lowered, b.graph, options);

  const psm::Manifest& m = lowered->manifest;
  CHECK(m.mode() == psm::Manifest::INFERENCE);
  CHECK(m.model_name() == "tiny_resnet");
  CHECK(m.opset() == 13);
  CHECK(m.dims().at("batch") == 1);
  CHECK(std::vector<std::string>(m.passes().begin(), m.passes().end()) == report->pass_names());
  std::vector<std::string> ops;
  for (const psm::Layer& layer : m.layers()) ops.push_back(layer.op());
  CHECK(ops == std::vector<std::string>{"FusedConv", "MaxPool", "FusedConv", "FusedConv",
                                        "FusedConv", "FusedConv", "GlobalAveragePool", "Flatten",
                                        "Gemm"});
  REQUIRE(m.groups_size() == 4);
  CHECK(m.groups(0).label() == "conv1+maxpool");
  CHECK(m.groups(1).label() == "layer1.0");
  CHECK(m.groups(2).label() == "layer1.1");
  CHECK(m.groups(3).label() == "avgpool+fc");
  CHECK(m.layers(3).block() == "layer1.0");
  // Eleven weights: five folded conv weights and biases, fc weight and bias, no BN tensors.
  int weights = 0;
  for (const psm::Tensor& t : m.tensors()) {
    if (t.kind() == psm::Tensor::WEIGHT) {
      ++weights;
      CHECK(t.trainable());
      CHECK(t.name().find("running") == std::string::npos);
    }
  }
  CHECK(weights == 12);
  // The residual FusedConv carries its attributes.
  const psm::Layer& residual = m.layers(3);
  std::map<std::string, const psm::Attribute*> attrs;
  for (const psm::Attribute& a : residual.attributes()) attrs[a.name()] = &a;
  REQUIRE(attrs.count("has_residual"));
  CHECK(attrs["has_residual"]->i() == 1);
  CHECK(attrs["activation"]->s() == "relu");
  CHECK(std::vector<int64_t>(attrs["pads"]->ints().values().begin(),
                             attrs["pads"]->ints().values().end()) ==
        std::vector<int64_t>{1, 1, 1, 1});
  CHECK(residual.inputs_size() == 4);
  CHECK(residual.onnx_nodes_size() == 4);  // Conv, BN, Add, Relu
}

// After untie_parameters, the tensors the exporter had merged are separate WEIGHT tensors in
// the package, each with its own bytes: the copies that serve as a BatchNormalization's scale
// or bias are trainable, those that serve as its running statistics are not (so SGD never
// moves a running variance, and the running-statistics update never touches a scale).
TEST_CASE("lower: untied parameters keep their roles: scales trainable and statistics not",
          "[lower]") {
  Builder b;
  const int x = b.input("x", {2, 3, 4, 4});
  const int ones = b.weight("bn1.weight", {3}, {1, 1, 1});
  const int zeros = b.weight("bn1.bias", {3}, {0, 0, 0});
  const int h = b.node("BatchNormalization", "bn1", {x, ones, zeros, zeros, ones}, {2, 3, 4, 4});
  b.output(b.node("BatchNormalization", "bn2", {h, ones, zeros, zeros, ones}, {2, 3, 4, 4}));
  REQUIRE(run_passes(b.graph, Mode::kTraining).ok());
  LowerOptions options;
  options.mode = Mode::kTraining;
  Result<LoweredModel> lowered = lower(b.graph, options);
  REQUIRE(lowered.ok());
  check_lowered(*lowered, b.graph, options);
  const psm::Manifest& m = lowered->manifest;
  std::set<uint64_t> offsets;
  int weights = 0;
  for (const psm::Layer& layer : m.layers()) {
    REQUIRE(layer.inputs_size() == 5);
    for (int i = 1; i < 5; ++i) {
      const psm::Tensor& t = m.tensors(static_cast<int>(layer.inputs(i)));
      INFO(layer.name() << " input " << i << ": " << t.name());
      CHECK(t.kind() == psm::Tensor::WEIGHT);
      CHECK(t.trainable() == (i <= 2));
      offsets.insert(t.weight_offset());
      ++weights;
      float first = -1;
      std::memcpy(&first, lowered->weights.data() + t.weight_offset(), 4);
      CHECK(first == ((i == 1 || i == 4) ? 1.0f : 0.0f));
    }
  }
  CHECK(weights == 8);
  CHECK(offsets.size() == 8);  // eight tensors, eight places in the blob
}

TEST_CASE("lower: training keeps BatchNorm, statistics are not trainable", "[lower]") {
  Builder b = make_tiny_resnet();
  Result<PipelineReport> report = run_passes(b.graph, Mode::kTraining);
  REQUIRE(report.ok());
  for (GroupingMode grouping :
       {GroupingMode::kPerLayer, GroupingMode::kWholeModel, GroupingMode::kBlocks}) {
    LowerOptions options;
    options.mode = Mode::kTraining;
    options.grouping = grouping;
    Result<LoweredModel> lowered = lower(b.graph, options);
    REQUIRE(lowered.ok());
    check_lowered(*lowered, b.graph, options);
    const psm::Manifest& m = lowered->manifest;
    CHECK(m.mode() == psm::Manifest::TRAINING);
    CHECK(m.layers_size() == 21);
    if (grouping == GroupingMode::kPerLayer) CHECK(m.groups_size() == 21);
    if (grouping == GroupingMode::kWholeModel) CHECK(m.groups_size() == 1);
    if (grouping == GroupingMode::kBlocks) {
      REQUIRE(m.groups_size() == 4);
      CHECK(m.groups(0).label() == "conv1+bn1+relu+maxpool");
    }
    int statistics = 0;
    for (const psm::Tensor& t : m.tensors()) {
      if (t.kind() != psm::Tensor::WEIGHT) continue;
      const bool is_statistic = t.name().find("running_") != std::string::npos;
      statistics += is_statistic ? 1 : 0;
      CHECK(t.trainable() == !is_statistic);
    }
    CHECK(statistics == 10);
  }
}

TEST_CASE("lower: small constants read by layers are non-trainable weights", "[lower]") {
  Builder b;
  const int x = b.input("x", {2, 3});
  const int shape = b.constant("shape", testing::int64_tensor({1}, {6}), false);
  const int flat = b.node("Reshape", "/Reshape", {x, shape}, {6});
  const int half = b.scalar("half", 0.5f);
  // The importer's mark_weights sets is_weight on every constant read as data, scalars too.
  b.graph.values[half].is_weight = true;
  const int y = b.node("Mul", "/Mul", {flat, half}, {6});
  b.output(y);
  b.constant("unused", testing::float_tensor({1}, {3.0f}), false);
  LowerOptions options;
  Result<LoweredModel> lowered = lower(b.graph, options);
  REQUIRE(lowered.ok());
  check_lowered(*lowered, b.graph, options);
  const psm::Manifest& m = lowered->manifest;
  std::map<std::string, const psm::Tensor*> by_name;
  for (const psm::Tensor& t : m.tensors()) by_name[t.name()] = &t;
  REQUIRE(by_name.count("shape"));
  REQUIRE(by_name.count("half"));
  CHECK(by_name.count("unused") == 0);
  CHECK(by_name["shape"]->kind() == psm::Tensor::WEIGHT);
  CHECK_FALSE(by_name["shape"]->trainable());
  CHECK(by_name["shape"]->dtype() == psm::DT_INT64);
  CHECK(by_name["half"]->shape_size() == 0);  // a scalar
  CHECK(by_name["half"]->weight_offset() == 256);
  CHECK_FALSE(by_name["half"]->trainable());
  CHECK(m.weights_bytes() == 512);
  // The model input dies at the Reshape, so the view shares its bytes.
  CHECK(by_name["/Reshape:0"]->arena_offset() == by_name["x"]->arena_offset());
  CHECK(by_name["x"]->kind() == psm::Tensor::INPUT);
  CHECK(by_name["/Mul:0"]->kind() == psm::Tensor::OUTPUT);
  CHECK(by_name["/Reshape:0"]->kind() == psm::Tensor::ACTIVATION);
}

// HF BERT's training export builds its attention mask in the graph (Constant ones, then
// (1 - mask) * min, expanded to [B,1,S,S]: all zeros without padding); folding makes it one
// [B,1,S,S] constant. It is uploaded with the weights but is no parameter: before Value::literal it
// was trained (AdamW moved it, its gradient was computed every step) and counted as 504,008
// parameters of BERT. What folding derives from an initializer (inference folds Transpose(W)) stays
// a parameter.
TEST_CASE("lower: a tensor folded from Constant nodes is a weight, not a parameter", "[lower]") {
  using testing::ModelBuilder;
  constexpr int32_t kFloat = onnx::TensorProto::FLOAT;
  for (Mode mode : {Mode::kTraining, Mode::kInference}) {
    INFO(mode_name(mode));
    ModelBuilder mb(17);
    mb.input("x", kFloat, {2, 3})
        .constant("ones", testing::floats("ones", {2, 3}, {1, 1, 0, 1, 1, 1}))  // one pad
        .constant("one", testing::floats("one", {}, {1.0f}))
        .constant("min", testing::floats("min", {}, {-1e4f}))
        .node("Sub", {"one", "ones"}, {"inverted"})
        .node("Mul", {"inverted", "min"}, {"mask"})
        .node("Add", {"x", "mask"}, {"masked"})
        .initializer(testing::filled("fc.weight", {4, 3}, 0.5f))
        .node("Transpose", {"fc.weight"}, {"fc.weight_t"},
              {testing::attr("perm", std::vector<int64_t>{1, 0})})
        .node("MatMul", {"masked", "fc.weight_t"}, {"y"})
        .output("y");
    ImportOptions import_options;
    import_options.optimize = false;
    import_options.require_executable = false;
    Result<Graph> graph = import_onnx_model(mb.build(), import_options);
    INFO(graph.status().to_string());
    REQUIRE(graph.ok());
    REQUIRE(run_passes(*graph, mode).ok());
    const int mask = graph->find_value("mask");
    REQUIRE(mask >= 0);
    REQUIRE(graph->values[mask].constant != nullptr);  // folded
    CHECK(graph->values[mask].is_weight);
    CHECK(graph->values[mask].literal);
    CHECK_FALSE(is_parameter(graph->values[mask]));
    // Training reads fc.weight as stored (MatMulTransB); inference folds its Transpose.
    const int weight = graph->find_value(mode == Mode::kTraining ? "fc.weight" : "fc.weight_t");
    REQUIRE(weight >= 0);
    REQUIRE(graph->values[weight].constant != nullptr);
    CHECK_FALSE(graph->values[weight].literal);
    CHECK(is_parameter(graph->values[weight]));

    Result<LoweredModel> lowered = lower(*graph, LowerOptions{});
    REQUIRE(lowered.ok());
    std::map<std::string, const psm::Tensor*> by_name;
    for (const psm::Tensor& t : lowered->manifest.tensors()) by_name[t.name()] = &t;
    REQUIRE(by_name.count("mask"));
    CHECK(by_name["mask"]->kind() == psm::Tensor::WEIGHT);
    CHECK_FALSE(by_name["mask"]->trainable());
    if (mode == Mode::kTraining) {
      REQUIRE(by_name.count("fc.weight"));
      CHECK(by_name["fc.weight"]->trainable());
    }
  }
}

TEST_CASE("lower: errors name the cause", "[lower]") {
  SECTION("dynamic shape") {
    Builder b;
    const int x = b.input("x", {-1, 3});
    b.output(b.node("Relu", "/relu/Relu", {x}, {-1, 3}));
    Result<LoweredModel> lowered = lower(b.graph, {});
    REQUIRE_FALSE(lowered.ok());
    CHECK(lowered.status().message().find("'x'") != std::string::npos);
  }
  SECTION("omitted optional input before a present one") {
    Builder b;
    const int x = b.input("x", {1, 3, 4, 4});
    const int scales = b.weight("scales", {4}, {1, 1, 2, 2});
    b.output(b.node("Resize", "/up/Resize", {x, -1, scales}, {1, 3, 8, 8}));
    Result<LoweredModel> lowered = lower(b.graph, {});
    REQUIRE_FALSE(lowered.ok());
    CHECK(lowered.status().message().find("/up/Resize") != std::string::npos);
  }
  SECTION("trailing omitted inputs are dropped") {
    Builder b;
    const int x = b.input("x", {4});
    b.output(b.node("Clip", "/clip", {x, -1, -1}, {4}));
    Result<LoweredModel> lowered = lower(b.graph, {});
    REQUIRE(lowered.ok());
    CHECK(lowered->manifest.layers(0).inputs_size() == 1);
  }
  SECTION("bad alignment") {
    Builder b;
    b.output(b.node("Relu", "/r", {b.input("x", {4})}, {4}));
    LowerOptions options;
    options.weight_alignment = 128;
    CHECK_FALSE(lower(b.graph, options).ok());
  }
}

}  // namespace
}  // namespace ps::onnx_loader
