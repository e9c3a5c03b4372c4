// The graph IR: building, consumers, rewiring, compact() and validate().
#include "onnx_loader/graph.h"

#include <catch2/catch.hpp>

namespace ps::onnx_loader {
namespace {

Value tensor_value(const std::string& name) {
  Value v;
  v.name = name;
  v.dtype = DType::kFloat32;
  v.shape = Shape{2, 3};
  return v;
}

Node make_node(const std::string& op, std::vector<int> inputs, std::vector<int> outputs,
               int onnx_index) {
  Node n;
  n.op = op;
  n.name = op + "_" + std::to_string(onnx_index);
  n.inputs = std::move(inputs);
  n.outputs = std::move(outputs);
  n.onnx_nodes = {onnx_index};
  return n;
}

// x -> Relu -> a -> Add(a, w) -> b -> Identity -> y
Graph small_graph() {
  Graph g;
  g.name = "small";
  const int x = g.add_value(tensor_value("x"));
  Value w = tensor_value("w");
  auto data = std::make_shared<TensorData>();
  data->dtype = DType::kFloat32;
  data->shape = {2, 3};
  data->bytes.resize(24);
  w.constant = data;
  const int wi = g.add_value(w);
  const int a = g.add_value(tensor_value("a"));
  const int b = g.add_value(tensor_value("b"));
  const int y = g.add_value(tensor_value("y"));
  g.add_node(make_node("Relu", {x}, {a}, 0));
  g.add_node(make_node("Add", {a, wi}, {b}, 1));
  g.add_node(make_node("Identity", {b}, {y}, 2));
  g.inputs = {x};
  g.outputs = {y};
  return g;
}

TEST_CASE("dtype helpers and shapes", "[graph]") {
  CHECK(dtype_size(DType::kFloat32) == 4);
  CHECK(dtype_size(DType::kBFloat16) == 2);
  CHECK(dtype_size(DType::kBool) == 1);
  CHECK(dtype_size(DType::kUndefined) == 0);
  CHECK(std::string(dtype_name(DType::kInt64)) == "int64");
  CHECK(element_count({}) == 1);
  CHECK(element_count({8, 3, 224, 224}) == 8 * 3 * 224 * 224);
  CHECK(element_count({4, 0}) == 0);
  CHECK(shape_string({8, 3, 224, 224}) == "[8,3,224,224]");
  CHECK(shape_string({}) == "[]");
}

TEST_CASE("attribute accessors fall back on missing or wrong-typed attributes", "[graph]") {
  Node n;
  n.attrs["axis"] = Attribute{int64_t{2}};
  n.attrs["eps"] = Attribute{1e-5f};
  n.attrs["mode"] = Attribute{std::string("SAME_UPPER")};
  n.attrs["perm"] = Attribute{std::vector<int64_t>{1, 0}};
  CHECK(n.attr_int("axis", 0) == 2);
  CHECK(n.attr_int("missing", 7) == 7);
  CHECK(n.attr_int("eps", 7) == 7);  // wrong type
  CHECK(n.attr_float("eps", 0) == 1e-5f);
  CHECK(n.attr_string("mode", "") == "SAME_UPPER");
  CHECK(n.attr_ints("perm") == std::vector<int64_t>{1, 0});
  CHECK(n.attr_ints("axis", {9}) == std::vector<int64_t>{9});
  CHECK(n.has_attr("perm"));
  CHECK_FALSE(n.has_attr("nope"));
}

TEST_CASE("add_node records producers, consumers and find_value", "[graph]") {
  Graph g = small_graph();
  REQUIRE(g.validate().ok());
  CHECK(g.values[g.find_value("a")].producer == 0);
  CHECK(g.values[g.find_value("x")].producer == -1);
  CHECK(g.find_value("nothing") == -1);
  CHECK(g.consumers(g.find_value("a")) == std::vector<int>{1});
  CHECK(g.is_output(g.find_value("y")));
  CHECK_FALSE(g.is_output(g.find_value("b")));
  CHECK(describe_node(g, 1) == "node 1 'Add_1' (Add)");
  g.nodes[1].dead = true;
  CHECK(g.consumers(g.find_value("a")).empty());
}

TEST_CASE("replace_uses and compact drop a bypassed node and its values", "[graph]") {
  Graph g = small_graph();
  const int b = g.find_value("b");
  const int y = g.find_value("y");
  // Make the Add write y directly and drop the Identity.
  g.nodes[2].dead = true;
  g.nodes[1].outputs = {y};
  g.values[y].producer = 1;
  g.values[b].producer = -1;
  g.compact();
  REQUIRE(g.validate().ok());
  CHECK(g.nodes.size() == 2);
  CHECK(g.find_value("b") == -1);
  CHECK(g.values[g.outputs[0]].name == "y");
  CHECK(g.values[g.outputs[0]].producer == 1);
  CHECK(g.nodes[1].inputs[0] == g.find_value("a"));

  // replace_uses rewires node inputs and graph outputs.
  const int a = g.find_value("a");
  g.replace_uses(g.outputs[0], a);
  CHECK(g.outputs[0] == a);
}

TEST_CASE("compact keeps unused outputs of live nodes and drops unused constants", "[graph]") {
  Graph g = small_graph();
  Value unused = tensor_value("unused_constant");
  unused.constant = g.values[g.find_value("w")].constant;
  g.add_value(unused);
  const int mask = g.add_value(tensor_value("mask"));
  g.nodes[0].outputs.push_back(mask);
  g.values[mask].producer = 0;
  g.compact();
  REQUIRE(g.validate().ok());
  CHECK(g.find_value("unused_constant") == -1);
  CHECK(g.find_value("mask") != -1);
  CHECK(g.values[g.find_value("mask")].producer == 0);
}

TEST_CASE("validate reports broken invariants", "[graph]") {
  SECTION("a node reads a value produced later") {
    Graph g = small_graph();
    std::swap(g.nodes[0], g.nodes[1]);
    g.values[g.find_value("a")].producer = 1;
    g.values[g.find_value("b")].producer = 0;
    Status s = g.validate();
    REQUIRE_FALSE(s.ok());
    CHECK_THAT(s.message(), Catch::Contains("reads 'a' before node 0 'Relu_0'"));
  }
  SECTION("a value produced twice") {
    Graph g = small_graph();
    g.nodes[1].outputs = {g.find_value("a")};
    Status s = g.validate();
    REQUIRE_FALSE(s.ok());
    CHECK_THAT(s.message(), Catch::Contains("produced twice"));
  }
  SECTION("an undefined input") {
    Graph g = small_graph();
    const int ghost = g.add_value(tensor_value("ghost"));
    g.nodes[1].inputs[1] = ghost;
    Status s = g.validate();
    REQUIRE_FALSE(s.ok());
    CHECK_THAT(s.message(), Catch::Contains("'ghost' which nothing defines"));
  }
  SECTION("an index out of range") {
    Graph g = small_graph();
    g.nodes[1].inputs[1] = 99;
    CHECK_THAT(g.validate().message(), Catch::Contains("out of range"));
  }
  SECTION("a stale producer field") {
    Graph g = small_graph();
    g.values[g.find_value("a")].producer = 2;
    CHECK_THAT(g.validate().message(), Catch::Contains("records producer 2"));
  }
  SECTION("a constant with a producer") {
    Graph g = small_graph();
    g.values[g.find_value("a")].constant = g.values[g.find_value("w")].constant;
    CHECK_THAT(g.validate().message(), Catch::Contains("is a constant and also produced"));
  }
  SECTION("two values with one name") {
    Graph g = small_graph();
    g.values[g.find_value("b")].name = "a";
    CHECK_THAT(g.validate().message(), Catch::Contains("two values are named 'a'"));
  }
  SECTION("an output nothing defines") {
    Graph g = small_graph();
    g.nodes[2].dead = true;
    CHECK_THAT(g.validate().message(), Catch::Contains("graph output 'y' is not defined"));
  }
}

}  // namespace
}  // namespace ps::onnx_loader
