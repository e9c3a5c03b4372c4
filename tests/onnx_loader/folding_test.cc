// Constant folding, the evaluator's edge cases, and the cleanup passes run one by one.
#include <catch2/catch.hpp>

#include "onnx_loader/cleanup_passes.h"
#include "onnx_loader/constant_folding.h"
#include "onnx_loader/onnx_import.h"
#include "onnx_loader/shape_inference.h"
#include "onnx_loader/supported_ops.h"
#include "tests/onnx_loader/onnx_builder.h"

namespace ps::onnx_loader {
namespace {

using onnx::TensorProto;
using testing::attr;
using testing::filled;
using testing::floats;
using testing::int64s;
using testing::ModelBuilder;

constexpr int32_t kFloat = TensorProto::FLOAT;

// Imports without passes: the graph as exported, with shapes.
Graph import_raw(const ModelBuilder& b) {
  ImportOptions options;
  options.optimize = false;
  options.require_executable = false;
  auto g = import_onnx_model(b.build(), options);
  INFO(g.status().to_string());
  REQUIRE(g.ok());
  return std::move(*g);
}

template <typename T>
std::vector<T> values_of(const Graph& g, const std::string& name) {
  const int v = g.find_value(name);
  REQUIRE(v >= 0);
  REQUIRE(g.values[v].constant != nullptr);
  auto span = g.values[v].constant->as<T>();
  return std::vector<T>(span.begin(), span.end());
}

TEST_CASE("shape inference sees through shape arithmetic without changing the graph", "[folding]") {
  ModelBuilder b(13);
  b.input("x", kFloat, {2, 3, 4})
      .node("Shape", {"x"}, {"s"})
      .node("ReduceProd", {"s"}, {"n"}, {attr("keepdims", int64_t{1})})
      .node("Reshape", {"x", "n"}, {"flat"})
      .output("flat");
  Graph g = import_raw(b);
  CHECK(g.nodes.size() == 3);  // nothing folded
  CHECK(*g.values[g.find_value("flat")].shape == Shape{24});

  int folded = 0;
  REQUIRE(fold_constants(g, &folded).ok());
  CHECK(folded == 2);
  CHECK(values_of<int64_t>(g, "n") == std::vector<int64_t>{24});
  REQUIRE(eliminate_dead_code(g).ok());
  CHECK(g.nodes.size() == 1);
  CHECK(g.nodes[0].op == "Reshape");
  CHECK(g.validate().ok());
  CHECK(check_executable(g).ok());
}

TEST_CASE("Shape of an intermediate value folds once shapes are inferred", "[folding]") {
  ModelBuilder b(15);
  b.input("x", kFloat, {2, 3, 4, 5})
      .node("Relu", {"x"}, {"r"})
      .node("Shape", {"r"}, {"tail"}, {attr("start", int64_t{-2})})
      .node("Shape", {"r"}, {"mid"}, {attr("start", int64_t{1}), attr("end", int64_t{-1})})
      .output("tail")
      .output("mid")
      .output("r");
  Graph g = import_raw(b);
  REQUIRE(fold_constants(g).ok());
  CHECK(values_of<int64_t>(g, "tail") == std::vector<int64_t>{4, 5});
  CHECK(values_of<int64_t>(g, "mid") == std::vector<int64_t>{3, 4});
}

TEST_CASE("evaluator edge cases", "[folding]") {
  SECTION("integer division by zero is an error naming the node") {
    ModelBuilder b(13);
    b.initializer(int64s("a", {2}, {4, 5}))
        .initializer(int64s("b", {2}, {2, 0}))
        .node("Div", {"a", "b"}, {"c"}, {}, "divide")
        .output("c");
    auto g = import_onnx_model(b.build(), {});
    REQUIRE_FALSE(g.ok());
    CHECK_THAT(g.status().message(),
               Catch::Contains("node 0 'divide' (Div)") && Catch::Contains("division by zero"));
  }
  SECTION("integer arithmetic truncates toward zero and wraps") {
    ModelBuilder b(13);
    b.initializer(int64s("a", {3}, {-7, 7, INT64_MAX}))
        .initializer(int64s("b", {3}, {2, -2, 1}))
        .node("Div", {"a", "b"}, {"q"})
        .node("Add", {"a", "b"}, {"s"})
        .output("q")
        .output("s");
    Graph g = import_raw(b);
    REQUIRE(fold_constants(g).ok());
    CHECK(values_of<int64_t>(g, "q") == std::vector<int64_t>{-3, -3, INT64_MAX});
    CHECK(values_of<int64_t>(g, "s") == std::vector<int64_t>{-5, 5, INT64_MIN});
  }
  SECTION("casts from float saturate instead of overflowing") {
    ModelBuilder b(13);
    b.initializer(floats("f", {4}, {1e20f, -1e20f, -2.7f, std::numeric_limits<float>::quiet_NaN()}))
        .node("Cast", {"f"}, {"i"}, {attr("to", int64_t{TensorProto::INT32})})
        .node("Cast", {"f"}, {"u"}, {attr("to", int64_t{TensorProto::UINT8})})
        .node("Cast", {"f"}, {"h"}, {attr("to", int64_t{TensorProto::FLOAT16})})
        .output("i")
        .output("u")
        .output("h");
    Graph g = import_raw(b);
    REQUIRE(fold_constants(g).ok());
    CHECK(values_of<int32_t>(g, "i") == std::vector<int32_t>{INT32_MAX, INT32_MIN, -2, 0});
    CHECK(values_of<uint8_t>(g, "u") == std::vector<uint8_t>{255, 0, 0, 0});
    CHECK(values_of<uint16_t>(g, "h")[0] == 0x7c00);  // +inf
  }
  SECTION("slices with negative steps and clamped bounds") {
    ModelBuilder b(13);
    b.initializer(int64s("data", {2, 5}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}))
        .initializer(int64s("starts", {2}, {-1, 100}))
        .initializer(int64s("ends", {2}, {INT64_MIN, -100}))
        .initializer(int64s("axes", {2}, {0, 1}))
        .initializer(int64s("steps", {2}, {-1, -2}))
        .node("Slice", {"data", "starts", "ends", "axes", "steps"}, {"y"})
        .output("y");
    Graph g = import_raw(b);
    CHECK(*g.values[g.find_value("y")].shape == Shape{2, 3});
    REQUIRE(fold_constants(g).ok());
    CHECK(values_of<int64_t>(g, "y") == std::vector<int64_t>{9, 7, 5, 4, 2, 0});
  }
}

TEST_CASE("folding does not swell the weights", "[folding]") {
  ModelBuilder b(13);
  b.initializer(floats("one", {1}, {1.f}))
      .initializer(int64s("big", {2}, {2048, 4096}))  // 32 MiB of float
      .initializer(int64s("small", {2}, {4, 4}))
      .node("Expand", {"one", "big"}, {"large"}, {}, "expand_big")
      .node("Expand", {"one", "small"}, {"tiny"}, {}, "expand_small")
      .output("large")
      .output("tiny");
  Graph g = import_raw(b);
  int folded = 0;
  REQUIRE(fold_constants(g, &folded).ok());
  CHECK(folded == 1);
  CHECK(g.values[g.find_value("tiny")].constant != nullptr);
  CHECK(g.values[g.find_value("large")].constant == nullptr);
  CHECK_FALSE(g.nodes[0].dead);
}

TEST_CASE("mark_weights tells data constants from parameters", "[folding]") {
  ModelBuilder b(13);
  b.input("x", kFloat, {2, 6})
      .initializer(filled("bias", {3}, 1.f))
      .initializer(int64s("shape", {2}, {4, 3}))
      .initializer(int64s("axes", {1}, {0}))
      .node("Reshape", {"x", "shape"}, {"r"})
      .node("Add", {"r", "bias"}, {"a"})
      .node("Unsqueeze", {"a", "axes"}, {"y"})
      .output("y");
  Graph g = import_raw(b);
  mark_weights(g);
  CHECK(g.values[g.find_value("bias")].is_weight);
  CHECK_FALSE(g.values[g.find_value("shape")].is_weight);
  CHECK_FALSE(g.values[g.find_value("axes")].is_weight);
  CHECK_FALSE(g.values[g.find_value("x")].is_weight);
}

TEST_CASE("dead code elimination keeps what reaches an output", "[folding]") {
  ModelBuilder b(13);
  b.input("x", kFloat, {2})
      .node("Relu", {"x"}, {"used"})
      .node("Sigmoid", {"x"}, {"unused"})
      .node("Tanh", {"unused"}, {"unused_too"})
      .node("Dropout", {"used"}, {"y", "mask"})
      .output("y");
  Graph g = import_raw(b);
  REQUIRE(eliminate_dead_code(g).ok());
  CHECK(g.nodes.size() == 2);
  CHECK(g.find_value("unused") == -1);
  CHECK(g.find_value("mask") != -1);  // an unused output of a live node stays
  CHECK(g.validate().ok());

  int removed = 0;
  REQUIRE(remove_identity_and_dropout(g, &removed).ok());
  CHECK(removed == 1);
  REQUIRE(eliminate_dead_code(g).ok());
  CHECK(g.nodes.size() == 1);
  CHECK(g.values[g.outputs[0]].name == "y");
  CHECK(g.values[g.outputs[0]].producer == 0);
}

TEST_CASE("infer_shapes keeps the types of nodes made by passes", "[folding]") {
  ModelBuilder b(13);
  b.input("x", kFloat, {2, 3}).node("Relu", {"x"}, {"y"}).output("y");
  Graph g = import_raw(b);
  g.nodes[0].op = "FusedThing";  // what a pass might create
  CHECK(infer_shapes(g).ok());
  g.values[g.outputs[0]].shape.reset();
  Status s = infer_shapes(g);
  CHECK(s.code() == Code::kUnsupported);
  CHECK_THAT(s.message(), Catch::Contains("no shape function"));
}

}  // namespace
}  // namespace ps::onnx_loader
