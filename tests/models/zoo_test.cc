// The model zoo: every model builds, is valid ONNX (libonnx's checker and strict shape
// inference), has the structure and parameter count of its torchvision / Hugging Face original,
// names things as PyTorch's exporter does, and is reproducible from its seed.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <onnx/checker.h>
#include <onnx/defs/schema.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include "models/zoo/zoo.h"

namespace {

using ps::zoo::ZooOptions;
using Dims = std::vector<int64_t>;

onnx::ModelProto build(const std::string& name, const ZooOptions& options = {}) {
  auto model = ps::zoo::build_model(name, options);
  INFO(name << ": " << model.status().to_string());
  REQUIRE(model.ok());
  return std::move(model).value();
}

// Runs libonnx's checker; returns the exception text, empty when the model is valid.
std::string checker_error(const onnx::ModelProto& model) {
  try {
    onnx::checker::check_model(model);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// Fixes the symbolic dims ("batch", "seq") of the inputs and of the shapes recorded in
// value_info, forgets the declared output shapes and runs strict shape inference (type checks on, node errors thrown). Returns each output's
// inferred dims (-1 for an unknown dim), or throws what libonnx threw.
std::map<std::string, Dims> infer_outputs(onnx::ModelProto& model, int64_t batch, int64_t seq) {
  auto fix = [&](onnx::ValueInfoProto& value) {
    for (auto& d : *value.mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim()) {
      if (d.dim_param() == "batch") d.set_dim_value(batch);
      if (d.dim_param() == "seq") d.set_dim_value(seq);
    }
  };
  for (auto& input : *model.mutable_graph()->mutable_input()) fix(input);
  for (auto& value : *model.mutable_graph()->mutable_value_info()) fix(value);
  for (auto& output : *model.mutable_graph()->mutable_output()) output.mutable_type()->mutable_tensor_type()->clear_shape();
  onnx::ShapeInferenceOptions strict(/*check_type=*/true, /*error_mode=*/1, /*data_prop=*/false);
  onnx::shape_inference::InferShapes(model, onnx::OpSchemaRegistry::Instance(), strict);
  std::map<std::string, Dims> shapes;
  for (const auto& output : model.graph().output()) {
    Dims dims;
    for (const auto& d : output.type().tensor_type().shape().dim()) dims.push_back(d.has_dim_value() ? d.dim_value() : -1);
    shapes[output.name()] = dims;
  }
  return shapes;
}

std::map<std::string, Dims> infer_or_fail(onnx::ModelProto& model, int64_t batch, int64_t seq) {
  try {
    return infer_outputs(model, batch, seq);
  } catch (const std::exception& e) {
    FAIL("shape inference threw: " << e.what());
  }
  return {};
}

// Strict shape inference with the symbolic dims left in; returns each output's dims as text
// ("batch", "32"; "?" for an unknown dim).
std::map<std::string, std::vector<std::string>> infer_symbolic(onnx::ModelProto& model) {
  for (auto& output : *model.mutable_graph()->mutable_output()) output.mutable_type()->mutable_tensor_type()->clear_shape();
  try {
    onnx::ShapeInferenceOptions strict(/*check_type=*/true, /*error_mode=*/1, /*data_prop=*/false);
    onnx::shape_inference::InferShapes(model, onnx::OpSchemaRegistry::Instance(), strict);
  } catch (const std::exception& e) {
    FAIL("symbolic shape inference threw: " << e.what());
  }
  std::map<std::string, std::vector<std::string>> shapes;
  for (const auto& output : model.graph().output()) {
    std::vector<std::string> dims;
    for (const auto& d : output.type().tensor_type().shape().dim()) {
      dims.push_back(d.has_dim_value() ? std::to_string(d.dim_value()) : d.dim_param().empty() ? "?" : d.dim_param());
    }
    shapes[output.name()] = dims;
  }
  return shapes;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

int64_t elements(const onnx::TensorProto& t) {
  int64_t n = 1;
  for (int64_t d : t.dims()) n *= d;
  return n;
}

// Trainable parameters counted from the initialisers alone (independent of the builder's own
// bookkeeping): every float tensor except BatchNorm running statistics.
int64_t count_parameters(const onnx::ModelProto& model) {
  int64_t n = 0;
  for (const auto& t : model.graph().initializer()) {
    if (t.data_type() != onnx::TensorProto::FLOAT) continue;
    if (ends_with(t.name(), ".running_mean") || ends_with(t.name(), ".running_var")) continue;
    n += elements(t);
  }
  return n;
}

std::map<std::string, int> op_counts(const onnx::ModelProto& model) {
  std::map<std::string, int> counts;
  for (const auto& n : model.graph().node()) ++counts[n.op_type()];
  return counts;
}

void print_op_counts(const std::string& name, const onnx::ModelProto& model) {
  std::printf("%s: %d nodes, %d initialisers:", name.c_str(), model.graph().node_size(),
              model.graph().initializer_size());
  for (const auto& [op, n] : op_counts(model)) std::printf(" %s=%d", op.c_str(), n);
  std::printf("\n");
}

const onnx::NodeProto* find_node(const onnx::ModelProto& model, const std::string& name) {
  for (const auto& n : model.graph().node()) {
    if (n.name() == name) return &n;
  }
  return nullptr;
}

const onnx::TensorProto* find_initializer(const onnx::ModelProto& model, const std::string& name) {
  for (const auto& t : model.graph().initializer()) {
    if (t.name() == name) return &t;
  }
  return nullptr;
}

std::span<const float> floats(const onnx::TensorProto& t) {
  REQUIRE(t.data_type() == onnx::TensorProto::FLOAT);
  REQUIRE(static_cast<int64_t>(t.raw_data().size()) == elements(t) * 4);
  return {reinterpret_cast<const float*>(t.raw_data().data()), t.raw_data().size() / 4};
}

struct Moments {
  double mean = 0, stddev = 0, min = 1e30, max = -1e30;
};
Moments moments(std::span<const float> v) {
  Moments m;
  double s1 = 0, s2 = 0;
  for (float x : v) {
    s1 += x;
    s2 += double(x) * x;
    m.min = std::min<double>(m.min, x);
    m.max = std::max<double>(m.max, x);
  }
  m.mean = s1 / v.size();
  m.stddev = std::sqrt(s2 / v.size() - m.mean * m.mean);
  return m;
}

// Node names are unique, every node input is a graph input, an initialiser or an earlier node's
// output (the exporter writes nodes in topological order), and every node has a name.
void check_wiring(const onnx::ModelProto& model) {
  std::set<std::string> available, node_names;
  for (const auto& i : model.graph().input()) available.insert(i.name());
  for (const auto& t : model.graph().initializer()) available.insert(t.name());
  for (const auto& n : model.graph().node()) {
    INFO("node " << n.name());
    REQUIRE(!n.name().empty());
    REQUIRE(node_names.insert(n.name()).second);
    for (const auto& in : n.input()) {
      INFO("input " << in);
      REQUIRE(available.count(in) == 1);
    }
    for (const auto& out : n.output()) available.insert(out);
  }
  for (const auto& o : model.graph().output()) REQUIRE(available.count(o.name()) == 1);
}

// Builds a full-size model once and runs every structural check on it.
struct BigModelCheck {
  std::string name;
  int64_t parameters;
  std::map<std::string, Dims> outputs;  // at batch 8 (and seq 251)
  std::map<std::string, int> ops;       // expected counts of these op types
};

void check_big_model(const BigModelCheck& expect) {
  const auto start = std::chrono::steady_clock::now();
  onnx::ModelProto model = build(expect.name);
  const double build_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%s: built in %.2f s, %lld parameters\n", expect.name.c_str(), build_s,
              static_cast<long long>(count_parameters(model)));
  print_op_counts(expect.name, model);

  CHECK(checker_error(model).empty());
  CHECK(count_parameters(model) == expect.parameters);
  auto info = ps::zoo::describe(expect.name);
  REQUIRE(info.ok());
  CHECK(info->parameters == expect.parameters);
  check_wiring(model);
  const auto ops = op_counts(model);
  for (const auto& [op, n] : expect.ops) {
    INFO(expect.name << " op " << op);
    CHECK((ops.count(op) ? ops.at(op) : 0) == n);
  }
  CHECK(infer_or_fail(model, 8, 251) == expect.outputs);
}

const std::map<std::string, Dims> kLogits = {{"logits", {8, 1000}}};

}  // namespace

TEST_CASE("model_names lists the five full-size models and three tiny ones", "[zoo]") {
  CHECK(ps::zoo::model_names() == std::vector<std::string>{"resnet18", "resnet50", "resnet152", "inception_v3",
                                                           "bert_base", "resnet_tiny", "inception_tiny",
                                                           "bert_tiny"});
}

TEST_CASE("resnet18 matches torchvision", "[zoo]") {
  check_big_model({"resnet18", 11'689'512, kLogits,
                   {{"Conv", 20}, {"BatchNormalization", 20}, {"Relu", 17}, {"Add", 8}, {"MaxPool", 1},
                    {"GlobalAveragePool", 1}, {"Flatten", 1}, {"Gemm", 1}}});
}

TEST_CASE("resnet50 matches torchvision", "[zoo]") {
  check_big_model({"resnet50", 25'557'032, kLogits,
                   {{"Conv", 53}, {"BatchNormalization", 53}, {"Relu", 49}, {"Add", 16}, {"Gemm", 1}}});
}

TEST_CASE("resnet152 matches torchvision", "[zoo]") {
  check_big_model({"resnet152", 60'192'808, kLogits,
                   {{"Conv", 155}, {"BatchNormalization", 155}, {"Relu", 151}, {"Add", 50}, {"Gemm", 1}}});
}

TEST_CASE("inception_v3 matches torchvision without its auxiliary head", "[zoo]") {
  // torchvision counts 27,161,264 with AuxLogits; the aux head is conv0 768->128 1x1
  // (98,304 + BN 256), conv1 128->768 5x5 (2,457,600 + BN 1,536) and fc 768->1000 (769,000):
  // 3,326,696, which leaves 23,834,568 for the eval graph.
  check_big_model({"inception_v3", 27'161'264 - 3'326'696, kLogits,
                   {{"Conv", 94}, {"BatchNormalization", 94}, {"Relu", 94}, {"MaxPool", 4}, {"AveragePool", 9},
                    {"Concat", 15}, {"GlobalAveragePool", 1}, {"Flatten", 1}, {"Gemm", 1}}});
}

TEST_CASE("bert_base matches Hugging Face BertModel (bert-base-cased)", "[zoo]") {
  check_big_model({"bert_base", 108'310'272, {{"last_hidden_state", {8, 251, 768}}, {"pooler_output", {8, 768}}},
                   {{"MatMul", 96}, {"Gemm", 1}, {"LayerNormalization", 25}, {"Softmax", 12}, {"Erf", 12},
                    {"Reshape", 48}, {"Transpose", 48}, {"Add", 110}, {"Div", 24}, {"Mul", 24}, {"Tanh", 1},
                    {"Gather", 5}, {"Slice", 1}}});
}

TEST_CASE("tiny models are valid at every opset from 13 to 17", "[zoo]") {
  const std::map<std::string, std::map<std::string, Dims>> expected = {
      {"resnet_tiny", {{"logits", {2, 1000}}}},
      {"inception_tiny", {{"logits", {2, 1000}}}},
      {"bert_tiny", {{"last_hidden_state", {2, 7, 32}}, {"pooler_output", {2, 32}}}},
  };
  const std::map<std::string, std::map<std::string, std::vector<std::string>>> symbolic_outputs = {
      {"resnet_tiny", {{"logits", {"batch", "1000"}}}},
      {"inception_tiny", {{"logits", {"batch", "1000"}}}},
      {"bert_tiny", {{"last_hidden_state", {"batch", "seq", "32"}}, {"pooler_output", {"batch", "32"}}}},
  };
  for (const auto& [name, outputs] : expected) {
    for (int opset = 13; opset <= 17; ++opset) {
      INFO(name << " opset " << opset);
      ZooOptions options;
      options.opset = opset;
      onnx::ModelProto model = build(name, options);
      CHECK(model.opset_import(0).version() == opset);
      CHECK(checker_error(model).empty());
      check_wiring(model);
      auto info = ps::zoo::describe(name);
      REQUIRE(info.ok());
      CHECK(count_parameters(model) == info->parameters);
      // With the symbolic dims left in, strict inference carries them to the outputs.
      onnx::ModelProto symbolic = model;
      CHECK(infer_symbolic(symbolic) == symbolic_outputs.at(name));
      CHECK(infer_or_fail(model, 2, 7) == outputs);
      if (opset == 17) print_op_counts(name, model);
    }
  }
}

TEST_CASE("tiny models have the promised size", "[zoo]") {
  onnx::ModelProto resnet = build("resnet_tiny");
  CHECK(resnet.graph().input(0).type().tensor_type().shape().dim(2).dim_value() == 32);
  const auto resnet_ops = op_counts(resnet);
  CHECK(resnet_ops.at("Add") == 5);   // BasicBlocks [2, 1, 1, 1]
  CHECK(resnet_ops.at("Conv") == 14);  // stem + 2 per block + 3 downsamples
  CHECK(find_initializer(resnet, "layer4.0.conv2.weight")->dims(0) == 64);

  onnx::ModelProto inception = build("inception_tiny");
  CHECK(inception.graph().input(0).type().tensor_type().shape().dim(2).dim_value() == 75);
  for (const char* block : {"/Mixed_5b/Concat", "/Mixed_6a/Concat", "/Mixed_6b/Concat", "/Mixed_7a/Concat",
                            "/Mixed_7b/Concat_2"}) {
    CHECK(find_node(inception, block) != nullptr);
  }
  CHECK(find_initializer(inception, "Mixed_7b.branch3x3dbl_1.conv.weight")->dims(0) == 448 / 8);

  onnx::ModelProto bert = build("bert_tiny");
  CHECK(find_initializer(bert, "embeddings.word_embeddings.weight")->dims(0) == 100);
  CHECK(op_counts(bert).at("LayerNormalization") == 5);
  CHECK(find_node(bert, "/encoder/layer.2/attention/self/query/MatMul") == nullptr);
  CHECK(find_node(bert, "/encoder/layer.1/attention/self/query/MatMul") != nullptr);
}

TEST_CASE("names follow PyTorch's exporter", "[zoo]") {
  onnx::ModelProto resnet = build("resnet_tiny");
  for (const char* name : {"/conv1/Conv", "/bn1/BatchNormalization", "/relu/Relu", "/maxpool/MaxPool",
                           "/layer1/layer1.0/conv1/Conv", "/layer1/layer1.0/relu/Relu", "/layer1/layer1.0/Add",
                           "/layer1/layer1.0/relu_1/Relu", "/layer2/layer2.0/downsample/downsample.0/Conv",
                           "/layer2/layer2.0/downsample/downsample.1/BatchNormalization",
                           "/avgpool/GlobalAveragePool", "/Flatten", "/fc/Gemm"}) {
    INFO(name);
    CHECK(find_node(resnet, name) != nullptr);
  }
  const onnx::NodeProto* conv = find_node(resnet, "/layer1/layer1.0/conv1/Conv");
  REQUIRE(conv != nullptr);
  CHECK(conv->input(1) == "layer1.0.conv1.weight");
  CHECK(conv->output(0) == "/layer1/layer1.0/conv1/Conv_output_0");
  const onnx::NodeProto* bn = find_node(resnet, "/layer2/layer2.0/downsample/downsample.1/BatchNormalization");
  REQUIRE(bn != nullptr);
  CHECK(std::vector<std::string>(bn->input().begin() + 1, bn->input().end()) ==
        std::vector<std::string>{"layer2.0.downsample.1.weight", "layer2.0.downsample.1.bias",
                                 "layer2.0.downsample.1.running_mean", "layer2.0.downsample.1.running_var"});
  CHECK(find_node(resnet, "/fc/Gemm")->output(0) == "logits");

  onnx::ModelProto inception = build("inception_tiny");
  for (const char* name : {"/Conv2d_1a_3x3/conv/Conv", "/Conv2d_1a_3x3/bn/BatchNormalization",
                           "/Conv2d_1a_3x3/Relu", "/maxpool1/MaxPool", "/Mixed_5b/branch_pool/conv/Conv",
                           "/Mixed_5b/AveragePool", "/Mixed_6a/MaxPool", "/Mixed_7b/Concat", "/Mixed_7b/Concat_1"}) {
    INFO(name);
    CHECK(find_node(inception, name) != nullptr);
  }
  const onnx::NodeProto* pool = find_node(inception, "/Mixed_5b/AveragePool");
  REQUIRE(pool != nullptr);
  std::map<std::string, std::vector<int64_t>> attrs;
  for (const auto& a : pool->attribute()) {
    attrs[a.name()] = a.type() == onnx::AttributeProto::INT ? std::vector<int64_t>{a.i()}
                                                           : std::vector<int64_t>(a.ints().begin(), a.ints().end());
  }
  CHECK(attrs["count_include_pad"] == Dims{1});
  CHECK(attrs["pads"] == Dims{1, 1, 1, 1});
  CHECK(attrs["strides"] == Dims{1, 1});

  onnx::ModelProto bert = build("bert_tiny");
  for (const char* name :
       {"/embeddings/word_embeddings/Gather", "/embeddings/position_embeddings/Gather", "/embeddings/Slice",
        "/embeddings/LayerNorm/LayerNormalization", "/encoder/layer.1/attention/self/query/MatMul",
        "/encoder/layer.1/attention/self/query/Add", "/encoder/layer.1/attention/self/Softmax",
        "/encoder/layer.1/attention/self/Reshape_3", "/encoder/layer.1/attention/output/LayerNorm/LayerNormalization",
        "/encoder/layer.1/intermediate/intermediate_act_fn/Erf", "/encoder/layer.1/output/dense/MatMul",
        "/pooler/Gather", "/pooler/dense/Gemm", "/pooler/activation/Tanh"}) {
    INFO(name);
    CHECK(find_node(bert, name) != nullptr);
  }
  const onnx::NodeProto* query = find_node(bert, "/encoder/layer.1/attention/self/query/MatMul");
  REQUIRE(query != nullptr);
  const onnx::TensorProto* weight = find_initializer(bert, query->input(1));
  REQUIRE(weight != nullptr);
  CHECK(weight->name().rfind("onnx::MatMul_", 0) == 0);
  CHECK(weight->doc_string().rfind("encoder.layer.1.attention.self.query.weight", 0) == 0);
  const onnx::NodeProto* bias_add = find_node(bert, "/encoder/layer.1/attention/self/query/Add");
  CHECK(bias_add->input(0) == "encoder.layer.1.attention.self.query.bias");
  CHECK(find_node(bert, "/pooler/activation/Tanh")->output(0) == "pooler_output");
  CHECK(find_initializer(bert, "embeddings.position_ids")->data_type() == onnx::TensorProto::INT64);
}

TEST_CASE("bert below opset 17 decomposes LayerNorm and GELU as the exporter does", "[zoo]") {
  ZooOptions options;
  options.opset = 16;
  onnx::ModelProto bert = build("bert_tiny", options);
  const auto ops = op_counts(bert);
  CHECK(ops.count("LayerNormalization") == 0);
  const int norms = 2 * 2 + 1;  // two per layer and the embeddings'
  CHECK(ops.at("ReduceMean") == 2 * norms);
  CHECK(ops.at("Pow") == norms);
  CHECK(ops.at("Sqrt") == norms);
  CHECK(ops.at("Erf") == 2);
  std::vector<std::string> ln_ops, gelu_ops;
  for (const auto& n : bert.graph().node()) {
    if (n.name().rfind("/encoder/layer.0/output/LayerNorm/", 0) == 0) ln_ops.push_back(n.op_type());
    if (n.name().rfind("/encoder/layer.0/intermediate/intermediate_act_fn/", 0) == 0) gelu_ops.push_back(n.op_type());
  }
  CHECK(ln_ops == std::vector<std::string>{"ReduceMean", "Sub", "Constant", "Pow", "ReduceMean", "Constant", "Add",
                                           "Sqrt", "Div", "Mul", "Add"});
  CHECK(gelu_ops ==
        std::vector<std::string>{"Constant", "Div", "Erf", "Constant", "Add", "Mul", "Constant", "Mul"});
  std::vector<std::string> attention_ops;
  for (const auto& n : bert.graph().node()) {
    if (n.name().rfind("/encoder/layer.0/attention/self/", 0) == 0 && n.op_type() != "Constant") {
      attention_ops.push_back(n.op_type());
    }
  }
  CHECK(attention_ops == std::vector<std::string>{"MatMul", "Add", "MatMul", "Add", "Reshape", "Transpose",
                                                  "MatMul", "Add", "Reshape", "Transpose", "Reshape", "Transpose",
                                                  "MatMul", "Div", "Softmax", "MatMul", "Transpose", "Reshape"});
}

TEST_CASE("weights follow the documented initialisation", "[zoo]") {
  onnx::ModelProto resnet = build("resnet18");
  // kaiming_normal_(fan_out): conv1 is 64x3x7x7, fan_out = 64 * 49.
  const Moments conv1 = moments(floats(*find_initializer(resnet, "conv1.weight")));
  CHECK(std::fabs(conv1.mean) < 0.01);
  CHECK(conv1.stddev == Approx(std::sqrt(2.0 / (64 * 49))).epsilon(0.05));
  const Moments conv = moments(floats(*find_initializer(resnet, "layer3.1.conv2.weight")));
  CHECK(conv.stddev == Approx(std::sqrt(2.0 / (256 * 9))).epsilon(0.01));
  for (float g : floats(*find_initializer(resnet, "layer2.0.bn1.weight"))) REQUIRE(g == 1.0f);
  for (float b : floats(*find_initializer(resnet, "layer2.0.bn1.bias"))) REQUIRE(b == 0.0f);
  // Running statistics are drawn around the expected second moment E[x^2] of the BatchNorm's
  // input: var ~ E[x^2] * U(0.5, 1.5), mean ~ N(0, 0.1 * sqrt(E[x^2])). For the stem that is
  // conv1's output for a unit-variance image: 3 * 49 * 2 / (64 * 49) = 0.09375.
  const Moments stem_var = moments(floats(*find_initializer(resnet, "bn1.running_var")));
  CHECK(stem_var.min >= 0.5 * 0.09375);
  CHECK(stem_var.max < 1.5 * 0.09375);
  int norms = 0;
  for (const auto& t : resnet.graph().initializer()) {
    if (!ends_with(t.name(), ".running_var")) continue;
    const std::string prefix = t.name().substr(0, t.name().size() - std::string("running_var").size());
    INFO(prefix);
    const Moments var = moments(floats(t));
    const Moments mean = moments(floats(*find_initializer(resnet, prefix + "running_mean")));
    CHECK(var.min > 0);
    CHECK(var.max / var.min < 3.0);
    CHECK(var.max / var.min > 1.5);  // not a constant
    CHECK(mean.stddev / std::sqrt(var.mean) == Approx(0.1).epsilon(0.3));
    ++norms;
  }
  CHECK(norms == 20);
  const double bound = 1.0 / std::sqrt(512.0);
  const Moments fc = moments(floats(*find_initializer(resnet, "fc.weight")));
  CHECK(fc.min >= -bound);
  CHECK(fc.max < bound);
  CHECK(fc.stddev == Approx(bound / std::sqrt(3.0)).epsilon(0.01));

  onnx::ModelProto inception = build("inception_tiny");
  // Truncated He normal: |w| <= 2 stddev, stddev sqrt(2 / fan_in); truncation at 2 sigma
  // shrinks the spread to 0.88 of it.
  const auto conv_w = floats(*find_initializer(inception, "Mixed_7b.branch3x3dbl_2.conv.weight"));
  const double he = std::sqrt(2.0 / (56 * 9));
  const Moments trunc = moments(conv_w);
  CHECK(trunc.max <= 2 * he * 1.0001);
  CHECK(trunc.min >= -2 * he * 1.0001);
  CHECK(trunc.stddev == Approx(0.8796 * he).epsilon(0.03));

  onnx::ModelProto bert = build("bert_tiny");
  const auto words = floats(*find_initializer(bert, "embeddings.word_embeddings.weight"));
  for (int i = 0; i < 32; ++i) REQUIRE(words[i] == 0.0f);  // padding_idx 0
  CHECK(moments(words.subspan(32)).stddev == Approx(0.02).epsilon(0.05));
  const onnx::NodeProto* dense = find_node(bert, "/encoder/layer.0/intermediate/dense/MatMul");
  const Moments inter = moments(floats(*find_initializer(bert, dense->input(1))));
  CHECK(inter.stddev == Approx(0.02).epsilon(0.05));
  for (float g : floats(*find_initializer(bert, "encoder.layer.0.output.LayerNorm.weight"))) REQUIRE(g == 1.0f);
  const auto positions = find_initializer(bert, "embeddings.position_ids");
  REQUIRE(positions->raw_data().size() == 512 * 8);
  const auto* ids = reinterpret_cast<const int64_t*>(positions->raw_data().data());
  for (int i = 0; i < 512; ++i) REQUIRE(ids[i] == i);
}

TEST_CASE("the same seed gives a byte-identical model, another seed other weights", "[zoo]") {
  for (const std::string name : {"resnet_tiny", "inception_tiny", "bert_tiny"}) {
    INFO(name);
    ZooOptions seven;
    seven.seed = 7;
    const std::string a = build(name, seven).SerializeAsString();
    const std::string b = build(name, seven).SerializeAsString();
    CHECK(a == b);

    ZooOptions eight;
    eight.seed = 8;
    onnx::ModelProto m7 = build(name, seven);
    onnx::ModelProto m8 = build(name, eight);
    REQUIRE(m7.graph().initializer_size() == m8.graph().initializer_size());
    int differing = 0, random_tensors = 0;
    for (int i = 0; i < m7.graph().initializer_size(); ++i) {
      const auto& t7 = m7.graph().initializer(i);
      const auto& t8 = m8.graph().initializer(i);
      REQUIRE(t7.name() == t8.name());
      if (t7.data_type() != onnx::TensorProto::FLOAT) continue;
      // Tensors drawn at random (not the constant BatchNorm/LayerNorm gammas and betas).
      const auto v = floats(t7);
      if (std::all_of(v.begin(), v.end(), [&](float x) { return x == v[0]; })) {
        CHECK(t7.raw_data() == t8.raw_data());
        continue;
      }
      ++random_tensors;
      if (t7.raw_data() != t8.raw_data()) ++differing;
    }
    CHECK(random_tensors > 0);
    CHECK(differing == random_tensors);
    // Structure does not depend on the seed.
    onnx::GraphProto g7 = m7.graph(), g8 = m8.graph();
    g7.clear_initializer();
    g8.clear_initializer();
    CHECK(g7.SerializeAsString() == g8.SerializeAsString());
  }
}

TEST_CASE("training_graph is recorded in the metadata and changes nothing else in a CNN", "[zoo]") {
  ZooOptions training;
  training.training_graph = true;
  onnx::ModelProto eval = build("resnet_tiny");
  onnx::ModelProto train = build("resnet_tiny", training);
  auto meta = [](const onnx::ModelProto& m) {
    std::map<std::string, std::string> props;
    for (const auto& p : m.metadata_props()) props[p.key()] = p.value();
    return props;
  };
  CHECK(meta(eval)["training_graph"] == "false");
  CHECK(meta(train)["training_graph"] == "true");
  CHECK(meta(train)["zoo_model"] == "resnet_tiny");
  CHECK(eval.graph().SerializeAsString() == train.graph().SerializeAsString());
}

// BERT's training graph is BertForSequenceClassification: BertModel under `bert.`, the
// classifier Linear(hidden, 2) on the pooler output, and `logits` the only output.
TEST_CASE("a BERT training graph is BertForSequenceClassification with 2 labels", "[zoo]") {
  ZooOptions training;
  training.training_graph = true;
  onnx::ModelProto eval = build("bert_tiny");
  onnx::ModelProto train = build("bert_tiny", training);
  REQUIRE(eval.graph().output_size() == 2);
  REQUIRE(train.graph().output_size() == 1);
  const onnx::ValueInfoProto& out = train.graph().output(0);
  CHECK(out.name() == "logits");
  const auto& dims = out.type().tensor_type().shape().dim();
  REQUIRE(dims.size() == 2);
  CHECK(dims[0].dim_param() == "batch");
  CHECK(dims[1].dim_value() == 2);
  std::map<std::string, std::vector<int64_t>> train_params, eval_params;
  for (const auto& t : train.graph().initializer()) {
    train_params[t.name()] = std::vector<int64_t>(t.dims().begin(), t.dims().end());
  }
  for (const auto& t : eval.graph().initializer()) {
    eval_params[t.name()] = std::vector<int64_t>(t.dims().begin(), t.dims().end());
  }
  CHECK(train_params["classifier.weight"] == std::vector<int64_t>{2, 32});
  CHECK(train_params["classifier.bias"] == std::vector<int64_t>{2});
  // Every named parameter of BertModel is there under `bert.` with its shape.
  int named = 0;
  for (const auto& [name, shape] : eval_params) {
    if (name.find('.') == std::string::npos) continue;  // the exporter's anonymous names
    ++named;
    INFO(name);
    CHECK(train_params["bert." + name] == shape);
  }
  CHECK(named > 20);
  // The classifier's Gemm reads the pooler's Tanh.
  const onnx::NodeProto& last = train.graph().node(train.graph().node_size() - 1);
  CHECK(last.op_type() == "Gemm");
  CHECK(last.output(0) == "logits");
}

TEST_CASE("write_model writes a file that parses back to the same model", "[zoo]") {
  const std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("zoo_test_" + std::to_string(::getpid()) + ".onnx");
  ZooOptions options;
  options.seed = 3;
  options.opset = 15;
  REQUIRE(ps::zoo::write_model("inception_tiny", path.string(), options).ok());
  onnx::ModelProto parsed;
  {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(parsed.ParseFromIstream(&in));
  }
  std::filesystem::remove(path);
  CHECK(parsed.SerializeAsString() == build("inception_tiny", options).SerializeAsString());
  CHECK(checker_error(parsed).empty());
  CHECK(parsed.opset_import(0).version() == 15);
}

TEST_CASE("errors name their cause", "[zoo]") {
  auto unknown = ps::zoo::build_model("resnet19");
  REQUIRE(!unknown.ok());
  CHECK(unknown.status().code() == ps::Code::kNotFound);
  CHECK(unknown.status().message().find("resnet19") != std::string::npos);
  CHECK(ps::zoo::describe("vgg16").status().code() == ps::Code::kNotFound);
  for (int opset : {12, 18}) {
    ZooOptions options;
    options.opset = opset;
    auto bad = ps::zoo::build_model("bert_tiny", options);
    REQUIRE(!bad.ok());
    CHECK(bad.status().code() == ps::Code::kInvalidArgument);
    CHECK(bad.status().message().find(std::to_string(opset)) != std::string::npos);
  }
  ps::Status io = ps::zoo::write_model("bert_tiny", "/nonexistent-dir/x.onnx");
  CHECK(io.code() == ps::Code::kIo);
  CHECK(io.message().find("/nonexistent-dir/x.onnx") != std::string::npos);
}

TEST_CASE("describe gives inputs and parameters without building weights", "[zoo]") {
  auto resnet = ps::zoo::describe("resnet50");
  REQUIRE(resnet.ok());
  CHECK(resnet->inputs == std::vector<std::pair<std::string, Dims>>{{"input", {-1, 3, 224, 224}}});
  CHECK(resnet->parameters == 25'557'032);
  auto inception = ps::zoo::describe("inception_v3");
  REQUIRE(inception.ok());
  CHECK(inception->inputs == std::vector<std::pair<std::string, Dims>>{{"input", {-1, 3, 299, 299}}});
  auto bert = ps::zoo::describe("bert_base");
  REQUIRE(bert.ok());
  CHECK(bert->inputs == std::vector<std::pair<std::string, Dims>>{{"input_ids", {-1, -1}}, {"token_type_ids", {-1, -1}}});
  CHECK(bert->parameters == 108'310'272);
  CHECK(!bert->description.empty());
  for (const std::string& name : ps::zoo::model_names()) {
    auto info = ps::zoo::describe(name);
    REQUIRE(info.ok());
    CHECK(info->name == name);
    CHECK(info->parameters > 0);
  }
}
