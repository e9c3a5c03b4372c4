// The training kernels (cuda/kernels/train.cu, and reduce.cu for broadcast backward) run on
// the CPU under the host emulation of blocks and warps (kernel_emulation.h), fed with the plans
// the GPU backward ops make (grad_kernel_plan.h), and compared with the float64 CPU references
// (models/cpu/grad*.cc, sgd.cc). Catches index, window, tie-rule and reduction-order bugs
// without a GPU; the [gpu] cases of gpu_grad_ops_test.cc run the same kernels on the device.
#include "tests/models/kernel_emulation.h"

// The kernels, compiled for the host.
#include "cuda/kernels/reduce.cu"
#include "cuda/kernels/train.cu"

#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "models/cpu/grad.h"
#include "models/cpu/ops.h"
#include "models/cpu/sgd.h"
#include "models/gpu/grad_kernel_plan.h"
#include "tests/models/cpu_ops_test_util.h"
#include "tests/models/gpu_op_check.h"
#include "tests/models/grad_check_util.h"
#include "tests/models/reduce_emulation.h"

namespace ps::models::gpu {
namespace {

using cpu::Tensor;
using cpu::test::attr_i;
using cpu::test::attr_ints;
using cpu::test::attrs;
using grad_test::grad_error;
using grad_test::to_f32;
using grad_test::to_f64;
using grad_test::zeros_f32;
using testing::random_tensor;

// Float32 results of these kernels against double references: one rounding per element, or a
// float sum of at most a few dozen terms, so 1e-6 of the tensor's scale is ample and a wrong
// index (an error of the order of the values themselves) is far outside it.
constexpr double kTolerance = 1e-6;

// Grid-stride kernels without barriers: 3 blocks of 256 threads, one after another.
template <typename F>
void run3(F f) {
  emu_launch(EmuDim{3}, EmuDim{256}, f, /*cooperative=*/false);
}

// Values on a coarse grid (multiples of 0.25 in [-1, 1]) after a ReLU: many exact ties and
// zeros, as a max pool after ReLU sees them.
Tensor tied_tensor(const Shape& shape, uint64_t seed) {
  Tensor t = random_tensor(DType::kFloat32, shape, seed, -1, 1);
  for (int64_t i = 0; i < t.numel(); ++i) {
    float& v = t.mutable_data<float>()[i];
    v = std::max(0.0f, std::round(v * 4.0f) / 4.0f);
  }
  return t;
}

TEST_CASE("emulated ReLU backward: dY where X > 0, overwrite and accumulate", "[gpu_train_emulation]") {
  Tensor x = random_tensor(DType::kFloat32, {3, 5, 7}, 11);
  for (int64_t i = 0; i < x.numel(); i += 4) x.mutable_data<float>()[i] = 0.0f;  // exact zeros
  const Tensor dy = random_tensor(DType::kFloat32, {3, 5, 7}, 12);
  Result<Tensor> expected = cpu::relu_backward(to_f64(x), to_f64(dy));
  REQUIRE(expected.ok());
  Tensor dx = zeros_f32(x.shape());
  const auto n = static_cast<uint64_t>(x.numel());
  run3([&] { ps_relu_backward_f32(x.data<float>(), dy.data<float>(), dx.mutable_data<float>(), n, 0); });
  CHECK(grad_error(*expected, dx).max_rel == 0.0);

  // Accumulating adds the same gradient to what is there.
  const Tensor base = random_tensor(DType::kFloat32, x.shape(), 13);
  Tensor acc = base.clone().value();
  run3([&] { ps_relu_backward_f32(x.data<float>(), dy.data<float>(), acc.mutable_data<float>(), n, 1); });
  for (int64_t i = 0; i < x.numel(); ++i) {
    CHECK(acc.data<float>()[i] == base.data<float>()[i] + dx.data<float>()[i]);
  }
}

TEST_CASE(
    "emulated ReLU backward and accumulation: four-wide with a tail or unaligned, the same values",
    "[gpu_train_emulation]") {
  // 103 elements: 25 four-wide accesses and a tail of 3 when the buffers are 16-byte aligned;
  // one element in, every buffer is misaligned and the kernels go one at a time.
  const Tensor x = random_tensor(DType::kFloat32, {104}, 14);
  const Tensor dy = random_tensor(DType::kFloat32, {104}, 15);
  const Tensor base = random_tensor(DType::kFloat32, {104}, 16);
  REQUIRE(reinterpret_cast<uintptr_t>(x.data<float>()) % 16 == 0);
  for (const int64_t first : {0, 1}) {
    INFO("first element " << first);
    const int64_t n = 103;
    Tensor dx = base.clone().value();
    float* out = dx.mutable_data<float>() + first;
    run3([&] {
      ps_relu_backward_f32(x.data<float>() + first, dy.data<float>() + first, out, n, 1);
    });
    Tensor sum = base.clone().value();
    run3(
        [&] { ps_accumulate_f32(sum.mutable_data<float>() + first, dy.data<float>() + first, n); });
    for (int64_t i = 0; i < 104; ++i) {
      const bool inside = i >= first && i < first + n;
      const float b = base.data<float>()[i], g = dy.data<float>()[i];
      CHECK(dx.data<float>()[i] == (inside ? b + (x.data<float>()[i] > 0.0f ? g : 0.0f) : b));
      CHECK(sum.data<float>()[i] == (inside ? b + g : b));
    }
  }
}

TEST_CASE("the gradient comparison catches a ReLU that passes dY through at X == 0",
          "[gpu_train_emulation]") {
  Tensor x = random_tensor(DType::kFloat32, {64}, 21);
  x.mutable_data<float>()[5] = 0.0f;
  const Tensor dy = random_tensor(DType::kFloat32, {64}, 22, 0.5, 1.0);
  Result<Tensor> expected = cpu::relu_backward(to_f64(x), to_f64(dy));
  REQUIRE(expected.ok());
  Tensor dx = zeros_f32(x.shape());
  run3([&] { ps_relu_backward_f32(x.data<float>(), dy.data<float>(), dx.mutable_data<float>(), 64, 0); });
  REQUIRE(grad_error(*expected, dx).max_rel <= kTolerance);
  dx.mutable_data<float>()[5] = dy.data<float>()[5];  // the `x >= 0` mistake
  const grad_test::GradError wrong = grad_error(*expected, dx);
  CHECK(wrong.max_rel > 0.5);
  CHECK(wrong.worst == 5);
}

TEST_CASE("emulated softmax cross-entropy: loss and dlogits, labels out of range give NaN",
          "[gpu_train_emulation]") {
  const std::vector<Shape> shapes = {{5, 37}, {3, 1000}, {70, 10}, {1, 1}};
  uint64_t seed = 30;
  for (const Shape& shape : shapes) {
    INFO(shape_string(shape));
    const Tensor logits = random_tensor(DType::kFloat32, shape, seed++, -8, 8);
    std::vector<int64_t> labels;
    std::mt19937 rng(static_cast<unsigned>(seed));
    for (int64_t n = 0; n < shape[0]; ++n) labels.push_back(static_cast<int64_t>(rng() % shape[1]));
    Tensor dref;
    Result<double> loss_ref = cpu::softmax_cross_entropy(to_f64(logits), labels, &dref);
    REQUIRE(loss_ref.ok());
    Result<train_kernels::SoftmaxXentParams> p = plan_softmax_xent(shape);
    REQUIRE(p.ok());
    Tensor dlogits = zeros_f32(shape);
    double loss = -1;
    emu_launch(EmuDim{1}, EmuDim{64}, [&] {
      ps_softmax_xent_f32(logits.data<float>(), labels.data(), dlogits.mutable_data<float>(), &loss, *p);
    });
    CHECK(std::abs(loss - *loss_ref) <= kTolerance * std::max(1.0, std::abs(*loss_ref)));
    CHECK(grad_error(dref, dlogits).max_rel <= kTolerance);
  }
  const Tensor logits = random_tensor(DType::kFloat32, {2, 4}, 40);
  const std::vector<int64_t> bad = {1, 4};
  Tensor dlogits = zeros_f32({2, 4});
  double loss = 0;
  Result<train_kernels::SoftmaxXentParams> p = plan_softmax_xent({2, 4});
  REQUIRE(p.ok());
  emu_launch(EmuDim{1}, EmuDim{32}, [&] {
    ps_softmax_xent_f32(logits.data<float>(), bad.data(), dlogits.mutable_data<float>(), &loss, *p);
  });
  CHECK(std::isnan(loss));
  CHECK_FALSE(plan_softmax_xent({0, 4}).ok());
  CHECK_FALSE(plan_softmax_xent({4}).ok());
}

// Runs `steps` SGD steps of tensors of `sizes` elements, all in one group launch, and on
// cpu::sgd_update from the same start; returns the worst error of a parameter and (with
// momentum) of a buffer.
double sgd_error(const cpu::SgdOptions& kernel_options, const cpu::SgdOptions& reference_options,
                 int steps, const std::vector<int64_t>& sizes = {257}) {
  const size_t n = sizes.size();
  std::vector<Tensor> p32, p64, buf32, buf64(n);
  for (size_t t = 0; t < n; ++t) {
    p32.push_back(random_tensor(DType::kFloat32, Shape{sizes[t]}, 50 + t));
    p64.push_back(to_f64(p32[t]));
    // NaN: a first step must not read the buffer (momentum * NaN would poison the update).
    buf32.push_back(zeros_f32(Shape{sizes[t]}));
    for (int64_t i = 0; i < sizes[t]; ++i) buf32[t].mutable_data<float>()[i] = std::nanf("");
  }
  double worst = 0;
  for (int s = 0; s < steps; ++s) {
    Result<train_kernels::SgdGroupParams> params = plan_sgd_group(kernel_options, sizes);
    REQUIRE(params.ok());
    std::vector<Tensor> g;
    for (size_t t = 0; t < n; ++t) {
      g.push_back(random_tensor(DType::kFloat32, Shape{sizes[t]}, 60 + 10 * t + s));
      REQUIRE(cpu::sgd_update(reference_options, p64[t], to_f64(g[t]), buf64[t]).ok());
      params->param[t] = reinterpret_cast<uint64_t>(p32[t].mutable_data<float>());
      params->grad[t] = reinterpret_cast<uint64_t>(g[t].data<float>());
      params->buf[t] = kernel_options.momentum != 0
                           ? reinterpret_cast<uint64_t>(buf32[t].mutable_data<float>())
                           : 0;
      if (s == 0) params->first_step_bits |= uint64_t{1} << t;
    }
    emu_launch(
        EmuDim{params->block_start[n]}, EmuDim{256}, [&] { ps_sgd_group_f32(*params); },
        /*cooperative=*/false);
    for (size_t t = 0; t < n; ++t) {
      if (sizes[t] == 0) continue;
      worst = std::max(worst, grad_error(p64[t], p32[t]).max_rel);
      if (reference_options.momentum != 0) {
        worst = std::max(worst, grad_error(buf64[t], buf32[t]).max_rel);
      }
    }
  }
  return worst;
}

TEST_CASE("emulated SGD follows torch.optim.SGD's rule over several steps", "[gpu_train_emulation]") {
  const cpu::SgdOptions momentum{0.1, 0.9, 1e-2};
  CHECK(sgd_error(momentum, momentum, 5) <= kTolerance);
  const cpu::SgdOptions plain{0.05, 0.0, 1e-4};
  CHECK(sgd_error(plain, plain, 3) <= kTolerance);
  // The check has teeth: a kernel that forgot the weight decay, or the momentum, is caught.
  CHECK(sgd_error(cpu::SgdOptions{0.1, 0.9, 0.0}, momentum, 5) > 100 * kTolerance);
  CHECK(sgd_error(cpu::SgdOptions{0.1, 0.0, 1e-2}, cpu::SgdOptions{0.1, 0.9, 1e-2}, 2) >
        100 * kTolerance);
  const int64_t one[] = {4};
  CHECK_FALSE(plan_sgd_group(cpu::SgdOptions{-0.1, 0.9, 0}, one).ok());
}

TEST_CASE("emulated SGD group: tensors of many sizes in one launch with tiles and empty ones",
          "[gpu_train_emulation]") {
  const cpu::SgdOptions momentum{0.1, 0.9, 1e-2};
  // A tile boundary inside the last tensor, an empty tensor between two, one of one element.
  const std::vector<int64_t> sizes = {257, 0, 3, 1, 2 * int64_t{kSgdTile} + 5};
  CHECK(sgd_error(momentum, momentum, 3, sizes) <= kTolerance);
  Result<train_kernels::SgdGroupParams> p = plan_sgd_group(momentum, sizes);
  REQUIRE(p.ok());
  CHECK(p->count == 5);
  CHECK(std::vector<uint32_t>(p->block_start, p->block_start + 6) ==
        std::vector<uint32_t>{0, 1, 1, 2, 3, 6});
  const std::vector<int64_t> too_many(train_kernels::kSgdGroupMax + 1, 4);
  CHECK_FALSE(plan_sgd_group(momentum, too_many).ok());
  CHECK_FALSE(plan_sgd_group(momentum, std::vector<int64_t>{}).ok());
  const int64_t negative[] = {4, -1};
  CHECK_FALSE(plan_sgd_group(momentum, negative).ok());
}

TEST_CASE("SGD groups: consecutive runs of at most 64 tensors under the element cap",
          "[gpu_train_emulation]") {
  using R = SgdGroupRange;
  CHECK(partition_sgd_groups(std::vector<int64_t>{}).empty());
  CHECK(partition_sgd_groups(std::vector<int64_t>{5, 6, 7}, 100) == std::vector<R>{{0, 3}});
  // The cap: 60 + 50 > 100 starts a group; 200 alone; 1 after it starts another.
  CHECK(partition_sgd_groups(std::vector<int64_t>{60, 50, 200, 1, 2}, 100) ==
        std::vector<R>{{0, 1}, {1, 1}, {2, 1}, {3, 2}});
  const std::vector<int64_t> many(150, 1);
  CHECK(partition_sgd_groups(many) == std::vector<R>{{0, 64}, {64, 64}, {128, 22}});
}

TEST_CASE("emulated accumulate and GlobalAveragePool backward", "[gpu_train_emulation]") {
  const Tensor a = random_tensor(DType::kFloat32, {1000}, 70);
  const Tensor b = random_tensor(DType::kFloat32, {1000}, 71);
  Tensor sum = a.clone().value();
  run3([&] { ps_accumulate_f32(sum.mutable_data<float>(), b.data<float>(), 1000); });
  for (int64_t i = 0; i < 1000; ++i) CHECK(sum.data<float>()[i] == a.data<float>()[i] + b.data<float>()[i]);

  const Tensor x = random_tensor(DType::kFloat32, {2, 3, 5, 7}, 72);
  const Tensor dy = random_tensor(DType::kFloat32, {2, 3, 1, 1}, 73);
  Result<Tensor> expected = cpu::global_average_pool_backward(to_f64(x), to_f64(dy));
  REQUIRE(expected.ok());
  Tensor dx = zeros_f32(x.shape());
  run3([&] { ps_global_avg_pool_backward_f32(dy.data<float>(), dx.mutable_data<float>(), 6, 35, 0); });
  CHECK(grad_error(*expected, dx).max_rel <= kTolerance);
}

struct PoolCase {
  std::string label;
  std::string op;
  Shape x;
  std::vector<pipeswitch::psm::Attribute> attrs;
};

// Plans the forward pool as the GPU op does (plan_pool on the CPU reference's output shape)
// and runs the backward kernels.
void check_pool_backward(const PoolCase& c, uint64_t seed) {
  INFO(c.op << " " << c.label);
  const cpu::Attributes a = attrs(c.attrs);
  const Tensor x = c.op == "MaxPool" ? tied_tensor(c.x, seed) : random_tensor(DType::kFloat32, c.x, seed);
  Result<std::vector<Tensor>> y = cpu::run_op_allocating(c.op, a, std::vector<const Tensor*>{&x}, 1);
  REQUIRE(y.ok());
  const Shape out = (*y)[0].shape();
  const Tensor dy = random_tensor(DType::kFloat32, out, seed + 1);
  const std::vector<TensorSpec> inputs{TensorSpec{DType::kFloat32, c.x}};
  const std::vector<TensorSpec> outputs{TensorSpec{DType::kFloat32, out}};
  Result<PoolPlan> plan = plan_pool(OpSpec{c.op, c.label, a, inputs, outputs});
  REQUIRE(plan.ok());
  const dnn_kernels::PoolParams p = pool_kernel_params(*plan);
  Result<Tensor> expected = c.op == "MaxPool"
                                ? cpu::max_pool_backward(a, to_f64(x), to_f64(dy))
                                : cpu::average_pool_backward(a, to_f64(x), to_f64(dy));
  REQUIRE(expected.ok());
  Tensor dx = zeros_f32(c.x);
  std::vector<int32_t> argmax(static_cast<size_t>(dy.numel()), -7);
  if (c.op == "MaxPool") {
    run3([&] { ps_max_pool_argmax_f32(x.data<float>(), argmax.data(), p); });
    run3([&] { ps_max_pool_backward_f32(argmax.data(), dy.data<float>(), dx.mutable_data<float>(), p, 0); });
  } else {
    run3([&] { ps_avg_pool_backward_f32(dy.data<float>(), dx.mutable_data<float>(), p, 0); });
  }
  const grad_test::GradError e = grad_error(*expected, dx);
  INFO("worst element " << e.worst << ": error " << e.max_rel);
  CHECK(e.max_rel <= kTolerance);

  // These sizes take the kernels' 32-bit index path; the 64-bit one (inputs of 2^30 elements
  // or more) must give the same bits.
  Tensor dx64 = zeros_f32(c.x);
  std::vector<int32_t> argmax64(argmax.size(), -7);
  if (c.op == "MaxPool") {
    run3([&] { train::max_pool_argmax<int64_t>(x.data<float>(), argmax64.data(), p); });
    CHECK(argmax64 == argmax);
    run3([&] {
      train::max_pool_backward<int64_t>(argmax64.data(), dy.data<float>(),
                                        dx64.mutable_data<float>(), p, 0);
    });
  } else {
    run3([&] {
      train::avg_pool_backward<int64_t>(dy.data<float>(), dx64.mutable_data<float>(), p, 0);
    });
  }
  for (int64_t i = 0; i < dx.numel(); ++i) CHECK(dx64.data<float>()[i] == dx.data<float>()[i]);

  // The banded kernel, where it applies (2-D and 1-D windows), must give the same bits: with
  // its default bands, with bands of a few rows that cross planes, and accumulating.
  const bool two_d = c.x.size() <= 4;
  for (const int64_t target : {int64_t{pool_band::kTargetInputs}, int64_t{1}, 4 * c.x.back()}) {
    const pool_band::PoolBandParams bp = plan_pool_band(p, target);
    INFO("band target " << target << ": rows " << bp.rows);
    REQUIRE((bp.rows > 0) == two_d);
    if (!two_d) break;
    CHECK(pool_band_max_staged(bp) <= pool_band::kOutputs);
    Tensor band = zeros_f32(c.x);
    const unsigned threads = target == 1 ? 32 : 64;
    emu_launch(EmuDim{static_cast<unsigned>(pool_band_blocks(bp))}, EmuDim{threads}, [&] {
      ps_pool_backward_band_f32(x.data<float>(), dy.data<float>(), band.mutable_data<float>(), bp,
                                0);
    });
    for (int64_t i = 0; i < dx.numel(); ++i) CHECK(band.data<float>()[i] == dx.data<float>()[i]);
    // Accumulating onto dx itself doubles it (exactly: x + x).
    emu_launch(EmuDim{static_cast<unsigned>(pool_band_blocks(bp))}, EmuDim{threads}, [&] {
      ps_pool_backward_band_f32(x.data<float>(), dy.data<float>(), band.mutable_data<float>(), bp,
                                1);
    });
    for (int64_t i = 0; i < dx.numel(); ++i)
      CHECK(band.data<float>()[i] == 2.0f * dx.data<float>()[i]);
  }
}

TEST_CASE("emulated MaxPool backward: first maximum among ties, padding, ceil, dilation",
          "[gpu_train_emulation]") {
  const std::vector<PoolCase> cases = {
      {"ResNet stem 3x3 s2 p1", "MaxPool", {2, 3, 9, 9},
       {attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {2, 2}), attr_ints("pads", {1, 1, 1, 1})}},
      {"Inception 3x3 s2", "MaxPool", {1, 4, 11, 11},
       {attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {2, 2})}},
      {"ceil mode", "MaxPool", {1, 2, 8, 8},
       {attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {2, 2}), attr_i("ceil_mode", 1)}},
      {"asymmetric pads", "MaxPool", {1, 2, 7, 6},
       {attr_ints("kernel_shape", {2, 3}), attr_ints("pads", {0, 1, 1, 2})}},
      {"dilation 2", "MaxPool", {1, 2, 9, 9},
       {attr_ints("kernel_shape", {3, 3}), attr_ints("dilations", {2, 2})}},
      {"1-D", "MaxPool", {2, 3, 17}, {attr_ints("kernel_shape", {4}), attr_ints("strides", {3})}},
      {"3-D", "MaxPool", {1, 2, 5, 6, 5},
       {attr_ints("kernel_shape", {2, 3, 2}), attr_ints("strides", {2, 1, 2}), attr_ints("pads", {1, 0, 0, 1, 1, 0})}},
  };
  uint64_t seed = 100;
  for (const PoolCase& c : cases) check_pool_backward(c, seed += 2);
}

TEST_CASE("emulated AveragePool backward: count_include_pad, ceil mode, 3-D", "[gpu_train_emulation]") {
  const std::vector<PoolCase> cases = {
      {"Inception 3x3 s1 p1 pads counted", "AveragePool", {2, 3, 7, 7},
       {attr_ints("kernel_shape", {3, 3}), attr_ints("pads", {1, 1, 1, 1}), attr_i("count_include_pad", 1)}},
      {"3x3 s1 p1 pads not counted", "AveragePool", {1, 3, 6, 5},
       {attr_ints("kernel_shape", {3, 3}), attr_ints("pads", {1, 1, 1, 1})}},
      {"ceil mode s2", "AveragePool", {1, 2, 8, 8},
       {attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {2, 2}), attr_i("ceil_mode", 1),
        attr_i("count_include_pad", 1), attr_ints("pads", {1, 1, 1, 1})}},
      {"5x5 s3 asymmetric", "AveragePool", {1, 2, 11, 9},
       {attr_ints("kernel_shape", {5, 5}), attr_ints("strides", {3, 3}), attr_ints("pads", {2, 0, 1, 2})}},
      {"3-D", "AveragePool", {1, 2, 4, 5, 6},
       {attr_ints("kernel_shape", {2, 2, 3}), attr_ints("strides", {1, 2, 2})}},
  };
  uint64_t seed = 200;
  for (const PoolCase& c : cases) check_pool_backward(c, seed += 2);
}

// The banded pooling backward's plan for a pooling layer of input `x` (as build_pool_grad).
pool_band::PoolBandParams band_plan(const std::string& op, const Shape& x,
                                    const std::vector<pipeswitch::psm::Attribute>& at) {
  const cpu::Attributes a = attrs(at);
  const Tensor input = zeros_f32(x);
  Result<std::vector<Tensor>> y =
      cpu::run_op_allocating(op, a, std::vector<const Tensor*>{&input}, 1);
  REQUIRE(y.ok());
  const std::vector<TensorSpec> inputs{TensorSpec{DType::kFloat32, x}};
  const std::vector<TensorSpec> outputs{TensorSpec{DType::kFloat32, (*y)[0].shape()}};
  Result<PoolPlan> plan = plan_pool(OpSpec{op, "band", a, inputs, outputs});
  REQUIRE(plan.ok());
  return plan_pool_band(pool_kernel_params(*plan));
}

TEST_CASE("banded pooling backward plan: real layers banded within shared memory, the rest not",
          "[gpu_train_emulation]") {
  const auto k3s2 = std::vector{attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {2, 2})};
  const auto k3s1p1 = std::vector{attr_ints("kernel_shape", {3, 3}),
                                  attr_ints("pads", {1, 1, 1, 1}), attr_i("count_include_pad", 1)};
  // ResNet's stem pool and Inception v3's (batch 2: the plan depends on the plane, not N).
  auto stem = k3s2;
  stem.push_back(attr_ints("pads", {1, 1, 1, 1}));
  struct Layer {
    std::string op;
    Shape x;
    std::vector<pipeswitch::psm::Attribute> at;
    int32_t rows;  // 2048 / W elements, or what the outputs allow
  };
  const std::vector<Layer> layers = {
      {"MaxPool", {2, 64, 112, 112}, stem, 18},
      {"MaxPool", {2, 64, 147, 147}, k3s2, 13},
      {"MaxPool", {2, 192, 71, 71}, k3s2, 28},
      {"MaxPool", {2, 768, 17, 17}, k3s2, 120},
      // 58 rows would stage 60 rows of 35 outputs (2100): 51 stage at most 53 (1855).
      {"AveragePool", {2, 192, 35, 35}, k3s1p1, 51},
      {"AveragePool", {2, 2048, 8, 8}, k3s1p1, 256},
  };
  for (const Layer& l : layers) {
    INFO(l.op << " " << shape_string(l.x));
    const pool_band::PoolBandParams bp = band_plan(l.op, l.x, l.at);
    CHECK(bp.rows == l.rows);
    CHECK(pool_band_max_staged(bp) <= pool_band::kOutputs);
    CHECK(pool_band_blocks(bp) == (l.x[0] * l.x[1] * l.x[2] + bp.rows - 1) / bp.rows);
  }
  // A row of outputs wider than the shared tables, and 3-D windows: the element-wise kernels.
  CHECK(band_plan("MaxPool", {1, 1, 4, 1100}, k3s2).rows == 0);
  CHECK(band_plan("AveragePool", {1, 1, 4, 5, 6},
                  {attr_ints("kernel_shape", {2, 2, 3}), attr_ints("strides", {1, 2, 2})})
            .rows == 0);
  // Windows of 9 rows: 10 rows of 200 would stage 18 output rows (3600 outputs); rows shrink
  // until they fit (2: 10 output rows, 2000). At W = 500 not even one row fits (4500).
  const auto k9 = std::vector{attr_ints("kernel_shape", {9, 1}), attr_ints("pads", {4, 0, 4, 0})};
  CHECK(band_plan("AveragePool", {1, 1, 50, 500}, k9).rows == 0);
  const pool_band::PoolBandParams tall = band_plan("AveragePool", {1, 4, 200, 200}, k9);
  CHECK(tall.rows == 2);
  CHECK(pool_band_max_staged(tall) <= pool_band::kOutputs);
}

TEST_CASE("emulated broadcast backward: dY summed over the broadcast dimensions", "[gpu_train_emulation]") {
  const Shape dy_shape{2, 3, 4, 5};
  const std::vector<Shape> inputs = {{3, 1, 5}, {5}, {1}, {}, {2, 3, 4, 5}, {2, 1, 4, 1}, {1, 3, 1, 1}};
  const Tensor dy = random_tensor(DType::kFloat32, dy_shape, 300);
  for (const Shape& in : inputs) {
    INFO(shape_string(in));
    Result<Tensor> expected = cpu::reduce_to_shape(to_f64(dy), in);
    REQUIRE(expected.ok());
    Result<ReducePlan> plan = plan_broadcast_backward(in, dy_shape);
    REQUIRE(plan.ok());
    Tensor out = zeros_f32(in);
    emu_reduce(dy.data<float>(), out.mutable_data<float>(), *plan);
    CHECK(grad_error(*expected, out).max_rel <= kTolerance);
  }
  CHECK_FALSE(plan_broadcast_backward({3, 2}, dy_shape).ok());
  CHECK_FALSE(plan_broadcast_backward({2, 3, 4, 5, 1}, dy_shape).ok());
}

// Bias gradients (long groups over the leading dimensions, the innermost kept) take the
// column-tile mode: a block per 8, 16 or 32 outputs, the lanes splitting the group 32 / width
// rows a load. Partial tiles, groups not a multiple of the warps' rows, several batches of loads
// a lane (300 rows), a two-dimensional kept part, each tile width, and the mean.
TEST_CASE("emulated broadcast backward: column tiles for bias gradients", "[gpu_train_emulation]") {
  struct Case {
    Shape dy, in;
  };
  const std::vector<Case> cases = {{{70, 37}, {37}},
                                   {{300, 11}, {11}},
                                   {{3, 40, 33}, {33}},
                                   {{2, 50, 3, 20}, {1, 1, 3, 20}},
                                   {{129, 5}, {1, 5}},
                                   // two reduced dimensions apart (reduced rank 2: the offsets
                                   // by division, not by one stride)
                                   {{4, 3, 20, 7}, {1, 3, 1, 7}}};
  uint64_t seed = 400;
  for (const Case& c : cases) {
    INFO(shape_string(c.dy) << " -> " << shape_string(c.in));
    const Tensor dy = random_tensor(DType::kFloat32, c.dy, ++seed);
    Result<Tensor> expected = cpu::reduce_to_shape(to_f64(dy), c.in);
    REQUIRE(expected.ok());
    Result<ReducePlan> plan = plan_broadcast_backward(c.in, c.dy);
    REQUIRE(plan.ok());
    CHECK(plan->mode == ReduceMode::kColumnTiles);
    CHECK(reduce_launch_shape(*plan).block % 32 == 0);
    for (int32_t width : {8, 16, 32}) {
      INFO("tile width " << width);
      plan->params.tile_columns = width;
      Tensor out = zeros_f32(c.in);
      emu_reduce(dy.data<float>(), out.mutable_data<float>(), *plan);
      CHECK(grad_error(*expected, out).max_rel <= kTolerance);
    }
  }
  // The mean over the leading dimension, in the same mode.
  const Tensor x = random_tensor(DType::kFloat32, {100, 9}, 450);
  Result<ReducePlan> mean = plan_reduce({100, 9}, {true, false});
  REQUIRE(mean.ok());
  REQUIRE(mean->mode == ReduceMode::kColumnTiles);
  mean->params.op = kernels::kReduceMean;
  Tensor out = zeros_f32({9});
  emu_reduce(x.data<float>(), out.mutable_data<float>(), *mean);
  for (int64_t c = 0; c < 9; ++c) {
    double sum = 0;
    for (int64_t r = 0; r < 100; ++r) sum += x.data<float>()[r * 9 + c];
    CHECK(std::abs(out.data<float>()[c] - sum / 100) <= 1e-6 * (1 + std::abs(sum / 100)));
  }
}

}  // namespace
}  // namespace ps::models::gpu
