// test_cpu_grad: every backward CPU reference operator (models/cpu/grad.h) against central
// finite differences in double on small random shapes. The scalar checked is
// L = sum(Y * R) for a fixed random R, so dL/dY = R; each input element is moved by +-h and
// the numeric derivative (L+ - L-) / 2h is compared with the analytic gradient.
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "models/cpu/grad.h"
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

}  // namespace
}  // namespace ps::models::cpu
