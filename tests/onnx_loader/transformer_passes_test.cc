// Transformer passes (MatMul + bias, LayerNorm and GELU recognition, attention's scale and
// zero mask, the mask Add before Softmax, nn.Linear's transposed weight in training imports,
// query/key/value as one product, attention's products reading the heads in place and the
// scores, Softmax and context as one FusedAttention) on tiny hand-built graphs: the exported
// forms are recognised and every near miss is left alone.
#include <catch2/catch.hpp>
#include <cmath>

#include "common/attention.h"
#include "onnx_loader/passes/fuse_add_layernorm.h"
#include "onnx_loader/passes/fuse_add_softmax.h"
#include "onnx_loader/passes/fuse_attention.h"
#include "onnx_loader/passes/fuse_attention_softmax.h"
#include "onnx_loader/passes/fuse_gelu.h"
#include "onnx_loader/passes/fuse_head_projections.h"
#include "onnx_loader/passes/fuse_layernorm.h"
#include "onnx_loader/passes/fuse_linear_bias.h"
#include "onnx_loader/passes/fuse_matmul_bias.h"
#include "onnx_loader/passes/fuse_matmul_scale.h"
#include "onnx_loader/passes/fuse_matmul_transpose.h"
#include "onnx_loader/passes/pattern.h"
#include "onnx_loader/passes/remove_zero_add.h"
#include "onnx_loader/pipeline.h"
#include "tests/onnx_loader/graph_builder.h"

namespace ps::onnx_loader {
namespace {

using testing::Builder;
using testing::ramp;

Attribute ints(std::vector<int64_t> v) { return Attribute{std::move(v)}; }
Attribute i64(int64_t v) { return Attribute{v}; }
Attribute f32(float v) { return Attribute{v}; }

int fused(const Result<int>& result) {
  REQUIRE(result.ok());
  return *result;
}

// ---------------------------------------------------------------------------------------------
// MatMul + bias

TEST_CASE("fuse_matmul_bias: MatMul + Add(bias) in both operand orders", "[passes]") {
  for (bool bias_first : {false, true}) {
    Builder b;
    const int a = b.input("a", {2, 5, 4});
    const int w = b.weight("w", {4, 3}, ramp(12));
    const int bias = b.weight("bias", {3}, ramp(3));
    const int mm =
        b.node("MatMul", "/encoder/layer.0/attention/self/query/MatMul", {a, w}, {2, 5, 3});
    const std::vector<int> add_inputs =
        bias_first ? std::vector<int>{bias, mm} : std::vector<int>{mm, bias};
    const int y = b.node("Add", "/encoder/layer.0/attention/self/query/Add", add_inputs, {2, 5, 3});
    b.output(y);
    REQUIRE(fused(passes::fuse_matmul_bias(b.graph)) == 1);
    REQUIRE(b.graph.validate().ok());
    const Node* f = b.find("MatMulBias");
    REQUIRE(f != nullptr);
    CHECK(b.live() == 1);
    CHECK(f->inputs == std::vector<int>{a, w, bias});
    CHECK(f->outputs == std::vector<int>{y});
    CHECK(f->name == "/encoder/layer.0/attention/self/query/MatMulBias");
  }
}

TEST_CASE("fuse_matmul_bias: [1, N] bias is flattened to [N]", "[passes]") {
  Builder b;
  const int a = b.input("a", {2, 4});
  const int w = b.weight("w", {4, 3}, ramp(12));
  const int bias = b.weight("bias", {1, 3}, ramp(3));
  b.output(b.node("Add", "/add", {b.node("MatMul", "/mm", {a, w}, {2, 3}), bias}, {2, 3}));
  REQUIRE(fused(passes::fuse_matmul_bias(b.graph)) == 1);
  const Node* f = b.find("MatMulBias");
  REQUIRE(f != nullptr);
  const TensorData* flat = passes::constant_of(b.graph, f->inputs[2]);
  REQUIRE(flat != nullptr);
  CHECK(flat->shape == Shape{3});
  CHECK(testing::floats_of(*flat) == ramp(3));
}

TEST_CASE("fuse_matmul_bias: near misses are left unchanged", "[passes]") {
  Builder b;
  const int a = b.input("a", {2, 4});
  const int w = b.weight("w", {4, 3}, ramp(12));
  const int mm = b.node("MatMul", "/mm", {a, w}, {2, 3});
  SECTION("bias is a full [M, N] matrix") {
    b.output(b.node("Add", "/add", {mm, b.weight("bias", {2, 3}, ramp(6))}, {2, 3}));
  }
  SECTION("bias over the wrong dimension") {
    b.output(b.node("Add", "/add", {mm, b.weight("bias", {2, 1}, ramp(2))}, {2, 3}));
  }
  SECTION("bias is an activation") {
    b.output(b.node("Add", "/add", {mm, b.input("bias", {3})}, {2, 3}));
  }
  SECTION("product read twice") {
    b.output(b.node("Add", "/add", {mm, b.weight("bias", {3}, ramp(3))}, {2, 3}));
    b.output(mm);
  }
  SECTION("Mul instead of Add") {
    b.output(b.node("Mul", "/mul", {mm, b.weight("bias", {3}, ramp(3))}, {2, 3}));
  }
  CHECK(fused(passes::fuse_matmul_bias(b.graph)) == 0);
  CHECK(b.count("MatMul") == 1);
  CHECK(b.count("MatMulBias") == 0);
}

TEST_CASE("count_linear_gemms: Gemm stays Gemm, nn.Linear form counted", "[passes]") {
  Builder b;
  const int x = b.input("x", {8, 16});
  const int w = b.weight("fc.weight", {10, 16}, ramp(160));
  const int bias = b.weight("fc.bias", {10}, ramp(10));
  const int y = b.node("Gemm", "/fc/Gemm", {x, w, bias}, {8, 10},
                       {{"transB", i64(1)}, {"alpha", f32(1.0f)}, {"beta", f32(1.0f)}});
  const int z = b.node("Gemm", "/fc2/Gemm", {y, w, bias}, {8, 10}, {{"transA", i64(1)}});
  b.output(z);
  CHECK(fused(passes::fuse_matmul_bias(b.graph)) == 0);
  CHECK(b.count("Gemm") == 2);
  CHECK(passes::count_linear_gemms(b.graph) == 1);
}

// ---------------------------------------------------------------------------------------------
// LayerNorm

struct LayerNormGraph {
  Builder b;
  int x, mean, sub, pow, var, add_eps, sqrt_v, div, mul, y, gamma, beta, two, eps;
  Shape xs = {2, 5, 8};
  Shape rs = {2, 5, 1};
};

// The decomposed pattern PyTorch exports at opset < 17. `axes_as_input` is the opset-18 form.
LayerNormGraph make_layernorm(bool axes_as_input = false, bool swap_affine = false) {
  LayerNormGraph t;
  Builder& b = t.b;
  const std::string s = "/encoder/layer.0/attention/output/LayerNorm/";
  t.x = b.input("x", t.xs);
  auto reduce = [&](const char* name, int in) {
    if (axes_as_input) {
      const int axes =
          b.constant(std::string(name) + ".axes", testing::int64_tensor({1}, {-1}), false);
      return b.node("ReduceMean", s + name, {in, axes}, t.rs);
    }
    return b.node("ReduceMean", s + name, {in}, t.rs, {{"axes", ints({-1})}});
  };
  t.mean = reduce("ReduceMean", t.x);
  t.sub = b.node("Sub", s + "Sub", {t.x, t.mean}, t.xs);
  t.two = b.scalar("two", 2.0f);
  t.pow = b.node("Pow", s + "Pow", {t.sub, t.two}, t.xs);
  t.var = reduce("ReduceMean_1", t.pow);
  t.eps = b.scalar("eps", 1e-12f);
  t.add_eps = b.node("Add", s + "Add", {t.var, t.eps}, t.rs);
  t.sqrt_v = b.node("Sqrt", s + "Sqrt", {t.add_eps}, t.rs);
  t.div = b.node("Div", s + "Div", {t.sub, t.sqrt_v}, t.xs);
  t.gamma = b.weight("LayerNorm.weight", {8}, ramp(8));
  t.beta = b.weight("LayerNorm.bias", {8}, ramp(8, -0.4f));
  t.mul = b.node("Mul", s + "Mul",
                 swap_affine ? std::vector<int>{t.gamma, t.div} : std::vector<int>{t.div, t.gamma},
                 t.xs);
  t.y =
      b.node("Add", s + "Add_1",
             swap_affine ? std::vector<int>{t.beta, t.mul} : std::vector<int>{t.mul, t.beta}, t.xs);
  b.output(t.y);
  return t;
}

void check_layernorm_fused(LayerNormGraph& t) {
  REQUIRE(fused(passes::fuse_layernorm(t.b.graph)) == 1);
  REQUIRE(t.b.graph.validate().ok());
  CHECK(t.b.live() == 1);
  const Node* ln = t.b.find("LayerNormalization");
  REQUIRE(ln != nullptr);
  CHECK(ln->inputs == std::vector<int>{t.x, t.gamma, t.beta});
  CHECK(ln->outputs == std::vector<int>{t.y});
  CHECK(ln->attr_int("axis", 0) == -1);
  CHECK(ln->attr_float("epsilon", 0.0f) == 1e-12f);
  CHECK(ln->onnx_nodes.size() == 9);
  CHECK(ln->name == "/encoder/layer.0/attention/output/LayerNorm/LayerNormalization");
}

TEST_CASE("fuse_layernorm: PyTorch's decomposed LayerNorm is recognised", "[passes]") {
  SECTION("axes attribute") {
    LayerNormGraph t = make_layernorm();
    check_layernorm_fused(t);
  }
  SECTION("axes input (opset 18), gamma and beta first") {
    LayerNormGraph t = make_layernorm(true, true);
    check_layernorm_fused(t);
  }
  SECTION("axes given as rank - 1") {
    LayerNormGraph t = make_layernorm();
    t.b.graph.nodes[0].attrs["axes"] = ints({2});
    t.b.graph.nodes[3].attrs["axes"] = ints({2});
    check_layernorm_fused(t);
  }
}

TEST_CASE("fuse_layernorm: near misses are left unchanged", "[passes]") {
  LayerNormGraph t = make_layernorm();
  Graph& g = t.b.graph;
  SECTION("Pow exponent 3") { g.nodes[2].inputs[1] = t.b.scalar("three", 3.0f); }
  SECTION("reduction over axis 1") { g.nodes[3].attrs["axes"] = ints({1}); }
  SECTION("reduction over two axes") { g.nodes[0].attrs["axes"] = ints({1, 2}); }
  SECTION("keepdims 0") { g.nodes[0].attrs["keepdims"] = i64(0); }
  SECTION("Sqrt output read elsewhere") { t.b.output(t.sqrt_v); }
  SECTION("variance read by another node") { t.b.output(t.b.node("Relu", "/r", {t.var}, t.rs)); }
  SECTION("Sub of a different mean") { g.nodes[1].inputs = {t.x, t.b.input("other", t.rs)}; }
  SECTION("gamma of the wrong length") { g.nodes[7].inputs[1] = t.b.weight("g4", {4}, ramp(4)); }
  SECTION("beta is an activation") { g.nodes[8].inputs[1] = t.b.input("beta_in", {8}); }
  SECTION("epsilon is not a scalar") {
    g.nodes[4].inputs[1] = t.b.weight("eps2", {2}, {1e-5f, 1e-5f});
  }
  const int before = t.b.live();
  CHECK(fused(passes::fuse_layernorm(g)) == 0);
  CHECK(t.b.live() == before);
}

// ---------------------------------------------------------------------------------------------
// The residual Add before a LayerNorm

// LayerNormalization(Add(a, r), gamma, beta) over [2, 5, 8].
struct AddNormGraph {
  Builder b;
  int a = -1, r = -1, gamma = -1, beta = -1, sum = -1, y = -1;
  Shape s = {2, 5, 8};
};
AddNormGraph make_add_norm() {
  AddNormGraph t;
  t.a = t.b.input("a", t.s);
  t.r = t.b.input("r", t.s);
  t.gamma = t.b.weight("gamma", {8}, ramp(8));
  t.beta = t.b.weight("beta", {8}, ramp(8));
  t.sum = t.b.node("Add", "/encoder/layer.0/output/Add", {t.a, t.r}, t.s);
  t.y = t.b.node("LayerNormalization", "/encoder/layer.0/output/LayerNorm/LayerNormalization",
                 {t.sum, t.gamma, t.beta}, t.s, {{"axis", i64(-1)}, {"epsilon", f32(1e-12f)}});
  t.b.output(t.y);
  return t;
}

TEST_CASE("fuse_add_layernorm: the residual Add joins the LayerNorm", "[passes]") {
  for (const bool no_beta : {false, true}) {
    AddNormGraph t = make_add_norm();
    if (no_beta) t.b.graph.nodes[1].inputs.pop_back();
    REQUIRE(fused(passes::fuse_add_layernorm(t.b.graph)) == 1);
    REQUIRE(t.b.graph.validate().ok());
    const Node* f = t.b.find("AddLayerNormalization");
    REQUIRE(f != nullptr);
    CHECK(t.b.live() == 1);
    std::vector<int> inputs = {t.a, t.r, t.gamma, t.beta};
    if (no_beta) inputs.pop_back();
    CHECK(f->inputs == inputs);
    CHECK(f->outputs == std::vector<int>{t.y});
    CHECK(f->attr_float("epsilon", 0.0f) == 1e-12f);
    CHECK(f->attr_int("axis", 0) == -1);
    CHECK(f->name == "/encoder/layer.0/output/LayerNorm/AddLayerNormalization");
  }
}

TEST_CASE("fuse_add_layernorm: near misses are left unchanged", "[passes]") {
  AddNormGraph t = make_add_norm();
  Graph& g = t.b.graph;
  SECTION("the sum is read elsewhere too") { t.b.output(t.sum); }
  SECTION("an addend broadcasts") { g.nodes[0].inputs[1] = t.b.weight("pos", {5, 8}, ramp(40)); }
  SECTION("Sub, not Add") { g.nodes[0].op = "Sub"; }
  SECTION("the LayerNorm has its statistics outputs") {
    const int other = t.b.node("Relu", "/unused", {t.a}, t.s);  // (node() may move g.nodes)
    g.nodes[1].outputs.push_back(other);
  }
  const int before = t.b.live();
  CHECK(fused(passes::fuse_add_layernorm(g)) == 0);
  CHECK(t.b.live() == before);
}

// ---------------------------------------------------------------------------------------------
// GELU

struct GeluGraph {
  Builder b;
  int x, y;
  Shape s = {2, 5, 16};
};

enum class GeluForm { kHf, kHalfFirst, kHalfOfSum, kMulBySqrtHalf };

GeluGraph make_gelu(GeluForm form, double sqrt2 = 1.4142135, double one = 1.0, double half = 0.5) {
  GeluGraph t;
  Builder& b = t.b;
  const std::string scope = "/encoder/layer.0/intermediate/intermediate_act_fn/";
  t.x = b.input("x", t.s);
  const int u = form == GeluForm::kMulBySqrtHalf
                    ? b.node("Mul", scope + "Mul_scale",
                             {b.scalar("r2", static_cast<float>(1.0 / sqrt2)), t.x}, t.s)
                    : b.node("Div", scope + "Div", {t.x, b.scalar("sqrt2", float(sqrt2))}, t.s);
  const int e = b.node("Erf", scope + "Erf", {u}, t.s);
  const int p = b.node("Add", scope + "Add", {b.scalar("one", float(one)), e}, t.s);
  const int h = b.scalar("half", float(half));
  switch (form) {
    case GeluForm::kHf:
    case GeluForm::kMulBySqrtHalf:
      t.y = b.node("Mul", scope + "Mul_1", {b.node("Mul", scope + "Mul", {t.x, p}, t.s), h}, t.s);
      break;
    case GeluForm::kHalfFirst:
      t.y = b.node("Mul", scope + "Mul_1", {p, b.node("Mul", scope + "Mul", {h, t.x}, t.s)}, t.s);
      break;
    case GeluForm::kHalfOfSum:
      t.y = b.node("Mul", scope + "Mul_1", {t.x, b.node("Mul", scope + "Mul", {p, h}, t.s)}, t.s);
      break;
  }
  b.output(t.y);
  return t;
}

TEST_CASE("fuse_gelu: the forms exporters emit are recognised", "[passes]") {
  for (GeluForm form :
       {GeluForm::kHf, GeluForm::kHalfFirst, GeluForm::kHalfOfSum, GeluForm::kMulBySqrtHalf}) {
    GeluGraph t = make_gelu(form);
    INFO("form " << static_cast<int>(form));
    REQUIRE(fused(passes::fuse_gelu(t.b.graph)) == 1);
    REQUIRE(t.b.graph.validate().ok());
    CHECK(t.b.live() == 1);
    const Node* g = t.b.find("Gelu");
    REQUIRE(g != nullptr);
    CHECK(g->inputs == std::vector<int>{t.x});
    CHECK(g->outputs == std::vector<int>{t.y});
    CHECK(g->attr_string("approximate", "") == "none");
    CHECK(g->onnx_nodes.size() == 5);
    CHECK(t.b.graph.consumers(t.x).size() == 1);  // only the Gelu reads x now
  }
}

TEST_CASE("fuse_gelu: near misses are left unchanged", "[passes]") {
  SECTION("divide by 2") {
    GeluGraph t = make_gelu(GeluForm::kHf, 2.0);
    CHECK(fused(passes::fuse_gelu(t.b.graph)) == 0);
  }
  SECTION("add 2") {
    GeluGraph t = make_gelu(GeluForm::kHf, 1.4142135, 2.0);
    CHECK(fused(passes::fuse_gelu(t.b.graph)) == 0);
  }
  SECTION("scale 0.6") {
    for (GeluForm form : {GeluForm::kHf, GeluForm::kHalfFirst, GeluForm::kHalfOfSum}) {
      GeluGraph t = make_gelu(form, 1.4142135, 1.0, 0.6);
      CHECK(fused(passes::fuse_gelu(t.b.graph)) == 0);
    }
  }
  SECTION("Erf output read elsewhere") {
    GeluGraph t = make_gelu(GeluForm::kHf);
    t.b.output(t.b.graph.nodes[1].outputs[0]);
    CHECK(fused(passes::fuse_gelu(t.b.graph)) == 0);
  }
  SECTION("multiplied by another tensor than x") {
    GeluGraph t = make_gelu(GeluForm::kHf);
    t.b.graph.nodes[3].inputs[0] = t.b.input("z", t.s);
    CHECK(fused(passes::fuse_gelu(t.b.graph)) == 0);
  }
  SECTION("x * 0.5 read by another node (third form)") {
    GeluGraph t = make_gelu(GeluForm::kHalfFirst);
    t.b.output(t.b.graph.nodes[3].outputs[0]);
    CHECK(fused(passes::fuse_gelu(t.b.graph)) == 0);
  }
  SECTION("tanh instead of erf") {
    GeluGraph t = make_gelu(GeluForm::kHf);
    t.b.graph.nodes[1].op = "Tanh";
    CHECK(fused(passes::fuse_gelu(t.b.graph)) == 0);
  }
}

// ---------------------------------------------------------------------------------------------
// Attention: the scale folded into the scores' MatMul, a mask of zeros removed

// scores = MatMul(q, k) [2, 4, 5, 5], then `op`(scores, s) or `op`(s, scores).
struct ScoresGraph {
  Builder b;
  int q = -1, k = -1, y = -1;
};
ScoresGraph make_scores(const std::string& op, float s, bool scalar_first = false,
                        const Shape& s_shape = {}) {
  ScoresGraph t;
  t.q = t.b.input("q", {2, 4, 5, 3});
  t.k = t.b.input("k", {2, 4, 3, 5});
  const int scores =
      t.b.node("MatMul", "/encoder/layer.0/attention/self/MatMul", {t.q, t.k}, {2, 4, 5, 5});
  const int scale = t.b.scalar("scale", s, s_shape);
  t.y = t.b.node(op, "/encoder/layer.0/attention/self/" + op,
                 scalar_first ? std::vector<int>{scale, scores} : std::vector<int>{scores, scale},
                 {2, 4, 5, 5});
  t.b.output(t.b.node("Softmax", "/encoder/layer.0/attention/self/Softmax", {t.y}, {2, 4, 5, 5}));
  return t;
}

float alpha_of(const Node& node) {
  auto it = node.attrs.find("alpha");
  REQUIRE(it != node.attrs.end());
  return std::get<float>(it->second.value);
}

TEST_CASE("fuse_matmul_scale: MatMul * scalar and MatMul / power of two", "[passes]") {
  struct Case {
    std::string op;
    float s;
    bool scalar_first;
    Shape s_shape;
    float alpha;
  };
  for (const Case& c :
       {Case{"Mul", 0.125f, false, {}, 0.125f}, Case{"Mul", 0.3f, true, {1}, 0.3f},
        Case{"Div", 8.0f, false, {1, 1, 1, 1}, 0.125f}, Case{"Div", -0.5f, false, {}, -2.0f}}) {
    INFO(c.op << " " << c.s);
    ScoresGraph t = make_scores(c.op, c.s, c.scalar_first, c.s_shape);
    REQUIRE(fused(passes::fuse_matmul_scale(t.b.graph)) == 1);
    REQUIRE(t.b.graph.validate().ok());
    const Node* f = t.b.find("MatMulScale");
    REQUIRE(f != nullptr);
    CHECK(f->inputs == std::vector<int>{t.q, t.k});
    CHECK(f->outputs == std::vector<int>{t.y});
    CHECK(alpha_of(*f) == c.alpha);
    CHECK(f->name == "/encoder/layer.0/attention/self/MatMulScale");
    CHECK(f->onnx_nodes.size() == 2);
    CHECK(t.b.live() == 2);  // MatMulScale, Softmax
  }
}

TEST_CASE("fuse_matmul_scale: near misses are left unchanged", "[passes]") {
  SECTION("divide by 3 (1/3 is not exact)") {
    ScoresGraph t = make_scores("Div", 3.0f);
    CHECK(fused(passes::fuse_matmul_scale(t.b.graph)) == 0);
  }
  SECTION("scalar divided by the scores") {
    ScoresGraph t = make_scores("Div", 8.0f, /*scalar_first=*/true);
    CHECK(fused(passes::fuse_matmul_scale(t.b.graph)) == 0);
  }
  SECTION("the scale is not a scalar") {
    ScoresGraph t = make_scores("Mul", 0.125f);
    t.b.graph.nodes[1].inputs[1] = t.b.weight("scales", {5}, ramp(5));
    CHECK(fused(passes::fuse_matmul_scale(t.b.graph)) == 0);
  }
  SECTION("the scale is an activation") {
    ScoresGraph t = make_scores("Mul", 0.125f);
    t.b.graph.nodes[1].inputs[1] = t.b.input("s", {});
    CHECK(fused(passes::fuse_matmul_scale(t.b.graph)) == 0);
  }
  SECTION("the product is read elsewhere too") {
    ScoresGraph t = make_scores("Mul", 0.125f);
    t.b.output(t.b.graph.nodes[0].outputs[0]);
    CHECK(fused(passes::fuse_matmul_scale(t.b.graph)) == 0);
  }
  SECTION("a scale of higher rank broadcasts the product") {
    ScoresGraph t = make_scores("Mul", 0.125f, false, {1, 1, 1, 1, 1});
    t.b.graph.values[t.y].shape = Shape{1, 2, 4, 5, 5};
    CHECK(fused(passes::fuse_matmul_scale(t.b.graph)) == 0);
  }
}

TEST_CASE("remove_zero_add: an added constant of zeros disappears", "[passes]") {
  for (const float zero : {-0.0f, 0.0f}) {
    for (const bool zero_first : {false, true}) {
      INFO("zero " << zero << (std::signbit(zero) ? " (-0)" : "") << ", first " << zero_first);
      Builder b;
      const int x = b.input("x", {2, 4, 5, 5});
      const int mask = b.weight("mask", {2, 1, 1, 5}, std::vector<float>(10, zero));
      const int y =
          b.node("Add", "/encoder/layer.0/attention/self/Add",
                 zero_first ? std::vector<int>{mask, x} : std::vector<int>{x, mask}, {2, 4, 5, 5});
      b.output(b.node("Softmax", "/softmax", {y}, {2, 4, 5, 5}));
      REQUIRE(fused(passes::remove_zero_add(b.graph)) == 1);
      REQUIRE(b.graph.validate().ok());
      CHECK(b.live() == 1);
      const Node* softmax = b.find("Softmax");
      REQUIRE(softmax != nullptr);
      CHECK(softmax->inputs == std::vector<int>{x});
    }
  }
}

// Training (remove_zero_add_keeping_parameters): a zero bias is a parameter, trained from zero, and
// stays; the mask BERT's export folds from Constant nodes (no weight, or a literal) goes.
TEST_CASE("remove_zero_add: training keeps parameters of zeros, removes a folded mask",
          "[passes]") {
  for (const int kind : {0, 1, 2}) {
    INFO((kind == 0 ? "parameter" : kind == 1 ? "folded, not a weight" : "literal weight"));
    Builder b;
    const int x = b.input("x", {2, 4, 5, 5});
    const int zeros = b.constant("c", testing::float_tensor({2, 1, 5, 5}, std::vector<float>(50)),
                                 /*is_weight=*/kind != 1);
    if (kind == 2) b.graph.values[zeros].literal = true;
    const int y = b.node("Add", "/add", {x, zeros}, {2, 4, 5, 5});
    b.output(b.node("Softmax", "/softmax", {y}, {2, 4, 5, 5}));
    CHECK(is_parameter(b.graph.values[zeros]) == (kind == 0));
    CHECK(fused(passes::remove_zero_add_keeping_parameters(b.graph)) == (kind == 0 ? 0 : 1));
    REQUIRE(b.graph.validate().ok());
    CHECK(b.live() == (kind == 0 ? 2 : 1));
  }
  // Inference removes a parameter of zeros too.
  Builder b;
  const int x = b.input("x", {2, 5});
  const int y = b.node("Add", "/add", {x, b.weight("bias", {5}, std::vector<float>(5))}, {2, 5});
  b.output(b.node("Relu", "/relu", {y}, {2, 5}));
  CHECK(fused(passes::remove_zero_add(b.graph)) == 1);
}

TEST_CASE("remove_zero_add: near misses are left unchanged", "[passes]") {
  Builder b;
  const int x = b.input("x", {2, 5});
  std::vector<float> zeros(5, 0.0f);
  int y = -1;
  SECTION("one element is not zero") {
    zeros[3] = 1e-30f;
    y = b.node("Add", "/add", {x, b.weight("c", {5}, zeros)}, {2, 5});
  }
  SECTION("a NaN") {
    zeros[0] = std::nanf("");
    y = b.node("Add", "/add", {x, b.weight("c", {5}, zeros)}, {2, 5});
  }
  SECTION("the zeros broadcast x to a larger shape") {
    y = b.node("Add", "/add", {x, b.weight("c", {3, 1, 5}, std::vector<float>(15, 0.0f))},
               {3, 2, 5});
  }
  SECTION("the other operand is an activation") {
    y = b.node("Add", "/add", {x, b.input("z", {2, 5})}, {2, 5});
  }
  SECTION("the sum is a graph output") {
    b.output(b.node("Add", "/add", {x, b.weight("c", {5}, zeros)}, {2, 5}));
    CHECK(fused(passes::remove_zero_add(b.graph)) == 0);
    return;
  }
  b.output(b.node("Relu", "/relu", {y}, b.graph.values[y].shape.value()));
  CHECK(fused(passes::remove_zero_add(b.graph)) == 0);
  CHECK(b.live() == 2);
}

TEST_CASE("remove_zero_add: is_all_zero reads the bits of every dtype", "[passes]") {
  TensorData f = testing::float_tensor({3}, {0.0f, -0.0f, 0.0f});
  CHECK(passes::is_all_zero(f));
  f = testing::float_tensor({3}, {0.0f, -0.0f, 1.0f});
  CHECK_FALSE(passes::is_all_zero(f));
  CHECK(passes::is_all_zero(testing::int64_tensor({2}, {0, 0})));
  CHECK_FALSE(passes::is_all_zero(testing::int64_tensor({2}, {0, 1})));
  TensorData half;
  half.dtype = DType::kFloat16;
  half.shape = {2};
  half.bytes = {0x00, 0x80, 0x00, 0x00};  // -0, +0 (little endian)
  CHECK(passes::is_all_zero(half));
  half.bytes[3] = 0x3c;  // +0 -> 1.0
  CHECK_FALSE(passes::is_all_zero(half));
  CHECK_FALSE(passes::is_all_zero(testing::float_tensor({0}, {})));
}

// ---------------------------------------------------------------------------------------------
// nn.Linear in training exports: MatMul(X, Transpose(W)) -> MatMulTransB(X, W)

// y = MatMul(a, Transpose(w)) with a of shape `a_shape` [..., K], w [N, K] = [3, 4].
struct LinearGraph {
  Builder b;
  int a = -1, w = -1, t = -1, y = -1;
};
LinearGraph make_linear(const Shape& a_shape, std::map<std::string, Attribute> perm) {
  LinearGraph g;
  const std::string scope = "/encoder/layer.0/attention/self/query/";
  g.a = g.b.input("a", a_shape);
  g.w = g.b.weight("encoder.layer.0.attention.self.query.weight", {3, 4}, ramp(12));
  g.t = g.b.node("Transpose", scope + "Transpose", {g.w}, {4, 3}, std::move(perm));
  Shape y_shape(a_shape.begin(), a_shape.end() - 1);
  y_shape.push_back(3);
  g.y = g.b.node("MatMul", scope + "MatMul", {g.a, g.t}, y_shape);
  return g;
}

TEST_CASE("fuse_matmul_transpose: MatMul of a transposed 2-D weight reads the weight", "[passes]") {
  for (const Shape& a_shape : {Shape{2, 5, 4}, Shape{5, 4}, Shape{4}}) {
    for (const bool with_perm : {true, false}) {
      INFO("A " << shape_string(a_shape) << (with_perm ? ", perm [1, 0]" : ", perm absent"));
      std::map<std::string, Attribute> perm;
      if (with_perm) perm["perm"] = ints({1, 0});
      LinearGraph g = make_linear(a_shape, std::move(perm));
      g.b.output(g.b.node("Relu", "/relu", {g.y}, g.b.graph.values[g.y].shape.value()));
      REQUIRE(fused(passes::fuse_matmul_transpose(g.b.graph)) == 1);
      REQUIRE(g.b.graph.validate().ok());
      CHECK(g.b.live() == 2);  // MatMulTransB, Relu
      CHECK(g.b.count("Transpose") == 0);
      CHECK(g.b.count("MatMul") == 0);
      const Node* f = g.b.find("MatMulTransB");
      REQUIRE(f != nullptr);
      CHECK(f->domain.empty());
      CHECK(f->attrs.empty());
      CHECK(f->inputs == std::vector<int>{g.a, g.w});
      CHECK(f->outputs == std::vector<int>{g.y});
      CHECK(f->name == "/encoder/layer.0/attention/self/query/MatMulTransB");
      CHECK(f->onnx_nodes == std::vector<int>{0, 1});
      CHECK(g.b.graph.values[g.y].producer == 1);  // at the MatMul's place
      // The weight is untouched: the same value, name, layout and bytes.
      const Value& w = g.b.graph.values[g.w];
      CHECK(w.name == "encoder.layer.0.attention.self.query.weight");
      REQUIRE(w.constant != nullptr);
      CHECK(w.constant->shape == Shape{3, 4});
      CHECK(testing::floats_of(*w.constant) == ramp(12));
    }
  }
}

TEST_CASE("fuse_matmul_transpose: every linear of a chain, each on its own weight", "[passes]") {
  Builder b;
  const int x = b.input("x", {2, 5, 4});
  const int w1 = b.weight("fc1.weight", {6, 4}, ramp(24));
  const int w2 = b.weight("fc2.weight", {3, 6}, ramp(18));
  const int t1 = b.node("Transpose", "/fc1/Transpose", {w1}, {4, 6}, {{"perm", ints({1, 0})}});
  const int h = b.node("MatMul", "/fc1/MatMul", {x, t1}, {2, 5, 6});
  const int t2 = b.node("Transpose", "/fc2/Transpose", {w2}, {6, 3}, {{"perm", ints({1, 0})}});
  const int y = b.node("MatMul", "/fc2/MatMul", {h, t2}, {2, 5, 3});
  b.output(y);
  REQUIRE(fused(passes::fuse_matmul_transpose(b.graph)) == 2);
  REQUIRE(b.graph.validate().ok());
  CHECK(b.live() == 2);
  CHECK(b.count("MatMulTransB") == 2);
  std::vector<std::vector<int>> inputs;
  for (const Node& node : b.graph.nodes) {
    if (!node.dead) inputs.push_back(node.inputs);
  }
  CHECK(inputs == std::vector<std::vector<int>>{{x, w1}, {h, w2}});
}

TEST_CASE("fuse_matmul_transpose: near misses are left unchanged", "[passes]") {
  const std::map<std::string, Attribute> swap = {{"perm", ints({1, 0})}};
  SECTION("the transposed weight has a second reader") {
    LinearGraph g = make_linear({2, 5, 4}, swap);
    g.b.output(g.y);
    g.b.output(g.b.node("Relu", "/relu", {g.t}, {4, 3}));
    CHECK(fused(passes::fuse_matmul_transpose(g.b.graph)) == 0);
    CHECK(g.b.count("Transpose") == 1);
  }
  SECTION("the transposed weight is a graph output") {
    LinearGraph g = make_linear({2, 5, 4}, swap);
    g.b.output(g.y);
    g.b.output(g.t);
    CHECK(fused(passes::fuse_matmul_transpose(g.b.graph)) == 0);
  }
  SECTION("perm [0, 1] (no transposition)") {
    Builder b;
    const int a = b.input("a", {5, 4});
    const int w = b.weight("w", {4, 3}, ramp(12));
    const int t = b.node("Transpose", "/t", {w}, {4, 3}, {{"perm", ints({0, 1})}});
    b.output(b.node("MatMul", "/mm", {a, t}, {5, 3}));
    CHECK(fused(passes::fuse_matmul_transpose(b.graph)) == 0);
    CHECK(b.count("Transpose") == 1);
  }
  SECTION("perm of the wrong type") {
    LinearGraph g = make_linear({5, 4}, {{"perm", i64(1)}});
    g.b.output(g.y);
    CHECK(fused(passes::fuse_matmul_transpose(g.b.graph)) == 0);
  }
  for (const bool with_perm : {true, false}) {
    DYNAMIC_SECTION("a 3-D weight, perm " << (with_perm ? "[0, 2, 1]" : "absent")) {
      Builder b;
      const int a = b.input("a", {2, 5, 4});
      const int w = b.weight("w", {2, 3, 4}, ramp(24));
      std::map<std::string, Attribute> perm;
      if (with_perm) perm["perm"] = ints({0, 2, 1});
      const Shape t_shape = with_perm ? Shape{2, 4, 3} : Shape{4, 3, 2};
      const int t = b.node("Transpose", "/t", {w}, t_shape, std::move(perm));
      if (with_perm) {
        b.output(b.node("MatMul", "/mm", {a, t}, {2, 5, 3}));
      } else {
        b.output(b.node("MatMul", "/mm", {b.input("c", {4, 5, 3}), t}, {4, 5, 2}));
      }
      CHECK(fused(passes::fuse_matmul_transpose(b.graph)) == 0);
      CHECK(b.count("Transpose") == 1);
    }
  }
  SECTION("the weight's shape is not known") {
    Builder b;
    const int a = b.input("a", {5, 4});
    const int w = b.input("w", {3, 4});
    b.graph.values[w].shape.reset();
    const int t = b.node("Transpose", "/t", {w}, {4, 3}, {{"perm", ints({1, 0})}});
    b.output(b.node("MatMul", "/mm", {a, t}, {5, 3}));
    CHECK(fused(passes::fuse_matmul_transpose(b.graph)) == 0);
  }
  SECTION("the transposed value is the MatMul's A") {
    Builder b;
    const int w = b.weight("w", {3, 4}, ramp(12));
    const int t = b.node("Transpose", "/t", {w}, {4, 3}, {{"perm", ints({1, 0})}});
    b.output(b.node("MatMul", "/mm", {t, b.input("x", {3, 5})}, {4, 5}));
    CHECK(fused(passes::fuse_matmul_transpose(b.graph)) == 0);
    CHECK(b.count("Transpose") == 1);
  }
  SECTION("the transposed value is both operands") {
    Builder b;
    const int w = b.weight("w", {4, 4}, ramp(16));
    const int t = b.node("Transpose", "/t", {w}, {4, 4}, {{"perm", ints({1, 0})}});
    b.output(b.node("MatMul", "/mm", {t, t}, {4, 4}));
    CHECK(fused(passes::fuse_matmul_transpose(b.graph)) == 0);
  }
  SECTION("the reader is a Gemm, not a MatMul") {
    Builder b;
    const int w = b.weight("w", {3, 4}, ramp(12));
    const int t = b.node("Transpose", "/t", {w}, {4, 3}, {{"perm", ints({1, 0})}});
    b.output(b.node("Gemm", "/gemm", {b.input("a", {5, 4}), t}, {5, 3}));
    CHECK(fused(passes::fuse_matmul_transpose(b.graph)) == 0);
  }
  SECTION("the MatMul is of another domain") {
    LinearGraph g = make_linear({5, 4}, swap);
    g.b.output(g.y);
    g.b.graph.nodes[1].domain = "com.microsoft";
    CHECK(fused(passes::fuse_matmul_transpose(g.b.graph)) == 0);
  }
  SECTION("the Transpose is of another domain") {
    LinearGraph g = make_linear({5, 4}, swap);
    g.b.output(g.y);
    g.b.graph.nodes[0].domain = "com.microsoft";
    CHECK(fused(passes::fuse_matmul_transpose(g.b.graph)) == 0);
  }
  SECTION("an int64 weight") {
    Builder b;
    const int a = b.input("a", {5, 4}, DType::kInt64);
    const int w = b.constant("w", testing::int64_tensor({3, 4}, std::vector<int64_t>(12, 1)), true);
    const int t = b.node("Transpose", "/t", {w}, {4, 3}, {{"perm", ints({1, 0})}}, DType::kInt64);
    b.output(b.node("MatMul", "/mm", {a, t}, {5, 3}, {}, DType::kInt64));
    CHECK(fused(passes::fuse_matmul_transpose(b.graph)) == 0);
  }
}

// ---------------------------------------------------------------------------------------------
// The bias Add after a linear layer: MatMulTransB(X, W) + b -> MatMulTransB(X, W, b)

// y = Add(MatMulTransB(x, w), b) (or Add(b, .)): x [2, 5, 4], w [3, 4], b `b_shape`.
struct BiasedLinear {
  Builder b;
  int x = -1, w = -1, bias = -1, p = -1, y = -1;
};
BiasedLinear make_biased_linear(bool bias_first, const Shape& b_shape = {3}) {
  BiasedLinear g;
  const std::string scope = "/encoder/layer.0/output/dense/";
  g.x = g.b.input("x", {2, 5, 4});
  g.w = g.b.weight("encoder.layer.0.output.dense.weight", {3, 4}, ramp(12));
  g.bias = g.b.weight("encoder.layer.0.output.dense.bias", b_shape,
                      ramp(static_cast<size_t>(element_count(b_shape))));
  g.p = g.b.node("MatMulTransB", scope + "MatMulTransB", {g.x, g.w}, {2, 5, 3});
  g.y = g.b.node("Add", scope + "Add",
                 bias_first ? std::vector<int>{g.bias, g.p} : std::vector<int>{g.p, g.bias},
                 {2, 5, 3});
  return g;
}

TEST_CASE("fuse_linear_bias: the bias Add joins the MatMulTransB, either operand order",
          "[passes]") {
  for (const bool bias_first : {false, true}) {
    INFO((bias_first ? "Add(b, P)" : "Add(P, b)"));
    BiasedLinear g = make_biased_linear(bias_first);
    g.b.output(g.b.node("Relu", "/relu", {g.y}, {2, 5, 3}));
    REQUIRE(fused(passes::fuse_linear_bias(g.b.graph)) == 1);
    REQUIRE(g.b.graph.validate().ok());
    CHECK(g.b.live() == 2);  // MatMulTransB, Relu
    CHECK(g.b.count("Add") == 0);
    const Node* f = g.b.find("MatMulTransB");
    REQUIRE(f != nullptr);
    CHECK(f->inputs == std::vector<int>{g.x, g.w, g.bias});
    CHECK(f->outputs == std::vector<int>{g.y});
    CHECK(f->name == "/encoder/layer.0/output/dense/MatMulTransB");
    CHECK(f->onnx_nodes.size() == 2);
    CHECK(g.b.graph.values[g.y].producer == 1);  // at the Add's place
    // The bias is untouched: the same value, name and shape.
    CHECK(g.b.graph.values[g.bias].name == "encoder.layer.0.output.dense.bias");
    CHECK(g.b.graph.values[g.bias].constant->shape == Shape{3});
    // A second run finds nothing (the fused node has three inputs).
    CHECK(fused(passes::fuse_linear_bias(g.b.graph)) == 0);
  }
}

TEST_CASE("fuse_linear_bias: near misses are left unchanged", "[passes]") {
  SECTION("a [1, 3] bias (not 1-D: it stays an Add)") {
    BiasedLinear g = make_biased_linear(false, {1, 3});
    g.b.output(g.y);
    CHECK(fused(passes::fuse_linear_bias(g.b.graph)) == 0);
    CHECK(g.b.count("Add") == 1);
  }
  SECTION("a bias broadcast over the rows, not the columns") {
    Builder b;
    const int x = b.input("x", {5, 4});
    const int p = b.node("MatMulTransB", "/mm", {x, b.weight("w", {5, 4}, ramp(20))}, {5, 5});
    b.output(b.node("Add", "/add", {p, b.weight("b", {5, 1}, ramp(5))}, {5, 5}));
    CHECK(fused(passes::fuse_linear_bias(b.graph)) == 0);
  }
  SECTION("the product has a second reader") {
    BiasedLinear g = make_biased_linear(false);
    g.b.output(g.y);
    g.b.output(g.b.node("Relu", "/relu", {g.p}, {2, 5, 3}));
    CHECK(fused(passes::fuse_linear_bias(g.b.graph)) == 0);
  }
  SECTION("the product is a graph output") {
    BiasedLinear g = make_biased_linear(false);
    g.b.output(g.y);
    g.b.output(g.p);
    CHECK(fused(passes::fuse_linear_bias(g.b.graph)) == 0);
  }
  SECTION("the addend is a runtime value") {
    Builder b;
    const int x = b.input("x", {5, 4});
    const int p = b.node("MatMulTransB", "/mm", {x, b.weight("w", {3, 4}, ramp(12))}, {5, 3});
    b.output(b.node("Add", "/add", {p, b.input("r", {3})}, {5, 3}));
    CHECK(fused(passes::fuse_linear_bias(b.graph)) == 0);
  }
  SECTION("the Add broadcasts the product to a larger shape") {
    Builder b;
    const int x = b.input("x", {5, 4});
    const int p = b.node("MatMulTransB", "/mm", {x, b.weight("w", {3, 4}, ramp(12))}, {5, 3});
    b.output(b.node("Add", "/add", {p, b.weight("big", {2, 5, 3}, ramp(30))}, {2, 5, 3}));
    CHECK(fused(passes::fuse_linear_bias(b.graph)) == 0);
  }
  SECTION("the reader is a Mul") {
    Builder b;
    const int x = b.input("x", {5, 4});
    const int p = b.node("MatMulTransB", "/mm", {x, b.weight("w", {3, 4}, ramp(12))}, {5, 3});
    b.output(b.node("Mul", "/mul", {p, b.weight("b", {3}, ramp(3))}, {5, 3}));
    CHECK(fused(passes::fuse_linear_bias(b.graph)) == 0);
  }
}

// ---------------------------------------------------------------------------------------------
// Attention's mask Add before its Softmax: Softmax(Add(scores, mask)) -> AddSoftmax(scores, mask)

// probs = Softmax(Add(scores, mask)) over scores [2, 3, 4, 4] (or Add(mask, scores)); the mask
// of `m_shape` is a literal (a training export's folded one) unless from_input.
struct MaskedSoftmax {
  Builder b;
  int scores = -1, mask = -1, sum = -1, probs = -1;
  Shape s = {2, 3, 4, 4};
};
MaskedSoftmax make_masked_softmax(bool mask_first, const Shape& m_shape = {2, 1, 4, 4},
                                  bool from_input = false) {
  MaskedSoftmax g;
  const std::string scope = "/encoder/layer.0/attention/self/";
  // (A parameter reaches the scores, as the query and key weights do.)
  g.scores = g.b.node(
      "Mul", scope + "scores",
      {g.b.input("q", g.s), g.b.weight("w", g.s, ramp(static_cast<size_t>(element_count(g.s))))},
      g.s);
  if (from_input) {
    g.mask = g.b.input("mask", m_shape);
  } else {
    g.mask = g.b.weight("mask", m_shape, ramp(static_cast<size_t>(element_count(m_shape))));
    g.b.graph.values[g.mask].literal = true;
  }
  g.sum = g.b.node(
      "Add", scope + "Add",
      mask_first ? std::vector<int>{g.mask, g.scores} : std::vector<int>{g.scores, g.mask}, g.s);
  g.probs = g.b.node("Softmax", scope + "Softmax", {g.sum}, g.s, {{"axis", i64(-1)}});
  g.b.output(g.probs);
  return g;
}

TEST_CASE("fuse_add_softmax: the mask Add joins the Softmax, either order, any broadcast",
          "[passes]") {
  for (const bool mask_first : {false, true}) {
    for (const Shape& m :
         {Shape{2, 1, 4, 4}, Shape{2, 1, 1, 4}, Shape{4, 4}, Shape{1}, Shape{2, 3, 4, 4}}) {
      for (const bool from_input : {false, true}) {
        INFO((mask_first ? "Add(M, S) " : "Add(S, M) ")
             << shape_string(m) << (from_input ? " input" : " literal"));
        MaskedSoftmax g = make_masked_softmax(mask_first, m, from_input);
        REQUIRE(fused(passes::fuse_add_softmax(g.b.graph)) == 1);
        REQUIRE(g.b.graph.validate().ok());
        CHECK(g.b.live() == 2);  // the scores' Mul, AddSoftmax
        const Node* f = g.b.find("AddSoftmax");
        REQUIRE(f != nullptr);
        // X is the addend of the sum's shape that a parameter may reach; the mask no
        // parameter reaches is M (a literal or a runtime input), whatever the Add's order.
        const std::vector<int> want = {g.scores, g.mask};
        CHECK(f->inputs == want);
        CHECK(f->outputs == std::vector<int>{g.probs});
        CHECK(f->attr_int("axis", 0) == -1);
        CHECK(f->name == "/encoder/layer.0/attention/self/AddSoftmax");
        CHECK(f->onnx_nodes.size() == 2);
        CHECK(fused(passes::fuse_add_softmax(g.b.graph)) == 0);
      }
    }
  }
  SECTION("axis given as rank - 1") {
    MaskedSoftmax g = make_masked_softmax(false);
    g.b.graph.nodes[2].attrs["axis"] = i64(3);
    CHECK(fused(passes::fuse_add_softmax(g.b.graph)) == 1);
  }
}

TEST_CASE("fuse_add_softmax: near misses are left unchanged", "[passes]") {
  SECTION("the Softmax is over another axis") {
    MaskedSoftmax g = make_masked_softmax(false);
    g.b.graph.nodes[2].attrs["axis"] = i64(2);
    CHECK(fused(passes::fuse_add_softmax(g.b.graph)) == 0);
  }
  SECTION("the sum has a second reader") {
    MaskedSoftmax g = make_masked_softmax(false);
    g.b.output(g.sum);
    CHECK(fused(passes::fuse_add_softmax(g.b.graph)) == 0);
  }
  SECTION("the mask is a parameter (its gradient would be wanted)") {
    MaskedSoftmax g = make_masked_softmax(false);
    g.b.graph.values[g.mask].literal = false;
    CHECK(fused(passes::fuse_add_softmax(g.b.graph)) == 0);
  }
  SECTION("a parameter reaches the mask through a node") {
    Builder b;
    const Shape sh = {2, 3, 4, 4};
    const int q = b.input("q", sh);
    const int m =
        b.node("Add", "/mask_bias", {b.input("mask", {2, 1, 4, 4}), b.weight("bias", {4}, ramp(4))},
               {2, 1, 4, 4});
    const int sum = b.node("Add", "/add", {q, m}, sh);
    b.output(b.node("Softmax", "/softmax", {sum}, sh, {{"axis", i64(-1)}}));
    REQUIRE(b.graph.validate().ok());
    CHECK(fused(passes::fuse_add_softmax(b.graph)) == 0);
  }
  SECTION("neither addend has the sum's shape") {
    Builder b;
    const int a = b.input("a", {2, 1, 4});
    const int c = b.input("c", {1, 3, 4});
    const int sum = b.node("Add", "/add", {a, c}, {2, 3, 4});
    b.output(b.node("Softmax", "/softmax", {sum}, {2, 3, 4}, {{"axis", i64(-1)}}));
    CHECK(fused(passes::fuse_add_softmax(b.graph)) == 0);
  }
  SECTION("Sub, not Add") {
    MaskedSoftmax g = make_masked_softmax(false);
    g.b.graph.nodes[1].op = "Sub";
    CHECK(fused(passes::fuse_add_softmax(g.b.graph)) == 0);
  }
  SECTION("LogSoftmax is not taken") {
    MaskedSoftmax g = make_masked_softmax(false);
    g.b.graph.nodes[2].op = "LogSoftmax";
    CHECK(fused(passes::fuse_add_softmax(g.b.graph)) == 0);
  }
}

// ---------------------------------------------------------------------------------------------
// Query, key and value as one product

// x [2, 5, 8] read by three MatMulTransB(x, W [8, 8], b) -> Reshape [2, 5, 2, 4] -> Transpose,
// the key's perm [0, 2, 3, 1], as fuse_linear_bias leaves BERT's self-attention. Returns the
// Transpose outputs; `heads` per projection, `extra_reader` gives the key's product a second
// reader.
struct Projections {
  Builder b;
  int x = -1;
  std::vector<int> heads_out, weights, biases;
};
Projections make_projections(std::vector<int64_t> heads = {2, 2, 2}, bool extra_reader = false) {
  Projections p;
  p.x = p.b.input("x", {2, 5, 8});
  const char* names[] = {"query", "key", "value"};
  for (int i = 0; i < 3; ++i) {
    const std::string s = str_cat("/layer.0/attention/self/", names[i], "/");
    const int w = p.b.weight(str_cat(names[i], ".weight"), {8, 8}, ramp(64));
    const int bias = p.b.weight(str_cat(names[i], ".bias"), {8}, ramp(8));
    const int mm = p.b.node("MatMulTransB", s + "MatMulTransB", {p.x, w, bias}, {2, 5, 8});
    const int64_t h = heads[static_cast<size_t>(i)];
    const int shape = p.b.constant(str_cat(names[i], ".shape"),
                                   testing::int64_tensor({4}, {0, 0, h, 8 / h}), false);
    const int r = p.b.node("Reshape", s + "Reshape", {mm, shape}, {2, 5, h, 8 / h});
    const std::vector<int64_t> perm =
        i == 1 ? std::vector<int64_t>{0, 2, 3, 1} : std::vector<int64_t>{0, 2, 1, 3};
    Shape out;
    for (int64_t d : perm) out.push_back(Shape{2, 5, h, 8 / h}[static_cast<size_t>(d)]);
    const int t = p.b.node("Transpose", s + "Transpose", {r}, out, {{"perm", ints(perm)}});
    p.b.output(t);
    if (extra_reader && i == 1) p.b.output(p.b.node("Relu", s + "Relu", {mm}, {2, 5, 8}));
    p.heads_out.push_back(t);
    p.weights.push_back(w);
    p.biases.push_back(bias);
  }
  return p;
}

TEST_CASE("fuse_head_projections: three projections of one input become one product", "[passes]") {
  Projections p = make_projections();
  REQUIRE(fused(passes::fuse_head_projections(p.b.graph)) == 1);
  REQUIRE(p.b.graph.validate().ok());
  CHECK(p.b.count("MatMulTransB") == 1);
  CHECK(p.b.count("Concat") == 2);
  CHECK(p.b.count("HeadSlice") == 3);
  CHECK(p.b.count("Reshape") == 0);
  CHECK(p.b.count("Transpose") == 0);
  CHECK(p.b.live() == 6);
  const Node* mm = p.b.find("MatMulTransB");
  REQUIRE(mm != nullptr);
  CHECK(mm->inputs[0] == p.x);
  CHECK(mm->name == "/layer.0/attention/self/query/HeadProjection");
  CHECK(p.b.graph.values[mm->outputs[0]].shape == Shape{2, 5, 24});
  // The Concats read the parameters themselves, in order: names and shapes unchanged.
  const Value& w = p.b.graph.values[mm->inputs[1]];
  REQUIRE(w.producer >= 0);
  CHECK(p.b.graph.nodes[w.producer].inputs == p.weights);
  CHECK(p.b.graph.nodes[w.producer].attr_int("axis", -1) == 0);
  CHECK(w.shape == Shape{24, 8});
  CHECK(p.b.graph.nodes[p.b.graph.values[mm->inputs[2]].producer].inputs == p.biases);
  CHECK(p.b.graph.values[p.weights[0]].name == "query.weight");
  // Each head tensor is the HeadSlice of its columns with its permutation.
  for (int i = 0; i < 3; ++i) {
    const Value& t = p.b.graph.values[p.heads_out[static_cast<size_t>(i)]];
    REQUIRE(t.producer >= 0);
    const Node& slice = p.b.graph.nodes[t.producer];
    CHECK(slice.op == "HeadSlice");
    CHECK(slice.inputs == std::vector<int>{mm->outputs[0]});
    CHECK(slice.attr_int("start", -1) == 8 * i);
    CHECK(slice.attr_int("size", -1) == 8);
    CHECK(slice.attr_int("heads", -1) == 2);
    CHECK(slice.attr_ints("perm") ==
          (i == 1 ? std::vector<int64_t>{0, 2, 3, 1} : std::vector<int64_t>{0, 2, 1, 3}));
  }
}

TEST_CASE("fuse_head_projections: near misses stay as they are", "[passes]") {
  SECTION("the key's product has another reader: query and value fuse") {
    Projections p = make_projections({2, 2, 2}, true);
    REQUIRE(fused(passes::fuse_head_projections(p.b.graph)) == 1);
    REQUIRE(p.b.graph.validate().ok());
    CHECK(p.b.count("MatMulTransB") == 2);
    CHECK(p.b.count("HeadSlice") == 2);
    CHECK(p.b.count("Transpose") == 1);
  }
  SECTION("different head counts: only the two alike fuse") {
    Projections p = make_projections({2, 4, 2});
    REQUIRE(fused(passes::fuse_head_projections(p.b.graph)) == 1);
    CHECK(p.b.count("HeadSlice") == 2);
    CHECK(p.b.count("MatMulTransB") == 2);
  }
  SECTION("one projection alone is left") {
    Builder b;
    const int x = b.input("x", {2, 5, 8});
    const int mm =
        b.node("MatMulTransB", "/q/MatMulTransB",
               {x, b.weight("w", {8, 8}, ramp(64)), b.weight("b", {8}, ramp(8))}, {2, 5, 8});
    const int shape = b.constant("s", testing::int64_tensor({4}, {0, 0, 2, 4}), false);
    const int r = b.node("Reshape", "/q/Reshape", {mm, shape}, {2, 5, 2, 4});
    b.output(
        b.node("Transpose", "/q/Transpose", {r}, {2, 2, 5, 4}, {{"perm", ints({0, 2, 1, 3})}}));
    CHECK(fused(passes::fuse_head_projections(b.graph)) == 0);
    CHECK(b.count("Transpose") == 1);
  }
}

// ---------------------------------------------------------------------------------------------
// Attention's products reading the heads in place

// Self-attention as fuse_head_projections, fuse_matmul_scale and fuse_add_softmax leave it: x
// [2, 5, 24] (the fused product) read by HeadSlices q (columns 16..23, perm [0, 2, 1, 3]), k
// (0..7, [0, 2, 3, 1]) and v (8..15, [0, 2, 1, 3]), 2 heads of 4; MatMulScale(q, k) alpha 0.5
// (or a plain MatMul), Softmax, MatMul(probs, v), Transpose [0, 2, 1, 3] -> [2, 5, 2, 4].
// Node order: q 0, k 1, v 2, scores 3, Softmax 4, context 5, Transpose 6.
struct Attention {
  Builder b;
  int x = -1, q = -1, k = -1, v = -1, scores = -1, probs = -1, context = -1, merged = -1;
  Node& node_of(int value) { return b.graph.nodes[b.graph.values[value].producer]; }
};
Attention make_attention(bool scale = true) {
  Attention a;
  a.x = a.b.input("x", {2, 5, 24});
  const std::string s = "/layer.0/attention/self/";
  auto slice = [&](const std::string& name, int64_t start, std::vector<int64_t> perm,
                   const Shape& out) {
    return a.b.node(
        "HeadSlice", s + name, {a.x}, out,
        {{"start", i64(start)}, {"size", i64(8)}, {"heads", i64(2)}, {"perm", ints(perm)}});
  };
  a.q = slice("query/HeadSlice", 16, {0, 2, 1, 3}, {2, 2, 5, 4});
  a.k = slice("key/HeadSlice", 0, {0, 2, 3, 1}, {2, 2, 4, 5});
  a.v = slice("value/HeadSlice", 8, {0, 2, 1, 3}, {2, 2, 5, 4});
  a.scores = scale ? a.b.node("MatMulScale", s + "MatMulScale", {a.q, a.k}, {2, 2, 5, 5},
                              {{"alpha", f32(0.5f)}})
                   : a.b.node("MatMul", s + "MatMul", {a.q, a.k}, {2, 2, 5, 5});
  a.probs = a.b.node("Softmax", s + "Softmax", {a.scores}, {2, 2, 5, 5}, {{"axis", i64(-1)}});
  a.context = a.b.node("MatMul", s + "MatMul_1", {a.probs, a.v}, {2, 2, 5, 4});
  a.merged = a.b.node("Transpose", s + "Transpose_3", {a.context}, {2, 5, 2, 4},
                      {{"perm", ints({0, 2, 1, 3})}});
  a.b.output(a.merged);
  return a;
}

TEST_CASE("fuse_attention: the scores and the context read the heads in place", "[passes]") {
  for (bool scale : {true, false}) {
    INFO((scale ? "MatMulScale" : "MatMul"));
    Attention a = make_attention(scale);
    REQUIRE(fused(passes::fuse_attention(a.b.graph)) == 2);
    REQUIRE(a.b.graph.validate().ok());
    CHECK(a.b.live() == 3);
    CHECK(a.b.count("HeadSlice") == 0);
    CHECK(a.b.count("MatMul") == 0);
    CHECK(a.b.count("MatMulScale") == 0);
    CHECK(a.b.count("Transpose") == 0);
    const Node& scores = a.node_of(a.scores);
    CHECK(scores.op == "AttentionScores");
    CHECK(scores.name == "/layer.0/attention/self/AttentionScores");
    CHECK(scores.inputs == std::vector<int>{a.x});
    CHECK(scores.outputs == std::vector<int>{a.scores});
    CHECK(scores.attr_int("heads", -1) == 2);
    CHECK(scores.attr_int("size", -1) == 8);
    CHECK(scores.attr_int("q_start", -1) == 16);
    CHECK(scores.attr_int("k_start", -1) == 0);
    CHECK(scores.attr_float("alpha", -1) == (scale ? 0.5f : 1.0f));
    CHECK(scores.onnx_nodes == std::vector<int>{0, 1, 3});
    const Node& context = a.node_of(a.merged);
    CHECK(context.op == "AttentionContext");
    CHECK(context.name == "/layer.0/attention/self/AttentionContext_1");
    CHECK(context.inputs == std::vector<int>{a.probs, a.x});
    CHECK(context.outputs == std::vector<int>{a.merged});
    CHECK(context.attr_int("heads", -1) == 2);
    CHECK(context.attr_int("size", -1) == 8);
    CHECK(context.attr_int("v_start", -1) == 8);
    CHECK(context.attrs.size() == 3);
    CHECK(context.onnx_nodes == std::vector<int>{2, 5, 6});
    // In order: the scores where their product was, the context where its Transpose was.
    std::vector<std::string> ops;
    for (const Node& node : a.b.graph.nodes) {
      if (!node.dead) ops.push_back(node.op);
    }
    CHECK(ops == std::vector<std::string>{"AttentionScores", "Softmax", "AttentionContext"});
  }
}

TEST_CASE("fuse_attention: near misses are left unchanged", "[passes]") {
  // Each section spoils the scores' pattern, the context's or both; the other still fuses.
  Attention a = make_attention();
  bool scores = true, context = true;
  SECTION("the query's slice with another perm") {
    a.node_of(a.q).attrs["perm"] = ints({0, 2, 3, 1});
    scores = false;
  }
  SECTION("the key's slice with another perm") {
    a.node_of(a.k).attrs["perm"] = ints({0, 2, 1, 3});
    scores = false;
  }
  SECTION("query and key swapped") {
    a.node_of(a.scores).inputs = {a.k, a.q};
    scores = false;
  }
  SECTION("the query's slice read twice") {
    a.b.output(a.b.node("Relu", "/relu", {a.q}, {2, 2, 5, 4}));
    scores = false;
  }
  SECTION("the key's slice a graph output") {
    a.b.output(a.k);
    scores = false;
  }
  SECTION("the key's slice of another X") {
    const int other = a.b.input("other", {2, 5, 24});
    a.node_of(a.k).inputs = {other};
    scores = false;
  }
  SECTION("the key with other heads") {
    a.node_of(a.k).attrs["heads"] = i64(4);
    scores = false;
  }
  SECTION("the key with another size") {
    a.node_of(a.k).attrs["size"] = i64(4);
    scores = false;
  }
  SECTION("the scores of a Mul, not a product") {
    a.node_of(a.scores).op = "Mul";
    scores = false;
  }
  SECTION("X of rank 4") {
    a.b.graph.values[a.x].shape = Shape{2, 5, 1, 24};
    scores = context = false;
  }
  SECTION("X float16") {
    a.b.graph.values[a.x].dtype = DType::kFloat16;
    scores = context = false;
  }
  SECTION("the context's Transpose with another perm") {
    a.node_of(a.merged).attrs["perm"] = ints({0, 2, 3, 1});
    context = false;
  }
  SECTION("the context's Transpose without a perm (reversed axes)") {
    a.node_of(a.merged).attrs.clear();
    context = false;
  }
  SECTION("the context product read twice") {
    a.b.output(a.b.node("Relu", "/relu", {a.context}, {2, 2, 5, 4}));
    context = false;
  }
  SECTION("the context product a graph output") {
    a.b.output(a.context);
    context = false;
  }
  SECTION("the value's slice read twice") {
    a.b.output(a.b.node("Relu", "/relu", {a.v}, {2, 2, 5, 4}));
    context = false;
  }
  SECTION("the value's slice a graph output") {
    a.b.output(a.v);
    context = false;
  }
  SECTION("the value's slice with the key's perm") {
    a.node_of(a.v).attrs["perm"] = ints({0, 2, 3, 1});
    context = false;
  }
  SECTION("P with other heads than the value's") {
    a.node_of(a.v).attrs["heads"] = i64(4);
    context = false;
  }
  SECTION("the context's product with P and V swapped") {
    a.node_of(a.context).inputs = {a.v, a.probs};
    context = false;
  }
  CHECK(fused(passes::fuse_attention(a.b.graph)) == int{scores} + int{context});
  REQUIRE(a.b.graph.validate().ok());
  CHECK(a.b.count("AttentionScores") == int{scores});
  CHECK(a.b.count("AttentionContext") == int{context});
  CHECK(a.b.count("HeadSlice") == (scores ? 0 : 2) + (context ? 0 : 1));
  CHECK(a.b.count("Transpose") == (context ? 0 : 1));
}

// ---------------------------------------------------------------------------------------------
// Attention's scores, Softmax and context as one FusedAttention (inference)

// Attention as fuse_attention leaves it: x [2, 5, 24] read by AttentionScores (q at 16, k at 0,
// 2 heads of 4, alpha 0.5) -> Softmax (last axis) -> AttentionContext(probs, x) (v at 8) ->
// [2, 5, 2, 4]. Node order: scores 0, Softmax 1, context 2.
struct ScoresSoftmaxContext {
  Builder b;
  int x = -1, scores = -1, probs = -1, context = -1;
  Node& node_of(int value) { return b.graph.nodes[b.graph.values[value].producer]; }
};
ScoresSoftmaxContext make_scores_softmax_context() {
  ScoresSoftmaxContext a;
  const std::string s = "/layer.0/attention/self/";
  a.x = a.b.input("x", {2, 5, 24});
  a.scores = a.b.node("AttentionScores", s + "AttentionScores", {a.x}, {2, 2, 5, 5},
                      {{"heads", i64(2)},
                       {"size", i64(8)},
                       {"q_start", i64(16)},
                       {"k_start", i64(0)},
                       {"alpha", f32(0.5f)}});
  a.probs = a.b.node("Softmax", s + "Softmax", {a.scores}, {2, 2, 5, 5}, {{"axis", i64(-1)}});
  a.context = a.b.node("AttentionContext", s + "AttentionContext_1", {a.probs, a.x}, {2, 5, 2, 4},
                       {{"heads", i64(2)}, {"size", i64(8)}, {"v_start", i64(8)}});
  a.b.output(a.context);
  return a;
}

void check_fused_attention(const Builder& b, int x, int out, float alpha) {
  const Node* f = b.find("FusedAttention");
  REQUIRE(f != nullptr);
  CHECK(f->name == "/layer.0/attention/self/FusedAttention_1");
  CHECK(f->inputs == std::vector<int>{x});
  CHECK(f->outputs == std::vector<int>{out});
  CHECK(f->attr_int("heads", -1) == 2);
  CHECK(f->attr_int("size", -1) == 8);
  CHECK(f->attr_int("q_start", -1) == 16);
  CHECK(f->attr_int("k_start", -1) == 0);
  CHECK(f->attr_int("v_start", -1) == 8);
  CHECK(f->attr_float("alpha", -1) == alpha);
  CHECK(f->attrs.size() == 6);
  CHECK(b.graph.values[out].producer == static_cast<int>(f - b.graph.nodes.data()));
}

TEST_CASE("fuse_attention_softmax: scores, Softmax and context become one FusedAttention",
          "[passes]") {
  ScoresSoftmaxContext a = make_scores_softmax_context();
  bool default_alpha = false;
  SECTION("axis -1") {}
  SECTION("axis given as rank - 1") { a.node_of(a.probs).attrs["axis"] = i64(3); }
  SECTION("axis absent (opset 13's default, the last)") { a.node_of(a.probs).attrs.clear(); }
  SECTION("the scores without alpha (1)") {
    a.node_of(a.scores).attrs.erase("alpha");
    default_alpha = true;
  }
  REQUIRE(fused(passes::fuse_attention_softmax(a.b.graph)) == 1);
  REQUIRE(a.b.graph.validate().ok());
  CHECK(a.b.live() == 1);
  CHECK(a.b.count("AttentionScores") == 0);
  CHECK(a.b.count("Softmax") == 0);
  CHECK(a.b.count("AttentionContext") == 0);
  check_fused_attention(a.b, a.x, a.context, default_alpha ? 1.0f : 0.5f);
  const Node* f = a.b.find("FusedAttention");
  REQUIRE(f != nullptr);
  CHECK(f->onnx_nodes == std::vector<int>{0, 1, 2});
  // At the context's place: the scores' and the Softmax's are dead.
  CHECK(a.b.graph.nodes[0].dead);
  CHECK(a.b.graph.nodes[1].dead);
  CHECK_FALSE(a.b.graph.nodes[2].dead);
  CHECK(fused(passes::fuse_attention_softmax(a.b.graph)) == 0);
}

TEST_CASE("fuse_attention_softmax: after fuse_attention, self-attention is one node", "[passes]") {
  Attention a = make_attention();
  REQUIRE(fused(passes::fuse_attention(a.b.graph)) == 2);
  REQUIRE(fused(passes::fuse_attention_softmax(a.b.graph)) == 1);
  REQUIRE(a.b.graph.validate().ok());
  CHECK(a.b.live() == 1);
  check_fused_attention(a.b, a.x, a.merged, 0.5f);
  // Every ONNX node of the seven: slices, products, Softmax and the Transpose.
  CHECK(a.b.find("FusedAttention")->onnx_nodes == std::vector<int>{0, 1, 2, 3, 4, 5, 6});
}

// One head of d columns in X [2, 5, 3 d] (q at 0, k at d, v at 2 d): fused up to the GPU
// kernel's largest head, left as three ops past it.
TEST_CASE("fuse_attention_softmax: heads up to kFusedAttentionMaxHeadSize columns", "[passes]") {
  const int64_t d = kFusedAttentionMaxHeadSize + GENERATE(0, 4);
  INFO("head size " << d);
  ScoresSoftmaxContext a = make_scores_softmax_context();
  a.b.graph.values[a.x].shape = Shape{2, 5, 3 * d};
  a.b.graph.values[a.scores].shape = Shape{2, 1, 5, 5};
  a.b.graph.values[a.probs].shape = Shape{2, 1, 5, 5};
  a.b.graph.values[a.context].shape = Shape{2, 5, 1, d};
  for (const int v : {a.scores, a.context}) {
    a.node_of(v).attrs["heads"] = i64(1);
    a.node_of(v).attrs["size"] = i64(d);
  }
  a.node_of(a.scores).attrs["q_start"] = i64(0);
  a.node_of(a.scores).attrs["k_start"] = i64(d);
  a.node_of(a.context).attrs["v_start"] = i64(2 * d);
  const bool fits = d <= kFusedAttentionMaxHeadSize;
  CHECK(fused(passes::fuse_attention_softmax(a.b.graph)) == (fits ? 1 : 0));
  CHECK(a.b.count("FusedAttention") == (fits ? 1 : 0));
  CHECK(a.b.count("AttentionScores") == (fits ? 0 : 1));
}

TEST_CASE("fuse_attention_softmax: near misses are left unchanged", "[passes]") {
  ScoresSoftmaxContext a = make_scores_softmax_context();
  SECTION("the context reads another X") {
    a.node_of(a.context).inputs[1] = a.b.input("other", {2, 5, 24});
  }
  SECTION("the Softmax over another axis") { a.node_of(a.probs).attrs["axis"] = i64(2); }
  SECTION("the Softmax over axis 1 (an older opset's default spelled out)") {
    a.node_of(a.probs).attrs["axis"] = i64(1);
  }
  SECTION("P read by a second node") {
    a.b.output(a.b.node("Relu", "/relu", {a.probs}, {2, 2, 5, 5}));
  }
  SECTION("P a graph output") { a.b.output(a.probs); }
  SECTION("the scores read by a second node") {
    a.b.output(a.b.node("Relu", "/relu", {a.scores}, {2, 2, 5, 5}));
  }
  SECTION("the scores a graph output") { a.b.output(a.scores); }
  SECTION("AddSoftmax instead of Softmax") {
    Node& softmax = a.node_of(a.probs);
    softmax.op = "AddSoftmax";
    softmax.inputs.push_back(a.b.input("mask", {2, 1, 1, 5}));
  }
  SECTION("LogSoftmax instead of Softmax") { a.node_of(a.probs).op = "LogSoftmax"; }
  SECTION("the context with other heads") { a.node_of(a.context).attrs["heads"] = i64(4); }
  SECTION("the context with another size") { a.node_of(a.context).attrs["size"] = i64(4); }
  SECTION("the context's v_start missing") { a.node_of(a.context).attrs.erase("v_start"); }
  SECTION("the value's columns outside X") { a.node_of(a.context).attrs["v_start"] = i64(20); }
  SECTION("P as the context's second input") { a.node_of(a.context).inputs = {a.x, a.probs}; }
  SECTION("the scores of a MatMul, not AttentionScores") { a.node_of(a.scores).op = "MatMul"; }
  SECTION("X float16") { a.b.graph.values[a.x].dtype = DType::kFloat16; }
  const int live = a.b.live();
  CHECK(fused(passes::fuse_attention_softmax(a.b.graph)) == 0);
  CHECK(a.b.count("FusedAttention") == 0);
  CHECK(a.b.live() == live);
  CHECK_FALSE(a.b.graph.nodes[0].dead);
  CHECK_FALSE(a.b.graph.nodes[1].dead);
  CHECK_FALSE(a.b.graph.nodes[2].dead);
}

}  // namespace
}  // namespace ps::onnx_loader
