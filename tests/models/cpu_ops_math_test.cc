// test_cpu_ops: matrix products, activations, normalisations, broadcasting and the shape ops,
// on hand-computed cases.
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <tuple>

#include "tests/models/cpu_ops_test_util.h"

namespace ps::models::cpu::test {
namespace {

TEST_CASE("MatMulBias adds the bias over the last dimension", "[cpu_ops][gemm]") {
  Tensor a = floats({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor b = floats({3, 2}, {1, 0, 0, 1, 1, 1});
  Tensor bias = floats({2}, {0.5f, -1});
  Tensor y = zeros(DType::kFloat32, {2, 2});
  REQUIRE(run("MatMulBias", attrs(), {&a, &b, &bias}, {&y}).ok());
  CHECK_THAT(values<float>(y), approx({4.5f, 4, 10.5f, 10}));

  SECTION("batched A with a shared B") {
    Tensor a3 = floats({2, 1, 3}, {1, 2, 3, 4, 5, 6});
    Tensor y3 = zeros(DType::kFloat32, {2, 1, 2});
    REQUIRE(run("MatMulBias", attrs(), {&a3, &b, &bias}, {&y3}).ok());
    CHECK_THAT(values<float>(y3), approx({4.5f, 4, 10.5f, 10}));
  }
  SECTION("a bias of the wrong length is an error") {
    Tensor bad = floats({3}, {0, 0, 0});
    Status s = run("MatMulBias", attrs(), {&a, &b, &bad}, {&y});
    CHECK(s.code() == Code::kInvalidArgument);
    CHECK_THAT(s.message(), Catch::Contains("MatMulBias: bias float32[3]"));
    CHECK_FALSE(run("MatMulBias", attrs(), {&a, &b}, {&y}).ok());
  }
}

TEST_CASE("MatMulScale multiplies the product by alpha", "[cpu_ops][gemm]") {
  Tensor a = floats({1, 2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor b = floats({3, 2}, {1, 0, 0, 1, 1, 1});
  Tensor y = zeros(DType::kFloat32, {1, 2, 2});
  REQUIRE(run("MatMulScale", attrs({attr_f("alpha", -0.5f)}), {&a, &b}, {&y}).ok());
  CHECK_THAT(values<float>(y), approx({-2, -2.5f, -5, -5.5f}));
  // alpha defaults to 1; a bias input or another attribute is an error.
  REQUIRE(run("MatMulScale", attrs(), {&a, &b}, {&y}).ok());
  CHECK_THAT(values<float>(y), approx({4, 5, 10, 11}));
  Tensor bias = floats({2}, {0, 0});
  CHECK_FALSE(run("MatMulScale", attrs({attr_f("alpha", 2)}), {&a, &b, &bias}, {&y}).ok());
  const Status beta = run("MatMulScale", attrs({attr_f("beta", 2)}), {&a, &b}, {&y});
  CHECK_FALSE(beta.ok());
  CHECK_THAT(beta.message(), Catch::Contains("beta"));
}

// B^T of a 2-D [N, K] tensor, as a new [K, N] tensor of the same dtype.
template <typename T>
Tensor transposed(const Tensor& b) {
  const int64_t n = b.dim(0), k = b.dim(1);
  Tensor t = zeros(b.dtype(), {k, n});
  for (int64_t j = 0; j < n; ++j)
    for (int64_t p = 0; p < k; ++p) t.mutable_data<T>()[p * n + j] = b.data<T>()[j * k + p];
  return t;
}

TEST_CASE("MatMulTransB is MatMul of the transposed 2-D B", "[cpu_ops][gemm]") {
  // Irregular values, so that a B read in the wrong layout gives other products.
  std::vector<float> bv(20);
  for (size_t i = 0; i < bv.size(); ++i) bv[i] = std::sin(1.0f + 0.7f * static_cast<float>(i));
  const Tensor b = floats({5, 4}, bv);  // [N, K]
  const Tensor bt = transposed<float>(b);
  for (const Shape& a_shape : {Shape{2, 3, 4}, Shape{3, 4}, Shape{4}, Shape{2, 1, 3, 4}}) {
    INFO("A " << shape_string(a_shape));
    const int64_t count = element_count(a_shape);
    std::vector<float> av(static_cast<size_t>(count));
    for (size_t i = 0; i < av.size(); ++i) av[i] = std::cos(0.3f * static_cast<float>(i)) - 0.2f;
    const Tensor a = floats(a_shape, av);
    Shape y_shape(a_shape.begin(), a_shape.end() - 1);
    y_shape.push_back(5);
    Tensor y = zeros(DType::kFloat32, y_shape);
    Tensor expected = zeros(DType::kFloat32, y_shape);
    REQUIRE(run("MatMulTransB", attrs(), {&a, &b}, {&y}).ok());
    REQUIRE(run("MatMul", attrs(), {&a, &bt}, {&expected}).ok());
    // The same products summed in the same order (in double): equal to the bit.
    CHECK(values<float>(y) == values<float>(expected));
  }
  SECTION("float64, as the trainer runs it") {
    const Tensor a = make<double>({2, 4}, {1, -2, 0.5, 3, 0.25, 1, -1, 2});
    const Tensor b64 = make<double>({3, 4}, {1, 0, 2, -1, 0.5, 1, 0, 0, -3, 2, 1, 1});
    Tensor y = zeros(DType::kFloat64, {2, 3});
    REQUIRE(run("MatMulTransB", attrs(), {&a, &b64}, {&y}).ok());
    CHECK(values<double>(y) == std::vector<double>{-1, -1.5, -3.5, -3.75, 1.125, 2.25});
  }
  SECTION("refusals name the shapes") {
    const Tensor a = floats({2, 4}, std::vector<float>(8, 1));
    Tensor y = zeros(DType::kFloat32, {2, 5});
    const Tensor b3 = floats({1, 5, 4}, bv);
    Status s = run("MatMulTransB", attrs(), {&a, &b3}, {&y});
    CHECK(s.code() == Code::kInvalidArgument);
    CHECK_THAT(s.message(),
               Catch::Contains("MatMulTransB: B must be 2-D [N, K], got float32[1,5,4]"));
    const Tensor b1 = floats({4}, {1, 2, 3, 4});
    CHECK_THAT(run("MatMulTransB", attrs(), {&a, &b1}, {&y}).message(),
               Catch::Contains("B must be 2-D"));
    // K mismatch: [5, 4] read transposed is [4, 5]; A's K is 5 here.
    const Tensor a5 = floats({2, 5}, std::vector<float>(10, 1));
    s = run("MatMulTransB", attrs(), {&a5, &b}, {&y});
    CHECK(s.code() == Code::kInvalidArgument);
    CHECK_THAT(s.message(), Catch::Contains("inner dimensions differ: float32[2,5] x "
                                            "float32[5,4] (transposed)"));
    // [4, 5] is what MatMul would take; MatMulTransB reads it as N = 4, K = 5.
    CHECK_FALSE(run("MatMulTransB", attrs(), {&a, &bt}, {&y}).ok());
    const Status alpha = run("MatMulTransB", attrs({attr_f("alpha", 2)}), {&a, &b}, {&y});
    CHECK(alpha.code() == Code::kUnsupported);
    CHECK_THAT(alpha.message(), Catch::Contains("'alpha'"));
    const Status trans = run("MatMulTransB", attrs({attr_i("transB", 1)}), {&a, &b}, {&y});
    CHECK_FALSE(trans.ok());
    // A bias must have N = 5 elements (the linear layer's, fuse_linear_bias), K = 4 is not it.
    Tensor bias4 = floats({4}, {0, 0, 0, 0});
    CHECK_THAT(run("MatMulTransB", attrs(), {&a, &b, &bias4}, {&y}).message(),
               Catch::Contains("must have shape [5]"));
    Tensor bias = floats({5}, {1, -2, 3, 0.5f, 0});
    Tensor yb = zeros(DType::kFloat32, {2, 5});
    REQUIRE(run("MatMulTransB", attrs(), {&a, &b, &bias}, {&yb}).ok());
    Tensor plain = zeros(DType::kFloat32, {2, 5});
    REQUIRE(run("MatMulTransB", attrs(), {&a, &b}, {&plain}).ok());
    for (int64_t i = 0; i < 10; ++i) {
      // The sum is rounded once (accumulated in double): within an ulp of the two roundings.
      CHECK(yb.data<float>()[i] ==
            Approx(plain.data<float>()[i] + bias.data<float>()[i % 5]).epsilon(1e-6));
    }
    // The output shape is checked: [2, 4] would be MatMul(A, B) of a square B.
    Tensor wrong_y = zeros(DType::kFloat32, {2, 4});
    CHECK_FALSE(run("MatMulTransB", attrs(), {&a, &b}, {&wrong_y}).ok());
  }
}

TEST_CASE("MatMul broadcasts batch dimensions and promotes 1-D operands", "[cpu_ops][gemm]") {
  // A [2,1,2,2] (two matrices), B [3,2,2] (three): 6 products.
  std::vector<float> av = {1, 2, 3, 4, -1, 0, 0, 1};
  std::vector<float> bv = {1, 0, 0, 1, 0, 1, 1, 0, 2, 0, 0, 3};
  Tensor a = floats({2, 1, 2, 2}, av);
  Tensor b = floats({3, 2, 2}, bv);
  Tensor y = zeros(DType::kFloat32, {2, 3, 2, 2});
  REQUIRE(run("MatMul", attrs(), {&a, &b}, {&y}).ok());
  std::vector<float> expected;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int r = 0; r < 2; ++r)
        for (int c = 0; c < 2; ++c)
          expected.push_back(av[i * 4 + r * 2] * bv[j * 4 + c] +
                             av[i * 4 + r * 2 + 1] * bv[j * 4 + 2 + c]);
  CHECK_THAT(values<float>(y), approx(expected));

  Tensor v = floats({3}, {1, 2, 3});
  Tensor dot = zeros(DType::kFloat32, {});
  REQUIRE(run("MatMul", attrs(), {&v, &v}, {&dot}).ok());
  CHECK(values<float>(dot) == std::vector<float>{14});

  Tensor m = floats({2, 3, 2}, {1, 0, 0, 1, 1, 1, 2, 0, 0, 2, 2, 2});
  Tensor vm = zeros(DType::kFloat32, {2, 2});
  REQUIRE(run("MatMul", attrs(), {&v, &m}, {&vm}).ok());
  CHECK_THAT(values<float>(vm), approx({4, 5, 8, 10}));

  Tensor wrong = floats({2, 2}, {1, 2, 3, 4});
  CHECK_THAT(run("MatMul", attrs(), {&v, &wrong}, {&vm}).message(),
             Catch::Contains("inner dimensions differ"));
}

TEST_CASE("Gemm with transposes, alpha, beta and a broadcast C", "[cpu_ops][gemm]") {
  Tensor at = floats({3, 2}, {1, 4, 2, 5, 3, 6});  // A^T of [[1,2,3],[4,5,6]]
  Tensor bt = floats({2, 3}, {1, 0, 1, 0, 1, 1});  // B^T of [[1,0],[0,1],[1,1]]
  Tensor c = floats({2}, {1, 2});
  Tensor y = zeros(DType::kFloat32, {2, 2});
  REQUIRE(run("Gemm",
              attrs({attr_i("transA", 1), attr_i("transB", 1), attr_f("alpha", 2),
                     attr_f("beta", 0.5f)}),
              {&at, &bt, &c}, {&y})
              .ok());
  CHECK_THAT(values<float>(y), approx({8.5f, 11, 20.5f, 23}));
}

TEST_CASE("Gelu is 0.5 x (1 + erf(x / sqrt 2))", "[cpu_ops][activation]") {
  Tensor x = floats({5}, {0, 1, -1, 2, -3});
  Tensor y = zeros(DType::kFloat32, {5});
  REQUIRE(run("Gelu", attrs(), {&x}, {&y}).ok());
  // x * Phi(x) with Phi the standard normal CDF.
  CHECK_THAT(values<float>(y), approx({0, 0.8413447460685429f, -0.15865525393145707f,
                                       1.9544997361036416f, -0.004049694094890284f},
                                      1e-6));
  CHECK(run("Gelu", attrs({attr_s("approximate", "cubic")}), {&x}, {&y}).code() ==
        Code::kUnsupported);
}

TEST_CASE("AddLayerNormalization normalises the rounded sum", "[cpu_ops][norm]") {
  Tensor a = floats({2, 3}, {0.5f, 1, 2.5f, 1, 3, 5});
  Tensor b = floats({2, 3}, {0.5f, 1, 0.5f, 1, 1, 3});  // a + b = {1, 2, 3, 2, 4, 8}
  Tensor x = floats({2, 3}, {1, 2, 3, 2, 4, 8});
  Tensor scale = floats({3}, {1, 2, 0.5f});
  Tensor bias = floats({3}, {0, 1, -1});
  Tensor fused = zeros(DType::kFloat32, {2, 3});
  Tensor plain = zeros(DType::kFloat32, {2, 3});
  REQUIRE(run("AddLayerNormalization", attrs(), {&a, &b, &scale, &bias}, {&fused}).ok());
  REQUIRE(run("LayerNormalization", attrs(), {&x, &scale, &bias}, {&plain}).ok());
  CHECK(values<float>(fused) == values<float>(plain));
  // Without B; addends of different shapes; the statistics outputs are not offered.
  REQUIRE(run("AddLayerNormalization", attrs(), {&a, &b, &scale}, {&fused}).ok());
  Tensor short_b = floats({3}, {0, 0, 0});
  CHECK(run("AddLayerNormalization", attrs(), {&a, &short_b, &scale}, {&fused}).code() ==
        Code::kInvalidArgument);
  Tensor mean = zeros(DType::kFloat32, {2, 1});
  CHECK_FALSE(run("AddLayerNormalization", attrs(), {&a, &b, &scale}, {&fused, &mean}).ok());
}

TEST_CASE("LayerNormalization over the last axis and over all axes", "[cpu_ops][norm]") {
  Tensor x = floats({2, 3}, {1, 2, 3, 2, 4, 8});
  Tensor scale = floats({3}, {1, 2, 0.5f});
  Tensor bias = floats({3}, {0, 1, -1});
  const float eps = 1e-5f;
  // Row 1: mean 2, variance 2/3. Row 2: mean 14/3, variance (64 + 4 + 100) / 9 / 3 = 56/9.
  const double s1 = 1 / std::sqrt(2.0 / 3 + eps);
  const double m2 = 14.0 / 3, s2 = 1 / std::sqrt(56.0 / 9 + eps);
  SECTION("axis -1 with Mean and InvStdDev") {
    Tensor y = zeros(DType::kFloat32, {2, 3});
    Tensor mean = zeros(DType::kFloat32, {2, 1});
    Tensor inv_std = zeros(DType::kFloat32, {2, 1});
    REQUIRE(run("LayerNormalization", attrs(), {&x, &scale, &bias}, {&y, &mean, &inv_std}).ok());
    CHECK_THAT(values<float>(y),
               approx({static_cast<float>(-1 * s1), static_cast<float>(0 * s1 * 2 + 1),
                       static_cast<float>(1 * s1 * 0.5 - 1), static_cast<float>((2 - m2) * s2),
                       static_cast<float>((4 - m2) * s2 * 2 + 1),
                       static_cast<float>((8 - m2) * s2 * 0.5 - 1)}));
    CHECK_THAT(values<float>(mean), approx({2, static_cast<float>(m2)}));
    CHECK_THAT(values<float>(inv_std), approx({static_cast<float>(s1), static_cast<float>(s2)}));
  }
  SECTION("axis 0 normalises everything; Scale broadcasts") {
    Tensor y = zeros(DType::kFloat32, {2, 3});
    Tensor two = floats({1}, {2});
    REQUIRE(run("LayerNormalization", attrs({attr_i("axis", 0), attr_f("epsilon", 0)}), {&x, &two},
                {&y})
                .ok());
    // mean 10/3; squared deviations (49 + 16 + 1 + 16 + 4 + 196) / 9 over 6: variance 47/9.
    const double s = 1 / std::sqrt(47.0 / 9);
    std::vector<float> expected;
    for (float v : {1, 2, 3, 2, 4, 8})
      expected.push_back(static_cast<float>((v - 10.0 / 3) * s * 2));
    CHECK_THAT(values<float>(y), approx(expected));
  }
  SECTION("a Scale that does not broadcast is an error") {
    Tensor y = zeros(DType::kFloat32, {2, 3});
    Tensor bad = floats({2}, {1, 1});
    CHECK_THAT(run("LayerNormalization", attrs(), {&x, &bad}, {&y}).message(),
               Catch::Contains("Scale float32[2] does not broadcast to [3]"));
  }
}

TEST_CASE("BatchNormalization uses the running statistics", "[cpu_ops][norm]") {
  Tensor x = floats({1, 2, 1, 2}, {1, 2, 3, 4});
  Tensor scale = floats({2}, {1, 2}), b = floats({2}, {0, 1});
  Tensor mean = floats({2}, {1, 3}), var = floats({2}, {4, 1});
  Tensor y = zeros(DType::kFloat32, {1, 2, 1, 2});
  REQUIRE(
      run("BatchNormalization", attrs({attr_f("epsilon", 0)}), {&x, &scale, &b, &mean, &var}, {&y})
          .ok());
  CHECK_THAT(values<float>(y), approx({0, 0.5f, 1, 3}));
  CHECK(run("BatchNormalization", attrs({attr_i("training_mode", 1)}),
            {&x, &scale, &b, &mean, &var}, {&y})
            .code() == Code::kUnsupported);
}

TEST_CASE("Softmax is stable for large inputs", "[cpu_ops][norm]") {
  Tensor x = floats({2, 2}, {1000, 1001, -1000, -1000});
  Tensor y = zeros(DType::kFloat32, {2, 2});
  REQUIRE(run("Softmax", attrs(), {&x}, {&y}).ok());
  CHECK_THAT(values<float>(y), approx({0.2689414213699951f, 0.7310585786300049f, 0.5f, 0.5f}));
  REQUIRE(run("Softmax", attrs({attr_i("axis", 0)}), {&x}, {&y}).ok());
  CHECK_THAT(values<float>(y), approx({1, 1, 0, 0}));
}

TEST_CASE("AddSoftmax is the Softmax of X plus the broadcast mask", "[cpu_ops][norm]") {
  // X [2, 2, 3], masks [2, 1, 3] (per batch, over the middle axis) and [3].
  Tensor x = floats({2, 2, 3}, {1, 2, 3, 0.5f, -1, 4, 2, 2, 2, 1000, 1001, 999});
  Tensor m = floats({2, 1, 3}, {0, -10000, 0, 1, 0, -1});
  const std::vector<float> sum = {1, -9998, 3, 0.5f, -10001, 4, 3, 2, 1, 1001, 1001, 998};
  Tensor added = floats({2, 2, 3}, sum);
  Tensor fused = zeros(DType::kFloat32, {2, 2, 3});
  Tensor plain = zeros(DType::kFloat32, {2, 2, 3});
  REQUIRE(run("AddSoftmax", attrs({attr_i("axis", -1)}), {&x, &m}, {&fused}).ok());
  REQUIRE(run("Softmax", attrs({attr_i("axis", -1)}), {&added}, {&plain}).ok());
  CHECK(values<float>(fused) == values<float>(plain));
  CHECK(values<float>(fused)[1] == 0.0f);  // the masked position
  Tensor row = floats({3}, {0, 0, -10000});
  REQUIRE(run("AddSoftmax", attrs(), {&x, &row}, {&fused}).ok());
  CHECK_THAT(values<float>(fused)[0], Catch::Matchers::WithinRel(0.2689414f, 1e-6f));
  CHECK(values<float>(fused)[2] == 0.0f);
  // Another axis (the CPU takes any); a mask that does not broadcast; a second dtype.
  REQUIRE(run("AddSoftmax", attrs({attr_i("axis", 1)}), {&x, &m}, {&fused}).ok());
  Tensor bad = floats({2}, {0, 0});
  CHECK_THAT(run("AddSoftmax", attrs(), {&x, &bad}, {&fused}).message(),
             Catch::Contains("M float32[2] does not broadcast to [2,2,3]"));
  Tensor m64 = zeros(DType::kFloat64, {3});
  CHECK(run("AddSoftmax", attrs(), {&x, &m64}, {&fused}).code() == Code::kInvalidArgument);
}

TEST_CASE("binary ops broadcast like numpy", "[cpu_ops][broadcast]") {
  SECTION("[3,1] + [1,4]") {
    Tensor a = floats({3, 1}, {0, 10, 20});
    Tensor b = floats({1, 4}, {1, 2, 3, 4});
    Tensor y = zeros(DType::kFloat32, {3, 4});
    REQUIRE(run("Add", attrs(), {&a, &b}, {&y}).ok());
    CHECK_THAT(values<float>(y), approx({1, 2, 3, 4, 11, 12, 13, 14, 21, 22, 23, 24}));
  }
  SECTION("scalar with a matrix, both orders, and scalar with scalar") {
    Tensor s = floats({}, {2});
    Tensor m = floats({2, 2}, {1, 2, 3, 4});
    Tensor y = zeros(DType::kFloat32, {2, 2});
    REQUIRE(run("Sub", attrs(), {&s, &m}, {&y}).ok());
    CHECK_THAT(values<float>(y), approx({1, 0, -1, -2}));
    REQUIRE(run("Div", attrs(), {&m, &s}, {&y}).ok());
    CHECK_THAT(values<float>(y), approx({0.5f, 1, 1.5f, 2}));
    Tensor ys = zeros(DType::kFloat32, {});
    REQUIRE(run("Mul", attrs(), {&s, &s}, {&ys}).ok());
    CHECK(values<float>(ys) == std::vector<float>{4});
  }
  SECTION("middle-axis broadcast [2,1,3] * [4,1]") {
    Tensor a = floats({2, 1, 3}, {1, 2, 3, 4, 5, 6});
    Tensor b = floats({4, 1}, {1, 10, 100, 1000});
    Tensor y = zeros(DType::kFloat32, {2, 4, 3});
    REQUIRE(run("Mul", attrs(), {&a, &b}, {&y}).ok());
    const std::vector<float> got = values<float>(y);
    CHECK(got[0] == 1);
    CHECK(got[5] == 30);     // [0,1,2] = 3 * 10
    CHECK(got[23] == 6000);  // [1,3,2] = 6 * 1000
  }
  SECTION("zero-sized dimensions give empty results") {
    Tensor a = zeros(DType::kFloat32, {0, 3});
    Tensor b = floats({1, 3}, {1, 2, 3});
    Tensor y = zeros(DType::kFloat32, {0, 3});
    REQUIRE(run("Add", attrs(), {&a, &b}, {&y}).ok());
  }
  SECTION("shapes that do not broadcast are an error naming both") {
    Tensor a = zeros(DType::kFloat32, {2, 3});
    Tensor b = zeros(DType::kFloat32, {3, 2});
    Tensor y = zeros(DType::kFloat32, {2, 3});
    const Status s = run("Add", attrs(), {&a, &b}, {&y});
    CHECK(s.code() == Code::kInvalidArgument);
    CHECK_THAT(s.message(), Catch::StartsWith("Add: ") && Catch::Contains("[2,3] and [3,2]"));
  }
  SECTION("mixed dtypes are an error, except Pow's exponent") {
    Tensor f = floats({2}, {2, 3});
    Tensor i = make<int64_t>({2}, {3, 2});
    Tensor y = zeros(DType::kFloat32, {2});
    CHECK_THAT(run("Add", attrs(), {&f, &i}, {&y}).message(), Catch::Contains("dtypes differ"));
    REQUIRE(run("Pow", attrs(), {&f, &i}, {&y}).ok());
    CHECK_THAT(values<float>(y), approx({8, 9}));
    Tensor yi = zeros(DType::kInt64, {2});
    REQUIRE(run("Pow", attrs(), {&i, &f}, {&yi}).ok());
    CHECK(values<int64_t>(yi) == std::vector<int64_t>{9, 8});
  }
  SECTION("comparisons give bool and Where picks with broadcasting") {
    Tensor a = floats({2, 1}, {1, 5});
    Tensor b = floats({1, 3}, {0, 5, 9});
    Tensor c = zeros(DType::kBool, {2, 3});
    REQUIRE(run("GreaterOrEqual", attrs(), {&a, &b}, {&c}).ok());
    CHECK(values<bool>(c) == std::vector<bool>{true, false, false, true, true, false});
    Tensor x = floats({}, {-1});
    Tensor w = zeros(DType::kFloat32, {2, 3});
    REQUIRE(run("Where", attrs(), {&c, &x, &b}, {&w}).ok());
    CHECK_THAT(values<float>(w), approx({-1, 5, 9, -1, -1, 9}));
    Tensor wrong = zeros(DType::kFloat32, {2, 3});
    CHECK_THAT(run("Equal", attrs(), {&a, &b}, {&wrong}).message(),
               Catch::Contains("expected bool[2,3]"));
  }
}

TEST_CASE("integer arithmetic wraps and refuses division by zero", "[cpu_ops][broadcast]") {
  Tensor a = make<int8_t>({2}, {127, -128});
  Tensor one = make<int8_t>({}, {1});
  Tensor y = zeros(DType::kInt8, {2});
  REQUIRE(run("Add", attrs(), {&a, &one}, {&y}).ok());
  CHECK(values<int8_t>(y) == std::vector<int8_t>{-128, -127});
  Tensor n = make<int32_t>({2}, {7, -7});
  Tensor d = make<int32_t>({2}, {2, 2});
  Tensor q = zeros(DType::kInt32, {2});
  REQUIRE(run("Div", attrs(), {&n, &d}, {&q}).ok());
  CHECK(values<int32_t>(q) == std::vector<int32_t>{3, -3});  // truncation toward zero
  Tensor z = make<int32_t>({2}, {1, 0});
  CHECK_THAT(run("Div", attrs(), {&n, &z}, {&q}).message(), Catch::Contains("division by zero"));
}

TEST_CASE("variadic Max, Min, Sum, Mean broadcast all inputs", "[cpu_ops][broadcast]") {
  Tensor a = floats({2}, {1, 5});
  Tensor b = floats({2, 1}, {3, NAN});
  Tensor c = floats({}, {2});
  Tensor y = zeros(DType::kFloat32, {2, 2});
  REQUIRE(run("Max", attrs(), {&a, &b, &c}, {&y}).ok());
  const std::vector<float> mx = values<float>(y);
  CHECK(mx[0] == 3);
  CHECK(mx[1] == 5);
  CHECK(std::isnan(mx[2]));                                                        // NaN propagates
  REQUIRE(run("Mean", attrs(), {&a, &c}, {&y}).code() == Code::kInvalidArgument);  // shape [2]
  Tensor m = zeros(DType::kFloat32, {2});
  REQUIRE(run("Mean", attrs(), {&a, &c}, {&m}).ok());
  CHECK_THAT(values<float>(m), approx({1.5f, 3.5f}));
}

TEST_CASE("reductions with axes as attribute or input", "[cpu_ops][reduce]") {
  Tensor x = floats({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor y = zeros(DType::kFloat32, {2, 1});
  REQUIRE(run("ReduceMean", attrs({attr_ints("axes", {1})}), {&x}, {&y}).ok());
  CHECK_THAT(values<float>(y), approx({2, 5}));
  Tensor axes = make<int64_t>({1}, {-2});
  Tensor s = zeros(DType::kFloat32, {3});
  REQUIRE(run("ReduceSum", attrs({attr_i("keepdims", 0)}), {&x, &axes}, {&s}).ok());
  CHECK_THAT(values<float>(s), approx({5, 7, 9}));
  Tensor all = zeros(DType::kFloat32, {1, 1});
  REQUIRE(run("ReduceMax", attrs(), {&x}, {&all}).ok());
  CHECK(values<float>(all) == std::vector<float>{6});
  CHECK_THAT(run("ReduceMean", attrs({attr_ints("axes", {2})}), {&x}, {&y}).message(),
             Catch::Contains("axis 2 is out of range for rank 2"));
}

TEST_CASE("shape ops: Reshape, Squeeze, Unsqueeze, Transpose, Concat, Split, Slice",
          "[cpu_ops][shape]") {
  Tensor x = floats({2, 3}, {1, 2, 3, 4, 5, 6});
  SECTION("Reshape copies 0 and infers -1; bad shapes are errors") {
    Tensor shape = make<int64_t>({3}, {0, -1, 1});
    Tensor y = zeros(DType::kFloat32, {2, 3, 1});
    REQUIRE(run("Reshape", attrs(), {&x, &shape}, {&y}).ok());
    CHECK(values<float>(y) == values<float>(x));
    Tensor two = make<int64_t>({2}, {-1, -1});
    CHECK_THAT(run("Reshape", attrs(), {&x, &two}, {&y}).message(), Catch::Contains("two -1"));
    Tensor four = make<int64_t>({1}, {4});
    CHECK_THAT(run("Reshape", attrs(), {&x, &four}, {&y}).message(),
               Catch::Contains("does not hold the 6 elements"));
  }
  SECTION("Reshape may write onto its own input") {
    Result<Tensor> alias = x.mutable_reshaped({3, 2});
    REQUIRE(alias.ok());
    Tensor shape = make<int64_t>({2}, {3, 2});
    REQUIRE(run("Reshape", attrs(), {&x, &shape}, {&*alias}).ok());
    CHECK(values<float>(*alias) == std::vector<float>{1, 2, 3, 4, 5, 6});
  }
  SECTION("Squeeze and Unsqueeze") {
    Tensor axes = make<int64_t>({2}, {0, -1});
    Tensor u = zeros(DType::kFloat32, {1, 2, 3, 1});
    REQUIRE(run("Unsqueeze", attrs(), {&x, &axes}, {&u}).ok());
    Tensor s = zeros(DType::kFloat32, {2, 3});
    REQUIRE(run("Squeeze", attrs(), {&u}, {&s}).ok());
    CHECK(values<float>(s) == values<float>(x));
    Tensor bad = make<int64_t>({1}, {1});
    CHECK_THAT(run("Squeeze", attrs(), {&u, &bad}, {&s}).message(), Catch::Contains("is not 1"));
  }
  SECTION("Transpose") {
    Tensor y = zeros(DType::kFloat32, {3, 2});
    REQUIRE(run("Transpose", attrs(), {&x}, {&y}).ok());
    CHECK(values<float>(y) == std::vector<float>{1, 4, 2, 5, 3, 6});
    CHECK_THAT(run("Transpose", attrs({attr_ints("perm", {0, 0})}), {&x}, {&y}).message(),
               Catch::Contains("not a permutation"));
  }
  SECTION("Concat and Split are inverse") {
    Tensor z = floats({2, 1}, {7, 8});
    Tensor y = zeros(DType::kFloat32, {2, 4});
    REQUIRE(run("Concat", attrs({attr_i("axis", -1)}), {&x, &z}, {&y}).ok());
    CHECK(values<float>(y) == std::vector<float>{1, 2, 3, 7, 4, 5, 6, 8});
    Tensor p = zeros(DType::kFloat32, {2, 3});
    Tensor q = zeros(DType::kFloat32, {2, 1});
    Tensor sizes = make<int64_t>({2}, {3, 1});
    REQUIRE(run("Split", attrs({attr_i("axis", 1)}), {&y, &sizes}, {&p, &q}).ok());
    CHECK(values<float>(p) == values<float>(x));
    CHECK(values<float>(q) == std::vector<float>{7, 8});
    Tensor uneven = zeros(DType::kFloat32, {2, 3});
    CHECK_THAT(run("Concat", attrs({attr_i("axis", 0)}), {&x, &z}, {&uneven}).message(),
               Catch::Contains("does not fit input 0"));
  }
  SECTION("Slice with negative steps and clamped bounds") {
    Tensor starts = make<int64_t>({2}, {-1, 100});
    Tensor ends = make<int64_t>({2}, {-100, 0});
    Tensor axes = make<int64_t>({2}, {1, 0});
    Tensor steps = make<int64_t>({2}, {-2, -1});
    Tensor y = zeros(DType::kFloat32, {1, 2});
    REQUIRE(run("Slice", attrs(), {&x, &starts, &ends, &axes, &steps}, {&y}).ok());
    CHECK(values<float>(y) == std::vector<float>{6, 4});
  }
}

TEST_CASE("Gather takes embeddings rows, negative indices count from the end", "[cpu_ops][shape]") {
  Tensor table = floats({4, 2}, {0, 0, 1, 1, 2, 2, 3, 3});
  Tensor ids = make<int64_t>({2, 2}, {3, 0, -1, 1});
  Tensor y = zeros(DType::kFloat32, {2, 2, 2});
  REQUIRE(run("Gather", attrs(), {&table, &ids}, {&y}).ok());
  CHECK(values<float>(y) == std::vector<float>{3, 3, 0, 0, 3, 3, 1, 1});
  Tensor bad = make<int64_t>({2, 2}, {3, 4, 0, 0});
  const Status s = run("Gather", attrs(), {&table, &bad}, {&y});
  CHECK(s.code() == Code::kOutOfRange);
  CHECK_THAT(s.message(), Catch::Contains("Gather: index 4") && Catch::Contains("size 4"));
}

TEST_CASE("Dropout in inference is the identity with an all-true mask", "[cpu_ops][shape]") {
  Tensor x = floats({3}, {1, -2, 3});
  Tensor y = zeros(DType::kFloat32, {3});
  Tensor mask = zeros(DType::kBool, {3});
  Tensor ratio = floats({}, {0.5f});
  REQUIRE(run("Dropout", attrs(), {&x, &ratio}, {&y, &mask}).ok());
  CHECK(values<float>(y) == values<float>(x));
  CHECK(values<bool>(mask) == std::vector<bool>{true, true, true});
  Tensor training = make<bool>({}, {true});
  CHECK(run("Dropout", attrs(), {&x, &ratio, &training}, {&y}).code() == Code::kUnsupported);
}

TEST_CASE("Range, ConstantOfShape, Shape and Expand", "[cpu_ops][shape]") {
  Tensor start = make<int64_t>({}, {10}), limit = make<int64_t>({}, {3}),
         delta = make<int64_t>({}, {-3});
  Tensor r = zeros(DType::kInt64, {3});
  REQUIRE(run("Range", attrs(), {&start, &limit, &delta}, {&r}).ok());
  CHECK(values<int64_t>(r) == std::vector<int64_t>{10, 7, 4});

  Tensor shape = make<int64_t>({2}, {2, 1});
  Tensor c = zeros(DType::kInt32, {2, 1});
  REQUIRE(run("ConstantOfShape", attrs({attr_i("value", 7)}), {&shape}, {&c}).ok());
  CHECK(values<int32_t>(c) == std::vector<int32_t>{7, 7});
  CHECK_THAT(run("ConstantOfShape", attrs({attr_f("value", 1.5f)}), {&shape}, {&c}).message(),
             Catch::Contains("value is a float but the output is int32[2,1]"));

  Tensor x = floats({2, 1}, {1, 2});
  Tensor s = zeros(DType::kInt64, {1});
  REQUIRE(run("Shape", attrs({attr_i("start", -1)}), {&x}, {&s}).ok());
  CHECK(values<int64_t>(s) == std::vector<int64_t>{1});

  Tensor target = make<int64_t>({3}, {2, 1, 3});
  Tensor e = zeros(DType::kFloat32, {2, 2, 3});
  REQUIRE(run("Expand", attrs(), {&x, &target}, {&e}).ok());
  CHECK(values<float>(e) == std::vector<float>{1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2});
}

TEST_CASE("unary ops: Clip bounds, predicates, integer Abs/Neg", "[cpu_ops][activation]") {
  Tensor x = floats({4}, {-2, 0.5f, 3, NAN});
  Tensor lo = floats({}, {-1}), hi = floats({}, {1});
  Tensor y = zeros(DType::kFloat32, {4});
  REQUIRE(run("Clip", attrs(), {&x, &lo, &hi}, {&y}).ok());
  const std::vector<float> clipped = values<float>(y);
  CHECK(clipped[0] == -1);
  CHECK(clipped[1] == 0.5f);
  CHECK(clipped[2] == 1);
  CHECK(std::isnan(clipped[3]));
  Tensor b = zeros(DType::kBool, {4});
  REQUIRE(run("IsNaN", attrs(), {&x}, {&b}).ok());
  CHECK(values<bool>(b) == std::vector<bool>{false, false, false, true});
  Tensor i = make<int32_t>({2}, {std::numeric_limits<int32_t>::min(), -5});
  Tensor yi = zeros(DType::kInt32, {2});
  REQUIRE(run("Neg", attrs(), {&i}, {&yi}).ok());
  CHECK(values<int32_t>(yi) == std::vector<int32_t>{std::numeric_limits<int32_t>::min(), 5});
  REQUIRE(run("Abs", attrs(), {&i}, {&yi}).ok());
  CHECK(values<int32_t>(yi)[1] == 5);
}

// ---------------------------------------------------------------------------------------------
// AttentionScores and AttentionContext (common/attention.h) against the ops they replace.

// One geometry: X [B, S, C] holding heads of D columns at q, k and v (in any order, possibly
// overlapping, not filling C), and the context's P [B, H, M, S].
struct AttentionCase {
  int64_t batch, seq, heads, head_size, columns, q, k, v, rows;
  float alpha;
};
const std::vector<AttentionCase> kAttentionCases = {
    {2, 5, 3, 4, 41, 17, 3, 29, 5, 0.125f},  // odd sizes, value last, spare columns
    {2, 5, 3, 4, 36, 0, 12, 24, 5, 0.5f},    // BERT's order, C exactly 3 * hidden
    {1, 3, 2, 3, 7, 1, 0, 1, 4, -0.7f},      // overlapping ranges, M != S
    {3, 1, 1, 1, 2, 1, 1, 0, 1, 1.0f},       // one row, one head of one column
};

template <typename T>
Tensor random_values(DType dtype, const Shape& shape, std::mt19937_64& rng) {
  Tensor t = zeros(dtype, shape);
  std::normal_distribution<double> normal(0.0, 1.0);
  for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<T>()[i] = static_cast<T>(normal(rng));
  return t;
}

Tensor forward1(const std::string& op, const Attributes& a, std::vector<const Tensor*> in) {
  Result<std::vector<Tensor>> out = run_op_allocating(op, a, in, 1);
  INFO(op << ": " << out.status().to_string());
  REQUIRE(out.ok());
  return std::move((*out)[0]);
}

Attributes head_slice_attrs(int64_t start, const AttentionCase& c, std::vector<int64_t> perm) {
  return attrs({attr_i("start", start), attr_i("size", c.heads * c.head_size),
                attr_i("heads", c.heads), attr_ints("perm", perm)});
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         std::memcmp(a.raw(), b.raw(), a.byte_size()) == 0;
}

template <typename T>
void check_attention_against_unfused(DType dtype) {
  std::mt19937_64 rng(41);
  for (const AttentionCase& c : kAttentionCases) {
    INFO("B " << c.batch << " S " << c.seq << " H " << c.heads << " D " << c.head_size << " C "
              << c.columns << " q " << c.q << " k " << c.k << " v " << c.v);
    const int64_t size = c.heads * c.head_size;
    const Tensor x = random_values<T>(dtype, {c.batch, c.seq, c.columns}, rng);
    const Tensor p = random_values<T>(dtype, {c.batch, c.heads, c.rows, c.seq}, rng);
    // Unfused: the graph fuse_attention rewrites.
    const Tensor q = forward1("HeadSlice", head_slice_attrs(c.q, c, {0, 2, 1, 3}), {&x});
    const Tensor k = forward1("HeadSlice", head_slice_attrs(c.k, c, {0, 2, 3, 1}), {&x});
    const Tensor v = forward1("HeadSlice", head_slice_attrs(c.v, c, {0, 2, 1, 3}), {&x});
    const Tensor scores = forward1("MatMulScale", attrs({attr_f("alpha", c.alpha)}), {&q, &k});
    const Tensor context = forward1("MatMul", attrs(), {&p, &v});
    const Tensor merged =
        forward1("Transpose", attrs({attr_ints("perm", {0, 2, 1, 3})}), {&context});
    // Fused.
    const Attributes scores_attrs =
        attrs({attr_i("heads", c.heads), attr_i("size", size), attr_i("q_start", c.q),
               attr_i("k_start", c.k), attr_f("alpha", c.alpha)});
    const Attributes context_attrs =
        attrs({attr_i("heads", c.heads), attr_i("size", size), attr_i("v_start", c.v)});
    const Tensor fused_scores = forward1("AttentionScores", scores_attrs, {&x});
    const Tensor fused_context = forward1("AttentionContext", context_attrs, {&p, &x});
    CHECK(fused_scores.shape() == Shape{c.batch, c.heads, c.seq, c.seq});
    CHECK(fused_context.shape() == Shape{c.batch, c.rows, c.heads, c.head_size});
    CHECK(same_bits(fused_scores, scores));
    CHECK(same_bits(fused_context, merged));
    // Into preallocated outputs (the executor's way) too.
    Tensor y = zeros(dtype, scores.shape());
    REQUIRE(run("AttentionScores", scores_attrs, {&x}, {&y}).ok());
    CHECK(same_bits(y, scores));
    Tensor z = zeros(dtype, merged.shape());
    REQUIRE(run("AttentionContext", context_attrs, {&p, &x}, {&z}).ok());
    CHECK(same_bits(z, merged));
    // A plain MatMul's scores are AttentionScores with alpha 1 (its default).
    const Tensor plain = forward1("MatMul", attrs(), {&q, &k});
    const Attributes no_alpha = attrs({attr_i("heads", c.heads), attr_i("size", size),
                                       attr_i("q_start", c.q), attr_i("k_start", c.k)});
    CHECK(same_bits(forward1("AttentionScores", no_alpha, {&x}), plain));
  }
}

TEST_CASE("AttentionScores and AttentionContext compute the unfused ops' results to the bit",
          "[cpu_ops][attention]") {
  SECTION("float32") { check_attention_against_unfused<float>(DType::kFloat32); }
  SECTION("float64") { check_attention_against_unfused<double>(DType::kFloat64); }
}

TEST_CASE("AttentionScores and AttentionContext refuse what does not fit, naming it",
          "[cpu_ops][attention]") {
  std::mt19937_64 rng(43);
  const Tensor x = random_values<float>(DType::kFloat32, {2, 5, 24}, rng);
  const Tensor p = random_values<float>(DType::kFloat32, {2, 2, 5, 5}, rng);
  auto scores = [](std::vector<pipeswitch::psm::Attribute> extra) {
    std::vector<pipeswitch::psm::Attribute> list = {attr_i("heads", 2), attr_i("size", 8),
                                                    attr_i("q_start", 0), attr_i("k_start", 8)};
    list.insert(list.end(), extra.begin(), extra.end());
    return attrs(list);
  };
  Tensor y = zeros(DType::kFloat32, {2, 2, 5, 5});
  REQUIRE(run("AttentionScores", scores({attr_f("alpha", 0.5f)}), {&x}, {&y}).ok());
  Status s = run("AttentionScores", scores({attr_i("start", 0)}), {&x}, {&y});
  CHECK(s.code() == Code::kUnsupported);
  CHECK_THAT(s.message(), Catch::StartsWith("AttentionScores: ") && Catch::Contains("'start'"));
  s = run("AttentionScores", attrs({attr_i("heads", 2), attr_i("size", 8), attr_i("q_start", 0)}),
          {&x}, {&y});
  CHECK_THAT(s.message(), Catch::Contains("attribute 'k_start' is required"));
  s = run("AttentionScores", scores({attr_i("alpha", 2)}), {&x}, {&y});
  CHECK_FALSE(s.ok());
  s = run(
      "AttentionScores",
      attrs({attr_i("heads", 2), attr_i("size", 8), attr_i("q_start", 0), attr_i("k_start", 20)}),
      {&x}, {&y});
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK_THAT(s.message(), Catch::Contains("columns [20, 28) do not fit X [2,5,24]"));
  s = run(
      "AttentionScores",
      attrs({attr_i("heads", 3), attr_i("size", 8), attr_i("q_start", 0), attr_i("k_start", 8)}),
      {&x}, {&y});
  CHECK_THAT(s.message(), Catch::Contains("3 heads do not divide 8 columns"));
  Tensor wrong = zeros(DType::kFloat32, {2, 2, 5, 4});
  CHECK(run("AttentionScores", scores({}), {&x}, {&wrong}).code() == Code::kInvalidArgument);
  const Tensor x4 = random_values<float>(DType::kFloat32, {2, 5, 1, 24}, rng);
  CHECK_THAT(run("AttentionScores", scores({}), {&x4}, {&y}).message(),
             Catch::Contains("must be [batch, sequence, columns]"));

  const Attributes context = attrs({attr_i("heads", 2), attr_i("size", 8), attr_i("v_start", 16)});
  Tensor z = zeros(DType::kFloat32, {2, 5, 2, 4});
  REQUIRE(run("AttentionContext", context, {&p, &x}, {&z}).ok());
  CHECK_THAT(run("AttentionContext", scores({}), {&p, &x}, {&z}).message(),
             Catch::Contains("'q_start'"));
  const Tensor p_heads = random_values<float>(DType::kFloat32, {2, 3, 5, 5}, rng);
  CHECK_THAT(run("AttentionContext", context, {&p_heads, &x}, {&z}).message(),
             Catch::Contains("P [2,3,5,5] is not [2, 2, M, 5]"));
  const Tensor p64 = random_values<double>(DType::kFloat64, {2, 2, 5, 5}, rng);
  CHECK(run("AttentionContext", context, {&p64, &x}, {&z}).code() == Code::kInvalidArgument);
  CHECK_FALSE(run("AttentionContext", context, {&p}, {&z}).ok());
}

// ---------------------------------------------------------------------------------------------
// FusedAttention (inference: passes/fuse_attention_softmax.h) against AttentionScores, Softmax
// (last axis) and AttentionContext run in turn.

Attributes fused_attention_attrs(int64_t heads, int64_t size, int64_t q, int64_t k, int64_t v,
                                 std::vector<pipeswitch::psm::Attribute> extra = {}) {
  std::vector<pipeswitch::psm::Attribute> list = {attr_i("heads", heads), attr_i("size", size),
                                                  attr_i("q_start", q), attr_i("k_start", k),
                                                  attr_i("v_start", v)};
  list.insert(list.end(), extra.begin(), extra.end());
  return attrs(list);
}

template <typename T>
void check_fused_attention_against_unfused(DType dtype) {
  struct Case {
    int64_t batch, seq, heads, head_size, columns, q, k, v;
    float alpha;
  };
  // S 7 (a multiple of nothing a kernel tiles by); BERT's order; odd sizes, spare columns and
  // the value first; overlapping ranges; one row.
  const std::vector<Case> cases = {
      {2, 7, 2, 4, 24, 0, 8, 16, 0.5f},
      {2, 7, 3, 4, 41, 17, 29, 3, 0.125f},
      {1, 5, 2, 3, 7, 1, 0, 1, -0.7f},
      {3, 1, 1, 1, 2, 1, 1, 0, 1.0f},
  };
  std::mt19937_64 rng(47);
  for (const Case& c : cases) {
    INFO("B " << c.batch << " S " << c.seq << " H " << c.heads << " D " << c.head_size << " C "
              << c.columns << " q " << c.q << " k " << c.k << " v " << c.v);
    const int64_t size = c.heads * c.head_size;
    const Tensor x = random_values<T>(dtype, {c.batch, c.seq, c.columns}, rng);
    // Unfused: the graph fuse_attention_softmax rewrites.
    const Tensor scores =
        forward1("AttentionScores",
                 attrs({attr_i("heads", c.heads), attr_i("size", size), attr_i("q_start", c.q),
                        attr_i("k_start", c.k), attr_f("alpha", c.alpha)}),
                 {&x});
    const Tensor probs = forward1("Softmax", attrs({attr_i("axis", -1)}), {&scores});
    const Tensor context =
        forward1("AttentionContext",
                 attrs({attr_i("heads", c.heads), attr_i("size", size), attr_i("v_start", c.v)}),
                 {&probs, &x});
    // Fused, allocating and into a preallocated output (the executor's way).
    const Attributes fused_attrs =
        fused_attention_attrs(c.heads, size, c.q, c.k, c.v, {attr_f("alpha", c.alpha)});
    const Tensor fused = forward1("FusedAttention", fused_attrs, {&x});
    CHECK(fused.shape() == Shape{c.batch, c.seq, c.heads, c.head_size});
    CHECK(same_bits(fused, context));
    Tensor y = zeros(dtype, context.shape());
    REQUIRE(run("FusedAttention", fused_attrs, {&x}, {&y}).ok());
    CHECK(same_bits(y, context));
    // alpha defaults to 1.
    const Tensor plain_scores = forward1("AttentionScores",
                                         attrs({attr_i("heads", c.heads), attr_i("size", size),
                                                attr_i("q_start", c.q), attr_i("k_start", c.k)}),
                                         {&x});
    const Tensor plain_probs = forward1("Softmax", attrs(), {&plain_scores});
    const Tensor plain =
        forward1("AttentionContext",
                 attrs({attr_i("heads", c.heads), attr_i("size", size), attr_i("v_start", c.v)}),
                 {&plain_probs, &x});
    CHECK(same_bits(
        forward1("FusedAttention", fused_attention_attrs(c.heads, size, c.q, c.k, c.v), {&x}),
        plain));
  }
}

TEST_CASE("FusedAttention computes AttentionScores, Softmax and AttentionContext to the bit",
          "[cpu_ops][attention]") {
  SECTION("float32") { check_fused_attention_against_unfused<float>(DType::kFloat32); }
  SECTION("float64") { check_fused_attention_against_unfused<double>(DType::kFloat64); }
}

TEST_CASE("FusedAttention refuses what does not fit, naming it", "[cpu_ops][attention]") {
  std::mt19937_64 rng(53);
  const Tensor x = random_values<float>(DType::kFloat32, {2, 7, 24}, rng);
  Tensor y = zeros(DType::kFloat32, {2, 7, 2, 4});
  REQUIRE(run("FusedAttention", fused_attention_attrs(2, 8, 0, 8, 16), {&x}, {&y}).ok());
  // Every attribute but alpha is required.
  Status s = run("FusedAttention",
                 attrs({attr_i("heads", 2), attr_i("size", 8), attr_i("q_start", 0),
                        attr_i("k_start", 8), attr_f("alpha", 0.5f)}),
                 {&x}, {&y});
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK_THAT(s.message(), Catch::StartsWith("FusedAttention: ") &&
                              Catch::Contains("attribute 'v_start' is required"));
  s = run(
      "FusedAttention",
      attrs({attr_i("size", 8), attr_i("q_start", 0), attr_i("k_start", 8), attr_i("v_start", 16)}),
      {&x}, {&y});
  CHECK_THAT(s.message(), Catch::Contains("attribute 'heads' is required"));
  // An unknown attribute (AttentionScores' alone would not take v_start; this takes no axis).
  s = run("FusedAttention", fused_attention_attrs(2, 8, 0, 8, 16, {attr_i("axis", -1)}), {&x},
          {&y});
  CHECK(s.code() == Code::kUnsupported);
  CHECK_THAT(s.message(), Catch::Contains("'axis'"));
  // alpha of the wrong type.
  CHECK_FALSE(
      run("FusedAttention", fused_attention_attrs(2, 8, 0, 8, 16, {attr_i("alpha", 2)}), {&x}, {&y})
          .ok());
  // A range outside C, each of the three.
  for (const auto& [q, k, v] : {std::tuple<int64_t, int64_t, int64_t>{20, 8, 16},
                                std::tuple<int64_t, int64_t, int64_t>{0, 20, 16},
                                std::tuple<int64_t, int64_t, int64_t>{0, 8, 20}}) {
    INFO("q " << q << " k " << k << " v " << v);
    s = run("FusedAttention", fused_attention_attrs(2, 8, q, k, v), {&x}, {&y});
    CHECK(s.code() == Code::kInvalidArgument);
    CHECK_THAT(s.message(), Catch::StartsWith("FusedAttention: ") &&
                                Catch::Contains("columns [20, 28) do not fit X [2,7,24]"));
  }
  s = run("FusedAttention", fused_attention_attrs(2, 8, 0, 8, -1), {&x}, {&y});
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK_THAT(run("FusedAttention", fused_attention_attrs(3, 8, 0, 8, 16), {&x}, {&y}).message(),
             Catch::Contains("3 heads do not divide 8 columns"));
  // X not [B, S, C]; an output of the wrong shape (the scores' or P's, not [B, S, H, D]).
  const Tensor x4 = random_values<float>(DType::kFloat32, {2, 7, 1, 24}, rng);
  CHECK_THAT(run("FusedAttention", fused_attention_attrs(2, 8, 0, 8, 16), {&x4}, {&y}).message(),
             Catch::Contains("must be [batch, sequence, columns]"));
  Tensor wrong = zeros(DType::kFloat32, {2, 2, 7, 7});
  CHECK(run("FusedAttention", fused_attention_attrs(2, 8, 0, 8, 16), {&x}, {&wrong}).code() ==
        Code::kInvalidArgument);
  // One input, one output.
  CHECK_FALSE(run("FusedAttention", fused_attention_attrs(2, 8, 0, 8, 16), {&x, &x}, {&y}).ok());
  CHECK_FALSE(run("FusedAttention", fused_attention_attrs(2, 8, 0, 8, 16), {}, {&y}).ok());
}

}  // namespace
}  // namespace ps::models::cpu::test
