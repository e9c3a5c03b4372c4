// Convolution passes (BatchNorm folding, Conv fusion) and the pass pipeline on tiny hand-built
// graphs: what must change, numerically right, and every near miss left alone.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <set>

#include "onnx_loader/passes/fold_batchnorm.h"
#include "onnx_loader/passes/fuse_conv.h"
#include "onnx_loader/passes/pattern.h"
#include "onnx_loader/pipeline.h"
#include "tests/onnx_loader/graph_builder.h"

namespace ps::onnx_loader {
namespace {

using testing::Builder;
using testing::ramp;

Attribute ints(std::vector<int64_t> v) { return Attribute{std::move(v)}; }
Attribute i64(int64_t v) { return Attribute{v}; }
Attribute f32(float v) { return Attribute{v}; }
Attribute str(const char* v) { return Attribute{std::string(v)}; }

int fused(const Result<int>& result) {
  REQUIRE(result.ok());
  return *result;
}

// ---------------------------------------------------------------------------------------------
// Reference maths written for the tests.

struct ConvParams {
  int64_t pad = 0;
  int64_t stride = 1;
  int64_t group = 1;
};

// NCHW convolution, W [M, C/group, K, K], symmetric padding.
std::vector<float> reference_conv(const std::vector<float>& x, const Shape& xs,
                                  const std::vector<float>& w, const Shape& ws,
                                  const std::vector<float>& b, const ConvParams& p) {
  const int64_t n = xs[0], c = xs[1], h = xs[2], wd = xs[3];
  const int64_t m = ws[0], cg = ws[1], k = ws[2];
  const int64_t oh = (h + 2 * p.pad - k) / p.stride + 1;
  const int64_t ow = (wd + 2 * p.pad - k) / p.stride + 1;
  const int64_t mg = m / p.group;
  std::vector<float> y(static_cast<size_t>(n * m * oh * ow), 0.0f);
  for (int64_t in = 0; in < n; ++in)
    for (int64_t om = 0; om < m; ++om)
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox) {
          double sum = b.empty() ? 0.0 : b[om];
          const int64_t g = om / mg;
          for (int64_t ic = 0; ic < cg; ++ic)
            for (int64_t ky = 0; ky < k; ++ky)
              for (int64_t kx = 0; kx < k; ++kx) {
                const int64_t iy = oy * p.stride - p.pad + ky;
                const int64_t ix = ox * p.stride - p.pad + kx;
                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                const int64_t channel = g * cg + ic;
                sum += double(x[((in * c + channel) * h + iy) * wd + ix]) *
                       w[((om * cg + ic) * k + ky) * k + kx];
              }
          y[((in * m + om) * oh + oy) * ow + ox] = static_cast<float>(sum);
        }
  return y;
}

std::vector<float> reference_bn(std::vector<float> y, int64_t channels, int64_t spatial,
                                const std::vector<float>& gamma, const std::vector<float>& beta,
                                const std::vector<float>& mean, const std::vector<float>& var,
                                float eps) {
  for (size_t i = 0; i < y.size(); ++i) {
    const int64_t ch = static_cast<int64_t>(i) / spatial % channels;
    y[i] = static_cast<float>((y[i] - mean[ch]) / std::sqrt(double(var[ch]) + eps) * gamma[ch] +
                              beta[ch]);
  }
  return y;
}

// ---------------------------------------------------------------------------------------------
// BatchNorm folding

struct ConvBn {
  Builder b;
  int x, w, bias, conv, bn;
  std::vector<float> xv, wv, bv, gamma, beta, mean, var;
  Shape xs, ws;
  ConvParams params;
  float eps = 1e-3f;
};

// Conv (1x1 or 3x3, optional bias, groups) + BatchNormalization, BN output is the graph output.
ConvBn make_conv_bn(int64_t k, bool with_bias, int64_t group, int64_t pad) {
  ConvBn t;
  const int64_t c = 2, m = 4, h = 3;
  t.xs = {1, c, h, h};
  t.ws = {m, c / group, k, k};
  t.params = {pad, 1, group};
  t.xv = ramp(static_cast<size_t>(element_count(t.xs)), -0.8f, 0.09f);
  t.wv = ramp(static_cast<size_t>(element_count(t.ws)), -0.5f, 0.07f);
  t.bv = with_bias ? std::vector<float>{0.3f, -0.2f, 0.1f, 0.05f} : std::vector<float>{};
  t.gamma = {1.5f, 0.5f, -1.0f, 2.0f};
  t.beta = {0.1f, 0.2f, -0.3f, 0.0f};
  t.mean = {0.2f, -0.1f, 0.05f, 0.4f};
  t.var = {0.9f, 0.25f, 1.7f, 0.01f};
  Builder& b = t.b;
  t.x = b.input("x", t.xs);
  t.w = b.weight("conv.weight", t.ws, t.wv);
  std::vector<int> inputs = {t.x, t.w};
  if (with_bias) {
    t.bias = b.weight("conv.bias", {m}, t.bv);
    inputs.push_back(t.bias);
  }
  const int64_t oh = h + 2 * pad - k + 1;
  std::map<std::string, Attribute> attrs = {
      {"kernel_shape", ints({k, k})}, {"pads", ints({pad, pad, pad, pad})}, {"group", i64(group)}};
  t.conv = b.node("Conv", "/conv1/Conv", inputs, {1, m, oh, oh}, attrs);
  const int g = b.weight("bn.weight", {m}, t.gamma);
  const int be = b.weight("bn.bias", {m}, t.beta);
  const int mu = b.weight("bn.running_mean", {m}, t.mean);
  const int va = b.weight("bn.running_var", {m}, t.var);
  t.bn = b.node("BatchNormalization", "/bn1/BatchNormalization", {t.conv, g, be, mu, va},
                {1, m, oh, oh}, {{"epsilon", f32(t.eps)}});
  b.output(t.bn);
  return t;
}

void check_fold_numerics(ConvBn& t) {
  REQUIRE(fused(passes::fold_batchnorm_into_conv(t.b.graph)) == 1);
  REQUIRE(t.b.graph.validate().ok());
  CHECK(t.b.count("BatchNormalization") == 0);
  const Node* conv = t.b.find("Conv");
  REQUIRE(conv != nullptr);
  CHECK(conv->outputs[0] == t.bn);  // the Conv now produces the BN's output
  CHECK(conv->onnx_nodes == std::vector<int>{0, 1});
  REQUIRE(conv->inputs.size() == 3);
  const TensorData* w2 = passes::constant_of(t.b.graph, conv->inputs[1]);
  const TensorData* b2 = passes::constant_of(t.b.graph, conv->inputs[2]);
  REQUIRE(w2 != nullptr);
  REQUIRE(b2 != nullptr);
  CHECK(w2->shape == t.ws);
  CHECK(t.b.graph.values[conv->inputs[1]].is_weight);

  const int64_t m = t.ws[0];
  const Shape ys = *t.b.graph.values[t.bn].shape;
  const std::vector<float> expected =
      reference_bn(reference_conv(t.xv, t.xs, t.wv, t.ws, t.bv, t.params), m, ys[2] * ys[3],
                   t.gamma, t.beta, t.mean, t.var, t.eps);
  const std::vector<float> folded =
      reference_conv(t.xv, t.xs, testing::floats_of(*w2), t.ws, testing::floats_of(*b2), t.params);
  REQUIRE(folded.size() == expected.size());
  for (size_t i = 0; i < folded.size(); ++i) {
    CHECK(folded[i] == Approx(expected[i]).epsilon(1e-5).margin(1e-5));
  }
  // The original weight is untouched (it could be shared).
  CHECK(testing::floats_of(*t.b.graph.values[t.w].constant) == t.wv);
}

TEST_CASE("fold_batchnorm: 1x1 conv with bias matches conv then BN", "[passes]") {
  ConvBn t = make_conv_bn(1, true, 1, 0);
  check_fold_numerics(t);
}

TEST_CASE("fold_batchnorm: 3x3 padded grouped conv without bias", "[passes]") {
  ConvBn t = make_conv_bn(3, false, 2, 1);
  check_fold_numerics(t);
}

TEST_CASE("fold_batchnorm: a weight shared by two convs gets two folded copies", "[passes]") {
  Builder b;
  const int x = b.input("x", {1, 2, 1, 1});
  const int w = b.weight("shared.weight", {2, 2, 1, 1}, ramp(4));
  auto conv_bn = [&](const std::string& name, float gamma) {
    const int c = b.node("Conv", "/" + name + "/Conv", {x, w}, {1, 2, 1, 1});
    const int g = b.weight(name + ".gamma", {2}, {gamma, gamma});
    const int z = b.weight(name + ".zero", {2}, {0.0f, 0.0f});
    const int one = b.weight(name + ".one", {2}, {1.0f, 1.0f});
    return b.node("BatchNormalization", "/" + name + "/BatchNormalization", {c, g, z, z, one},
                  {1, 2, 1, 1}, {{"epsilon", f32(0.0f)}});
  };
  b.output(conv_bn("a", 2.0f));
  b.output(conv_bn("b", 3.0f));
  REQUIRE(fused(passes::fold_batchnorm_into_conv(b.graph)) == 2);
  const int wa = b.graph.nodes[0].inputs[1];
  const int wb = b.graph.nodes[2].inputs[1];
  REQUIRE(wa != wb);
  CHECK(b.graph.values[wa].name != b.graph.values[wb].name);
  const std::vector<float> folded_a = testing::floats_of(*b.graph.values[wa].constant);
  for (size_t i = 0; i < folded_a.size(); ++i) CHECK(folded_a[i] == Approx(2.0f * ramp(4)[i]));
  CHECK(testing::floats_of(*b.graph.values[wb].constant)[3] == Approx(1.2f));
  CHECK(testing::floats_of(*b.graph.values[w].constant) == ramp(4));
}

TEST_CASE("fold_batchnorm: near misses are left unchanged", "[passes]") {
  SECTION("conv output read by another node") {
    ConvBn t = make_conv_bn(1, true, 1, 0);
    const int other = t.b.node("Relu", "/relu/Relu", {t.conv}, *t.b.graph.values[t.conv].shape);
    t.b.output(other);
    CHECK(fused(passes::fold_batchnorm_into_conv(t.b.graph)) == 0);
  }
  SECTION("conv output is a graph output") {
    ConvBn t = make_conv_bn(1, true, 1, 0);
    t.b.output(t.conv);
    CHECK(fused(passes::fold_batchnorm_into_conv(t.b.graph)) == 0);
  }
  SECTION("training-mode BatchNormalization") {
    ConvBn t = make_conv_bn(1, true, 1, 0);
    t.b.graph.nodes[1].attrs["training_mode"] = i64(1);
    CHECK(fused(passes::fold_batchnorm_into_conv(t.b.graph)) == 0);
  }
  SECTION("running mean is not a constant") {
    ConvBn t = make_conv_bn(1, true, 1, 0);
    const int mean = t.b.input("mean", {4});
    t.b.graph.nodes[1].inputs[3] = mean;
    CHECK(fused(passes::fold_batchnorm_into_conv(t.b.graph)) == 0);
  }
  SECTION("BN channel count differs from the conv's") {
    ConvBn t = make_conv_bn(1, true, 1, 0);
    t.b.graph.nodes[1].inputs[1] = t.b.weight("short", {2}, {1.0f, 1.0f});
    CHECK(fused(passes::fold_batchnorm_into_conv(t.b.graph)) == 0);
  }
  SECTION("BN after something other than a Conv") {
    Builder b;
    const int x = b.input("x", {1, 2, 2, 2});
    const int r = b.node("Relu", "/relu/Relu", {x}, {1, 2, 2, 2});
    const int p = b.weight("p", {2}, {1.0f, 1.0f});
    b.output(b.node("BatchNormalization", "/bn/BatchNormalization", {r, p, p, p, p}, {1, 2, 2, 2}));
    CHECK(fused(passes::fold_batchnorm_into_conv(b.graph)) == 0);
  }
  // In every section above the BN is still there.
}

// ---------------------------------------------------------------------------------------------
// Conv fusion

struct ConvGraph {
  Builder b;
  int x, w, bias;
  Shape ys = {1, 4, 3, 3};
  int conv(const std::string& name, int input, bool with_bias = true) {
    std::vector<int> inputs = {input, w};
    if (with_bias) inputs.push_back(bias);
    return b.node("Conv", name, inputs, ys, {{"kernel_shape", ints({1, 1})}});
  }
};

ConvGraph make_conv_graph() {
  ConvGraph t;
  t.x = t.b.input("x", {1, 4, 3, 3});
  t.w = t.b.weight("w", {4, 4, 1, 1}, ramp(16));
  t.bias = t.b.weight("b", {4}, ramp(4));
  return t;
}

std::string attr_s(const Node& node, const char* key) { return node.attr_string(key, "?"); }

TEST_CASE("fuse_conv: Conv + Relu", "[passes]") {
  ConvGraph t = make_conv_graph();
  const int y = t.conv("/layer1/layer1.0/conv1/Conv", t.x);
  const int r = t.b.node("Relu", "/layer1/layer1.0/relu/Relu", {y}, t.ys);
  t.b.output(r);
  REQUIRE(fused(passes::fuse_conv_activation(t.b.graph)) == 1);
  REQUIRE(t.b.graph.validate().ok());
  CHECK(t.b.live() == 1);
  const Node* f = t.b.find("FusedConv");
  REQUIRE(f != nullptr);
  CHECK(f->name == "/layer1/layer1.0/conv1/FusedConv");
  CHECK(f->inputs == std::vector<int>{t.x, t.w, t.bias});
  CHECK(f->outputs == std::vector<int>{r});
  CHECK(attr_s(*f, "activation") == "relu");
  CHECK(f->attr_int("has_residual", -1) == 0);
  // Defaults written out; the Conv's own attributes kept.
  CHECK(f->attr_ints("kernel_shape") == std::vector<int64_t>{1, 1});
  CHECK(f->attr_ints("pads") == std::vector<int64_t>{0, 0, 0, 0});
  CHECK(f->attr_ints("strides") == std::vector<int64_t>{1, 1});
  CHECK(f->attr_ints("dilations") == std::vector<int64_t>{1, 1});
  CHECK(f->attr_int("group", -1) == 1);
  CHECK(f->onnx_nodes == std::vector<int>{0, 1});
}

TEST_CASE("fuse_conv: Conv + residual Add + Relu (ResNet block tail)", "[passes]") {
  ConvGraph t = make_conv_graph();
  const int c1 = t.conv("/layer1/layer1.0/conv1/Conv", t.x);
  const int r1 = t.b.node("Relu", "/layer1/layer1.0/relu/Relu", {c1}, t.ys);
  const int c2 = t.conv("/layer1/layer1.0/conv2/Conv", r1, /*with_bias=*/false);
  const int add = t.b.node("Add", "/layer1/layer1.0/Add", {c2, t.x}, t.ys);
  const int out = t.b.node("Relu", "/layer1/layer1.0/relu_1/Relu", {add}, t.ys);
  t.b.output(out);
  REQUIRE(fused(passes::fuse_conv_activation(t.b.graph)) == 2);
  REQUIRE(t.b.graph.validate().ok());
  CHECK(t.b.live() == 2);
  const Node& second = t.b.graph.nodes[4];  // the fused node takes the last Relu's place
  REQUIRE(second.op == "FusedConv");
  CHECK(second.attr_int("has_residual", -1) == 1);
  CHECK(attr_s(second, "activation") == "relu");
  REQUIRE(second.inputs.size() == 4);
  CHECK(second.inputs[0] == r1);
  CHECK(second.inputs[3] == t.x);
  // A zero bias keeps the residual in slot 3.
  const TensorData* zero = passes::constant_of(t.b.graph, second.inputs[2]);
  REQUIRE(zero != nullptr);
  CHECK(testing::floats_of(*zero) == std::vector<float>(4, 0.0f));
  CHECK(second.outputs == std::vector<int>{out});
  CHECK(second.onnx_nodes == std::vector<int>{2, 3, 4});
}

TEST_CASE("fuse_conv: residual Add of two Convs fuses the later one", "[passes]") {
  ConvGraph t = make_conv_graph();
  const int main = t.conv("/layer1/layer1.0/conv3/Conv", t.x);
  const int down = t.conv("/layer1/layer1.0/downsample/downsample.0/Conv", t.x);
  const int add = t.b.node("Add", "/layer1/layer1.0/Add", {main, down}, t.ys);
  t.b.output(t.b.node("Relu", "/layer1/layer1.0/relu_2/Relu", {add}, t.ys));
  REQUIRE(fused(passes::fuse_conv_activation(t.b.graph)) == 1);
  REQUIRE(t.b.graph.validate().ok());
  CHECK(t.b.count("Conv") == 1);
  CHECK(t.b.graph.nodes[0].op == "Conv");  // the earlier one stays
  const Node* f = t.b.find("FusedConv");
  REQUIRE(f != nullptr);
  CHECK(f->name == "/layer1/layer1.0/downsample/downsample.0/FusedConv");
  CHECK(f->inputs.back() == main);
  CHECK(f->attr_int("has_residual", 0) == 1);
}

TEST_CASE("fuse_conv: residual Add without Relu", "[passes]") {
  ConvGraph t = make_conv_graph();
  const int c = t.conv("/c/Conv", t.x);
  const int add = t.b.node("Add", "/Add", {t.x, c}, t.ys);
  t.b.output(add);
  REQUIRE(fused(passes::fuse_conv_activation(t.b.graph)) == 1);
  const Node* f = t.b.find("FusedConv");
  REQUIRE(f != nullptr);
  CHECK(attr_s(*f, "activation") == "none");
  CHECK(f->inputs == std::vector<int>{t.x, t.w, t.bias, t.x});
}

TEST_CASE("fuse_conv: near misses are left unchanged", "[passes]") {
  ConvGraph t = make_conv_graph();
  SECTION("conv output has a second reader") {
    const int c = t.conv("/c/Conv", t.x);
    t.b.output(t.b.node("Relu", "/r/Relu", {c}, t.ys));
    t.b.output(t.b.node("Sigmoid", "/s/Sigmoid", {c}, t.ys));
  }
  SECTION("conv output is a graph output") {
    const int c = t.conv("/c/Conv", t.x);
    t.b.output(t.b.node("Relu", "/r/Relu", {c}, t.ys));
    t.b.output(c);
  }
  SECTION("Add of a constant is not a residual") {
    const int c = t.conv("/c/Conv", t.x);
    const int k = t.b.weight("k", {1, 4, 3, 3}, ramp(36));
    t.b.output(t.b.node("Add", "/a/Add", {c, k}, t.ys));
  }
  SECTION("Add that broadcasts is not a residual") {
    const int c = t.conv("/c/Conv", t.x);
    const int small = t.b.input("small", {1, 4, 1, 1});
    t.b.output(t.b.node("Add", "/a/Add", {c, small}, t.ys));
  }
  SECTION("Add output read twice keeps the Add (and so the Relu)") {
    const int c = t.conv("/c/Conv", t.x);
    const int a = t.b.node("Add", "/a/Add", {c, t.x}, t.ys);
    t.b.output(t.b.node("Relu", "/r/Relu", {a}, t.ys));
    t.b.output(a);
    // Conv + Add still fuse; the Relu does not.
    REQUIRE(fused(passes::fuse_conv_activation(t.b.graph)) == 1);
    CHECK(t.b.count("Relu") == 1);
    CHECK(attr_s(*t.b.find("FusedConv"), "activation") == "none");
    return;
  }
  SECTION("auto_pad convolutions are not fused") {
    const int c = t.b.node("Conv", "/c/Conv", {t.x, t.w}, t.ys, {{"auto_pad", str("SAME_UPPER")}});
    t.b.output(t.b.node("Relu", "/r/Relu", {c}, t.ys));
  }
  SECTION("Sigmoid is not fused") {
    const int c = t.conv("/c/Conv", t.x);
    t.b.output(t.b.node("Sigmoid", "/s/Sigmoid", {c}, t.ys));
  }
  const int before = t.b.live();
  CHECK(fused(passes::fuse_conv_activation(t.b.graph)) == 0);
  CHECK(t.b.live() == before);
  CHECK(t.b.count("FusedConv") == 0);
}

// ---------------------------------------------------------------------------------------------
// Pipeline

// conv -> bn -> relu -> (matmul + bias) -> gelu: every inference pass has work. The linear
// layer is nn.Linear as PyTorch exports it for training, MatMul(x, Transpose(W [N, K])):
// inference folds the Transpose of the constant, training fuses it (fuse_matmul_transpose).
Builder make_mixed_graph() {
  Builder b;
  const int x = b.input("x", {1, 2, 1, 1});
  const int w = b.weight("conv.weight", {2, 2, 1, 1}, ramp(4));
  const int c = b.node("Conv", "/conv/Conv", {x, w}, {1, 2, 1, 1});
  const int p = b.weight("bn.p", {2}, {1.0f, 1.0f});
  const int bn =
      b.node("BatchNormalization", "/bn/BatchNormalization", {c, p, p, p, p}, {1, 2, 1, 1});
  const int r = b.node("Relu", "/relu/Relu", {bn}, {1, 2, 1, 1});
  const int shape = b.constant("shape", testing::int64_tensor({2}, {1, 2}), false);
  const int flat = b.node("Reshape", "/Reshape", {r, shape}, {1, 2});
  const int fw = b.node("Transpose", "/fc/Transpose", {b.weight("fc.weight", {3, 2}, ramp(6))},
                        {2, 3}, {{"perm", ints({1, 0})}});
  const int mm = b.node("MatMul", "/fc/MatMul", {flat, fw}, {1, 3});
  const int fc = b.node("Add", "/fc/Add", {mm, b.weight("fc.bias", {3}, ramp(3))}, {1, 3});
  const int u = b.node("Div", "/act/Div", {fc, b.scalar("s2", 1.4142135f)}, {1, 3});
  const int e = b.node("Erf", "/act/Erf", {u}, {1, 3});
  const int q = b.node("Add", "/act/Add", {e, b.scalar("one", 1.0f)}, {1, 3});
  const int m = b.node("Mul", "/act/Mul", {fc, q}, {1, 3});
  const int g = b.node("Mul", "/act/Mul_1", {m, b.scalar("half", 0.5f)}, {1, 3});
  // Attention's form: + a mask of -0 (nothing), matmul, * a scale.
  const int masked =
      b.node("Add", "/attn/Add", {g, b.weight("mask", {1, 3}, {-0.0f, -0.0f, -0.0f})}, {1, 3});
  const int scores =
      b.node("MatMul", "/attn/MatMul", {masked, b.weight("k", {3, 3}, ramp(9))}, {1, 3});
  b.output(b.node("Mul", "/attn/Mul", {scores, b.scalar("scale", 0.125f)}, {1, 3}));
  return b;
}

TEST_CASE("run_passes: inference runs every pass and reports counts", "[passes]") {
  Builder b = make_mixed_graph();
  Result<PipelineReport> report = run_passes(b.graph, Mode::kInference);
  REQUIRE(report.ok());
  REQUIRE(b.graph.validate().ok());
  const std::vector<std::string> names = report->pass_names();
  REQUIRE(names == std::vector<std::string>{
                       "remove_identity_and_dropout", "fold_constants", "fold_batchnorm",
                       "fuse_conv", "fuse_matmul_bias", "fuse_head_projections", "fuse_layernorm",
                       "fuse_add_layernorm", "fuse_gelu", "remove_zero_add", "fuse_matmul_scale",
                       "fuse_add_softmax", "fuse_attention", "fuse_attention_softmax",
                       "eliminate_dead_code"});
  // fold_constants: the weight's Transpose, whose result is a constant here.
  const std::vector<int> expected = {0, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0};
  for (size_t i = 0; i < expected.size(); ++i) {
    INFO(names[i]);
    CHECK(report->passes[i].changes == expected[i]);
  }
  CHECK(report->nodes_before == 15);
  CHECK(report->nodes_after == 5);
  // compact() ran: no dead nodes, the ops in order.
  std::vector<std::string> ops;
  for (const Node& node : b.graph.nodes) ops.push_back(node.op);
  CHECK(ops ==
        std::vector<std::string>{"FusedConv", "Reshape", "MatMulBias", "Gelu", "MatMulScale"});
  CHECK(report->summary().find("fold_batchnorm=1") != std::string::npos);
}

TEST_CASE("run_passes: training keeps the unfused form but for GELU, W^T and the scale",
          "[passes]") {
  Builder b = make_mixed_graph();
  Result<PipelineReport> report = run_passes(b.graph, Mode::kTraining);
  REQUIRE(report.ok());
  REQUIRE(report->pass_names() ==
          std::vector<std::string>{"remove_identity_and_dropout", "fold_constants",
                                   "untie_parameters", "fuse_gelu", "fuse_matmul_transpose",
                                   "fuse_linear_bias", "fuse_head_projections", "fuse_matmul_scale",
                                   "remove_zero_add", "fuse_add_softmax", "fuse_attention",
                                   "eliminate_dead_code"});
  // 15 with GELU's five nodes one Gelu, the Transpose, its MatMul and the bias Add one
  // MatMulTransB, the attention's MatMul and its Mul by a scalar one MatMulScale.
  CHECK(report->nodes_before == 15);
  CHECK(report->nodes_after == 8);
  CHECK(b.count("BatchNormalization") == 1);
  CHECK(b.count("MatMulScale") == 1);
  CHECK(b.count("Conv") == 1);
  CHECK(b.count("FusedConv") == 0);
  CHECK(b.count("Gelu") == 1);  // parameter-free: its backward is one pass, weights untouched
  CHECK(b.count("Erf") == 0);
  const Node* conv = b.find("Conv");
  REQUIRE(conv != nullptr);
  CHECK(b.graph.values[conv->inputs[1]].name == "conv.weight");
  // The linear layer reads its weight as stored: same name, [N, K], trainable.
  CHECK(b.count("Transpose") == 0);
  CHECK(b.count("MatMul") == 0);  // attention's is MatMulScale (its B is not transposed)
  const Node* linear = b.find("MatMulTransB");
  REQUIRE(linear != nullptr);
  CHECK(linear->name == "/fc/MatMulTransB");
  const Value& fc_weight = b.graph.values[linear->inputs[1]];
  CHECK(fc_weight.name == "fc.weight");
  CHECK(fc_weight.shape == Shape{3, 2});
  CHECK(is_parameter(fc_weight));
  REQUIRE(linear->inputs.size() == 3);  // and its bias, as stored
  CHECK(b.graph.values[linear->inputs[2]].name == "fc.bias");
  CHECK(is_parameter(b.graph.values[linear->inputs[2]]));
  CHECK(report->summary().find("fuse_gelu=1 fuse_matmul_transpose=1 fuse_linear_bias=1 "
                               "fuse_head_projections=0 fuse_matmul_scale=1") != std::string::npos);
}

// psimport --skip-passes: a skipped fusion neither runs nor is recorded; only fusions may be.
TEST_CASE("run_passes: skipping fusion passes", "[passes]") {
  Builder b = make_mixed_graph();
  Result<PipelineReport> report = run_passes(b.graph, Mode::kTraining, {"fuse_matmul_transpose"});
  REQUIRE(report.ok());
  CHECK(report->pass_names() ==
        std::vector<std::string>{"remove_identity_and_dropout", "fold_constants",
                                 "untie_parameters", "fuse_gelu", "fuse_linear_bias",
                                 "fuse_head_projections", "fuse_matmul_scale", "remove_zero_add",
                                 "fuse_add_softmax", "fuse_attention", "eliminate_dead_code"});
  CHECK(b.count("MatMulTransB") == 0);
  CHECK(b.count("Transpose") == 1);
  CHECK(b.count("Gelu") == 1);
  CHECK(skippable_passes(Mode::kTraining) ==
        std::vector<std::string>{"fuse_gelu", "fuse_matmul_transpose", "fuse_linear_bias",
                                 "fuse_head_projections", "fuse_matmul_scale", "remove_zero_add",
                                 "fuse_add_softmax", "fuse_attention"});
  CHECK(skippable_passes(Mode::kInference).size() == 12);
  CHECK(skippable_passes(Mode::kInference).back() == "fuse_attention_softmax");
  Builder c = make_mixed_graph();
  Result<PipelineReport> inference = run_passes(c.graph, Mode::kInference, {"fuse_gelu"});
  REQUIRE(inference.ok());
  CHECK(c.count("Gelu") == 0);
  CHECK(c.count("Erf") == 1);
  for (const char* name : {"untie_parameters", "fold_constants", "fuse_conv", "nonsense"}) {
    INFO(name);
    Builder d = make_mixed_graph();
    Result<PipelineReport> bad = run_passes(d.graph, Mode::kTraining, {name});
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.status().code() == Code::kInvalidArgument);
    CHECK(bad.status().message().find("training imports may skip (fuse_gelu, "
                                      "fuse_matmul_transpose, fuse_linear_bias, "
                                      "fuse_head_projections, fuse_matmul_scale, "
                                      "remove_zero_add, fuse_add_softmax, fuse_attention)") !=
          std::string::npos);
  }
  // Inference names its own fusions, fuse_attention_softmax last; training does not run it.
  for (const char* name : {"untie_parameters", "fuse_matmul_transpose", "eliminate_dead_code"}) {
    INFO(name);
    Builder d = make_mixed_graph();
    Result<PipelineReport> bad = run_passes(d.graph, Mode::kInference, {name});
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.status().code() == Code::kInvalidArgument);
    CHECK(bad.status().message().find(
              "inference imports may skip (fold_batchnorm, fuse_conv, fuse_matmul_bias, "
              "fuse_head_projections, fuse_layernorm, fuse_add_layernorm, fuse_gelu, "
              "remove_zero_add, fuse_matmul_scale, fuse_add_softmax, fuse_attention, "
              "fuse_attention_softmax)") != std::string::npos);
  }
  Builder e = make_mixed_graph();
  REQUIRE_FALSE(run_passes(e.graph, Mode::kTraining, {"fuse_attention_softmax"}).ok());
}

// What PyTorch's exporter does to a fresh model in eval mode: equal-valued initializers merged,
// so one tensor of ones is the scale of one BatchNormalization and the running variance of the
// next, one of zeros their biases and running means. Training gives every use its own copy
// (same bytes, its own name); inference leaves the sharing alone.
TEST_CASE("run_passes: training unties parameters the exporter merged", "[passes]") {
  for (Mode mode : {Mode::kInference, Mode::kTraining}) {
    INFO(mode_name(mode));
    Builder b;
    const int x = b.input("x", {2, 3, 4, 4});
    const int ones = b.weight("bn1.weight", {3}, {1, 1, 1});
    const int zeros = b.weight("bn1.bias", {3}, {0, 0, 0});
    const int h = b.node("BatchNormalization", "bn1", {x, ones, zeros, zeros, ones}, {2, 3, 4, 4});
    const int y = b.node("BatchNormalization", "bn2", {h, ones, zeros, zeros, ones}, {2, 3, 4, 4});
    b.output(y);
    Result<PipelineReport> report = run_passes(b.graph, mode);
    REQUIRE(report.ok());
    const Node* bn1 = b.find("BatchNormalization");
    REQUIRE(bn1 != nullptr);
    std::set<int> distinct;
    int uses = 0;
    for (const Node& node : b.graph.nodes) {
      for (size_t i = 1; i < node.inputs.size(); ++i) {
        distinct.insert(node.inputs[i]);
        ++uses;
        const Value& v = b.graph.values[node.inputs[i]];
        REQUIRE(v.constant != nullptr);
        CHECK(v.is_weight);
        // Each copy holds the original's values.
        const float want = (i == 1 || i == 4) ? 1.0f : 0.0f;
        for (float f : v.constant->as<float>()) CHECK(f == want);
      }
    }
    CHECK(uses == 8);
    if (mode == Mode::kTraining) {
      CHECK(distinct.size() == 8);
      const std::vector<std::string> names = report->pass_names();
      CHECK(std::find(names.begin(), names.end(), "untie_parameters") != names.end());
      CHECK(report->summary().find("untie_parameters=6") != std::string::npos);
      CHECK(b.graph.values[bn1->inputs[1]].name == "bn1.weight");
      CHECK(b.graph.values[bn1->inputs[4]].name == "bn1.weight@bn1");
      CHECK(b.graph.find_value("bn1.bias@bn2#2") >= 0);  // the second copy for one node
    } else {
      CHECK(distinct.size() == 2);
    }
  }
}

TEST_CASE("run_passes: training never folds a parameter into a constant", "[passes]") {
  for (Mode mode : {Mode::kInference, Mode::kTraining}) {
    Builder b;
    const int x = b.input("x", {3, 4});
    const int table = b.weight("position_embeddings.weight", {10, 4}, ramp(40));
    const int ids = b.constant("position_ids", testing::int64_tensor({3}, {0, 1, 2}), false);
    const int rows = b.node("Gather", "/embeddings/position_embeddings/Gather", {table, ids},
                            {3, 4}, {{"axis", i64(0)}});
    b.output(b.node("Add", "/embeddings/Add", {x, rows}, {3, 4}));
    Result<PipelineReport> report = run_passes(b.graph, mode);
    REQUIRE(report.ok());
    INFO(mode_name(mode));
    CHECK(b.count("Gather") == (mode == Mode::kTraining ? 1 : 0));
    CHECK((b.graph.find_value("position_embeddings.weight") >= 0) == (mode == Mode::kTraining));
    // The parameter is a constant again after the pass (only hidden while folding ran).
    if (mode == Mode::kTraining) {
      CHECK(b.graph.values[b.graph.find_value("position_embeddings.weight")].constant != nullptr);
    }
  }
}

TEST_CASE("fused_node_name keeps the scope and the exporter's suffix", "[passes]") {
  CHECK(passes::fused_node_name("/layer1/layer1.0/conv1/Conv", "FusedConv") ==
        "/layer1/layer1.0/conv1/FusedConv");
  CHECK(passes::fused_node_name("/fc/MatMul_3", "MatMulBias") == "/fc/MatMulBias_3");
  CHECK(passes::fused_node_name("Conv_0", "FusedConv") == "FusedConv_0");
  CHECK(passes::fused_node_name("myconv", "FusedConv") == "myconv_FusedConv");
  CHECK(passes::fused_node_name("", "Gelu") == "Gelu");
}

}  // namespace
}  // namespace ps::onnx_loader
