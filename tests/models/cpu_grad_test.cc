// test_cpu_grad: every backward CPU reference operator (models/cpu/grad.h) against central
// finite differences in double on small random shapes. The scalar checked is
// L = sum(Y * R) for a fixed random R, so dL/dY = R; each input element is moved by +-h and
// the numeric derivative (L+ - L-) / 2h is compared with the analytic gradient.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "models/cpu/grad.h"
#include "models/cpu/layer_backward.h"
#include "models/cpu/ops.h"
#include "tests/models/cpu_ops_test_util.h"

namespace ps::models::cpu {
namespace {

using test::attr_f;
using test::attr_i;
using test::attr_ints;
using test::attrs;

Tensor random_tensor(const Shape& shape, std::mt19937_64& rng, double away_from_zero = 0) {
  Tensor t = test::zeros(DType::kFloat64, shape);
  std::normal_distribution<double> normal(0.0, 1.0);
  double* p = t.mutable_data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    double v = normal(rng);
    if (std::abs(v) < away_from_zero) v += v < 0 ? -away_from_zero : away_from_zero;
    p[i] = v;
  }
  return t;
}

// Runs `op` forward through run_op_allocating (output 0).
Tensor forward_op(const std::string& op, const Attributes& a,
                  const std::vector<const Tensor*>& in) {
  Result<std::vector<Tensor>> out = run_op_allocating(op, a, in, 1);
  INFO(out.status().to_string());
  REQUIRE(out.ok());
  return std::move((*out)[0]);
}

double weighted_sum(const Tensor& y, const Tensor& r) {
  REQUIRE(y.shape() == r.shape());
  double s = 0;
  for (int64_t i = 0; i < y.numel(); ++i) s += y.data<double>()[i] * r.data<double>()[i];
  return s;
}

// The largest |numeric - analytic| over every element of inputs[which], relative to
// 1 + max |analytic|. `loss` computes the scalar from the (perturbed) inputs.
double max_gradient_error(std::vector<Tensor>& inputs, size_t which, const Tensor& analytic,
                          const std::function<double(const std::vector<Tensor>&)>& loss,
                          double h = 1e-6) {
  REQUIRE(analytic.shape() == inputs[which].shape());
  double max_err = 0, max_ana = 0;
  double* p = inputs[which].mutable_data<double>();
  for (int64_t i = 0; i < analytic.numel(); ++i) {
    const double saved = p[i];
    p[i] = saved + h;
    const double plus = loss(inputs);
    p[i] = saved - h;
    const double minus = loss(inputs);
    p[i] = saved;
    const double numeric = (plus - minus) / (2 * h);
    const double ana = analytic.data<double>()[i];
    max_err = std::max(max_err, std::abs(numeric - ana));
    max_ana = std::max(max_ana, std::abs(ana));
  }
  return max_err / (1.0 + max_ana);
}

constexpr double kTolerance = 1e-6;

struct ConvCase {
  Shape x, w;
  std::vector<pipeswitch::psm::Attribute> attrs;
  bool bias;
};

TEST_CASE("Conv backward matches finite differences (groups, strides, pads, dilations)", "[grad]") {
  const std::vector<ConvCase> cases = {
      {{2, 3, 6, 5}, {4, 3, 3, 3}, {attr_ints("pads", {1, 1, 1, 1})}, true},
      {{1, 4, 7, 7},
       {6, 2, 3, 2},
       {attr_i("group", 2), attr_ints("strides", {2, 1}), attr_ints("pads", {1, 0, 0, 1})},
       true},
      {{2, 2, 7, 6},
       {3, 2, 2, 2},
       {attr_ints("dilations", {2, 1}), attr_ints("strides", {1, 2})},
       false},
      {{1, 3, 9, 9},
       {2, 3, 7, 7},
       {attr_ints("strides", {2, 2}), attr_ints("pads", {3, 3, 3, 3})},
       false},
      {{2, 4, 5, 5}, {4, 1, 3, 3}, {attr_i("group", 4), attr_ints("pads", {1, 1, 1, 1})}, true},
  };
  std::mt19937_64 rng(7);
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    const ConvCase& c = cases[ci];
    INFO("case " << ci);
    const Attributes a = attrs(c.attrs);
    std::vector<Tensor> in;
    in.push_back(random_tensor(c.x, rng));
    in.push_back(random_tensor(c.w, rng));
    if (c.bias) in.push_back(random_tensor({c.w[0]}, rng));
    auto run = [&](const std::vector<Tensor>& v) {
      std::vector<const Tensor*> ptrs;
      for (const Tensor& t : v) ptrs.push_back(&t);
      return forward_op("Conv", a, ptrs);
    };
    const Tensor y = run(in);
    const Tensor r = random_tensor(y.shape(), rng);
    Result<ConvGrads> g = conv_backward(a, in[0], in[1], c.bias, r);
    INFO(g.status().to_string());
    REQUIRE(g.ok());
    auto loss = [&](const std::vector<Tensor>& v) { return weighted_sum(run(v), r); };
    CHECK(max_gradient_error(in, 0, g->dx, loss) < kTolerance);
    CHECK(max_gradient_error(in, 1, g->dw, loss) < kTolerance);
    if (c.bias) CHECK(max_gradient_error(in, 2, g->db, loss) < kTolerance);
  }
}

TEST_CASE("the finite-difference check catches a wrong gradient", "[grad]") {
  // The Conv case above with dW scaled by 1.01 and, separately, one dX element nudged: both
  // must exceed the tolerance, so the checks above can fail.
  std::mt19937_64 rng(11);
  const Attributes a = attrs({attr_ints("pads", {1, 1, 1, 1})});
  std::vector<Tensor> in;
  in.push_back(random_tensor({2, 3, 5, 5}, rng));
  in.push_back(random_tensor({4, 3, 3, 3}, rng));
  auto run = [&](const std::vector<Tensor>& v) { return forward_op("Conv", a, {&v[0], &v[1]}); };
  const Tensor r = random_tensor(run(in).shape(), rng);
  Result<ConvGrads> g = conv_backward(a, in[0], in[1], false, r);
  REQUIRE(g.ok());
  auto loss = [&](const std::vector<Tensor>& v) { return weighted_sum(run(v), r); };
  REQUIRE(max_gradient_error(in, 1, g->dw, loss) < kTolerance);
  for (int64_t i = 0; i < g->dw.numel(); ++i) g->dw.mutable_data<double>()[i] *= 1.01;
  CHECK(max_gradient_error(in, 1, g->dw, loss) > kTolerance);
  g->dx.mutable_data<double>()[17] += 1e-3;
  CHECK(max_gradient_error(in, 0, g->dx, loss) > kTolerance);
}

TEST_CASE("BatchNormalization training backward matches finite differences", "[grad]") {
  std::mt19937_64 rng(3);
  for (const Shape& xs : {Shape{4, 3, 3, 2}, Shape{5, 2}, Shape{2, 4, 1, 1}}) {
    INFO(shape_string(xs));
    const int64_t c = xs[1];
    std::vector<Tensor> in;
    in.push_back(random_tensor(xs, rng));
    in.push_back(random_tensor({c}, rng));
    in.push_back(random_tensor({c}, rng));
    const double eps = 1e-3;
    auto run = [&](const std::vector<Tensor>& v) {
      BatchNormSaved s;
      Result<Tensor> y = batch_norm_train_forward(v[0], v[1], v[2], eps, &s);
      REQUIRE(y.ok());
      return std::move(y).value();
    };
    BatchNormSaved saved;
    Result<Tensor> y = batch_norm_train_forward(in[0], in[1], in[2], eps, &saved);
    REQUIRE(y.ok());
    const Tensor r = random_tensor(y->shape(), rng);
    Result<BatchNormGrads> g = batch_norm_backward(in[0], in[1], saved, r);
    REQUIRE(g.ok());
    auto loss = [&](const std::vector<Tensor>& v) { return weighted_sum(run(v), r); };
    CHECK(max_gradient_error(in, 0, g->dx, loss) < kTolerance);
    CHECK(max_gradient_error(in, 1, g->dscale, loss) < kTolerance);
    CHECK(max_gradient_error(in, 2, g->dbias, loss) < kTolerance);
  }
}

TEST_CASE("BatchNormalization training forward and running statistics are PyTorch's", "[grad]") {
  // One channel, values 1..4 over N=2, inner 2: mean 2.5, biased var 1.25, unbiased 5/3.
  Tensor x = test::make<double>({2, 1, 2}, {1, 2, 3, 4});
  Tensor scale = test::make<double>({1}, {2});
  Tensor bias = test::make<double>({1}, {0.5});
  BatchNormSaved s;
  Result<Tensor> y = batch_norm_train_forward(x, scale, bias, 1e-5, &s);
  REQUIRE(y.ok());
  const double inv_std = 1.0 / std::sqrt(1.25 + 1e-5);
  CHECK(s.mean[0] == 2.5);
  CHECK(s.unbiased_var[0] == Approx(5.0 / 3.0).epsilon(1e-15));
  CHECK(y->data<double>()[0] == Approx((1 - 2.5) * inv_std * 2 + 0.5).epsilon(1e-14));
  // ONNX momentum 0.9 is PyTorch's 0.1: running = 0.9 * running + 0.1 * batch.
  Tensor rm = test::make<double>({1}, {1.0});
  Tensor rv = test::make<double>({1}, {2.0});
  REQUIRE(batch_norm_update_running(s, 0.9, rm, rv).ok());
  CHECK(rm.data<double>()[0] == Approx(0.9 * 1.0 + 0.1 * 2.5).epsilon(1e-15));
  CHECK(rv.data<double>()[0] == Approx(0.9 * 2.0 + 0.1 * 5.0 / 3.0).epsilon(1e-15));
  Tensor tiny = test::make<double>({1, 1}, {1});
  CHECK_FALSE(batch_norm_train_forward(tiny, scale, bias, 1e-5, &s).ok());
}

TEST_CASE("Relu, pooling and global pooling backward match finite differences", "[grad]") {
  std::mt19937_64 rng(5);
  struct Case {
    std::string op;
    std::vector<pipeswitch::psm::Attribute> attrs;
    Shape x;
  };
  const std::vector<Case> cases = {
      {"Relu", {}, {2, 3, 4, 4}},
      {"MaxPool",
       {attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {2, 2}),
        attr_ints("pads", {1, 1, 1, 1})},
       {2, 2, 7, 8}},
      {"MaxPool", {attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {2, 2})}, {1, 3, 9, 9}},
      {"MaxPool",
       {attr_ints("kernel_shape", {2, 2}), attr_ints("strides", {2, 2}), attr_i("ceil_mode", 1)},
       {1, 2, 7, 7}},
      {"AveragePool",
       {attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {1, 1}),
        attr_ints("pads", {1, 1, 1, 1}), attr_i("count_include_pad", 1)},
       {2, 2, 5, 6}},
      {"AveragePool",
       {attr_ints("kernel_shape", {3, 2}), attr_ints("strides", {2, 1}),
        attr_ints("pads", {1, 0, 1, 1})},
       {1, 3, 7, 5}},
      {"GlobalAveragePool", {}, {2, 3, 4, 5}},
  };
  for (const Case& c : cases) {
    INFO(c.op << " " << shape_string(c.x));
    const Attributes a = attrs(c.attrs);
    std::vector<Tensor> in;
    // Values away from 0 keep Relu off its kink within +-h; max-pool ties have probability 0.
    in.push_back(random_tensor(c.x, rng, 1e-3));
    auto run = [&](const std::vector<Tensor>& v) { return forward_op(c.op, a, {&v[0]}); };
    const Tensor r = random_tensor(run(in).shape(), rng);
    Result<Tensor> dx = c.op == "Relu"          ? relu_backward(in[0], r)
                        : c.op == "MaxPool"     ? max_pool_backward(a, in[0], r)
                        : c.op == "AveragePool" ? average_pool_backward(a, in[0], r)
                                                : global_average_pool_backward(in[0], r);
    INFO(dx.status().to_string());
    REQUIRE(dx.ok());
    auto loss = [&](const std::vector<Tensor>& v) { return weighted_sum(run(v), r); };
    CHECK(max_gradient_error(in, 0, *dx, loss) < kTolerance);
  }
}

TEST_CASE("Add with broadcasting, Flatten, Reshape and Concat backward", "[grad]") {
  std::mt19937_64 rng(9);
  SECTION("Add reduces the gradient over broadcast dimensions") {
    const Attributes a = attrs();
    for (const auto& [as, bs] : std::vector<std::pair<Shape, Shape>>{
             {{2, 3, 4}, {2, 3, 4}}, {{2, 3, 4}, {4}}, {{2, 1, 4}, {3, 1}}, {{1}, {2, 2}}}) {
      INFO(shape_string(as) << " + " << shape_string(bs));
      std::vector<Tensor> in;
      in.push_back(random_tensor(as, rng));
      in.push_back(random_tensor(bs, rng));
      auto run = [&](const std::vector<Tensor>& v) { return forward_op("Add", a, {&v[0], &v[1]}); };
      const Tensor r = random_tensor(run(in).shape(), rng);
      Result<Tensor> da = reduce_to_shape(r, as);
      Result<Tensor> db = reduce_to_shape(r, bs);
      REQUIRE(da.ok());
      REQUIRE(db.ok());
      auto loss = [&](const std::vector<Tensor>& v) { return weighted_sum(run(v), r); };
      CHECK(max_gradient_error(in, 0, *da, loss) < kTolerance);
      CHECK(max_gradient_error(in, 1, *db, loss) < kTolerance);
    }
    Tensor dy = random_tensor({2, 3}, rng);
    CHECK_FALSE(reduce_to_shape(dy, {4}).ok());
  }
  SECTION("Flatten and Reshape") {
    std::vector<Tensor> in;
    in.push_back(random_tensor({2, 3, 2, 2}, rng));
    const Attributes a = attrs({attr_i("axis", 1)});
    auto run = [&](const std::vector<Tensor>& v) { return forward_op("Flatten", a, {&v[0]}); };
    const Tensor r = random_tensor({2, 12}, rng);
    Result<Tensor> dx = reshape_backward(in[0].shape(), r);
    REQUIRE(dx.ok());
    auto loss = [&](const std::vector<Tensor>& v) { return weighted_sum(run(v), r); };
    CHECK(max_gradient_error(in, 0, *dx, loss) < kTolerance);
    CHECK_FALSE(reshape_backward({5}, r).ok());
  }
  SECTION("Concat on channels and on the last axis") {
    for (int64_t axis : {1, -1}) {
      const Attributes a = attrs({attr_i("axis", axis)});
      std::vector<Tensor> in;
      const std::vector<Shape> shapes = axis == 1
                                            ? std::vector<Shape>{{2, 1, 3}, {2, 4, 3}, {2, 2, 3}}
                                            : std::vector<Shape>{{2, 3, 1}, {2, 3, 2}};
      for (const Shape& s : shapes) in.push_back(random_tensor(s, rng));
      auto run = [&](const std::vector<Tensor>& v) {
        std::vector<const Tensor*> p;
        for (const Tensor& t : v) p.push_back(&t);
        return forward_op("Concat", a, p);
      };
      const Tensor r = random_tensor(run(in).shape(), rng);
      Result<std::vector<Tensor>> g = concat_backward(a, shapes, r);
      REQUIRE(g.ok());
      auto loss = [&](const std::vector<Tensor>& v) { return weighted_sum(run(v), r); };
      for (size_t i = 0; i < shapes.size(); ++i) {
        CHECK(max_gradient_error(in, i, (*g)[i], loss) < kTolerance);
      }
    }
  }
}

TEST_CASE("Gemm backward matches finite differences (transA, transB, alpha, beta, C)", "[grad]") {
  std::mt19937_64 rng(13);
  for (int ta : {0, 1}) {
    for (int tb : {0, 1}) {
      for (const Shape& cs : {Shape{5}, Shape{3, 5}, Shape{3, 1}, Shape{}}) {
        INFO("transA " << ta << " transB " << tb << " C " << shape_string(cs));
        const bool with_c = !cs.empty();
        const Attributes a = attrs({attr_i("transA", ta), attr_i("transB", tb),
                                    attr_f("alpha", 0.75f), attr_f("beta", 1.5f)});
        std::vector<Tensor> in;
        in.push_back(random_tensor(ta ? Shape{4, 3} : Shape{3, 4}, rng));
        in.push_back(random_tensor(tb ? Shape{5, 4} : Shape{4, 5}, rng));
        if (with_c) in.push_back(random_tensor(cs, rng));
        auto run = [&](const std::vector<Tensor>& v) {
          std::vector<const Tensor*> p;
          for (const Tensor& t : v) p.push_back(&t);
          return forward_op("Gemm", a, p);
        };
        const Tensor r = random_tensor({3, 5}, rng);
        Result<GemmGrads> g = gemm_backward(a, in[0], in[1], with_c ? &cs : nullptr, r);
        INFO(g.status().to_string());
        REQUIRE(g.ok());
        auto loss = [&](const std::vector<Tensor>& v) { return weighted_sum(run(v), r); };
        CHECK(max_gradient_error(in, 0, g->da, loss) < kTolerance);
        CHECK(max_gradient_error(in, 1, g->db, loss) < kTolerance);
        if (with_c) CHECK(max_gradient_error(in, 2, g->dc, loss) < kTolerance);
      }
    }
  }
}

TEST_CASE("softmax cross-entropy: value and gradient", "[grad]") {
  std::mt19937_64 rng(17);
  std::vector<Tensor> in;
  in.push_back(random_tensor({4, 6}, rng));
  const std::vector<int64_t> labels = {0, 5, 2, 2};
  Tensor grad;
  Result<double> l = softmax_cross_entropy(in[0], labels, &grad);
  REQUIRE(l.ok());
  auto loss = [&](const std::vector<Tensor>& v) {
    Tensor unused;
    return softmax_cross_entropy(v[0], labels, &unused).value();
  };
  CHECK(max_gradient_error(in, 0, grad, loss) < kTolerance);
  // Uniform logits: the loss is log K.
  Tensor zeros = test::zeros(DType::kFloat64, {2, 6});
  CHECK(softmax_cross_entropy(zeros, std::vector<int64_t>{1, 3}, &grad).value() ==
        Approx(std::log(6.0)).epsilon(1e-15));
  CHECK(softmax_cross_entropy(zeros, std::vector<int64_t>{1, 6}, &grad).status().code() ==
        Code::kOutOfRange);
  Tensor f32 = test::zeros(DType::kFloat32, {2, 6});
  CHECK_FALSE(softmax_cross_entropy(f32, std::vector<int64_t>{1, 3}, &grad).ok());
}

// --- BERT's operators (issue 7: BERT fine-tuning) ---

// `op` run forward on all of `v` (output 0).
Tensor forward_all(const std::string& op, const Attributes& a, const std::vector<Tensor>& v) {
  std::vector<const Tensor*> p;
  for (const Tensor& t : v) p.push_back(&t);
  return forward_op(op, a, p);
}

Tensor int64_tensor(const Shape& shape, const std::vector<int64_t>& values) {
  Tensor t = test::zeros(DType::kInt64, shape);
  REQUIRE(static_cast<int64_t>(values.size()) == t.numel());
  std::copy(values.begin(), values.end(), t.mutable_data<int64_t>());
  return t;
}

TEST_CASE("MatMul backward matches finite differences (batched, broadcast, 1-D)", "[grad]") {
  std::mt19937_64 rng(19);
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{3, 4}, {4, 5}},
      {{2, 3, 4}, {4, 5}},
      {{2, 1, 3, 4}, {3, 4, 2}},
      {{4}, {2, 4, 3}},
      {{2, 3, 4}, {4}},
      {{4}, {4}},
      {{2, 2, 3, 4}, {2, 2, 4, 3}},  // attention: [batch, heads, seq, head] x [.., head, seq]
      {{1, 3, 4}, {2, 1, 4, 2}},
  };
  const Attributes a = attrs();
  for (const auto& [as, bs] : cases) {
    INFO(shape_string(as) << " x " << shape_string(bs));
    std::vector<Tensor> in;
    in.push_back(random_tensor(as, rng));
    in.push_back(random_tensor(bs, rng));
    const Tensor r = random_tensor(forward_all("MatMul", a, in).shape(), rng);
    Result<MatMulGrads> g = matmul_backward(in[0], in[1], r);
    INFO(g.status().to_string());
    REQUIRE(g.ok());
    auto loss = [&](const std::vector<Tensor>& v) {
      return weighted_sum(forward_all("MatMul", a, v), r);
    };
    CHECK(max_gradient_error(in, 0, g->da, loss) < kTolerance);
    CHECK(max_gradient_error(in, 1, g->db, loss) < kTolerance);
  }
  Tensor x = random_tensor({2, 3}, rng);
  Tensor w = random_tensor({4, 5}, rng);
  CHECK_FALSE(matmul_backward(x, w, random_tensor({2, 5}, rng)).ok());
  Tensor w2 = random_tensor({3, 5}, rng);
  CHECK_FALSE(matmul_backward(x, w2, random_tensor({2, 4}, rng)).ok());
}

// Attention's scores as the importer fuses them for training (fuse_matmul_scale): Y = alpha
// matmul(A, B); batched, broadcast and 1-D operands, a negative alpha.
TEST_CASE("MatMulScale backward matches finite differences", "[grad]") {
  std::mt19937_64 rng(23);
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{2, 2, 3, 4}, {2, 2, 4, 3}},  // attention: [batch, heads, seq, head] x [.., head, seq]
      {{1, 3, 4}, {2, 1, 4, 2}},
      {{4}, {4, 3}},
  };
  for (const float alpha : {0.125f, -2.0f}) {
    const Attributes a = attrs({attr_f("alpha", alpha)});
    for (const auto& [as, bs] : cases) {
      INFO(shape_string(as) << " x " << shape_string(bs) << ", alpha " << alpha);
      std::vector<Tensor> in;
      in.push_back(random_tensor(as, rng));
      in.push_back(random_tensor(bs, rng));
      const Tensor r = random_tensor(forward_all("MatMulScale", a, in).shape(), rng);
      Result<MatMulGrads> g = matmul_scale_backward(in[0], in[1], r, alpha);
      INFO(g.status().to_string());
      REQUIRE(g.ok());
      auto loss = [&](const std::vector<Tensor>& v) {
        return weighted_sum(forward_all("MatMulScale", a, v), r);
      };
      CHECK(max_gradient_error(in, 0, g->da, loss) < kTolerance);
      CHECK(max_gradient_error(in, 1, g->db, loss) < kTolerance);
    }
  }
}

// With the linear layer's bias taken in (fuse_linear_bias): Y = A B^T + bias; dbias is dY
// summed over every row, and A's and B's gradients are the bias-free ones.
TEST_CASE("MatMulTransB with a bias: backward matches finite differences", "[grad]") {
  std::mt19937_64 rng(31);
  const Attributes a = attrs();
  for (const auto& [as, bs] :
       std::vector<std::pair<Shape, Shape>>{{{2, 3, 4}, {5, 4}}, {{4}, {3, 4}}}) {
    INFO(shape_string(as) << " x " << shape_string(bs) << "^T + bias");
    std::vector<Tensor> in;
    in.push_back(random_tensor(as, rng));
    in.push_back(random_tensor(bs, rng));
    in.push_back(random_tensor({bs[0]}, rng));
    const Tensor r = random_tensor(forward_all("MatMulTransB", a, in).shape(), rng);
    Result<MatMulGrads> g = matmul_trans_b_backward(in[0], in[1], r);
    REQUIRE(g.ok());
    Result<Tensor> dbias = reduce_to_shape(r, {bs[0]});  // what layer_backward uses
    REQUIRE(dbias.ok());
    CHECK(dbias->shape() == Shape{bs[0]});
    auto loss = [&](const std::vector<Tensor>& v) {
      return weighted_sum(forward_all("MatMulTransB", a, v), r);
    };
    CHECK(max_gradient_error(in, 0, g->da, loss) < kTolerance);
    CHECK(max_gradient_error(in, 1, g->db, loss) < kTolerance);
    CHECK(max_gradient_error(in, 2, *dbias, loss) < kTolerance);
  }
  CHECK_FALSE(reduce_to_shape(test::zeros(DType::kFloat64, {}), {3}).ok());
}

// nn.Linear as the importer fuses it for training: Y = A B^T with B the weight [N, K] as
// stored. dB keeps B's layout and sums over every row of A (batched and 1-D A).
TEST_CASE("MatMulTransB backward matches finite differences", "[grad]") {
  std::mt19937_64 rng(29);
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{2, 3, 4}, {5, 4}},     // BERT's linear layers: [batch, seq, hidden] x [out, hidden]
      {{2, 1, 3, 4}, {2, 4}},  // two batch dims
      {{3, 4}, {5, 4}},       {{4}, {3, 4}},  // 1-D A: [K] -> [N]
      {{3, 1}, {2, 1}},
  };
  const Attributes a = attrs();
  for (const auto& [as, bs] : cases) {
    INFO(shape_string(as) << " x " << shape_string(bs) << "^T");
    std::vector<Tensor> in;
    in.push_back(random_tensor(as, rng));
    in.push_back(random_tensor(bs, rng));
    const Tensor r = random_tensor(forward_all("MatMulTransB", a, in).shape(), rng);
    Result<MatMulGrads> g = matmul_trans_b_backward(in[0], in[1], r);
    INFO(g.status().to_string());
    REQUIRE(g.ok());
    CHECK(g->da.shape() == as);
    CHECK(g->db.shape() == bs);
    auto loss = [&](const std::vector<Tensor>& v) {
      return weighted_sum(forward_all("MatMulTransB", a, v), r);
    };
    CHECK(max_gradient_error(in, 0, g->da, loss) < kTolerance);
    CHECK(max_gradient_error(in, 1, g->db, loss) < kTolerance);

    // The same as MatMul's backward on B^T, with dB transposed back.
    const int64_t n = bs[0], k = bs[1];
    Tensor bt = test::zeros(DType::kFloat64, {k, n});
    for (int64_t j = 0; j < n; ++j)
      for (int64_t p = 0; p < k; ++p)
        bt.mutable_data<double>()[p * n + j] = in[1].data<double>()[j * k + p];
    Result<MatMulGrads> plain = matmul_backward(in[0], bt, r);
    REQUIRE(plain.ok());
    double max_diff = 0;
    for (int64_t i = 0; i < g->da.numel(); ++i) {
      max_diff =
          std::max(max_diff, std::abs(g->da.data<double>()[i] - plain->da.data<double>()[i]));
    }
    for (int64_t j = 0; j < n; ++j)
      for (int64_t p = 0; p < k; ++p)
        max_diff = std::max(max_diff, std::abs(g->db.data<double>()[j * k + p] -
                                               plain->db.data<double>()[p * n + j]));
    CHECK(max_diff < 1e-12);
  }
  // Refusals: B not 2-D, K mismatch, dY of the wrong shape, float32.
  Tensor x = random_tensor({2, 3}, rng);
  CHECK_FALSE(
      matmul_trans_b_backward(x, random_tensor({4, 3}, rng), random_tensor({2, 5}, rng)).ok());
  CHECK_FALSE(
      matmul_trans_b_backward(x, random_tensor({4, 2}, rng), random_tensor({2, 4}, rng)).ok());
  const Result<MatMulGrads> b3 =
      matmul_trans_b_backward(x, random_tensor({1, 4, 3}, rng), random_tensor({2, 4}, rng));
  REQUIRE_FALSE(b3.ok());
  CHECK_THAT(b3.status().message(), Catch::Contains("float64[1,4,3]") && Catch::Contains("2-D"));
  const Result<MatMulGrads> mismatch =
      matmul_trans_b_backward(x, random_tensor({4, 2}, rng), random_tensor({2, 4}, rng));
  CHECK_THAT(mismatch.status().message(),
             Catch::Contains("float64[2,3]") && Catch::Contains("float64[4,2]"));
  Tensor f32 = test::zeros(DType::kFloat32, {4, 3});
  CHECK_FALSE(matmul_trans_b_backward(x, f32, random_tensor({2, 4}, rng)).ok());
}

TEST_CASE("LayerNormalization backward matches finite differences", "[grad]") {
  std::mt19937_64 rng(23);
  struct Case {
    Shape x, scale;
    std::optional<Shape> bias;
    int64_t axis;
    float epsilon;
  };
  const std::vector<Case> cases = {
      {{2, 3, 8}, {8}, Shape{8}, -1, 1e-12f},  // BERT: last axis, eps 1e-12
      {{4, 6}, {6}, Shape{6}, -1, 1e-5f},
      {{2, 3, 4}, {3, 4}, Shape{4}, 1, 1e-3f},  // two normalized axes, bias broadcast
      {{3, 5}, {5}, std::nullopt, 1, 1e-5f},    // no bias
  };
  for (const Case& c : cases) {
    INFO(shape_string(c.x) << " axis " << c.axis);
    const Attributes a = attrs({attr_i("axis", c.axis), attr_f("epsilon", c.epsilon)});
    std::vector<Tensor> in;
    in.push_back(random_tensor(c.x, rng));
    in.push_back(random_tensor(c.scale, rng));
    if (c.bias) in.push_back(random_tensor(*c.bias, rng));
    const Tensor r = random_tensor(c.x, rng);
    const Shape* bias_shape = c.bias ? &*c.bias : nullptr;
    Result<LayerNormGrads> g = layer_norm_backward(a, in[0], in[1], bias_shape, r);
    INFO(g.status().to_string());
    REQUIRE(g.ok());
    auto loss = [&](const std::vector<Tensor>& v) {
      return weighted_sum(forward_all("LayerNormalization", a, v), r);
    };
    CHECK(max_gradient_error(in, 0, g->dx, loss) < kTolerance);
    CHECK(max_gradient_error(in, 1, g->dscale, loss) < kTolerance);
    if (c.bias) CHECK(max_gradient_error(in, 2, g->dbias, loss) < kTolerance);
  }
  Tensor x = random_tensor({2, 4}, rng);
  Tensor bad_scale = random_tensor({3}, rng);
  CHECK_FALSE(layer_norm_backward(attrs(), x, bad_scale, nullptr, x).ok());
}

TEST_CASE("Softmax backward matches finite differences", "[grad]") {
  std::mt19937_64 rng(29);
  for (const auto& [shape, axis] : std::vector<std::pair<Shape, int64_t>>{
           {{2, 3, 5}, -1}, {{2, 4, 3}, 1}, {{2, 2, 4, 4}, -1}, {{6}, 0}}) {
    INFO(shape_string(shape) << " axis " << axis);
    const Attributes a = attrs({attr_i("axis", axis)});
    std::vector<Tensor> in;
    in.push_back(random_tensor(shape, rng));
    const Tensor y = forward_all("Softmax", a, in);
    const Tensor r = random_tensor(shape, rng);
    Result<Tensor> dx = softmax_backward(a, y, r);
    INFO(dx.status().to_string());
    REQUIRE(dx.ok());
    auto loss = [&](const std::vector<Tensor>& v) {
      return weighted_sum(forward_all("Softmax", a, v), r);
    };
    CHECK(max_gradient_error(in, 0, *dx, loss) < kTolerance);
  }
}

// Attention's mask Add joined to its Softmax (fuse_add_softmax): the trainer's layer_backward
// gives dX (Softmax's, from Y) and dM (dX summed to the mask's shape).
TEST_CASE("AddSoftmax backward matches finite differences", "[grad]") {
  std::mt19937_64 rng(37);
  for (const auto& [xs, ms] : std::vector<std::pair<Shape, Shape>>{{{2, 3, 4, 4}, {2, 1, 4, 4}},
                                                                   {{2, 3, 4, 4}, {2, 1, 1, 4}},
                                                                   {{3, 5}, {3, 5}},
                                                                   {{3, 5}, {1}}}) {
    INFO(shape_string(xs) << " + " << shape_string(ms));
    const Attributes a = attrs({attr_i("axis", -1)});
    std::vector<Tensor> in;
    in.push_back(random_tensor(xs, rng));
    in.push_back(random_tensor(ms, rng));
    const Tensor y = forward_all("AddSoftmax", a, in);
    const Tensor r = random_tensor(xs, rng);
    pipeswitch::psm::Layer layer;
    layer.set_op("AddSoftmax");
    *layer.add_attributes() = attr_i("axis", -1);
    Result<std::vector<std::pair<size_t, Tensor>>> g =
        layer_backward(layer, LayerValues{{&in[0], &in[1]}, &y, nullptr}, r);
    INFO(g.status().to_string());
    REQUIRE(g.ok());
    REQUIRE(g->size() == 2);
    CHECK((*g)[0].first == 0);
    CHECK((*g)[1].first == 1);
    CHECK((*g)[1].second.shape() == ms);
    auto loss = [&](const std::vector<Tensor>& v) {
      return weighted_sum(forward_all("AddSoftmax", a, v), r);
    };
    CHECK(max_gradient_error(in, 0, (*g)[0].second, loss) < kTolerance);
    CHECK(max_gradient_error(in, 1, (*g)[1].second, loss) < kTolerance);
  }
}

TEST_CASE("Sub, Mul, Div, Pow and Add backward with broadcasting", "[grad]") {
  std::mt19937_64 rng(31);
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{2, 3, 4}, {2, 3, 4}}, {{2, 3, 4}, {4}}, {{2, 1, 4}, {3, 1}}, {{}, {2, 3}}, {{2, 3, 4}, {}}};
  const Attributes a = attrs();
  for (const std::string op : {"Add", "Sub", "Mul", "Div", "Pow"}) {
    for (const auto& [as, bs] : shapes) {
      INFO(op << " " << shape_string(as) << ", " << shape_string(bs));
      std::vector<Tensor> in;
      in.push_back(random_tensor(as, rng));
      in.push_back(random_tensor(bs, rng, op == "Div" ? 0.5 : 0.0));
      if (op == "Pow") {  // positive bases: both gradients are defined
        double* p = in[0].mutable_data<double>();
        for (int64_t i = 0; i < in[0].numel(); ++i) p[i] = std::abs(p[i]) + 0.5;
      }
      const Tensor r = random_tensor(forward_all(op, a, in).shape(), rng);
      Result<BinaryGrads> g = binary_backward(op, in[0], in[1], r);
      INFO(g.status().to_string());
      REQUIRE(g.ok());
      auto loss = [&](const std::vector<Tensor>& v) {
        return weighted_sum(forward_all(op, a, v), r);
      };
      CHECK(max_gradient_error(in, 0, g->da, loss) < kTolerance);
      CHECK(max_gradient_error(in, 1, g->db, loss) < kTolerance);
    }
  }
  SECTION("Pow with a constant exponent 2 and negative bases (LayerNorm's decomposition)") {
    std::vector<Tensor> in;
    in.push_back(random_tensor({3, 4}, rng));
    in.push_back(test::make<double>({}, {2.0}));
    const Tensor r = random_tensor({3, 4}, rng);
    Result<BinaryGrads> g = binary_backward("Pow", in[0], in[1], r);
    REQUIRE(g.ok());
    auto loss = [&](const std::vector<Tensor>& v) {
      return weighted_sum(forward_all("Pow", a, v), r);
    };
    CHECK(max_gradient_error(in, 0, g->da, loss) < kTolerance);
  }
  Tensor x = random_tensor({2, 3}, rng);
  CHECK_FALSE(binary_backward("Max", x, x, x).ok());
  CHECK_FALSE(binary_backward("Mul", x, x, random_tensor({3, 2}, rng)).ok());
}

TEST_CASE("Erf, Tanh, Sqrt, Gelu, Neg, Exp and Identity backward", "[grad]") {
  std::mt19937_64 rng(37);
  for (const std::string op : {"Erf", "Tanh", "Sqrt", "Gelu", "Neg", "Exp", "Identity"}) {
    INFO(op);
    const Attributes a = attrs();
    std::vector<Tensor> in;
    in.push_back(random_tensor({2, 3, 4}, rng));
    if (op == "Sqrt") {
      double* p = in[0].mutable_data<double>();
      for (int64_t i = 0; i < in[0].numel(); ++i) p[i] = std::abs(p[i]) + 0.2;
    }
    const Tensor r = random_tensor({2, 3, 4}, rng);
    Result<Tensor> dx = unary_backward(op, in[0], r);
    INFO(dx.status().to_string());
    REQUIRE(dx.ok());
    auto loss = [&](const std::vector<Tensor>& v) {
      return weighted_sum(forward_all(op, a, v), r);
    };
    CHECK(max_gradient_error(in, 0, *dx, loss) < kTolerance);
  }
  SECTION("Cast of float64 to float64 passes the gradient through") {
    const Attributes a = attrs({attr_i("to", 11)});  // TensorProto.DOUBLE
    std::vector<Tensor> in;
    in.push_back(random_tensor({3, 2}, rng));
    const Tensor r = random_tensor({3, 2}, rng);
    Result<Tensor> dx = unary_backward("Cast", in[0], r);
    REQUIRE(dx.ok());
    auto loss = [&](const std::vector<Tensor>& v) {
      return weighted_sum(forward_all("Cast", a, v), r);
    };
    CHECK(max_gradient_error(in, 0, *dx, loss) < kTolerance);
  }
  Tensor x = random_tensor({2}, rng);
  CHECK_FALSE(unary_backward("Floor", x, x).ok());
}

TEST_CASE("Gather backward: embedding scatter-add and the pooler's first token", "[grad]") {
  std::mt19937_64 rng(41);
  struct Case {
    Shape data;
    Shape index_shape;
    std::vector<int64_t> indices;
    int64_t axis;
    bool int32;
  };
  const std::vector<Case> cases = {
      // Word embeddings: [vocab, hidden] by [batch, seq] token ids, with repeats and a -1.
      {{10, 4}, {2, 3}, {1, 7, 1, 0, -1, 7}, 0, false},
      // The pooler's hidden_states[:, 0]: axis 1, a scalar index.
      {{2, 5, 4}, {}, {0}, 1, false},
      {{3, 4, 2}, {2, 2}, {3, 0, 3, -4}, 1, true},
      {{4, 3}, {5}, {2, 2, 2, 1, 2}, -2, true},
  };
  for (const Case& c : cases) {
    INFO(shape_string(c.data) << " axis " << c.axis);
    const Attributes a = attrs({attr_i("axis", c.axis)});
    Tensor indices = c.int32 ? test::zeros(DType::kInt32, c.index_shape)
                             : int64_tensor(c.index_shape, c.indices);
    if (c.int32) {
      for (size_t i = 0; i < c.indices.size(); ++i) {
        indices.mutable_data<int32_t>()[i] = static_cast<int32_t>(c.indices[i]);
      }
    }
    std::vector<Tensor> in;
    in.push_back(random_tensor(c.data, rng));
    auto run = [&](const std::vector<Tensor>& v) {
      return forward_op("Gather", a, {&v[0], &indices});
    };
    const Tensor r = random_tensor(run(in).shape(), rng);
    Result<Tensor> dd = gather_backward(a, c.data, indices, r);
    INFO(dd.status().to_string());
    REQUIRE(dd.ok());
    auto loss = [&](const std::vector<Tensor>& v) { return weighted_sum(run(v), r); };
    CHECK(max_gradient_error(in, 0, *dd, loss) < kTolerance);
  }
  Tensor bad = int64_tensor({1}, {10});
  CHECK(gather_backward(attrs(), {10, 4}, bad, random_tensor({1, 4}, rng)).status().code() ==
        Code::kOutOfRange);
  Tensor ok = int64_tensor({1}, {3});
  CHECK_FALSE(gather_backward(attrs(), {10, 4}, ok, random_tensor({2, 4}, rng)).ok());
}

TEST_CASE("Transpose, Expand and ReduceMean backward", "[grad]") {
  std::mt19937_64 rng(43);
  SECTION("Transpose with BERT's perms and the default") {
    for (const std::vector<int64_t>& perm :
         std::vector<std::vector<int64_t>>{{0, 2, 1, 3}, {0, 2, 3, 1}, {3, 0, 1, 2}, {}}) {
      INFO(shape_string(perm));
      const Attributes a = perm.empty() ? attrs() : attrs({attr_ints("perm", perm)});
      std::vector<Tensor> in;
      in.push_back(random_tensor({2, 3, 4, 5}, rng));
      const Tensor r = random_tensor(forward_all("Transpose", a, in).shape(), rng);
      Result<Tensor> dx = transpose_backward(a, r);
      INFO(dx.status().to_string());
      REQUIRE(dx.ok());
      auto loss = [&](const std::vector<Tensor>& v) {
        return weighted_sum(forward_all("Transpose", a, v), r);
      };
      CHECK(max_gradient_error(in, 0, *dx, loss) < kTolerance);
    }
    Tensor dy = random_tensor({2, 3}, rng);
    CHECK_FALSE(transpose_backward(attrs({attr_ints("perm", {0, 0})}), dy).ok());
  }
  SECTION("Expand") {
    const Attributes a = attrs();
    const Tensor shape = int64_tensor({3}, {2, 3, 4});
    std::vector<Tensor> in;
    in.push_back(random_tensor({3, 1}, rng));
    auto run = [&](const std::vector<Tensor>& v) {
      return forward_op("Expand", a, {&v[0], &shape});
    };
    const Tensor r = random_tensor({2, 3, 4}, rng);
    Result<Tensor> dx = expand_backward({3, 1}, r);
    REQUIRE(dx.ok());
    auto loss = [&](const std::vector<Tensor>& v) { return weighted_sum(run(v), r); };
    CHECK(max_gradient_error(in, 0, *dx, loss) < kTolerance);
  }
  SECTION("ReduceMean: axes attribute, keepdims, all axes") {
    struct Case {
      std::vector<int64_t> axes;
      int64_t keepdims;
    };
    for (const Case& c : std::vector<Case>{{{-1}, 1}, {{0, 2}, 0}, {{}, 1}, {{}, 0}, {{1}, 0}}) {
      INFO(shape_string(c.axes) << " keepdims " << c.keepdims);
      std::vector<pipeswitch::psm::Attribute> list = {attr_i("keepdims", c.keepdims)};
      if (!c.axes.empty()) list.push_back(attr_ints("axes", c.axes));
      const Attributes a = attrs(list);
      std::vector<Tensor> in;
      in.push_back(random_tensor({2, 3, 4}, rng));
      const Tensor r = random_tensor(forward_all("ReduceMean", a, in).shape(), rng);
      Result<Tensor> dx = reduce_mean_backward(a, {}, {2, 3, 4}, r);
      INFO(dx.status().to_string());
      REQUIRE(dx.ok());
      auto loss = [&](const std::vector<Tensor>& v) {
        return weighted_sum(forward_all("ReduceMean", a, v), r);
      };
      CHECK(max_gradient_error(in, 0, *dx, loss) < kTolerance);
    }
    // Axes as input 1 (opset 18).
    const std::vector<int64_t> axes = {1};
    Result<Tensor> dx =
        reduce_mean_backward(attrs(), axes, {2, 3, 4}, random_tensor({2, 1, 4}, rng));
    CHECK(dx.ok());
    CHECK_FALSE(reduce_mean_backward(attrs(), axes, {2, 3, 4}, random_tensor({2, 4}, rng)).ok());
  }
}

TEST_CASE("the finite-difference check catches wrong BERT gradients", "[grad]") {
  std::mt19937_64 rng(47);
  SECTION("LayerNorm dscale off by 1%, one dX element off by 1e-3") {
    const Attributes a = attrs({attr_i("axis", -1), attr_f("epsilon", 1e-12f)});
    std::vector<Tensor> in;
    in.push_back(random_tensor({2, 3, 8}, rng));
    in.push_back(random_tensor({8}, rng));
    in.push_back(random_tensor({8}, rng));
    const Tensor r = random_tensor({2, 3, 8}, rng);
    const Shape bias_shape{8};
    Result<LayerNormGrads> g = layer_norm_backward(a, in[0], in[1], &bias_shape, r);
    REQUIRE(g.ok());
    auto loss = [&](const std::vector<Tensor>& v) {
      return weighted_sum(forward_all("LayerNormalization", a, v), r);
    };
    REQUIRE(max_gradient_error(in, 1, g->dscale, loss) < kTolerance);
    for (int64_t i = 0; i < g->dscale.numel(); ++i) g->dscale.mutable_data<double>()[i] *= 1.01;
    CHECK(max_gradient_error(in, 1, g->dscale, loss) > kTolerance);
    REQUIRE(max_gradient_error(in, 0, g->dx, loss) < kTolerance);
    g->dx.mutable_data<double>()[5] += 1e-3;
    CHECK(max_gradient_error(in, 0, g->dx, loss) > kTolerance);
  }
  SECTION("an embedding gradient that counts a repeated token once") {
    const Attributes a = attrs();
    const Tensor ids = int64_tensor({4}, {2, 5, 2, 0});
    std::vector<Tensor> in;
    in.push_back(random_tensor({6, 3}, rng));
    auto run = [&](const std::vector<Tensor>& v) { return forward_op("Gather", a, {&v[0], &ids}); };
    const Tensor r = random_tensor({4, 3}, rng);
    Result<Tensor> dd = gather_backward(a, {6, 3}, ids, r);
    REQUIRE(dd.ok());
    auto loss = [&](const std::vector<Tensor>& v) { return weighted_sum(run(v), r); };
    REQUIRE(max_gradient_error(in, 0, *dd, loss) < kTolerance);
    // Row 2 as if only its first occurrence counted (overwrite instead of add).
    for (int64_t j = 0; j < 3; ++j) dd->mutable_data<double>()[2 * 3 + j] = r.data<double>()[j];
    CHECK(max_gradient_error(in, 0, *dd, loss) > kTolerance);
  }
  SECTION("MatMul dB not summed over the broadcast batch (only batch element 0)") {
    std::vector<Tensor> in;
    in.push_back(random_tensor({3, 2, 4}, rng));
    in.push_back(random_tensor({4, 5}, rng));
    const Attributes a = attrs();
    const Tensor r = random_tensor({3, 2, 5}, rng);
    Result<MatMulGrads> g = matmul_backward(in[0], in[1], r);
    REQUIRE(g.ok());
    auto loss = [&](const std::vector<Tensor>& v) {
      return weighted_sum(forward_all("MatMul", a, v), r);
    };
    REQUIRE(max_gradient_error(in, 1, g->db, loss) < kTolerance);
    Tensor first_a = test::zeros(DType::kFloat64, {2, 4});
    Tensor first_r = test::zeros(DType::kFloat64, {2, 5});
    std::copy_n(in[0].data<double>(), 8, first_a.mutable_data<double>());
    std::copy_n(r.data<double>(), 10, first_r.mutable_data<double>());
    Result<MatMulGrads> wrong = matmul_backward(first_a, in[1], first_r);
    REQUIRE(wrong.ok());
    CHECK(max_gradient_error(in, 1, wrong->db, loss) > kTolerance);
  }
}

// AttentionScores and AttentionContext (fuse_attention): their backward is the unfused layers'
// (HeadSlices, MatMulScale or MatMul, Transpose), bit for bit, and the loss's (finite
// differences). Odd sizes, spare columns, the ranges in any order and overlapping.
TEST_CASE("AttentionScores and AttentionContext backward: the unfused layers' gradients",
          "[grad]") {
  struct Case {
    int64_t batch, seq, heads, head_size, columns, q, k, v, rows;
    float alpha;
  };
  const std::vector<Case> cases = {
      {2, 5, 3, 4, 41, 17, 3, 29, 5, 0.125f},
      {2, 5, 3, 4, 36, 0, 12, 24, 3, -0.5f},
      {1, 3, 2, 3, 7, 1, 0, 1, 4, 1.0f},
  };
  auto bits_equal = [](const Tensor& a, const Tensor& b) {
    return a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.byte_size()) == 0;
  };
  auto layer_of = [](const std::string& op, const Attributes& a) {
    pipeswitch::psm::Layer layer;
    layer.set_op(op);
    *layer.mutable_attributes() = a;
    return layer;
  };
  std::mt19937_64 rng(47);
  for (const Case& c : cases) {
    INFO("B " << c.batch << " S " << c.seq << " H " << c.heads << " D " << c.head_size << " C "
              << c.columns << " q " << c.q << " k " << c.k << " v " << c.v << " M " << c.rows);
    const int64_t size = c.heads * c.head_size;
    auto slice = [&](int64_t start, std::vector<int64_t> perm) {
      return attrs({attr_i("start", start), attr_i("size", size), attr_i("heads", c.heads),
                    attr_ints("perm", perm)});
    };
    const Attributes q_attrs = slice(c.q, {0, 2, 1, 3});
    const Attributes k_attrs = slice(c.k, {0, 2, 3, 1});
    const Attributes v_attrs = slice(c.v, {0, 2, 1, 3});
    const Attributes scores_attrs =
        attrs({attr_i("heads", c.heads), attr_i("size", size), attr_i("q_start", c.q),
               attr_i("k_start", c.k), attr_f("alpha", c.alpha)});
    const Attributes context_attrs =
        attrs({attr_i("heads", c.heads), attr_i("size", size), attr_i("v_start", c.v)});
    std::vector<Tensor> in;
    in.push_back(random_tensor({c.batch, c.seq, c.columns}, rng));        // X
    in.push_back(random_tensor({c.batch, c.heads, c.rows, c.seq}, rng));  // P
    const Tensor& x = in[0];
    const Tensor& p = in[1];

    {  // AttentionScores
      const Tensor r = random_tensor({c.batch, c.heads, c.seq, c.seq}, rng);
      Result<std::vector<std::pair<size_t, Tensor>>> g = layer_backward(
          layer_of("AttentionScores", scores_attrs), LayerValues{{&x}, nullptr, nullptr}, r);
      INFO(g.status().to_string());
      REQUIRE(g.ok());
      REQUIRE(g->size() == 1);
      CHECK((*g)[0].first == 0);
      const Tensor& dx = (*g)[0].second;
      // Unfused: MatMulScale's backward, then each HeadSlice's, added as the trainer adds them.
      const Tensor q = forward_op("HeadSlice", q_attrs, {&x});
      const Tensor k = forward_op("HeadSlice", k_attrs, {&x});
      Result<std::vector<std::pair<size_t, Tensor>>> mm =
          layer_backward(layer_of("MatMulScale", attrs({attr_f("alpha", c.alpha)})),
                         LayerValues{{&q, &k}, nullptr, nullptr}, r);
      REQUIRE(mm.ok());
      Result<Tensor> dq = head_slice_backward(q_attrs, x.shape(), (*mm)[0].second);
      Result<Tensor> dk = head_slice_backward(k_attrs, x.shape(), (*mm)[1].second);
      REQUIRE(dq.ok());
      REQUIRE(dk.ok());
      for (int64_t i = 0; i < dk->numel(); ++i) {
        dk->mutable_data<double>()[i] += dq->data<double>()[i];
      }
      CHECK(bits_equal(dx, *dk));
      // Zeros outside the query's and key's columns.
      for (int64_t i = 0; i < dx.numel(); ++i) {
        const int64_t col = i % c.columns;
        const bool read = (col >= c.q && col < c.q + size) || (col >= c.k && col < c.k + size);
        if (!read) REQUIRE(dx.data<double>()[i] == 0.0);
      }
      auto loss = [&](const std::vector<Tensor>& v) {
        return weighted_sum(forward_op("AttentionScores", scores_attrs, {&v[0]}), r);
      };
      CHECK(max_gradient_error(in, 0, dx, loss) < kTolerance);
    }
    {  // AttentionContext
      const Tensor r = random_tensor({c.batch, c.rows, c.heads, c.head_size}, rng);
      Result<std::vector<std::pair<size_t, Tensor>>> g = layer_backward(
          layer_of("AttentionContext", context_attrs), LayerValues{{&p, &x}, nullptr, nullptr}, r);
      INFO(g.status().to_string());
      REQUIRE(g.ok());
      REQUIRE(g->size() == 2);
      CHECK((*g)[0].first == 0);
      CHECK((*g)[1].first == 1);
      const Tensor& dp = (*g)[0].second;
      const Tensor& dx = (*g)[1].second;
      // Unfused: the Transpose's backward, the MatMul's, the value HeadSlice's.
      const Tensor v = forward_op("HeadSlice", v_attrs, {&x});
      Result<Tensor> dcontext = transpose_backward(attrs({attr_ints("perm", {0, 2, 1, 3})}), r);
      REQUIRE(dcontext.ok());
      Result<MatMulGrads> mm = matmul_backward(p, v, *dcontext);
      REQUIRE(mm.ok());
      Result<Tensor> dv = head_slice_backward(v_attrs, x.shape(), mm->db);
      REQUIRE(dv.ok());
      CHECK(bits_equal(dp, mm->da));
      CHECK(bits_equal(dx, *dv));
      auto loss = [&](const std::vector<Tensor>& t) {
        return weighted_sum(forward_op("AttentionContext", context_attrs, {&t[1], &t[0]}), r);
      };
      CHECK(max_gradient_error(in, 0, dx, loss) < kTolerance);
      CHECK(max_gradient_error(in, 1, dp, loss) < kTolerance);
    }
  }
  {  // float32 and shapes that do not fit are refused
    const Tensor x32 = test::zeros(DType::kFloat32, {2, 5, 24});
    const Tensor dy = random_tensor({2, 2, 5, 5}, rng);
    const Attributes a = attrs({attr_i("heads", 2), attr_i("size", 8), attr_i("q_start", 0),
                                attr_i("k_start", 8), attr_f("alpha", 0.5f)});
    CHECK_FALSE(attention_scores_backward(a, x32, dy).ok());
    const Tensor x = random_tensor({2, 5, 24}, rng);
    CHECK(attention_scores_backward(a, x, dy).ok());
    const Tensor bad_dy = random_tensor({2, 2, 5, 4}, rng);
    CHECK_THAT(attention_scores_backward(a, x, bad_dy).status().message(),
               Catch::Contains("dY float64[2,2,5,4] is not [2, 2, 5, 5]"));
    const Attributes ca = attrs({attr_i("heads", 2), attr_i("size", 8), attr_i("v_start", 16)});
    const Tensor p = random_tensor({2, 2, 5, 5}, rng);
    CHECK(attention_context_backward(ca, p, x, random_tensor({2, 5, 2, 4}, rng)).ok());
    CHECK_FALSE(attention_context_backward(ca, p, x, random_tensor({2, 2, 5, 4}, rng)).ok());
    CHECK_FALSE(attention_context_backward(ca, random_tensor({2, 5, 5}, rng), x,
                                           random_tensor({2, 5, 2, 4}, rng))
                    .ok());
  }
}

}  // namespace
}  // namespace ps::models::cpu
