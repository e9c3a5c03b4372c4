// Malformed and unsupported ONNX models: each gives a clear error naming the node or tensor,
// never a crash.
#include <catch2/catch.hpp>

#include <random>

#include "onnx_loader/onnx_import.h"
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

// Imports and expects an error of `code` whose message contains every one of `parts`.
void expect_error(const onnx::ModelProto& model, Code code, std::vector<std::string> parts,
                  ImportOptions options = {}) {
  auto g = import_onnx_model(model, options);
  REQUIRE_FALSE(g.ok());
  INFO(g.status().to_string());
  CHECK(g.status().code() == code);
  for (const std::string& part : parts) CHECK_THAT(g.status().message(), Catch::Contains(part));
}

ModelBuilder two_layer() {
  ModelBuilder b(13);
  b.input("x", kFloat, {1, 4})
      .initializer(filled("w", {4, 4}, 1.f))
      .node("MatMul", {"x", "w"}, {"h"}, {}, "matmul")
      .node("Relu", {"h"}, {"y"}, {}, "relu")
      .output("y");
  return b;
}

TEST_CASE("truncated, empty and missing files", "[import][malformed]") {
  testing::TempDir dir;
  const std::string bytes = two_layer().build().SerializeAsString();
  for (size_t cut : {size_t{1}, bytes.size() / 4, bytes.size() / 2, bytes.size() - 3}) {
    INFO("cut at " << cut << " of " << bytes.size());
    const std::string path = dir.write("cut.onnx", bytes.substr(0, cut));
    auto g = import_onnx_file(path, {});
    REQUIRE_FALSE(g.ok());
    CHECK_THAT(g.status().message(), Catch::Contains(path));
  }
  const std::string half = dir.write("half.onnx", bytes.substr(0, bytes.size() / 2));
  auto g = import_onnx_file(half, {});
  CHECK(g.status().code() == Code::kCorrupt);
  CHECK_THAT(g.status().message(), Catch::Contains("truncated"));

  auto empty = import_onnx_file(dir.write("empty.onnx", ""), {});
  REQUIRE_FALSE(empty.ok());
  CHECK_THAT(empty.status().message(), Catch::Contains("has no graph"));

  CHECK(import_onnx_file(dir.file("nothing.onnx"), {}).status().code() == Code::kNotFound);
  CHECK(import_onnx_file(dir.path().string(), {}).status().code() == Code::kInvalidArgument);

  // The intact file imports.
  CHECK(import_onnx_file(dir.write("ok.onnx", bytes), {}).ok());
}

TEST_CASE("an input name nothing defines (a missing initializer)", "[import][malformed]") {
  ModelBuilder b = two_layer();
  b.graph()->clear_initializer();
  expect_error(b.build(), Code::kInvalidArgument,
               {"node 0 'matmul' (MatMul): input 'w' is not defined", "missing initializer"});
}

TEST_CASE("shapes that do not fit", "[import][malformed]") {
  ModelBuilder add(13);
  add.input("a", kFloat, {2, 3})
      .input("b", kFloat, {4})
      .node("Add", {"a", "b"}, {"c"}, {}, "bad_add")
      .output("c");
  expect_error(add.build(), Code::kInvalidArgument,
               {"node 0 'bad_add' (Add)", "[2,3] of 'a' and [4] of 'b' do not broadcast"});

  ModelBuilder matmul = two_layer();
  *matmul.graph()->mutable_initializer(0) = filled("w", {5, 4}, 1.f);
  expect_error(matmul.build(), Code::kInvalidArgument,
               {"node 0 'matmul' (MatMul)", "inner dimensions differ: [1,4] x [5,4]"});

  ModelBuilder reshape(13);
  reshape.input("x", kFloat, {2, 3})
      .initializer(int64s("shape", {2}, {4, 2}))
      .node("Reshape", {"x", "shape"}, {"y"}, {}, "reshape")
      .output("y");
  expect_error(reshape.build(), Code::kInvalidArgument,
               {"node 0 'reshape' (Reshape)", "cannot reshape [2,3] (6 elements) into [4,2]"});

  ModelBuilder conv(13);
  conv.input("x", kFloat, {1, 3, 8, 8})
      .initializer(filled("w", {4, 2, 3, 3}, 1.f))
      .node("Conv", {"x", "w"}, {"y"}, {}, "conv")
      .output("y");
  expect_error(conv.build(), Code::kInvalidArgument,
               {"node 0 'conv' (Conv)", "input channels 3 do not match weight shape [4,2,3,3]"});

  // A declared output shape that disagrees with what the graph computes.
  ModelBuilder declared(13);
  declared.input("x", kFloat, {2, 3}).node("Relu", {"x"}, {"y"}).output("y", kFloat, {2, 4}, true);
  expect_error(declared.build(), Code::kInvalidArgument,
               {"graph output 'y' is declared with shape [2,4] but computes [2,3]"});
}

TEST_CASE("a target shape that depends on runtime data", "[import][malformed]") {
  ModelBuilder b(13);
  b.input("x", kFloat, {2, 3})
      .input("shape", TensorProto::INT64, {2})
      .node("Reshape", {"x", "shape"}, {"y"}, {}, "dynamic_reshape")
      .output("y");
  expect_error(
      b.build(), Code::kInvalidArgument,
      {"node 0 'dynamic_reshape' (Reshape)", "input 1 'shape'", "must be known at import time"});
}

TEST_CASE("constant indices out of range", "[import][malformed]") {
  ModelBuilder b(13);
  b.input("x", kFloat, {5, 3})
      .initializer(int64s("idx", {2}, {1, 5}))
      .node("Gather", {"x", "idx"}, {"y"}, {}, "gather")
      .output("y");
  expect_error(b.build(), Code::kInvalidArgument,
               {"node 0 'gather' (Gather)", "index 5 is out of range for axis 0 of size 5"});
}

TEST_CASE("cycles and nodes out of order", "[import][malformed]") {
  ModelBuilder cycle(13);
  cycle.input("x", kFloat, {2})
      .node("Add", {"x", "d"}, {"c"}, {}, "first")
      .node("Relu", {"c"}, {"d"}, {}, "second")
      .output("d");
  expect_error(cycle.build(), Code::kInvalidArgument,
               {"cycle", "node 0 'first' (Add) -> node 1 'second' (Relu) -> node 0 'first' (Add)"});

  ModelBuilder unsorted(13);
  unsorted.input("x", kFloat, {2})
      .node("Relu", {"r"}, {"y"}, {}, "late")
      .node("Relu", {"x"}, {"r"}, {}, "early")
      .output("y");
  expect_error(unsorted.build(), Code::kInvalidArgument,
               {"node 0 'late' (Relu) reads 'r' before node 1 'early' (Relu)", "topological"});

  ModelBuilder twice(13);
  twice.input("x", kFloat, {2})
      .node("Relu", {"x"}, {"y"}, {}, "one")
      .node("Sigmoid", {"x"}, {"y"}, {}, "two")
      .output("y");
  expect_error(twice.build(), Code::kInvalidArgument,
               {"'y' is defined twice", "node 0 'one' (Relu)", "node 1 'two' (Sigmoid)"});

  ModelBuilder no_output(13);
  no_output.input("x", kFloat, {2}).node("Relu", {"x"}, {"y"}).output("z");
  expect_error(no_output.build(), Code::kInvalidArgument, {"graph output 'z' is not produced"});
}

TEST_CASE("absurd dimensions", "[import][malformed]") {
  ModelBuilder input(13);
  input.input("x", kFloat, {1000000, 1000000}).node("Relu", {"x"}, {"y"}).output("y");
  expect_error(input.build(), Code::kResourceExhausted,
               {"graph input x", "[1000000,1000000]", "exceeds the limit"});

  // An initializer that claims 1e12 elements (its data is not even read).
  ModelBuilder init(13);
  TensorProto huge;
  huge.set_name("huge");
  huge.set_data_type(kFloat);
  huge.add_dims(1000000);
  huge.add_dims(1000000);
  init.input("x", kFloat, {2}).initializer(huge).node("Add", {"x", "huge"}, {"y"}).output("y");
  expect_error(init.build(), Code::kResourceExhausted, {"initializer huge", "exceeds"});

  // An intermediate tensor of 1e12 elements.
  ModelBuilder expand(13);
  expand.input("x", kFloat, {1})
      .initializer(int64s("shape", {2}, {1000000, 1000000}))
      .node("Expand", {"x", "shape"}, {"y"}, {}, "blow_up")
      .output("y");
  expect_error(expand.build(), Code::kResourceExhausted,
               {"output y of node 0 'blow_up' (Expand)", "exceeds"});

  // The limit is configurable.
  ImportOptions small;
  small.max_tensor_bytes = 1024;
  ModelBuilder modest(13);
  modest.input("x", kFloat, {16, 32}).node("Relu", {"x"}, {"y"}).output("y");
  expect_error(modest.build(), Code::kResourceExhausted, {"limit of 1024 bytes"}, small);
}

TEST_CASE("every unsupported node is listed at once", "[import][malformed]") {
  ModelBuilder b(13);
  b.input("x", kFloat, {2, 3})
      .node("Relu", {"x"}, {"a"}, {}, "fine")
      .node("FancyOp", {"a"}, {"b"}, {}, "fancy")
      .node("Relu", {"b"}, {"c"}, {}, "fine_too")
      .node("NonMaxSuppression", {"c"}, {"d"}, {}, "nms")
      .node("LayerNormalization", {"d"}, {"e"}, {}, "ln_too_early")
      .output("e");
  b.node("Gelu", {"e"}, {"f"}, {}, "ms_gelu");
  b.graph()->mutable_node(5)->set_domain("com.microsoft");
  auto* import = b.model().add_opset_import();
  import->set_domain("com.microsoft");
  import->set_version(1);
  expect_error(
      b.build(), Code::kUnsupported,
      {"4 unsupported node(s)", "node 1 'fancy' (FancyOp)", "node 3 'nms' (NonMaxSuppression)",
       "node 4 'ln_too_early' (LayerNormalization): supported for opsets 17..18, the "
       "model has 13",
       "node 5 'ms_gelu' (Gelu): domain 'com.microsoft' is not supported"});
}

TEST_CASE("model headers: opsets, IR version, dtypes", "[import][malformed]") {
  ModelBuilder newer(19);
  newer.input("x", kFloat, {2}).node("Relu", {"x"}, {"y"}).output("y");
  expect_error(newer.build(), Code::kUnsupported, {"opset 19 is newer", "(18)"});

  ModelBuilder older(5);  // Relu before opset 6 had other attributes
  older.input("x", kFloat, {2}).node("Relu", {"x"}, {"y"}, {}, "relu").output("y");
  expect_error(older.build(), Code::kUnsupported,
               {"node 0 'relu' (Relu): supported for opsets 6..18, the model has 5"});

  ModelBuilder zero(0);
  zero.input("x", kFloat, {2}).node("Relu", {"x"}, {"y"}).output("y");
  expect_error(zero.build(), Code::kUnsupported, {"opset 0 is not a valid opset version"});

  ModelBuilder no_ir(13, 0);
  no_ir.input("x", kFloat, {2}).node("Relu", {"x"}, {"y"}).output("y");
  expect_error(no_ir.build(), Code::kCorrupt, {"no ir_version"});

  ModelBuilder strings(13);
  strings.input("x", TensorProto::STRING, {2}).node("Identity", {"x"}, {"y"}).output("y");
  expect_error(strings.build(), Code::kUnsupported, {"graph input x", "STRING"});

  ModelBuilder no_shape(13);
  no_shape.input("x", kFloat, {}).node("Relu", {"x"}, {"y"}).output("y");
  no_shape.graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->clear_shape();
  expect_error(no_shape.build(), Code::kInvalidArgument, {"graph input 'x' has no shape"});
}

TEST_CASE("an attribute without a type", "[import][malformed]") {
  // Opset 18: libonnx cannot check it, our conversion must refuse it rather than drop it.
  ModelBuilder b(18);
  b.input("x", kFloat, {1, 3, 8, 8})
      .initializer(filled("w", {4, 3, 3, 3}, 0.1f))
      .node("Conv", {"x", "w"}, {"y"}, {attr("pads", std::vector<int64_t>{1, 1, 1, 1})}, "conv")
      .output("y");
  b.graph()->mutable_node(0)->mutable_attribute(0)->clear_type();
  expect_error(b.build(), Code::kInvalidArgument,
               {"node 0 'conv' (Conv): attribute 'pads' has no type"});
}

TEST_CASE("training-mode Dropout cannot be imported for inference", "[import][malformed]") {
  ModelBuilder b(13);
  TensorProto yes = testing::tensor<uint8_t>("training", TensorProto::BOOL, {}, {1});
  b.input("x", kFloat, {2, 3})
      .initializer(yes)
      .initializer(testing::floats("ratio", {}, {0.5f}))
      .node("Dropout", {"x", "ratio", "training"}, {"y"}, {}, "train_dropout")
      .output("y");
  expect_error(b.build(), Code::kUnsupported,
               {"node 0 'train_dropout' (Dropout)", "only supported on inputs known at import"});
}

TEST_CASE("external data that is missing or escapes the model's folder", "[import][malformed]") {
  testing::TempDir dir;
  dir.write("outside.bin", std::string(64, '\0'));
  auto with_location = [&](const std::string& location) {
    ModelBuilder b = two_layer();
    TensorProto* w = b.graph()->mutable_initializer(0);
    w->clear_raw_data();
    w->set_data_location(TensorProto::EXTERNAL);
    auto* entry = w->add_external_data();
    entry->set_key("location");
    entry->set_value(location);
    return dir.write("model/model.onnx", b.build().SerializeAsString());
  };
  auto expect = [](const std::string& path, Code code, const std::string& text) {
    auto g = import_onnx_file(path, {});
    REQUIRE_FALSE(g.ok());
    INFO(g.status().to_string());
    CHECK(g.status().code() == code);
    CHECK_THAT(g.status().message(), Catch::Contains("tensor 'w'") && Catch::Contains(text));
  };
  expect(with_location("w.bin"), Code::kNotFound, "does not exist");
  expect(with_location("../outside.bin"), Code::kPermissionDenied, "leaves the model's folder");
  expect(with_location(dir.file("outside.bin")), Code::kPermissionDenied, "relative");

  // In memory, external data needs a base folder.
  ModelBuilder b = two_layer();
  TensorProto* w = b.graph()->mutable_initializer(0);
  w->clear_raw_data();
  w->set_data_location(TensorProto::EXTERNAL);
  auto* entry = w->add_external_data();
  entry->set_key("location");
  entry->set_value("w.bin");
  expect_error(b.build(), Code::kInvalidArgument, {"base_dir"});
}

// A model with a bit of everything, for the corruption tests.
ModelBuilder assorted() {
  ModelBuilder b(13);
  b.input("x", kFloat, {"batch", 3, 8, 8})
      .initializer(filled("w", {4, 3, 3, 3}, 0.1f))
      .initializer(int64s("shape", {2}, {0, -1}))
      .initializer(int64s("axes", {1}, {1}))
      .node("Conv", {"x", "w"}, {"c"},
            {attr("pads", std::vector<int64_t>{1, 1, 1, 1}),
             attr("strides", std::vector<int64_t>{2, 2})})
      .node("MaxPool", {"c"}, {"p"}, {attr("kernel_shape", std::vector<int64_t>{2, 2})})
      .node("Shape", {"p"}, {"s"})
      .node("Reshape", {"p", "shape"}, {"r"})
      .node("Unsqueeze", {"r", "axes"}, {"u"})
      .node("Softmax", {"u"}, {"y"}, {attr("axis", int64_t{-1})})
      .output("y")
      .output("s");
  return b;
}

// Imports a corrupted model: any outcome but a crash is fine, and a success must be valid.
void import_corrupted(const onnx::ModelProto& model, int& imported) {
  ImportOptions options;
  options.dims = {{"batch", 2}};
  auto g = import_onnx_model(model, options);
  if (g.ok()) {
    ++imported;
    CHECK(g->validate().ok());
  } else {
    CHECK_FALSE(g.status().message().empty());
  }
}

TEST_CASE("randomly corrupted bytes give errors, never crashes", "[import][malformed]") {
  const std::string bytes = assorted().build().SerializeAsString();
  std::mt19937 random(12345);
  int parsed = 0, imported = 0;
  for (int round = 0; round < 400; ++round) {
    std::string mutated = bytes;
    const size_t at = random() % mutated.size();
    switch (random() % 3) {
      case 0: mutated[at] = static_cast<char>(random()); break;
      case 1: mutated.erase(at, 1 + random() % 8); break;
      default: mutated.insert(at, mutated.substr(at, 1 + random() % 8)); break;
    }
    onnx::ModelProto model;
    if (!model.ParseFromString(mutated)) continue;
    ++parsed;
    import_corrupted(model, imported);
  }
  CHECK(parsed > 20);
}

TEST_CASE("randomly corrupted fields give errors, never crashes", "[import][malformed]") {
  const onnx::ModelProto original = assorted().build();
  {
    int imported = 0;
    import_corrupted(original, imported);
    REQUIRE(imported == 1);
  }
  const std::vector<std::string> ops = {"Relu", "Add", "Concat", "Gather", "Slice", "Split",
                                        "Transpose", "Expand", "Range", "Where", "Gemm"};
  std::mt19937 random(4321);
  auto small = [&] { return static_cast<int64_t>(random() % 12) - 3; };
  int imported = 0;
  for (int round = 0; round < 600; ++round) {
    onnx::ModelProto model = original;
    onnx::GraphProto* g = model.mutable_graph();
    onnx::NodeProto* node = g->mutable_node(static_cast<int>(random() % g->node_size()));
    switch (random() % 8) {
      case 0: {  // a dimension of the input
        auto* shape = g->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape();
        shape->mutable_dim(static_cast<int>(random() % shape->dim_size()))->set_dim_value(small());
        break;
      }
      case 1: {  // an initializer's dims, its data left as it was
        TensorProto* t = g->mutable_initializer(static_cast<int>(random() % g->initializer_size()));
        if (t->dims_size() > 0) t->set_dims(static_cast<int>(random() % t->dims_size()), small());
        break;
      }
      case 2: {  // an attribute value
        if (node->attribute_size() == 0) break;
        auto* a = node->mutable_attribute(static_cast<int>(random() % node->attribute_size()));
        if (a->ints_size() > 0) a->set_ints(static_cast<int>(random() % a->ints_size()), small());
        if (a->type() == onnx::AttributeProto::INT) a->set_i(small());
        break;
      }
      case 3:  // another op with the same inputs and attributes
        node->set_op_type(ops[random() % ops.size()]);
        break;
      case 4: {  // an input rewired to another value, or dropped
        if (node->input_size() == 0) break;
        const std::vector<std::string> names = {"x", "w", "shape", "axes", "c", "p", "s", "u", ""};
        node->set_input(static_cast<int>(random() % node->input_size()),
                        names[random() % names.size()]);
        break;
      }
      case 5:  // an extra input
        node->add_input(random() % 2 ? "axes" : "shape");
        break;
      case 6: {  // an int64 initializer (a target shape, axes) with extreme values
        TensorProto* t = g->mutable_initializer(1 + static_cast<int>(random() % 2));
        const int64_t extremes[] = {INT64_MIN, INT64_MAX, INT64_MIN + 1, 1LL << 40, -(1LL << 40),
                                    0, -1, 3};
        std::vector<int64_t> values(t->raw_data().size() / sizeof(int64_t));
        for (int64_t& v : values) v = random() % 2 ? extremes[random() % 8] : small();
        t->set_raw_data(values.data(), values.size() * sizeof(int64_t));
        break;
      }
      default:  // an initializer's data replaced by a short one
        g->mutable_initializer(static_cast<int>(random() % g->initializer_size()))
            ->set_raw_data(std::string(random() % 24, '\x01'));
        break;
    }
    import_corrupted(model, imported);
  }
  CHECK(imported > 0);  // some mutations are harmless
  CHECK(imported < 600);
}

}  // namespace
}  // namespace ps::onnx_loader
