// BERT's backward kernels (cuda/kernels/train_bert.cu) on the CPU under the host emulation of
// blocks and warps (kernel_emulation.h), fed with the plans the GPU ops make (grad_bert_plan.h,
// matmul_grad_plan.h) and compared with the float64 CPU references (models/cpu/grad.h). The
// MatMul plan runs with a host GEMM in place of cuBLAS. Each kernel family also has a negative
// control: a deliberately wrong gradient that the same comparison must reject. The [gpu]
// cases of gpu_grad_bert_ops_test.cc run the same kernels on the device.
#include "tests/models/kernel_emulation.h"

// The kernels, compiled for the host (reduce.cu and train.cu are compiled into the other
// emulation translation unit, gpu_train_kernel_emulation_test.cc: declared here).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <map>
#include <random>

#include "cuda/kernels/kernel_params.h"
#include "cuda/kernels/train_bert.cu"
#include "models/cpu/grad.h"
#include "models/cpu/ops.h"
#include "models/gpu/grad_bert_plan.h"
#include "models/gpu/grad_kernel_plan.h"
#include "models/gpu/kernel_op_util.h"
#include "models/gpu/matmul_grad_plan.h"
#include "tests/models/cpu_ops_test_util.h"
#include "tests/models/gpu_op_check.h"
#include "tests/models/grad_check_util.h"
#include "tests/models/reduce_emulation.h"

namespace ps::models::gpu {
namespace {

using cpu::Tensor;
using cpu::test::attr_f;
using cpu::test::attr_i;
using cpu::test::attr_ints;
using cpu::test::attrs;
using grad_test::grad_error;
using grad_test::to_f64;
using grad_test::zeros_f32;
using testing::random_tensor;

// One rounding per element (or a double-accumulated sum): as the train.cu emulation tests.
constexpr double kTolerance = 1e-6;
// Float32 sums of up to a few hundred terms (Softmax's and LayerNorm's row sums, LayerNorm's
// column sums): the [gpu] tests' kReduced.
constexpr double kSumTolerance = 2e-5;
// A wrong gradient is off by the order of the values: far outside either tolerance.
constexpr double kWrong = 1e-2;

template <typename F>
void run3(F f) {
  emu_launch(EmuDim{3}, EmuDim{256}, f, /*cooperative=*/false);
}
// Warp kernels: 2 blocks of 64 threads (4 warps), cooperatively.
template <typename F>
void run_warps(F f) {
  emu_launch(EmuDim{2}, EmuDim{64}, f);
}

Tensor add_f32(const Tensor& a, const Tensor& b) {
  Tensor out = zeros_f32(a.shape());
  for (int64_t i = 0; i < a.numel(); ++i) {
    out.mutable_data<float>()[i] = a.data<float>()[i] + b.data<float>()[i];
  }
  return out;
}

Tensor f64_plus(const Tensor& base_f32, const Tensor& g64) {
  Tensor out = to_f64(base_f32);
  for (int64_t i = 0; i < out.numel(); ++i) out.mutable_data<double>()[i] += g64.data<double>()[i];
  return out;
}

// ---- unary ----------------------------------------------------------------------------------

Tensor emu_unary(const std::string& op, const Tensor& x, const Tensor& dy, const Tensor* base) {
  Tensor dx = base != nullptr ? base->clone().value() : zeros_f32(x.shape());
  Result<train_kernels::UnaryGradParams> p = plan_unary_grad(op, x.numel(), base != nullptr);
  REQUIRE(p.ok());
  run3([&] { ps_unary_backward_f32(x.data<float>(), dy.data<float>(), dx.mutable_data<float>(), *p); });
  return dx;
}

TEST_CASE("emulated unary backward: Erf, Tanh, Sqrt, Gelu, Neg, Exp, overwrite and accumulate",
          "[gpu_train_emulation]") {
  uint64_t seed = 500;
  for (const std::string op : {"Erf", "Tanh", "Sqrt", "Gelu", "Neg", "Exp"}) {
    INFO(op);
    const double lo = op == "Sqrt" ? 0.05 : -3.0;
    const Tensor x = random_tensor(DType::kFloat32, {3, 7, 11}, seed++, lo, 3.0);
    const Tensor dy = random_tensor(DType::kFloat32, {3, 7, 11}, seed++);
    Result<Tensor> expected = cpu::unary_backward(op, to_f64(x), to_f64(dy));
    REQUIRE(expected.ok());
    CHECK(grad_error(*expected, emu_unary(op, x, dy, nullptr)).max_rel <= kTolerance);
    const Tensor base = random_tensor(DType::kFloat32, x.shape(), seed++);
    CHECK(grad_error(f64_plus(base, *expected), emu_unary(op, x, dy, &base)).max_rel <=
          kTolerance);
  }
  CHECK_FALSE(plan_unary_grad("Relu", 4, false).ok());
  CHECK(has_unary_grad("Gelu"));
  CHECK_FALSE(has_unary_grad("Sigmoid"));
}

TEST_CASE("the gradient comparison catches Tanh's backward computed as 1 - tanh(x)",
          "[gpu_train_emulation]") {
  const Tensor x = random_tensor(DType::kFloat32, {64}, 520, -2, 2);
  const Tensor dy = random_tensor(DType::kFloat32, {64}, 521);
  Result<Tensor> expected = cpu::unary_backward("Tanh", to_f64(x), to_f64(dy));
  REQUIRE(expected.ok());
  Tensor dx = emu_unary("Tanh", x, dy, nullptr);
  REQUIRE(grad_error(*expected, dx).max_rel <= kTolerance);
  for (int64_t i = 0; i < 64; ++i) {
    dx.mutable_data<float>()[i] = dy.data<float>()[i] * (1.0f - std::tanh(x.data<float>()[i]));
  }
  CHECK(grad_error(*expected, dx).max_rel > kWrong);
}

// ---- Sub / Mul / Div / Pow ------------------------------------------------------------------

struct BinaryResult {
  Tensor da, db;
};

// The op's path: the kernel at dY's shape (straight into a same-shape gradient), then
// ps_reduce_f32 to each broadcast input's shape.
BinaryResult emu_binary(const std::string& op, const Tensor& a, const Tensor& b, const Tensor& dy,
                        train_kernels::BinaryGradParams* tamper = nullptr) {
  Result<train_kernels::BinaryGradParams> p = plan_binary_grad(op, a.shape(), b.shape(), dy.shape());
  REQUIRE(p.ok());
  if (tamper != nullptr) {
    tamper->count = p->count;
    *p = *tamper;
  }
  Tensor ga = zeros_f32(dy.shape()), gb = zeros_f32(dy.shape());
  run3([&] {
    ps_binary_backward_f32(a.data<float>(), b.data<float>(), dy.data<float>(),
                           ga.mutable_data<float>(), gb.mutable_data<float>(), *p);
  });
  BinaryResult r{zeros_f32(a.shape()), zeros_f32(b.shape())};
  const Tensor* full[2] = {&ga, &gb};
  Tensor* out[2] = {&r.da, &r.db};
  for (int i = 0; i < 2; ++i) {
    if (out[i]->shape() == dy.shape()) {
      *out[i] = full[i]->clone().value();
      continue;
    }
    Result<ReducePlan> plan = plan_broadcast_backward(out[i]->shape(), dy.shape());
    REQUIRE(plan.ok());
    emu_reduce(full[i]->data<float>(), out[i]->mutable_data<float>(), *plan);
  }
  return r;
}

struct BinaryCase {
  Shape a, b;
};

TEST_CASE("emulated Sub/Mul/Div/Pow backward with broadcasting, reduced to each input",
          "[gpu_train_emulation]") {
  const std::vector<BinaryCase> cases = {
      {{2, 3, 4}, {2, 3, 4}}, {{2, 3, 4}, {4}},       {{2, 1, 4}, {3, 1}}, {{}, {2, 5}},
      {{2, 5}, {}},           {{2, 3, 6}, {2, 3, 1}}, {{1, 3, 1, 5}, {2, 1, 4, 1}},
  };
  uint64_t seed = 600;
  for (const std::string op : {"Sub", "Mul", "Div", "Pow"}) {
    for (const BinaryCase& c : cases) {
      INFO(op << " " << shape_string(c.a) << " x " << shape_string(c.b));
      // Pow: positive bases (ln A), exponents in [0.5, 2.5]; Div: divisors away from 0.
      const bool pow = op == "Pow";
      const Tensor a = random_tensor(DType::kFloat32, c.a, seed++, pow ? 0.2 : -1.0, pow ? 2.0 : 1.0);
      Tensor b = random_tensor(DType::kFloat32, c.b, seed++, pow ? 0.5 : 0.5, pow ? 2.5 : 2.0);
      if (op == "Div" || op == "Sub") {
        for (int64_t i = 0; i < b.numel(); i += 2) b.mutable_data<float>()[i] *= -1.0f;
      }
      const Shape out = *broadcast_shapes(c.a, c.b);
      const Tensor dy = random_tensor(DType::kFloat32, out, seed++);
      Result<cpu::BinaryGrads> expected = cpu::binary_backward(op, to_f64(a), to_f64(b), to_f64(dy));
      REQUIRE(expected.ok());
      const BinaryResult r = emu_binary(op, a, b, dy);
      CHECK(grad_error(expected->da, r.da).max_rel <= kTolerance);
      CHECK(grad_error(expected->db, r.db).max_rel <= kTolerance);
    }
  }
  // LayerNorm's opset-13 decomposition: Pow(x - mean, 2) with bases of both signs (the
  // exponent's gradient is 0 where the base is not positive, as the reference's).
  const Tensor a = random_tensor(DType::kFloat32, {2, 3, 8}, 650);
  Result<Tensor> two = Tensor::from_values<float>({}, {2.0f});
  REQUIRE(two.ok());
  const Tensor dy = random_tensor(DType::kFloat32, {2, 3, 8}, 651);
  Result<cpu::BinaryGrads> expected = cpu::binary_backward("Pow", to_f64(a), to_f64(*two), to_f64(dy));
  REQUIRE(expected.ok());
  const BinaryResult r = emu_binary("Pow", a, *two, dy);
  CHECK(grad_error(expected->da, r.da).max_rel <= kTolerance);
  CHECK(grad_error(expected->db, r.db).max_rel <= kTolerance);

  CHECK_FALSE(plan_binary_grad("Add", {2}, {2}, {2}).ok());
  CHECK_FALSE(plan_binary_grad("Mul", {2, 3}, {4}, {2, 3}).ok());
  CHECK_FALSE(plan_binary_grad("Mul", {2, 3}, {3}, {2, 4}).ok());
}

TEST_CASE("the gradient comparison catches a Div backward that reads B without broadcasting",
          "[gpu_train_emulation]") {
  const Tensor a = random_tensor(DType::kFloat32, {4, 6}, 660);
  const Tensor b = random_tensor(DType::kFloat32, {4, 1}, 661, 0.5, 2.0);
  const Tensor dy = random_tensor(DType::kFloat32, {4, 6}, 662);
  Result<cpu::BinaryGrads> expected = cpu::binary_backward("Div", to_f64(a), to_f64(b), to_f64(dy));
  REQUIRE(expected.ok());
  REQUIRE(grad_error(expected->da, emu_binary("Div", a, b, dy).da).max_rel <= kTolerance);
  // B read as a scalar (its strides 0): every row divides by b[0].
  Result<train_kernels::BinaryGradParams> wrong = plan_binary_grad("Div", {4, 6}, {4, 1}, {4, 6});
  REQUIRE(wrong.ok());
  for (int d = 0; d < wrong->rank; ++d) wrong->b_strides[d] = 0;
  const BinaryResult r = emu_binary("Div", a, b, dy, &*wrong);
  CHECK(grad_error(expected->da, r.da).max_rel > kWrong);
}

// ---- ReduceMean -----------------------------------------------------------------------------

struct MeanCase {
  Shape x;
  std::vector<int64_t> axes;  // empty: the attribute absent
  int64_t keepdims = 1;
  int64_t noop = 0;
};

Tensor emu_mean(const MeanCase& c, const Tensor& dy, float scale_factor = 1.0f) {
  const auto rank = static_cast<int64_t>(c.x.size());
  std::vector<bool> reduced(c.x.size(), c.axes.empty() && c.noop == 0);
  for (int64_t a : c.axes) reduced[static_cast<size_t>(a < 0 ? a + rank : a)] = true;
  Result<train_kernels::SpreadParams> p = plan_reduce_mean_grad(c.x, reduced, false);
  REQUIRE(p.ok());
  p->scale *= scale_factor;
  Tensor dx = zeros_f32(c.x);
  run3([&] { ps_spread_backward_f32(dy.data<float>(), dx.mutable_data<float>(), *p); });
  return dx;
}

Result<Tensor> mean_reference(const MeanCase& c, const Tensor& dy) {
  std::vector<pipeswitch::psm::Attribute> list = {attr_i("keepdims", c.keepdims),
                                                  attr_i("noop_with_empty_axes", c.noop)};
  if (!c.axes.empty()) list.push_back(attr_ints("axes", c.axes));
  return cpu::reduce_mean_backward(attrs(list), {}, c.x, to_f64(dy));
}

Shape mean_out_shape(const MeanCase& c) {
  const auto rank = static_cast<int64_t>(c.x.size());
  Shape out;
  for (int64_t d = 0; d < rank; ++d) {
    bool r = c.axes.empty() && c.noop == 0;
    for (int64_t a : c.axes) r = r || (a < 0 ? a + rank : a) == d;
    if (!r) {
      out.push_back(c.x[static_cast<size_t>(d)]);
    } else if (c.keepdims) {
      out.push_back(1);
    }
  }
  return out;
}

TEST_CASE("emulated ReduceMean backward: axes, keepdims, all axes, noop", "[gpu_train_emulation]") {
  const std::vector<MeanCase> cases = {
      {{2, 3, 8}, {-1}, 1},       {{2, 3, 4, 5}, {1, 3}, 0}, {{2, 3, 4, 5}, {0}, 1},
      {{2, 3, 4}, {}, 0},         {{2, 3, 4}, {}, 1, 1},     {{5}, {0}, 0},
  };
  uint64_t seed = 700;
  for (const MeanCase& c : cases) {
    INFO(shape_string(c.x) << " axes " << shape_string(c.axes) << " keepdims " << c.keepdims);
    const Tensor dy = random_tensor(DType::kFloat32, mean_out_shape(c), seed++);
    Result<Tensor> expected = mean_reference(c, dy);
    REQUIRE(expected.ok());
    CHECK(grad_error(*expected, emu_mean(c, dy)).max_rel <= kTolerance);
  }
}

TEST_CASE("the gradient comparison catches a ReduceMean backward that forgets the 1/count",
          "[gpu_train_emulation]") {
  const MeanCase c{{2, 3, 8}, {-1}, 1};
  const Tensor dy = random_tensor(DType::kFloat32, mean_out_shape(c), 710);
  Result<Tensor> expected = mean_reference(c, dy);
  REQUIRE(expected.ok());
  REQUIRE(grad_error(*expected, emu_mean(c, dy)).max_rel <= kTolerance);
  CHECK(grad_error(*expected, emu_mean(c, dy, 8.0f)).max_rel > kWrong);
}

// ---- Softmax --------------------------------------------------------------------------------

Tensor softmax_of(const Tensor& x, int64_t axis) {
  const cpu::Attributes a = attrs({attr_i("axis", axis)});
  Result<std::vector<Tensor>> y = cpu::run_op_allocating("Softmax", a, std::vector<const Tensor*>{&x}, 1);
  REQUIRE(y.ok());
  return std::move((*y)[0]);
}

Tensor emu_softmax(const Tensor& y, const Tensor& dy, int64_t axis, const Tensor* base = nullptr) {
  Result<train_kernels::SoftmaxGradParams> p = plan_softmax_grad(y.shape(), axis, base != nullptr);
  REQUIRE(p.ok());
  Tensor dx = base != nullptr ? base->clone().value() : zeros_f32(y.shape());
  run_warps([&] { ps_softmax_backward_f32(y.data<float>(), dy.data<float>(), dx.mutable_data<float>(), *p); });
  return dx;
}

TEST_CASE("emulated Softmax backward from Y: last and inner axes, rows past 32, accumulate",
          "[gpu_train_emulation]") {
  struct SoftmaxCase {
    Shape x;
    int64_t axis;
  };
  const std::vector<SoftmaxCase> cases = {
      {{2, 2, 5, 5}, -1}, {{3, 70}, 1}, {{2, 6, 3}, 1}, {{4, 3, 2}, 0}, {{1, 1, 9}, -1}};
  uint64_t seed = 800;
  for (const SoftmaxCase& c : cases) {
    INFO(shape_string(c.x) << " axis " << c.axis);
    const Tensor x = random_tensor(DType::kFloat32, c.x, seed++, -3, 3);
    const Tensor y = softmax_of(x, c.axis);
    const Tensor dy = random_tensor(DType::kFloat32, c.x, seed++);
    Result<Tensor> expected = cpu::softmax_backward(attrs({attr_i("axis", c.axis)}), to_f64(y), to_f64(dy));
    REQUIRE(expected.ok());
    CHECK(grad_error(*expected, emu_softmax(y, dy, c.axis)).max_rel <= kSumTolerance);
    const Tensor base = random_tensor(DType::kFloat32, c.x, seed++);
    CHECK(grad_error(f64_plus(base, *expected), emu_softmax(y, dy, c.axis, &base)).max_rel <=
          kSumTolerance);
  }
  CHECK_FALSE(plan_softmax_grad({2, 3}, 2, false).ok());
}

TEST_CASE("the gradient comparison catches a Softmax backward along the wrong axis",
          "[gpu_train_emulation]") {
  const Tensor x = random_tensor(DType::kFloat32, {4, 6}, 820, -3, 3);
  const Tensor y = softmax_of(x, -1);
  const Tensor dy = random_tensor(DType::kFloat32, {4, 6}, 821);
  Result<Tensor> expected = cpu::softmax_backward(attrs({attr_i("axis", -1)}), to_f64(y), to_f64(dy));
  REQUIRE(expected.ok());
  REQUIRE(grad_error(*expected, emu_softmax(y, dy, -1)).max_rel <= kSumTolerance);
  CHECK(grad_error(*expected, emu_softmax(y, dy, 0)).max_rel > kWrong);
}

// ---- LayerNormalization ---------------------------------------------------------------------

struct LayerNormResult {
  Tensor dx, dscale, dbias;
};

// The one-pass kernel for rows of up to 32 * share values (ps_layer_norm_backward_warpN_f32):
// a block of kLayerNormBlockWarps warps per chunk.
void emu_layer_norm_rows(int share, const float* x, const float* scale, const float* dy, float* dx,
                         float* partial, const train_kernels::LayerNormGradParams& p) {
  using RowsKernel = void (*)(const float*, const float*, const float*, float*, float*,
                              train_kernels::LayerNormGradParams);
  static const std::map<int, RowsKernel> kernels = {
      {1, ps_layer_norm_backward_warp1_f32},   {2, ps_layer_norm_backward_warp2_f32},
      {4, ps_layer_norm_backward_warp4_f32},   {8, ps_layer_norm_backward_warp8_f32},
      {16, ps_layer_norm_backward_warp16_f32}, {24, ps_layer_norm_backward_warp24_f32},
      {32, ps_layer_norm_backward_warp32_f32}};
  const auto kernel = kernels.find(share);
  REQUIRE(kernel != kernels.end());
  emu_launch(EmuDim{static_cast<unsigned>(p.chunks)},
             EmuDim{32 * train_kernels::kLayerNormBlockWarps},
             [&] { kernel->second(x, scale, dy, dx, partial, p); });
}

// share 0: the looping kernels (dX with the statistics, then the partial sums); share > 0: the
// one-pass kernel. Both end with the final sum over the chunks.
LayerNormResult emu_layer_norm(const Tensor& x, const Tensor& scale, const Tensor& dy, int64_t axis,
                               float epsilon, const LayerNormResult* base = nullptr,
                               int share = 0) {
  Result<train_kernels::LayerNormGradParams> planned =
      plan_layer_norm_grad(x.shape(), axis, epsilon, scale.numel(), scale.numel());
  REQUIRE(planned.ok());
  train_kernels::LayerNormGradParams p = *planned;
  const uint32_t acc = base != nullptr ? 1u : 0u;
  p.accumulate_dx = p.accumulate_scale = p.accumulate_bias = acc;
  LayerNormResult r = base != nullptr
                          ? LayerNormResult{base->dx.clone().value(), base->dscale.clone().value(),
                                            base->dbias.clone().value()}
                          : LayerNormResult{zeros_f32(x.shape()), zeros_f32(scale.shape()),
                                            zeros_f32(scale.shape())};
  std::vector<float> stats(static_cast<size_t>(p.rows) * 2, NAN);
  std::vector<float> partial(static_cast<size_t>(p.chunks * p.inner) * 2, NAN);
  if (share > 0) {
    emu_layer_norm_rows(share, x.data<float>(), scale.data<float>(), dy.data<float>(),
                        r.dx.mutable_data<float>(), partial.data(), p);
  } else {
    run_warps([&] {
      ps_layer_norm_backward_dx_f32(x.data<float>(), scale.data<float>(), dy.data<float>(),
                                    r.dx.mutable_data<float>(), stats.data(), p);
    });
    run3([&] {
      ps_layer_norm_param_partials_f32(x.data<float>(), dy.data<float>(), stats.data(),
                                       partial.data(), p);
    });
  }
  const auto blocks = static_cast<unsigned>((p.inner + 31) / 32);
  emu_launch(EmuDim{blocks}, EmuDim{32 * train_kernels::kLayerNormFinalWarps}, [&] {
    ps_layer_norm_param_final_f32(partial.data(), r.dscale.mutable_data<float>(),
                                  r.dbias.mutable_data<float>(), p);
  });
  return r;
}

TEST_CASE("emulated LayerNormalization backward: dX, dscale, dbias, chunks, accumulate",
          "[gpu_train_emulation]") {
  struct LnCase {
    Shape x;
    int64_t axis;
  };
  // [70, 33]: 70 rows in 5 chunks of 16 (a tail chunk of 6 rows: fewer than the block's
  // warps); [40, 768]: BERT's rows, two a warp in a full chunk; [2, 3, 40] over the
  // last two axes: 120 normalized values per row; [5, 64] and [3, 768]: full warp rows (no
  // padding lane: BERT's 768 = 32 x 24); [2, 1100]: too long for a warp row.
  const std::vector<LnCase> cases = {{{2, 4, 16}, -1}, {{70, 33}, 1},  {{40, 768}, -1},
                                     {{2, 3, 40}, -2}, {{3, 100}, -1}, {{5, 64}, -1},
                                     {{3, 768}, -1},   {{2, 1100}, -1}};
  uint64_t seed = 900;
  for (const LnCase& c : cases) {
    INFO(shape_string(c.x) << " axis " << c.axis);
    const Tensor x = random_tensor(DType::kFloat32, c.x, seed++, -2, 2);
    const int64_t a = c.axis < 0 ? c.axis + static_cast<int64_t>(c.x.size()) : c.axis;
    const Shape norm(c.x.begin() + a, c.x.end());
    const Tensor scale = random_tensor(DType::kFloat32, norm, seed++, 0.5, 1.5);
    const Tensor dy = random_tensor(DType::kFloat32, c.x, seed++);
    const cpu::Attributes at = attrs({attr_i("axis", c.axis), attr_f("epsilon", 1e-5f)});
    Result<cpu::LayerNormGrads> expected =
        cpu::layer_norm_backward(at, to_f64(x), to_f64(scale), &norm, to_f64(dy));
    REQUIRE(expected.ok());
    const LayerNormResult r = emu_layer_norm(x, scale, dy, c.axis, 1e-5f);
    CHECK(grad_error(expected->dx, r.dx).max_rel <= kSumTolerance);
    CHECK(grad_error(expected->dscale, r.dscale).max_rel <= kSumTolerance);
    CHECK(grad_error(expected->dbias, r.dbias).max_rel <= kSumTolerance);
    const LayerNormResult base{random_tensor(DType::kFloat32, c.x, seed++),
                               random_tensor(DType::kFloat32, norm, seed++),
                               random_tensor(DType::kFloat32, norm, seed++)};
    const LayerNormResult acc = emu_layer_norm(x, scale, dy, c.axis, 1e-5f, &base);
    CHECK(grad_error(f64_plus(base.dx, expected->dx), acc.dx).max_rel <= kSumTolerance);
    CHECK(grad_error(f64_plus(base.dscale, expected->dscale), acc.dscale).max_rel <= kSumTolerance);
    CHECK(grad_error(f64_plus(base.dbias, expected->dbias), acc.dbias).max_rel <= kSumTolerance);
    // The one-pass kernel the op picks for this width: the looping kernel's dX bit for bit
    // (the same sums in the same order); dscale and dbias are summed in another fixed order
    // (per warp, then across warps), so they are compared with the reference.
    const int share = warp_row_share(element_count(norm));
    CHECK((share > 0) == (element_count(norm) <= 1024));
    if (share > 0) {
      INFO("one pass, share " << share);
      auto same_bits = [](const Tensor& a, const Tensor& b) {
        return a.byte_size() == b.byte_size() && std::memcmp(a.raw(), b.raw(), a.byte_size()) == 0;
      };
      const LayerNormResult w = emu_layer_norm(x, scale, dy, c.axis, 1e-5f, nullptr, share);
      CHECK(same_bits(r.dx, w.dx));
      CHECK(grad_error(expected->dscale, w.dscale).max_rel <= kSumTolerance);
      CHECK(grad_error(expected->dbias, w.dbias).max_rel <= kSumTolerance);
      const LayerNormResult wacc = emu_layer_norm(x, scale, dy, c.axis, 1e-5f, &base, share);
      CHECK(same_bits(acc.dx, wacc.dx));
      CHECK(grad_error(f64_plus(base.dscale, expected->dscale), wacc.dscale).max_rel <=
            kSumTolerance);
      CHECK(grad_error(f64_plus(base.dbias, expected->dbias), wacc.dbias).max_rel <= kSumTolerance);
    }
  }
  Result<train_kernels::LayerNormGradParams> p = plan_layer_norm_grad({4096, 768}, -1, 1e-12f, 768, 768);
  REQUIRE(p.ok());
  CHECK(p->rows_per_chunk == 8);
  CHECK(p->chunks == 512);
  Result<train_kernels::LayerNormGradParams> big =
      plan_layer_norm_grad({65536, 8}, -1, 1e-5f, 8, 8);
  REQUIRE(big.ok());
  CHECK(big->rows_per_chunk == 64);
  CHECK(big->chunks == 1024);
  CHECK_FALSE(plan_layer_norm_grad({4, 8}, -1, 1e-5f, 1, 8).ok());  // broadcast scale refused
  CHECK_FALSE(plan_layer_norm_grad({4, 8}, 2, 1e-5f, 8, 8).ok());
}

TEST_CASE("the gradient comparison catches a LayerNormalization backward with the wrong epsilon",
          "[gpu_train_emulation]") {
  const Tensor x = random_tensor(DType::kFloat32, {6, 16}, 950, -1, 1);
  const Tensor scale = random_tensor(DType::kFloat32, {16}, 951, 0.5, 1.5);
  const Tensor dy = random_tensor(DType::kFloat32, {6, 16}, 952);
  const Shape norm{16};
  Result<cpu::LayerNormGrads> expected = cpu::layer_norm_backward(
      attrs({attr_f("epsilon", 1e-5f)}), to_f64(x), to_f64(scale), &norm, to_f64(dy));
  REQUIRE(expected.ok());
  REQUIRE(grad_error(expected->dx, emu_layer_norm(x, scale, dy, -1, 1e-5f).dx).max_rel <= kSumTolerance);
  const LayerNormResult wrong = emu_layer_norm(x, scale, dy, -1, 0.1f);
  CHECK(grad_error(expected->dx, wrong.dx).max_rel > kWrong);
  CHECK(grad_error(expected->dscale, wrong.dscale).max_rel > kWrong);
}

// ---- Gather ---------------------------------------------------------------------------------

// The op's path: zero dData unless accumulating, links, then the chained scatter.
template <typename I>
Tensor emu_gather(const Shape& data, const std::vector<I>& indices, const Shape& index_shape,
                  int64_t axis, const Tensor& dy, const Tensor* base = nullptr,
                  bool every_position_first = false) {
  Result<train_kernels::GatherGradParams> p = plan_gather_grad(data, index_shape, axis);
  REQUIRE(p.ok());
  REQUIRE(p->count == static_cast<int64_t>(indices.size()));
  Tensor dd = base != nullptr ? base->clone().value() : zeros_f32(data);
  std::vector<int64_t> rows(indices.size(), -7);
  std::vector<int32_t> first(indices.size(), -7), next(indices.size(), -7);
  // A warp per position: cooperative (the lanes ballot).
  emu_launch(EmuDim{2}, EmuDim{64}, [&] {
    if constexpr (std::is_same_v<I, int64_t>) {
      ps_gather_backward_links_i64(indices.data(), rows.data(), first.data(), next.data(), *p);
    } else {
      ps_gather_backward_links_i32(indices.data(), rows.data(), first.data(), next.data(), *p);
    }
  });
  if (every_position_first) std::fill(first.begin(), first.end(), 1);
  run3([&] {
    ps_gather_backward_f32(dy.data<float>(), rows.data(), first.data(), next.data(),
                           dd.mutable_data<float>(), *p);
  });
  return dd;
}

template <typename I>
Tensor index_tensor(const Shape& shape, const std::vector<I>& v) {
  Result<Tensor> t = Tensor::from_values<I>(shape, std::span<const I>(v));
  REQUIRE(t.ok());
  return std::move(t).value();
}

Shape gathered_shape(const Shape& data, const Shape& index_shape, int64_t axis) {
  Shape out(data.begin(), data.begin() + axis);
  out.insert(out.end(), index_shape.begin(), index_shape.end());
  out.insert(out.end(), data.begin() + axis + 1, data.end());
  return out;
}

TEST_CASE("emulated Gather backward: repeated and negative indices accumulate, int64 and int32, "
          "axis 1 with a scalar index",
          "[gpu_train_emulation]") {
  // An embedding table of 10 rows of 6: token ids with repeats (3 three times, 7 twice as 7 and
  // -3) over a [2, 5] batch.
  const Shape table{10, 6};
  const std::vector<int64_t> ids = {3, 7, 3, 0, 9, -3, 3, 1, 9, 5};
  const Shape id_shape{2, 5};
  const Tensor dy = random_tensor(DType::kFloat32, gathered_shape(table, id_shape, 0), 1000);
  const cpu::Attributes axis0 = attrs({attr_i("axis", 0)});
  Result<Tensor> expected = cpu::gather_backward(axis0, table, index_tensor(id_shape, ids), to_f64(dy));
  REQUIRE(expected.ok());
  CHECK(grad_error(*expected, emu_gather(table, ids, id_shape, 0, dy)).max_rel <= kTolerance);
  const std::vector<int32_t> ids32(ids.begin(), ids.end());
  CHECK(grad_error(*expected, emu_gather(table, ids32, id_shape, 0, dy)).max_rel <= kTolerance);
  const Tensor base = random_tensor(DType::kFloat32, table, 1001);
  CHECK(grad_error(f64_plus(base, *expected), emu_gather(table, ids, id_shape, 0, dy, &base)).max_rel <=
        kTolerance);

  // The pooler's hidden[:, 0]: data [2, 8, 6], a scalar index 0 on axis 1, dY [2, 6].
  const Shape hidden{2, 8, 6};
  const std::vector<int64_t> zero = {0};
  const Tensor dy1 = random_tensor(DType::kFloat32, {2, 6}, 1002);
  const cpu::Attributes axis1 = attrs({attr_i("axis", 1)});
  Result<Tensor> expected1 = cpu::gather_backward(axis1, hidden, index_tensor<int64_t>({}, zero), to_f64(dy1));
  REQUIRE(expected1.ok());
  CHECK(grad_error(*expected1, emu_gather(hidden, zero, {}, 1, dy1)).max_rel <= kTolerance);

  // Axis 1 with repeated vector indices, and a negative axis.
  const std::vector<int32_t> cols = {2, -1, 2, 0};
  const Tensor dy2 = random_tensor(DType::kFloat32, gathered_shape(hidden, {4}, 1), 1003);
  Result<Tensor> expected2 = cpu::gather_backward(axis1, hidden, index_tensor<int32_t>({4}, cols), to_f64(dy2));
  REQUIRE(expected2.ok());
  CHECK(grad_error(*expected2, emu_gather(hidden, cols, {4}, -2, dy2)).max_rel <= kTolerance);

  CHECK_FALSE(plan_gather_grad({}, {2}, 0).ok());
  CHECK_FALSE(plan_gather_grad({4, 3}, {2}, 2).ok());
}

TEST_CASE("the gradient comparison catches a Gather backward that double-counts repeated indices",
          "[gpu_train_emulation]") {
  const Shape table{6, 4};
  const std::vector<int64_t> ids = {1, 4, 1, 1};
  const Tensor dy = random_tensor(DType::kFloat32, {4, 4}, 1010, 0.5, 1.0);
  Result<Tensor> expected =
      cpu::gather_backward(attrs({}), table, index_tensor<int64_t>({4}, ids), to_f64(dy));
  REQUIRE(expected.ok());
  REQUIRE(grad_error(*expected, emu_gather(table, ids, {4}, 0, dy)).max_rel <= kTolerance);
  // Every position its own chain head: row 1 gets dY[0] + dY[2] + dY[3] + (dY[2] + dY[3]) + dY[3].
  CHECK(grad_error(*expected, emu_gather(table, ids, {4}, 0, dy, nullptr, true)).max_rel > kWrong);
}

// The small-table path (train_bert_params.h's kGatherSmallTable): one kernel, blocks of
// 32 x kGatherSmallWarps threads (2 blocks for the grid-stride loop over (o, row, tile)).
template <typename I>
Tensor emu_gather_small(const Shape& data, const std::vector<I>& indices, const Shape& index_shape,
                        int64_t axis, const Tensor& dy, const Tensor* base = nullptr) {
  Result<train_kernels::GatherGradParams> p = plan_gather_grad(data, index_shape, axis);
  REQUIRE(p.ok());
  REQUIRE(p->dim <= train_kernels::kGatherSmallTable);
  // Without a base every element must be written: start from garbage.
  Tensor dd = base != nullptr ? base->clone().value() : random_tensor(DType::kFloat32, data, 77);
  emu_launch(EmuDim{2}, EmuDim{32, train_kernels::kGatherSmallWarps}, [&] {
    if constexpr (std::is_same_v<I, int64_t>) {
      ps_gather_backward_small_i64(dy.data<float>(), indices.data(), dd.mutable_data<float>(), *p,
                                   base != nullptr ? 1u : 0u);
    } else {
      ps_gather_backward_small_i32(dy.data<float>(), indices.data(), dd.mutable_data<float>(), *p,
                                   base != nullptr ? 1u : 0u);
    }
  });
  return dd;
}

TEST_CASE(
    "emulated small-table Gather backward: token types, repeats, negative and out-of-range "
    "indices, int32, accumulation, axis 1",
    "[gpu_train_emulation]") {
  // BERT's token types: 2 rows, 300 positions (not a multiple of the 8 warps' slices), inner 40
  // (a full and a partial column tile); ids 0/1 with negative aliases.
  const Shape types{2, 40};
  std::vector<int64_t> ids(300);
  for (size_t j = 0; j < ids.size(); ++j) ids[j] = (j * 7 % 5) < 2 ? 1 : 0;
  ids[11] = -1;   // row 1
  ids[200] = -2;  // row 0
  const Shape id_shape{3, 100};
  const Tensor dy = random_tensor(DType::kFloat32, gathered_shape(types, id_shape, 0), 1020);
  const cpu::Attributes axis0 = attrs({attr_i("axis", 0)});
  Result<Tensor> expected =
      cpu::gather_backward(axis0, types, index_tensor(id_shape, ids), to_f64(dy));
  REQUIRE(expected.ok());
  // Float sums of ~150 terms in slice order against the float64 reference.
  CHECK(grad_error(*expected, emu_gather_small(types, ids, id_shape, 0, dy)).max_rel <=
        kSumTolerance);
  const std::vector<int32_t> ids32(ids.begin(), ids.end());
  CHECK(grad_error(*expected, emu_gather_small(types, ids32, id_shape, 0, dy)).max_rel <=
        kSumTolerance);
  const Tensor base = random_tensor(DType::kFloat32, types, 1021);
  const Tensor accumulated = emu_gather_small(types, ids, id_shape, 0, dy, &base);
  CHECK(grad_error(f64_plus(base, *expected), accumulated).max_rel <= kSumTolerance);
  // Negative control: the accumulated result is not the gradient alone.
  CHECK(grad_error(*expected, accumulated).max_rel > kWrong);

  // Few positions (fewer than the warps: empty slices) over a 10-row table with repeats.
  const Shape table{10, 6};
  const std::vector<int64_t> few = {3, -7, 3};
  const Tensor dy1 = random_tensor(DType::kFloat32, gathered_shape(table, {3}, 0), 1022);
  Result<Tensor> expected1 =
      cpu::gather_backward(axis0, table, index_tensor<int64_t>({3}, few), to_f64(dy1));
  REQUIRE(expected1.ok());
  CHECK(grad_error(*expected1, emu_gather_small(table, few, {3}, 0, dy1)).max_rel <= kTolerance);

  // Axis 1 (outer 2): the pooler's scalar index, and repeated vector indices.
  const Shape hidden{2, 8, 6};
  const cpu::Attributes axis1 = attrs({attr_i("axis", 1)});
  const std::vector<int64_t> zero = {0};
  const Tensor dy2 = random_tensor(DType::kFloat32, {2, 6}, 1023);
  Result<Tensor> expected2 =
      cpu::gather_backward(axis1, hidden, index_tensor<int64_t>({}, zero), to_f64(dy2));
  REQUIRE(expected2.ok());
  CHECK(grad_error(*expected2, emu_gather_small(hidden, zero, {}, 1, dy2)).max_rel <= kTolerance);
  const std::vector<int32_t> cols = {2, -1, 2, 0};
  const Tensor dy3 = random_tensor(DType::kFloat32, gathered_shape(hidden, {4}, 1), 1024);
  Result<Tensor> expected3 =
      cpu::gather_backward(axis1, hidden, index_tensor<int32_t>({4}, cols), to_f64(dy3));
  REQUIRE(expected3.ok());
  CHECK(grad_error(*expected3, emu_gather_small(hidden, cols, {4}, -2, dy3)).max_rel <= kTolerance);
}

// ---- Transpose ------------------------------------------------------------------------------

TEST_CASE("Transpose backward is the forward transpose by the inverse perm", "[gpu_train_emulation]") {
  const std::vector<std::vector<int64_t>> perms = {{0, 2, 1, 3}, {0, 2, 3, 1}, {2, 0, 1}, {1, 0}};
  uint64_t seed = 1100;
  for (const std::vector<int64_t>& perm : perms) {
    INFO(shape_string(perm));
    Shape x_shape;
    for (size_t d = 0; d < perm.size(); ++d) x_shape.push_back(static_cast<int64_t>(d) + 2);
    Shape y_shape;
    for (int64_t p : perm) y_shape.push_back(x_shape[static_cast<size_t>(p)]);
    const Tensor dy = random_tensor(DType::kFloat32, y_shape, seed++);
    Result<Tensor> expected = cpu::transpose_backward(attrs({attr_ints("perm", perm)}), to_f64(dy));
    REQUIRE(expected.ok());
    Result<std::vector<int64_t>> inv = inverse_permutation(perm);
    REQUIRE(inv.ok());
    const cpu::Attributes a = attrs({attr_ints("perm", *inv)});
    Result<std::vector<Tensor>> dx = cpu::run_op_allocating("Transpose", a, std::vector<const Tensor*>{&dy}, 1);
    REQUIRE(dx.ok());
    CHECK(grad_error(*expected, (*dx)[0]).max_rel == 0.0);
  }
  CHECK_FALSE(inverse_permutation({0, 0}).ok());
  CHECK_FALSE(inverse_permutation({0, 2}).ok());
}

// ---- MatMul (the plan, with a host GEMM in place of cuBLAS) ---------------------------------

void host_gemm(const StridedGemm& g, const float* x, const float* y, float* out) {
  for (int64_t j = 0; j < g.count; ++j) {
    const float* xj = x + g.x_offset + j * g.x_stride;
    const float* yj = y + g.y_offset + j * g.y_stride;
    float* oj = out + g.out_offset + j * g.out_stride;
    for (int64_t r = 0; r < g.m; ++r) {
      for (int64_t c = 0; c < g.n; ++c) {
        double s = 0;
        for (int64_t t = 0; t < g.k; ++t) {
          const float xv = g.trans_x ? xj[t * g.m + r] : xj[r * g.k + t];
          const float yv = g.trans_y ? yj[c * g.k + t] : yj[t * g.n + c];
          s += static_cast<double>(xv) * yv;
        }
        oj[r * g.n + c] = static_cast<float>(s);
      }
    }
  }
}

Tensor run_part(const MatmulGradPart& part, const Shape& shape, const Tensor& a, const Tensor& b,
                const Tensor& dy) {
  Tensor out = zeros_f32(shape);
  std::vector<float> full(static_cast<size_t>(part.full_count), NAN);
  float* target = part.reduce ? full.data() : out.mutable_data<float>();
  const auto operand = [&](GradOperand o) {
    return (o == GradOperand::kA ? a : o == GradOperand::kB ? b : dy).data<float>();
  };
  for (const StridedGemm& g : part.gemms) host_gemm(g, operand(g.x), operand(g.y), target);
  if (part.reduce) emu_reduce(full.data(), out.mutable_data<float>(), part.reduce_plan);
  return out;
}

struct MatmulResult {
  Tensor da, db;
};
MatmulResult run_matmul_plan(const MatmulGradPlan& plan, const Tensor& a, const Tensor& b,
                             const Tensor& dy) {
  return {run_part(plan.da, a.shape(), a, b, dy), run_part(plan.db, b.shape(), a, b, dy)};
}

// A 2-D tensor transposed, in float64 (from float32 or float64).
Tensor transposed_f64(const Tensor& t) {
  const Tensor converted = t.dtype() == DType::kFloat64 ? Tensor() : to_f64(t);
  const Tensor& d = t.dtype() == DType::kFloat64 ? t : converted;
  Result<Tensor> r = Tensor::allocate(DType::kFloat64, {t.dim(1), t.dim(0)});
  REQUIRE(r.ok());
  Tensor out = std::move(r).value();
  for (int64_t i = 0; i < t.dim(0); ++i) {
    for (int64_t j = 0; j < t.dim(1); ++j) {
      out.mutable_data<double>()[j * t.dim(0) + i] = d.data<double>()[i * t.dim(1) + j];
    }
  }
  return out;
}

TEST_CASE("MatMul backward plan: attention, folded linear, 1-D and broadcast batches against "
          "the reference (host GEMM + emulated reduce)",
          "[gpu_train_emulation]") {
  struct MmCase {
    std::string label;
    Shape a, b;
    bool reduce_a, reduce_b;
  };
  const std::vector<MmCase> cases = {
      {"attention scores", {2, 3, 4, 5}, {2, 3, 5, 4}, false, false},
      {"linear (folded)", {2, 4, 6}, {6, 5}, false, false},
      {"2-D", {3, 6}, {6, 5}, false, false},
      {"1-D x 2-D", {6}, {6, 5}, false, false},
      {"2-D x 1-D", {3, 6}, {6}, false, false},
      {"1-D x batched", {6}, {2, 6, 3}, true, false},
      {"A broadcast", {4, 5}, {2, 5, 3}, true, false},
      {"both broadcast", {2, 1, 4, 5}, {3, 5, 2}, true, true},
      {"mixed batch dims", {1, 3, 4, 5}, {2, 1, 5, 2}, true, true},
      {"batch of 1 shared", {1, 4, 5}, {3, 5, 2}, true, false},
  };
  uint64_t seed = 1200;
  for (const MmCase& c : cases) {
    INFO(c.label << ": " << shape_string(c.a) << " x " << shape_string(c.b));
    const Tensor a = random_tensor(DType::kFloat32, c.a, seed++);
    const Tensor b = random_tensor(DType::kFloat32, c.b, seed++);
    Result<std::vector<Tensor>> y = cpu::run_op_allocating("MatMul", attrs({}), std::vector<const Tensor*>{&a, &b}, 1);
    REQUIRE(y.ok());
    const Tensor dy = random_tensor(DType::kFloat32, (*y)[0].shape(), seed++);
    Result<cpu::MatMulGrads> expected = cpu::matmul_backward(to_f64(a), to_f64(b), to_f64(dy));
    REQUIRE(expected.ok());
    Result<MatmulGradPlan> plan = plan_matmul_backward(c.a, c.b);
    REQUIRE(plan.ok());
    CHECK(plan->da.reduce == c.reduce_a);
    CHECK(plan->db.reduce == c.reduce_b);
    const MatmulResult r = run_matmul_plan(*plan, a, b, dy);
    CHECK(grad_error(expected->da, r.da).max_rel <= kTolerance);
    CHECK(grad_error(expected->db, r.db).max_rel <= kTolerance);
  }
  // BERT's shapes: the linear layer's dB is ONE GEMM over the B*S rows; the attention product
  // one strided batch of B*H.
  Result<MatmulGradPlan> linear = plan_matmul_backward({2, 8, 16}, {16, 64});
  REQUIRE(linear.ok());
  REQUIRE(linear->db.gemms.size() == 1);
  CHECK(linear->db.gemms[0].k == 16);
  CHECK(linear->db.gemms[0].count == 1);
  Result<MatmulGradPlan> scores = plan_matmul_backward({2, 4, 8, 16}, {2, 4, 16, 8});
  REQUIRE(scores.ok());
  REQUIRE(scores->da.gemms.size() == 1);
  CHECK(scores->da.gemms[0].count == 8);
  CHECK_FALSE(plan_matmul_backward({2, 3}, {4, 5}).ok());
  CHECK_FALSE(plan_matmul_backward({0, 3}, {3, 5}).ok());
}

// MatMulTransB (B stored [N, K], a linear layer's weight): against MatMul's reference on B
// transposed, dB transposed back; dB is one GEMM of dY^T by A over every row, never reduced.
TEST_CASE(
    "MatMulTransB backward plan: linear layers, 2-D and 1-D A against MatMul's reference "
    "on B transposed",
    "[gpu_train_emulation]") {
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{2, 4, 6}, {5, 6}}, {{2, 3, 4, 6}, {7, 6}}, {{3, 6}, {5, 6}}, {{6}, {5, 6}}};
  uint64_t seed = 1250;
  for (const auto& [a_shape, b_shape] : cases) {
    INFO(shape_string(a_shape) << " x " << shape_string(b_shape) << "^T");
    const Tensor a = random_tensor(DType::kFloat32, a_shape, seed++);
    const Tensor b = random_tensor(DType::kFloat32, b_shape, seed++);
    Shape y_shape(a_shape.begin(), a_shape.end() - 1);
    y_shape.push_back(b_shape[0]);
    const Tensor dy = random_tensor(DType::kFloat32, y_shape, seed++);
    Result<cpu::MatMulGrads> expected =
        cpu::matmul_backward(to_f64(a), transposed_f64(b), to_f64(dy));
    REQUIRE(expected.ok());
    Result<MatmulGradPlan> plan = plan_matmul_backward(a_shape, b_shape, /*trans_b=*/true);
    REQUIRE(plan.ok());
    CHECK_FALSE(plan->da.reduce);
    CHECK_FALSE(plan->db.reduce);
    REQUIRE(plan->db.gemms.size() == 1);
    CHECK(plan->db.gemms[0].count == 1);
    const MatmulResult r = run_matmul_plan(*plan, a, b, dy);
    CHECK(grad_error(expected->da, r.da).max_rel <= kTolerance);
    CHECK(grad_error(transposed_f64(expected->db), r.db).max_rel <= kTolerance);
  }
  CHECK_FALSE(plan_matmul_backward({2, 3, 6}, {2, 5, 6}, true).ok());  // B not 2-D
  CHECK_FALSE(plan_matmul_backward({2, 3, 6}, {6, 5}, true).ok());     // K differs
  // MatMul's plan on MatMulTransB's operands gets dB wrong: the comparison sees it.
  const Tensor a = random_tensor(DType::kFloat32, {2, 4, 6}, 1290);
  const Tensor b = random_tensor(DType::kFloat32, {6, 6}, 1291);
  const Tensor dy = random_tensor(DType::kFloat32, {2, 4, 6}, 1292);
  Result<cpu::MatMulGrads> expected =
      cpu::matmul_backward(to_f64(a), transposed_f64(b), to_f64(dy));
  REQUIRE(expected.ok());
  Result<MatmulGradPlan> untransposed = plan_matmul_backward(a.shape(), b.shape());
  REQUIRE(untransposed.ok());
  CHECK(grad_error(transposed_f64(expected->db), run_matmul_plan(*untransposed, a, b, dy).db)
            .max_rel > kWrong);
}

TEST_CASE("the gradient comparison catches a MatMul backward that forgets B's batch stride",
          "[gpu_train_emulation]") {
  const Tensor a = random_tensor(DType::kFloat32, {2, 3, 4, 5}, 1300);
  const Tensor b = random_tensor(DType::kFloat32, {2, 3, 5, 4}, 1301);
  const Tensor dy = random_tensor(DType::kFloat32, {2, 3, 4, 4}, 1302);
  Result<cpu::MatMulGrads> expected = cpu::matmul_backward(to_f64(a), to_f64(b), to_f64(dy));
  REQUIRE(expected.ok());
  Result<MatmulGradPlan> plan = plan_matmul_backward(a.shape(), b.shape());
  REQUIRE(plan.ok());
  REQUIRE(grad_error(expected->da, run_matmul_plan(*plan, a, b, dy).da).max_rel <= kTolerance);
  for (StridedGemm& g : plan->da.gemms) g.y_stride = 0;  // every batch entry reads B[0]
  CHECK(grad_error(expected->da, run_matmul_plan(*plan, a, b, dy).da).max_rel > kWrong);
}

}  // namespace
}  // namespace ps::models::gpu
