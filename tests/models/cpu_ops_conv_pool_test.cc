// test_cpu_ops: convolution (Conv, FusedConv) and pooling, on hand-computed cases and against
// a naive convolution written out loop by loop.
#include <cmath>

#include "tests/models/cpu_ops_test_util.h"

namespace ps::models::cpu::test {
namespace {

// X = [[1,2,3],[4,5,6],[7,8,9]] as [1,1,3,3].
Tensor x3x3() { return floats({1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9}); }

TEST_CASE("FusedConv adds bias and residual, then applies ReLU", "[cpu_ops][conv]") {
  Tensor x = x3x3();
  // Channel 0: X[i,j] + X[i+1,j+1]; channel 1: X[i,j+1] - X[i+1,j].
  Tensor w = floats({2, 1, 2, 2}, {1, 0, 0, 1, 0, 1, -1, 0});
  Tensor b = floats({2}, {0.5f, 3});
  Tensor residual = floats({1, 2, 2, 2}, {1, -10, 0, 0, 0, -2, 5, 0});
  // conv + B: ch0 = [6.5, 8.5, 12.5, 14.5]; ch1 = [1, 1, 1, 1].
  SECTION("relu with residual") {
    Tensor y = zeros(DType::kFloat32, {1, 2, 2, 2});
    REQUIRE(run("FusedConv", attrs({attr_s("activation", "relu"), attr_i("has_residual", 1)}),
                {&x, &w, &b, &residual}, {&y})
                .ok());
    CHECK_THAT(values<float>(y), approx({7.5f, 0, 12.5f, 14.5f, 1, 0, 6, 1}));
  }
  SECTION("no activation keeps negatives") {
    Tensor y = zeros(DType::kFloat32, {1, 2, 2, 2});
    REQUIRE(run("FusedConv", attrs({attr_s("activation", "none"), attr_i("has_residual", 1)}),
                {&x, &w, &b, &residual}, {&y})
                .ok());
    CHECK_THAT(values<float>(y), approx({7.5f, -1.5f, 12.5f, 14.5f, 1, -1, 6, 1}));
  }
  SECTION("relu without residual or bias") {
    Tensor y = zeros(DType::kFloat32, {1, 2, 2, 2});
    REQUIRE(run("FusedConv", attrs({attr_s("activation", "relu")}), {&x, &w}, {&y}).ok());
    CHECK_THAT(values<float>(y), approx({6, 8, 12, 14, 0, 0, 0, 0}));
  }
  SECTION("has_residual and the residual input must agree") {
    Tensor y = zeros(DType::kFloat32, {1, 2, 2, 2});
    Status s = run("FusedConv", attrs({attr_i("has_residual", 1)}), {&x, &w, &b}, {&y});
    CHECK(s.code() == Code::kInvalidArgument);
    CHECK_THAT(s.message(), Catch::Contains("FusedConv") && Catch::Contains("residual"));
    CHECK_FALSE(run("FusedConv", attrs(), {&x, &w, &b, &residual}, {&y}).ok());
    Tensor small = floats({1, 2, 1, 1}, {0, 0});
    CHECK_THAT(
        run("FusedConv", attrs({attr_i("has_residual", 1)}), {&x, &w, &b, &small}, {&y}).message(),
        Catch::Contains("residual float32[1,2,1,1] must have the output shape"));
    CHECK(run("FusedConv", attrs({attr_s("activation", "sigmoid")}), {&x, &w}, {&y}).code() ==
          Code::kUnsupported);
  }
}

TEST_CASE("Conv with padding and stride 2", "[cpu_ops][conv]") {
  Tensor x = x3x3();
  Tensor w = floats({1, 1, 3, 3}, std::vector<float>(9, 1.0f));
  Tensor y = zeros(DType::kFloat32, {1, 1, 2, 2});
  REQUIRE(run("Conv", attrs({attr_ints("pads", {1, 1, 1, 1}), attr_ints("strides", {2, 2})}),
              {&x, &w}, {&y})
              .ok());
  CHECK_THAT(values<float>(y), approx({12, 16, 24, 28}));
}

TEST_CASE("Conv with dilations", "[cpu_ops][conv]") {
  std::vector<float> v(16);
  for (int i = 0; i < 16; ++i) v[i] = static_cast<float>(i);
  Tensor x = floats({1, 1, 4, 4}, v);
  Tensor w = floats({1, 1, 2, 2}, {1, 1, 1, 1});
  Tensor y = zeros(DType::kFloat32, {1, 1, 2, 2});
  REQUIRE(run("Conv", attrs({attr_ints("dilations", {2, 2})}), {&x, &w}, {&y}).ok());
  CHECK_THAT(values<float>(y), approx({20, 24, 36, 40}));
}

TEST_CASE("grouped Conv maps output channels to their group", "[cpu_ops][conv]") {
  Tensor x = floats({1, 2, 2, 2}, {1, 2, 3, 4, 10, 20, 30, 40});
  SECTION("depthwise") {
    Tensor w = floats({2, 1, 1, 1}, {2, -1});
    Tensor y = zeros(DType::kFloat32, {1, 2, 2, 2});
    REQUIRE(run("Conv", attrs({attr_i("group", 2)}), {&x, &w}, {&y}).ok());
    CHECK_THAT(values<float>(y), approx({2, 4, 6, 8, -10, -20, -30, -40}));
  }
  SECTION("two output channels per group") {
    Tensor w = floats({4, 1, 1, 1}, {1, 2, 3, 4});
    Tensor b = floats({4}, {0, 0, 0, 1});
    Tensor y = zeros(DType::kFloat32, {1, 4, 2, 2});
    REQUIRE(run("Conv", attrs({attr_i("group", 2)}), {&x, &w, &b}, {&y}).ok());
    CHECK_THAT(values<float>(y),
               approx({1, 2, 3, 4, 2, 4, 6, 8, 30, 60, 90, 120, 41, 81, 121, 161}));
  }
  SECTION("channels that do not divide by the group are an error") {
    Tensor w = floats({3, 1, 1, 1}, {1, 2, 3});
    Tensor y = zeros(DType::kFloat32, {1, 3, 2, 2});
    Status s = run("Conv", attrs({attr_i("group", 2)}), {&x, &w}, {&y});
    CHECK(s.code() == Code::kInvalidArgument);
    CHECK_THAT(s.message(), Catch::Contains("Conv: group=2"));
  }
}

TEST_CASE("1-D Conv with SAME_UPPER and SAME_LOWER padding", "[cpu_ops][conv]") {
  Tensor x = floats({1, 1, 4}, {1, 2, 3, 4});
  Tensor w = floats({1, 1, 2}, {1, 10});
  Tensor y = zeros(DType::kFloat32, {1, 1, 4});
  REQUIRE(run("Conv", attrs({attr_s("auto_pad", "SAME_UPPER")}), {&x, &w}, {&y}).ok());
  CHECK_THAT(values<float>(y), approx({21, 32, 43, 4}));
  REQUIRE(run("Conv", attrs({attr_s("auto_pad", "SAME_LOWER")}), {&x, &w}, {&y}).ok());
  CHECK_THAT(values<float>(y), approx({10, 21, 32, 43}));
}

TEST_CASE("Conv refuses shapes that do not fit, naming them", "[cpu_ops][conv]") {
  Tensor x = x3x3();
  Tensor w = floats({1, 2, 2, 2}, std::vector<float>(8, 1.0f));
  Tensor y = zeros(DType::kFloat32, {1, 1, 2, 2});
  CHECK_THAT(run("Conv", attrs(), {&x, &w}, {&y}).message(),
             Catch::Contains("X float32[1,1,3,3]") && Catch::Contains("W float32[1,2,2,2]"));
  Tensor w1 = floats({1, 1, 2, 2}, {1, 1, 1, 1});
  Tensor wrong = zeros(DType::kFloat32, {1, 1, 3, 3});
  CHECK_THAT(run("Conv", attrs(), {&x, &w1}, {&wrong}).message(),
             Catch::Contains("expected float32[1,1,2,2]"));
  Tensor flat = floats({9}, std::vector<float>(9, 1.0f));
  CHECK(run("Conv", attrs(), {&flat, &w1}, {&y}).code() == Code::kUnsupported);
  Tensor big = floats({1, 1, 4, 4}, std::vector<float>(16, 1.0f));
  CHECK_THAT(run("Conv", attrs(), {&x, &big}, {&y}).message(),
             Catch::Contains("exceeds the padded input"));
  CHECK_THAT(run("Conv", attrs({attr_ints("kernel_shape", {3, 3})}), {&x, &w1}, {&y}).message(),
             Catch::Contains("kernel_shape"));
  CHECK_THAT(run("Conv", attrs({attr_ints("strides", {1})}), {&x, &w1}, {&y}).message(),
             Catch::Contains("'strides' has 1 values, expected 2"));
  Tensor b = floats({2}, {0, 0});
  CHECK_THAT(run("Conv", attrs(), {&x, &w1, &b}, {&y}).message(), Catch::Contains("B float32[2]"));
}

// Deterministic pseudo-random values in [-1, 1).
std::vector<float> noise(size_t n, uint32_t seed) {
  std::vector<float> v(n);
  for (float& x : v) {
    seed = seed * 1664525u + 1013904223u;
    x = static_cast<float>(seed >> 8) / static_cast<float>(1u << 23) - 1.0f;
  }
  return v;
}

TEST_CASE("Conv agrees with a naive loop over strides, pads, dilations and groups",
          "[cpu_ops][conv]") {
  struct Config {
    int64_t n, c, m, group, h, w, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr;
  };
  const Config configs[] = {
      {2, 3, 4, 1, 7, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
      {1, 4, 6, 2, 9, 8, 3, 2, 2, 3, 1, 2, 0, 2, 1, 0},
      {1, 6, 6, 6, 5, 7, 3, 3, 2, 1, 2, 1, 2, 1, 2, 1},
      {1, 2, 3, 1, 4, 11, 1, 5, 1, 2, 1, 2, 0, 3, 0, 4},
  };
  uint32_t seed = 1;
  for (const Config& k : configs) {
    const int64_t oh = (k.h + k.pt + k.pb - ((k.kh - 1) * k.dh + 1)) / k.sh + 1;
    const int64_t ow = (k.w + k.pl + k.pr - ((k.kw - 1) * k.dw + 1)) / k.sw + 1;
    const int64_t cg = k.c / k.group, mg = k.m / k.group;
    const std::vector<float> xv = noise(static_cast<size_t>(k.n * k.c * k.h * k.w), seed++);
    const std::vector<float> wv = noise(static_cast<size_t>(k.m * cg * k.kh * k.kw), seed++);
    const std::vector<float> bv = noise(static_cast<size_t>(k.m), seed++);
    std::vector<float> expected;
    for (int64_t n = 0; n < k.n; ++n)
      for (int64_t m = 0; m < k.m; ++m)
        for (int64_t i = 0; i < oh; ++i)
          for (int64_t j = 0; j < ow; ++j) {
            double s = bv[m];
            for (int64_t c = 0; c < cg; ++c)
              for (int64_t a = 0; a < k.kh; ++a)
                for (int64_t b = 0; b < k.kw; ++b) {
                  const int64_t y = i * k.sh - k.pt + a * k.dh;
                  const int64_t x = j * k.sw - k.pl + b * k.dw;
                  if (y < 0 || y >= k.h || x < 0 || x >= k.w) continue;
                  const int64_t ic = (m / mg) * cg + c;
                  s += static_cast<double>(xv[((n * k.c + ic) * k.h + y) * k.w + x]) *
                       wv[((m * cg + c) * k.kh + a) * k.kw + b];
                }
            expected.push_back(static_cast<float>(s));
          }
    Tensor x = floats({k.n, k.c, k.h, k.w}, xv);
    Tensor w = floats({k.m, cg, k.kh, k.kw}, wv);
    Tensor b = floats({k.m}, bv);
    Tensor y = zeros(DType::kFloat32, {k.n, k.m, oh, ow});
    const Status s = run(
        "Conv",
        attrs({attr_i("group", k.group), attr_ints("strides", {k.sh, k.sw}),
               attr_ints("dilations", {k.dh, k.dw}), attr_ints("pads", {k.pt, k.pl, k.pb, k.pr})}),
        {&x, &w, &b}, {&y});
    INFO(s.to_string());
    REQUIRE(s.ok());
    CHECK_THAT(values<float>(y), approx(expected, 1e-6));
  }
}

// 0..15 as [1,1,4,4].
Tensor x4x4() {
  std::vector<float> v(16);
  for (int i = 0; i < 16; ++i) v[i] = static_cast<float>(i);
  return floats({1, 1, 4, 4}, v);
}

TEST_CASE("MaxPool and AveragePool in ceil mode clip the last window", "[cpu_ops][pool]") {
  Tensor x = x4x4();
  const Attributes ceil = attrs(
      {attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {2, 2}), attr_i("ceil_mode", 1)});
  Tensor y = zeros(DType::kFloat32, {1, 1, 2, 2});
  REQUIRE(run("MaxPool", ceil, {&x}, {&y}).ok());
  CHECK_THAT(values<float>(y), approx({10, 11, 14, 15}));
  REQUIRE(run("AveragePool", ceil, {&x}, {&y}).ok());
  CHECK_THAT(values<float>(y), approx({5, 6.5f, 11, 12.5f}));
  Tensor floor_y = zeros(DType::kFloat32, {1, 1, 1, 1});
  REQUIRE(run("MaxPool", attrs({attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {2, 2})}),
              {&x}, {&floor_y})
              .ok());
  CHECK(values<float>(floor_y) == std::vector<float>{10});
}

TEST_CASE("AveragePool count_include_pad counts padding in the divisor", "[cpu_ops][pool]") {
  Tensor x = floats({1, 1, 2, 2}, {1, 2, 3, 4});
  Tensor y = zeros(DType::kFloat32, {1, 1, 3, 3});
  const auto pool = [&](int64_t include) {
    return run("AveragePool",
               attrs({attr_ints("kernel_shape", {2, 2}), attr_ints("pads", {1, 1, 1, 1}),
                      attr_i("count_include_pad", include)}),
               {&x}, {&y});
  };
  REQUIRE(pool(1).ok());
  CHECK_THAT(values<float>(y), approx({0.25f, 0.75f, 0.5f, 1, 2.5f, 1.5f, 0.75f, 1.75f, 1}));
  REQUIRE(pool(0).ok());
  CHECK_THAT(values<float>(y), approx({1, 1.5f, 2, 2, 2.5f, 3, 3, 3.5f, 4}));
}

TEST_CASE("ceil-mode pooling accepts ONNX's and PyTorch's output length", "[cpu_ops][pool]") {
  // in 5, kernel 2, stride 2, pads 1+1: ONNX's formula gives 4 outputs, PyTorch drops the last
  // window (it starts inside the end padding) and gives 3.
  Tensor x = floats({1, 1, 5}, {1, 2, 3, 4, 5});
  const auto pool = [&](Tensor& y, int64_t include) {
    return run(
        "AveragePool",
        attrs({attr_ints("kernel_shape", {2}), attr_ints("strides", {2}), attr_ints("pads", {1, 1}),
               attr_i("ceil_mode", 1), attr_i("count_include_pad", include)}),
        {&x}, {&y});
  };
  Tensor onnx_y = zeros(DType::kFloat32, {1, 1, 4});
  REQUIRE(pool(onnx_y, 1).ok());
  CHECK_THAT(values<float>(onnx_y), approx({0.5f, 2.5f, 4.5f, 0}));
  REQUIRE(pool(onnx_y, 0).ok());
  CHECK_THAT(values<float>(onnx_y), approx({1, 2.5f, 4.5f, 0}));
  Tensor torch_y = zeros(DType::kFloat32, {1, 1, 3});
  REQUIRE(pool(torch_y, 1).ok());
  CHECK_THAT(values<float>(torch_y), approx({0.5f, 2.5f, 4.5f}));
  Tensor wrong = zeros(DType::kFloat32, {1, 1, 5});
  CHECK_THAT(pool(wrong, 1).message(), Catch::Contains("expected float32[1,1,4]"));
}

TEST_CASE("MaxPool Indices in row- and column-major order", "[cpu_ops][pool]") {
  Tensor x = floats({1, 2, 2, 3}, {1, 5, 2, 7, 3, 4, /* plane 2 */ 0, 0, 9, 0, 8, 0});
  Tensor y = zeros(DType::kFloat32, {1, 2, 1, 2});
  Tensor idx = zeros(DType::kInt64, {1, 2, 1, 2});
  REQUIRE(run("MaxPool", attrs({attr_ints("kernel_shape", {2, 2})}), {&x}, {&y, &idx}).ok());
  CHECK_THAT(values<float>(y), approx({7, 5, 8, 9}));
  CHECK(values<int64_t>(idx) == std::vector<int64_t>{3, 1, 6 + 4, 6 + 2});
  REQUIRE(run("MaxPool", attrs({attr_ints("kernel_shape", {2, 2}), attr_i("storage_order", 1)}),
              {&x}, {&y, &idx})
              .ok());
  // Column-major: index = h + H * w within the plane.
  CHECK(values<int64_t>(idx) == std::vector<int64_t>{1, 2, 6 + 3, 6 + 4});
}

TEST_CASE("MaxPool ignores padding and GlobalAveragePool averages planes", "[cpu_ops][pool]") {
  Tensor x = floats({1, 1, 2, 2}, {-1, -2, -3, -4});
  Tensor y = zeros(DType::kFloat32, {1, 1, 3, 3});
  REQUIRE(run("MaxPool",
              attrs({attr_ints("kernel_shape", {2, 2}), attr_ints("pads", {1, 1, 1, 1})}), {&x},
              {&y})
              .ok());
  CHECK_THAT(values<float>(y), approx({-1, -1, -2, -1, -1, -2, -3, -3, -4}));

  Tensor g = floats({1, 2, 2, 2}, {1, 2, 3, 4, -1, 0, 0, 5});
  Tensor gy = zeros(DType::kFloat32, {1, 2, 1, 1});
  REQUIRE(run("GlobalAveragePool", attrs(), {&g}, {&gy}).ok());
  CHECK_THAT(values<float>(gy), approx({2.5f, 1}));
  REQUIRE(run("GlobalMaxPool", attrs(), {&g}, {&gy}).ok());
  CHECK_THAT(values<float>(gy), approx({4, 5}));
  Tensor bad = zeros(DType::kFloat32, {1, 2});
  CHECK_THAT(run("GlobalAveragePool", attrs(), {&g}, {&bad}).message(),
             Catch::Contains("expected float32[1,2,1,1]"));
  CHECK_THAT(run("MaxPool", attrs(), {&x}, {&y}).message(), Catch::Contains("kernel_shape"));
}

TEST_CASE("a tiny ResNet at 32x32 runs end to end", "[cpu_ops][conv]") {
  // Stem conv 3->16, two basic blocks (FusedConv with residual), a strided block with a 1x1
  // projection, max pool, global average pool, Gemm to 10 classes. Checks shapes, that the
  // result is finite, and that a second run gives identical bits.
  uint32_t seed = 7;
  auto param = [&](Shape shape, float scale) {
    std::vector<float> v = noise(static_cast<size_t>(element_count(shape)), seed++);
    for (float& e : v) e *= scale;
    return floats(std::move(shape), v);
  };
  Tensor input = param({1, 3, 32, 32}, 1.0f);
  Tensor stem_w = param({16, 3, 3, 3}, 0.3f), stem_b = param({16}, 0.1f);
  Tensor w1 = param({16, 16, 3, 3}, 0.1f), b1 = param({16}, 0.1f);
  Tensor w2 = param({16, 16, 3, 3}, 0.1f), b2 = param({16}, 0.1f);
  Tensor w3 = param({32, 16, 3, 3}, 0.1f), b3 = param({32}, 0.1f);
  Tensor w4 = param({32, 32, 3, 3}, 0.1f), b4 = param({32}, 0.1f);
  Tensor wp = param({32, 16, 1, 1}, 0.2f), bp = param({32}, 0.1f);
  Tensor fc_w = param({10, 32}, 0.2f), fc_b = param({10}, 0.1f);

  auto forward = [&]() {
    const Attributes same = attrs({attr_ints("pads", {1, 1, 1, 1}), attr_s("activation", "relu")});
    Tensor stem = zeros(DType::kFloat32, {1, 16, 32, 32});
    REQUIRE(run("FusedConv", same, {&input, &stem_w, &stem_b}, {&stem}).ok());
    Tensor pooled = zeros(DType::kFloat32, {1, 16, 16, 16});
    REQUIRE(run("MaxPool",
                attrs({attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {2, 2}),
                       attr_ints("pads", {1, 1, 1, 1})}),
                {&stem}, {&pooled})
                .ok());
    Tensor a = zeros(DType::kFloat32, {1, 16, 16, 16});
    REQUIRE(run("FusedConv", same, {&pooled, &w1, &b1}, {&a}).ok());
    Tensor block1 = zeros(DType::kFloat32, {1, 16, 16, 16});
    REQUIRE(run("FusedConv",
                attrs({attr_ints("pads", {1, 1, 1, 1}), attr_s("activation", "relu"),
                       attr_i("has_residual", 1)}),
                {&a, &w2, &b2, &pooled}, {&block1})
                .ok());
    Tensor proj = zeros(DType::kFloat32, {1, 32, 8, 8});
    REQUIRE(run("Conv", attrs({attr_ints("strides", {2, 2})}), {&block1, &wp, &bp}, {&proj}).ok());
    Tensor c = zeros(DType::kFloat32, {1, 32, 8, 8});
    REQUIRE(run("FusedConv",
                attrs({attr_ints("pads", {1, 1, 1, 1}), attr_ints("strides", {2, 2}),
                       attr_s("activation", "relu")}),
                {&block1, &w3, &b3}, {&c})
                .ok());
    Tensor block2 = zeros(DType::kFloat32, {1, 32, 8, 8});
    REQUIRE(run("FusedConv",
                attrs({attr_ints("pads", {1, 1, 1, 1}), attr_s("activation", "relu"),
                       attr_i("has_residual", 1)}),
                {&c, &w4, &b4, &proj}, {&block2})
                .ok());
    Tensor gap = zeros(DType::kFloat32, {1, 32, 1, 1});
    REQUIRE(run("GlobalAveragePool", attrs(), {&block2}, {&gap}).ok());
    Tensor flat = zeros(DType::kFloat32, {1, 32});
    REQUIRE(run("Flatten", attrs(), {&gap}, {&flat}).ok());
    Tensor logits = zeros(DType::kFloat32, {1, 10});
    REQUIRE(run("Gemm", attrs({attr_i("transB", 1)}), {&flat, &fc_w, &fc_b}, {&logits}).ok());
    return values<float>(logits);
  };
  const std::vector<float> first = forward();
  for (float v : first) CHECK(std::isfinite(v));
  CHECK(first == forward());
}

}  // namespace
}  // namespace ps::models::cpu::test
