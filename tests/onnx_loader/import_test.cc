// ONNX import of hand-built models shaped like the PyTorch exports we target (a ResNet block at
// opset 13, BERT-style shape arithmetic at opset 17 with a dynamic batch axis, opset 18 ops),
// the command-line dimensions, and the cleanup of Identity and Dropout.
#include <algorithm>
#include <catch2/catch.hpp>
#include <set>

#include "onnx_loader/onnx_import.h"
#include "onnx_loader/shape_inference.h"
#include "onnx_loader/supported_ops.h"
#include "tests/onnx_loader/onnx_builder.h"
#include "tests/onnx_loader/temp_dir.h"

namespace ps::onnx_loader {
namespace {

using onnx::TensorProto;
using testing::attr;
using testing::filled;
using testing::int64s;
using testing::ModelBuilder;

constexpr int32_t kFloat = TensorProto::FLOAT;
constexpr int32_t kInt64 = TensorProto::INT64;

std::multiset<std::string> live_ops(const Graph& g) {
  std::multiset<std::string> ops;
  for (const Node& n : g.nodes) {
    if (!n.dead) ops.insert(n.op);
  }
  return ops;
}

const Value& value_named(const Graph& g, const std::string& name) {
  const int v = g.find_value(name);
  REQUIRE(v >= 0);
  return g.values[v];
}

// conv -> relu -> conv(weight through Identity) -> add residual -> relu -> pool -> flatten -> gemm
ModelBuilder resnet_block(int64_t opset = 13) {
  ModelBuilder b(opset);
  b.input("input", kFloat, {"batch", 3, 8, 8})
      .initializer(filled("w1", {4, 3, 3, 3}, 0.1f))
      .initializer(filled("b1", {4}, 0.f))
      .initializer(filled("w2", {4, 4, 3, 3}, 0.1f))
      .initializer(filled("fc_w", {10, 4}, 0.5f))
      .initializer(filled("fc_b", {10}, 0.f))
      .node("Conv", {"input", "w1", "b1"}, {"c1"},
            {attr("kernel_shape", std::vector<int64_t>{3, 3}),
             attr("pads", std::vector<int64_t>{1, 1, 1, 1})},
            "conv1")
      .node("Relu", {"c1"}, {"r1"}, {}, "relu1")
      .node("Identity", {"w2"}, {"w2_copy"}, {}, "weight_identity")
      .node("Conv", {"r1", "w2_copy"}, {"c2"}, {attr("pads", std::vector<int64_t>{1, 1, 1, 1})},
            "conv2")
      .node("Add", {"c2", "r1"}, {"sum"}, {}, "residual")
      .node("Relu", {"sum"}, {"r2"}, {}, "relu2")
      .node("GlobalAveragePool", {"r2"}, {"pooled"}, {}, "pool")
      .node("Flatten", {"pooled"}, {"flat"}, {attr("axis", int64_t{1})}, "flatten")
      .node("Gemm", {"flat", "fc_w", "fc_b"}, {"logits"}, {attr("transB", int64_t{1})}, "fc")
      .output("logits", kFloat, {"batch", 10}, true);
  return b;
}

TEST_CASE("a ResNet-style block at opset 13 imports with static shapes", "[import]") {
  ImportStats stats;
  ImportOptions options;
  options.dims = {{"batch", 2}};
  options.stats = &stats;
  std::vector<std::pair<std::string, double>> progress;
  options.progress = [&](std::string_view stage, double f) { progress.emplace_back(stage, f); };

  auto g = import_onnx_model(resnet_block().build(), options);
  REQUIRE(g.ok());
  CHECK(live_ops(*g) == std::multiset<std::string>{"Conv", "Relu", "Conv", "Add", "Relu",
                                                   "GlobalAveragePool", "Flatten", "Gemm"});
  CHECK(*value_named(*g, "input").shape == Shape{2, 3, 8, 8});
  CHECK(*value_named(*g, "c1").shape == Shape{2, 4, 8, 8});
  CHECK(*value_named(*g, "pooled").shape == Shape{2, 4, 1, 1});
  CHECK(*value_named(*g, "logits").shape == Shape{2, 10});
  CHECK(g->values[g->outputs[0]].name == "logits");
  CHECK(g->dims.at("batch") == 2);
  CHECK(g->opset == 13);
  CHECK(g->validate().ok());

  // The Identity on a weight is gone (rewired, not copied); weights are classified.
  CHECK(stats.removed == 1);
  CHECK(stats.folded == 0);
  CHECK(stats.onnx_nodes == 9);
  CHECK(stats.initializers == 5);
  CHECK(stats.libonnx_checked);
  const Node& conv2 = g->nodes[2];
  REQUIRE(conv2.op == "Conv");
  CHECK(g->values[conv2.inputs[1]].constant != nullptr);
  CHECK(g->values[conv2.inputs[1]].is_weight);
  CHECK(value_named(*g, "fc_w").is_weight);
  for (const Node& n : g->nodes) {
    for (int o : n.outputs) CHECK(g->values[o].producer >= 0);
  }
  for (const Value& v : g->values) {
    INFO(v.name);
    CHECK(v.dtype == DType::kFloat32);
    CHECK(v.shape.has_value());
  }

  REQUIRE(!progress.empty());
  CHECK(progress.back() == std::make_pair(std::string("done"), 1.0));
  for (size_t i = 1; i < progress.size(); ++i) CHECK(progress[i].second >= progress[i - 1].second);
}

TEST_CASE("without optimisation the graph stays as exported, with shapes", "[import]") {
  ImportOptions options;
  options.dims = {{"batch", 1}};
  options.optimize = false;
  auto g = import_onnx_model(resnet_block().build(), options);
  REQUIRE(g.ok());
  CHECK(live_ops(*g).count("Identity") == 1);
  CHECK(*value_named(*g, "w2_copy").shape == Shape{4, 4, 3, 3});
}

// BERT at opset 17 with a dynamic batch axis: embeddings, then the shape arithmetic PyTorch
// emits (Shape, Gather, Unsqueeze, Concat, Slice of the position_ids buffer, ConstantOfShape
// for the attention mask, Cast, Range) around Reshape, Transpose and LayerNormalization.
ModelBuilder bert_style() {
  ModelBuilder b(17);
  std::vector<int64_t> positions(32);
  for (int64_t i = 0; i < 32; ++i) positions[i] = i;
  b.input("input_ids", kInt64, {"batch", "sequence"})
      .initializer(filled("word_embeddings", {100, 16}, 0.01f))
      .initializer(filled("position_embeddings", {32, 16}, 0.02f))
      .initializer(int64s("position_ids", {1, 32}, positions))
      .initializer(filled("gamma", {16}, 1.f))
      .initializer(filled("beta", {16}, 0.f))
      .initializer(filled("dense_w", {16, 16}, 0.1f))
      .initializer(filled("dense_b", {16}, 0.f))
      .constant("zero", int64s("zero", {}, {0}))
      .constant("one", int64s("one", {}, {1}))
      .constant("axes0", int64s("axes0", {1}, {0}))
      .constant("heads", int64s("heads", {1}, {4}))
      .constant("head_size", int64s("head_size", {1}, {4}))
      .node("Gather", {"word_embeddings", "input_ids"}, {"emb"}, {}, "word_lookup")
      .node("Shape", {"input_ids"}, {"ids_shape"}, {}, "shape_ids")
      .node("Gather", {"ids_shape", "one"}, {"seq_len"}, {attr("axis", int64_t{0})}, "get_seq")
      .node("Unsqueeze", {"seq_len", "axes0"}, {"seq_len_1d"}, {}, "unsq_seq")
      .constant("one_1d", int64s("one_1d", {1}, {1}))
      .node("Slice", {"position_ids", "axes0", "seq_len_1d", "one_1d"}, {"pos_ids"}, {},
            "slice_positions")
      .node("Gather", {"position_embeddings", "pos_ids"}, {"pos_emb"}, {}, "position_lookup")
      .node("Add", {"emb", "pos_emb"}, {"embedded"}, {}, "add_positions")
      .node("LayerNormalization", {"embedded", "gamma", "beta"}, {"ln"},
            {attr("axis", int64_t{-1}), attr("epsilon", 1e-12f)}, "embeddings_ln")
      .node("MatMul", {"ln", "dense_w"}, {"mm"}, {}, "query")
      .node("Add", {"mm", "dense_b"}, {"q"}, {}, "query_bias")
      .node("Shape", {"q"}, {"q_shape"}, {}, "shape_q")
      .node("Gather", {"q_shape", "zero"}, {"batch_size"}, {attr("axis", int64_t{0})}, "get_batch")
      .node("Unsqueeze", {"batch_size", "axes0"}, {"batch_1d"}, {}, "unsq_batch")
      .node("Concat", {"batch_1d", "seq_len_1d", "heads", "head_size"}, {"new_shape"},
            {attr("axis", int64_t{0})}, "concat_shape")
      .node("Reshape", {"q", "new_shape"}, {"q4"}, {}, "split_heads")
      .node("Transpose", {"q4"}, {"q_heads"}, {attr("perm", std::vector<int64_t>{0, 2, 1, 3})},
            "transpose_heads")
      // Attention mask: ones of [batch, seq] -> float -> (1 - mask) * -10000 -> [B,1,1,S].
      .node("Concat", {"batch_1d", "seq_len_1d"}, {"mask_shape"}, {attr("axis", int64_t{0})},
            "concat_mask_shape")
      .node("ConstantOfShape", {"mask_shape"}, {"mask"}, {attr("value", int64s("v", {1}, {1}))},
            "ones_mask")
      .node("Cast", {"mask"}, {"mask_f"}, {attr("to", int64_t{kFloat})}, "cast_mask")
      .constant("one_f", testing::floats("one_f", {}, {1.f}))
      .node("Sub", {"one_f", "mask_f"}, {"inverted"}, {}, "invert_mask")
      .constant("big_negative", testing::floats("big_negative", {}, {-10000.f}))
      .node("Mul", {"inverted", "big_negative"}, {"mask_add"}, {}, "scale_mask")
      .constant("axes12", int64s("axes12", {2}, {1, 2}))
      .node("Unsqueeze", {"mask_add", "axes12"}, {"extended_mask"}, {}, "extend_mask")
      .node("Add", {"q_heads", "extended_mask"}, {"scores"}, {}, "apply_mask")
      .node("Softmax", {"scores"}, {"probs"}, {attr("axis", int64_t{-1})}, "softmax")
      .output("probs", kFloat, {"batch", 4, "sequence", 4}, true);
  return b;
}

TEST_CASE("BERT-style shape arithmetic at opset 17 folds away", "[import]") {
  ImportStats stats;
  ImportOptions options;
  options.dims = {{"batch", 2}, {"seq", 4}};
  options.stats = &stats;
  auto model = bert_style();
  auto g = import_onnx_model(model.build(), options);
  REQUIRE(g.ok());
  const auto ops = live_ops(*g);
  for (const char* gone :
       {"Shape", "Unsqueeze", "Concat", "Slice", "ConstantOfShape", "Cast", "Sub", "Mul"}) {
    INFO(gone);
    CHECK(ops.count(gone) == 0);
  }
  CHECK(ops == std::multiset<std::string>{"Gather", "Add", "LayerNormalization", "MatMul", "Add",
                                          "Reshape", "Transpose", "Add", "Softmax"});
  CHECK(g->dims.at("sequence") == 4);
  CHECK(*value_named(*g, "q_heads").shape == Shape{2, 4, 4, 4});
  CHECK(*value_named(*g, "probs").shape == Shape{2, 4, 4, 4});

  // The Reshape's target became a constant of the right values, not a weight.
  const Node* reshape = nullptr;
  for (const Node& n : g->nodes) {
    if (n.op == "Reshape") reshape = &n;
  }
  REQUIRE(reshape != nullptr);
  const Value& target = g->values[reshape->inputs[1]];
  REQUIRE(target.constant != nullptr);
  auto dims = target.constant->as<int64_t>();
  CHECK(std::vector<int64_t>(dims.begin(), dims.end()) == std::vector<int64_t>{2, 4, 4, 4});
  CHECK_FALSE(target.is_weight);

  // Position embeddings of the first 4 positions were gathered at import; the mask too.
  const Value& mask = value_named(*g, "extended_mask");
  REQUIRE(mask.constant != nullptr);
  CHECK(mask.constant->shape == Shape{2, 1, 1, 4});
  CHECK(mask.constant->as<float>()[0] == 0.0f);  // (1 - 1) * -10000
  CHECK(mask.is_weight);
  CHECK(value_named(*g, "pos_emb").constant->shape == Shape{1, 4, 16});
  CHECK(g->find_value("position_ids") == -1);  // only fed the folded Slice
  CHECK(stats.libonnx_checked);
  CHECK(stats.constant_nodes == 9);
  for (const Value& v : g->values) {
    INFO(v.name);
    CHECK(v.dtype != DType::kUndefined);
    CHECK(v.shape.has_value());
  }
}

TEST_CASE("opset 18 models import with our own shape inference", "[import]") {
  ModelBuilder b(18);
  b.input("x", kFloat, {"batch", 6, 4})
      .constant("axes", int64s("axes", {1}, {-1}))
      .node("ReduceMean", {"x", "axes"}, {"mean"}, {attr("keepdims", int64_t{1})}, "mean")
      .node("Sub", {"x", "mean"}, {"centered"}, {}, "center")
      .node("Split", {"centered"}, {"a", "b", "c"},
            {attr("axis", int64_t{1}), attr("num_outputs", int64_t{3})}, "split")
      .node("Concat", {"c", "a"}, {"y"}, {attr("axis", int64_t{1})}, "concat")
      .output("y");
  ImportStats stats;
  ImportOptions options;
  options.dims = {{"batch", 3}};
  options.stats = &stats;
  auto g = import_onnx_model(b.build(), options);
  REQUIRE(g.ok());
  CHECK(*value_named(*g, "mean").shape == Shape{3, 6, 1});
  CHECK(*value_named(*g, "b").shape == Shape{3, 2, 4});
  CHECK(*value_named(*g, "y").shape == Shape{3, 4, 4});
  CHECK_FALSE(stats.libonnx_checked);
  CHECK_THAT(stats.libonnx_note, Catch::Contains("up to 17"));
}

TEST_CASE("dimensions come from the command line", "[import]") {
  auto model_with = [](std::vector<testing::Dim> dims) {
    ModelBuilder b(13);
    b.input("x", kFloat, std::move(dims)).node("Relu", {"x"}, {"y"}).output("y");
    return b;
  };
  auto shape_of_y = [](const Result<Graph>& g) { return *g->values[g->outputs[0]].shape; };

  ImportOptions options;
  options.dims = {{"batch", 8}, {"seq", 251}};
  SECTION("batch and seq apply to the first two symbolic or unnamed dims") {
    auto g = import_onnx_model(model_with({"N", ""}).build(), options);
    REQUIRE(g.ok());
    CHECK(shape_of_y(g) == Shape{8, 251});
    CHECK(g->dims.at("N") == 8);
  }
  SECTION("named dims are looked up by name first") {
    options.dims["width"] = 7;
    options.dims["N"] = 3;
    auto g = import_onnx_model(model_with({"N", "seq", "width"}).build(), options);
    REQUIRE(g.ok());
    CHECK(shape_of_y(g) == Shape{3, 251, 7});
  }
  SECTION("a symbolic dim with no size is an error naming it") {
    auto g = import_onnx_model(model_with({"N", 3, "height"}).build(), options);
    REQUIRE_FALSE(g.ok());
    CHECK_THAT(g.status().message(),
               Catch::Contains("graph input 'x' dimension 2 ('height') is symbolic"));
  }
  SECTION("without batch, a symbolic batch is an error") {
    auto g = import_onnx_model(model_with({"N", 3}).build(), ImportOptions{});
    REQUIRE_FALSE(g.ok());
    CHECK_THAT(g.status().message(), Catch::Contains("or as batch"));
  }
  SECTION("a fixed batch that differs from the one asked for is an error") {
    auto g = import_onnx_model(model_with({1, 3}).build(), options);
    REQUIRE_FALSE(g.ok());
    CHECK_THAT(g.status().message(), Catch::Contains("fixed batch dimension of 1 but batch 8"));
  }
  SECTION("fixed dims stay as they are") {
    options.dims.erase("batch");
    auto g = import_onnx_model(model_with({1, 3}).build(), options);
    REQUIRE(g.ok());
    CHECK(shape_of_y(g) == Shape{1, 3});
  }
}

TEST_CASE("Identity and Dropout are removed, keeping output names", "[import][cleanup]") {
  ModelBuilder b(13);
  b.input("x", kFloat, {2, 3})
      .node("Relu", {"x"}, {"r"}, {}, "relu")
      .node("Dropout", {"r"}, {"d", "mask"}, {}, "dropout")
      .node("Identity", {"d"}, {"i"}, {}, "identity")
      .node("Sigmoid", {"i"}, {"s"}, {}, "sigmoid")
      .node("Identity", {"s"}, {"y"}, {}, "final_identity")
      .node("Identity", {"x"}, {"x_copy"}, {}, "input_identity")
      .output("y")
      .output("x_copy")
      .output("mask");
  ImportStats stats;
  ImportOptions options;
  options.stats = &stats;
  auto g = import_onnx_model(b.build(), options);
  REQUIRE(g.ok());
  CHECK(live_ops(*g) == std::multiset<std::string>{"Relu", "Sigmoid", "Identity"});
  CHECK(stats.removed == 3);
  CHECK(g->values[g->outputs[0]].name == "y");
  CHECK(g->nodes[g->values[g->outputs[0]].producer].op == "Sigmoid");
  CHECK(g->values[g->outputs[1]].name == "x_copy");  // input -> output stays a copy
  const Value& mask = g->values[g->outputs[2]];
  REQUIRE(mask.constant != nullptr);
  CHECK(mask.constant->dtype == DType::kBool);
  CHECK(mask.constant->bytes == std::vector<uint8_t>(6, 1));
  CHECK(g->validate().ok());
}

TEST_CASE("a model file with raw_data, typed fields and external data imports", "[import]") {
  testing::TempDir dir;
  ModelBuilder b = resnet_block();
  // fc_b as float_data, w1 in an external file.
  auto* inits = b.graph()->mutable_initializer();
  for (auto& init : *inits) {
    if (init.name() == "fc_b") {
      init.clear_raw_data();
      for (int i = 0; i < 10; ++i) init.add_float_data(0.5f);
    }
    if (init.name() == "w1") {
      dir.write("weights/w1.bin", init.raw_data());
      init.clear_raw_data();
      init.set_data_location(TensorProto::EXTERNAL);
      auto* entry = init.add_external_data();
      entry->set_key("location");
      entry->set_value("weights/w1.bin");
    }
  }
  const std::string path = dir.write("model.onnx", b.build().SerializeAsString());
  ImportOptions options;
  options.dims = {{"batch", 1}};
  ImportStats stats;
  options.stats = &stats;
  auto g = import_onnx_file(path, options);
  REQUIRE(g.ok());
  CHECK(stats.libonnx_checked);
  CHECK(value_named(*g, "w1").constant->as<float>()[5] == 0.1f);
  CHECK(value_named(*g, "fc_b").constant->as<float>()[9] == 0.5f);
}

TEST_CASE("every supported op has a shape function and a sane opset range", "[import]") {
  for (const SupportedOp& op : supported_ops()) {
    INFO(op.op_type);
    CHECK(op.min_opset <= op.max_opset);
    CHECK(op.max_opset == kMaxSupportedOpset);
    CHECK(find_supported_op(op.domain, op.op_type, op.max_opset) == &op);
    CHECK(find_supported_op("ai.onnx", op.op_type, op.max_opset) == &op);
    // Constant nodes become constants at import; every other op needs a shape function.
    if (op.op_type != "Constant") CHECK(has_shape_function(op.op_type));
  }
  CHECK(find_supported_op("", "LayerNormalization", 16) == nullptr);
  CHECK(find_supported_op("com.microsoft", "Gelu", 17) == nullptr);
  CHECK(find_supported_op("", "Loop", 13) == nullptr);
}

}  // namespace
}  // namespace ps::onnx_loader
