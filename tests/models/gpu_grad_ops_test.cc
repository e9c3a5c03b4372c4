// The GPU backward operators, the loss and SGD (models/gpu/grad_op.h) on the device against the
// float64 CPU references (models/cpu/grad.h, sgd.h) on small random shapes. [gpu]: skipped
// without a GPU (GPU-SKIP), run by scripts/gpu-check.sh.
//
// Inputs are float32 (the GPU's) and converted exactly to double for the reference, so the
// only differences are the GPU's float32 arithmetic. Tolerances, as max |gpu - cpu| over the
// largest |cpu| of the tensor (grad_check_util.h):
//  - kElementwise 1e-6: ReLU, pooling, views, Concat, the loss, SGD: one rounding per element
//    or a float sum of a few dozen terms;
//  - kReduced 2e-5: convolution, matrix product and batch-norm gradients in strict fp32:
//    sums of hundreds to thousands of float products (cuDNN's own accumulation order;
//    FFT/Winograd algorithms allowed), as the forward ops' test allows;
//  - kTf32 5e-3: TF32 keeps 10 mantissa bits of each input.
// Every case prints one line (op, case, precision, error, implementation).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "cuda/copy.h"
#include "cuda/device_buffer.h"
#include "cuda/stream.h"
#include "models/cpu/grad.h"
#include "models/cpu/ops.h"
#include "models/cpu/sgd.h"
#include "models/gpu/grad_kernel_plan.h"
#include "models/gpu/grad_op.h"
#include "models/gpu/runtime.h"
#include "tests/models/cpu_ops_test_util.h"
#include "tests/models/gpu_grad_check.h"
#include "tests/models/gpu_op_check.h"
#include "tests/models/grad_check_util.h"
#include "tests/models/zoo_lowering.h"
#include "tests/support/gpu.h"
#include "tests/support/require_ok.h"

namespace ps::models::gpu {
namespace {

using cpu::Tensor;
using cpu::test::attr_f;
using cpu::test::attr_i;
using cpu::test::attr_ints;
using cpu::test::attrs;
using grad_test::grad_error;
using grad_test::to_f32;
using grad_test::to_f64;
using grad_test::zeros_f32;
using testing::random_tensor;
using testing::shared_runtime;

using namespace grad_gpu;  // tolerances, run_on_gpu, build_grad... (gpu_grad_check.h)


TEST_CASE("grad table: sorted, every op of the training-mode tiny zoo models has a backward") {
  const std::span<const GradEntry> table = grad_op_table();
  for (size_t i = 1; i < table.size(); ++i) CHECK(table[i - 1].op < table[i].op);
  for (const char* op : {"Add", "AveragePool", "BatchNormalization", "Concat", "Conv", "Flatten",
                         "Gemm", "GlobalAveragePool", "Identity", "MaxPool", "Relu", "Reshape"}) {
    INFO(op);
    CHECK(gpu_has_backward(op));
  }
  // Every layer of the training-mode manifests: ResNet and Inception, and BERT (with its
  // classifier head) at opset 17 (LayerNormalization) and 13 (its decomposition).
  struct Model {
    const char* name;
    int opset;
  };
  for (const Model& m : {Model{"resnet_tiny", 17}, Model{"inception_tiny", 17},
                         Model{"bert_tiny", 17}, Model{"bert_tiny", 13}}) {
    models::testing::ZooLowering what;
    what.model = m.name;
    what.opset = m.opset;
    what.mode = onnx_loader::Mode::kTraining;
    Result<onnx_loader::LoweredModel> lowered = models::testing::lower_zoo_model(what);
    INFO(m.name << " opset " << m.opset << ": " << lowered.status().to_string());
    REQUIRE(lowered.ok());
    std::set<std::string> ops;
    for (const auto& layer : lowered->manifest.layers()) ops.insert(layer.op());
    for (const std::string& op : ops) {
      INFO(m.name << " opset " << m.opset << ": " << op);
      CHECK(gpu_has_backward(op));
    }
    if (std::string(m.name) == "bert_tiny") {
      CHECK(ops.count("MatMul") == 1);
      CHECK(ops.count(m.opset == 17 ? "LayerNormalization" : "ReduceMean") == 1);
    }
  }
  CHECK_FALSE(gpu_has_backward("LSTM"));
  CHECK_FALSE(gpu_has_backward("Sigmoid"));
}

struct ConvCase {
  std::string label;
  Shape x, w;
  std::vector<pipeswitch::psm::Attribute> attrs;
  bool bias = false;
};


TEST_CASE("GPU Conv backward (dX, dW, dB) against the CPU reference", "[gpu]") {
  PS_REQUIRE_GPU();
  const std::vector<ConvCase> cases = {
      {"3x3 p1 (bottleneck)", {2, 8, 9, 9}, {8, 8, 3, 3}, {attr_ints("pads", {1, 1, 1, 1})}},
      {"1x1 s2 downsample", {2, 16, 8, 8}, {32, 16, 1, 1}, {attr_ints("strides", {2, 2})}},
      {"7x7 s2 p3 stem",
       {2, 3, 20, 20},
       {8, 3, 7, 7},
       {attr_ints("pads", {3, 3, 3, 3}), attr_ints("strides", {2, 2})}},
      {"3x3 s2 valid + bias", {3, 4, 11, 11}, {6, 4, 3, 3}, {attr_ints("strides", {2, 2})}, true},
      {"1x7 p(0,3) Inception", {2, 6, 7, 7}, {5, 6, 1, 7}, {attr_ints("pads", {0, 3, 0, 3})}},
      {"grouped 2, dilation 2",
       {2, 8, 10, 10},
       {6, 4, 3, 3},
       {attr_i("group", 2), attr_ints("dilations", {2, 2}), attr_ints("pads", {2, 2, 2, 2})},
       true},
      {"1-D", {2, 4, 15}, {5, 4, 3}, {attr_ints("pads", {1, 1})}, true},
  };
  uint64_t seed = 1000;
  for (const ConvCase& c : cases) {
    const cpu::Attributes a = attrs(c.attrs);
    const Tensor x = random_tensor(DType::kFloat32, c.x, seed++);
    const Tensor w = random_tensor(DType::kFloat32, c.w, seed++, -0.5, 0.5);
    const Tensor b = random_tensor(DType::kFloat32, {c.w[0]}, seed++);
    std::vector<const Tensor*> fwd{&x, &w};
    if (c.bias) fwd.push_back(&b);
    Result<std::vector<Tensor>> y = cpu::run_op_allocating("Conv", a, fwd, 1);
    REQUIRE_OK(y);
    const Shape y_shape = (*y)[0].shape();
    const Tensor dy = random_tensor(DType::kFloat32, y_shape, seed++);
    Result<cpu::ConvGrads> ref = cpu::conv_backward(a, to_f64(x), to_f64(w), c.bias, to_f64(dy));
    REQUIRE_OK(ref);
    for (Precision p : {Precision::kFp32, Precision::kTf32}) {
      const double tol = p == Precision::kFp32 ? kReduced : kTf32;
      auto op = build_grad("Conv", a, fwd, y_shape, p);
      Tensor dx = poisoned(c.x), dw = poisoned(c.w), db = poisoned({c.w[0]});
      std::vector<const Tensor*> in = fwd;
      in.push_back(&dy);
      run_on_gpu(*op, in, {&dx, &dw, c.bias ? &db : nullptr});
      expect_close("Conv", c.label, "dX", p, ref->dx, dx, tol, op->describe());
      expect_close("Conv", c.label, "dW", p, ref->dw, dw, tol, op->describe());
      if (c.bias) expect_close("Conv", c.label, "dB", p, ref->db, db, tol, op->describe());
    }
  }
}

TEST_CASE("GPU Conv backward accumulates with beta = 1 and skips unwanted gradients", "[gpu]") {
  PS_REQUIRE_GPU();
  const cpu::Attributes a = attrs({attr_ints("pads", {1, 1, 1, 1})});
  const Tensor x = random_tensor(DType::kFloat32, {2, 4, 6, 6}, 1100);
  const Tensor w = random_tensor(DType::kFloat32, {4, 4, 3, 3}, 1101);
  const Tensor dy = random_tensor(DType::kFloat32, {2, 4, 6, 6}, 1102);
  const Tensor base = random_tensor(DType::kFloat32, x.shape(), 1103);
  Result<cpu::ConvGrads> ref = cpu::conv_backward(a, to_f64(x), to_f64(w), false, to_f64(dy));
  REQUIRE_OK(ref);
  Tensor expected = to_f64(base);
  for (int64_t i = 0; i < expected.numel(); ++i) {
    expected.mutable_data<double>()[i] += ref->dx.data<double>()[i];
  }
  // dX accumulated onto `base`; dW not wanted (its address 0).
  auto op = build_grad("Conv", a, {&x, &w}, x.shape(), Precision::kFp32, /*accumulate=*/1u,
                       /*wanted=*/1u);
  Tensor dx = base.clone().value();
  run_on_gpu(*op, {&x, &w, &dy}, {&dx, nullptr});
  expect_close("Conv", "dX += (dW not wanted)", "dX", Precision::kFp32, expected, dx, kReduced,
               op->describe());
}

TEST_CASE("GPU BatchNormalization training forward and backward against the CPU reference",
          "[gpu]") {
  PS_REQUIRE_GPU();
  const std::vector<Shape> shapes = {{4, 3, 5, 5}, {2, 8, 3, 7}, {16, 5}, {3, 4, 2, 3, 2}};
  uint64_t seed = 2000;
  for (const Shape& shape : shapes) {
    const std::string label = shape_string(shape);
    const int64_t c = shape[1];
    const Tensor x = random_tensor(DType::kFloat32, shape, seed++, -2, 3);
    const Tensor scale = random_tensor(DType::kFloat32, {c}, seed++, 0.5, 1.5);
    const Tensor bias = random_tensor(DType::kFloat32, {c}, seed++);
    const Tensor mean0 = random_tensor(DType::kFloat32, {c}, seed++);
    const Tensor var0 = random_tensor(DType::kFloat32, {c}, seed++, 0.5, 2);
    const Tensor dy = random_tensor(DType::kFloat32, shape, seed++);
    const float momentum = 0.9f, epsilon = 1e-5f;
    const cpu::Attributes a = attrs({attr_f("momentum", momentum), attr_f("epsilon", epsilon)});
    // CPU reference: forward with batch statistics, running update, backward.
    cpu::BatchNormSaved saved;
    Result<Tensor> y_ref =
        cpu::batch_norm_train_forward(to_f64(x), to_f64(scale), to_f64(bias), epsilon, &saved);
    REQUIRE_OK(y_ref);
    Tensor rm_ref = to_f64(mean0), rv_ref = to_f64(var0);
    REQUIRE(cpu::batch_norm_update_running(saved, momentum, rm_ref, rv_ref).ok());
    Result<cpu::BatchNormGrads> g_ref =
        cpu::batch_norm_backward(to_f64(x), to_f64(scale), saved, to_f64(dy));
    REQUIRE_OK(g_ref);

    std::vector<TensorSpec> in{spec_of(x), spec_of(scale), spec_of(bias), spec_of(mean0),
                               spec_of(var0)};
    const std::vector<TensorSpec> out{spec_of(x)};
    const OpSpec forward{"BatchNormalization", "test", a, in, out};
    const OpEnv env{shared_runtime(), Precision::kFp32};
    Result<std::unique_ptr<GpuOp>> train_op = build_batch_norm_training(forward, env);
    REQUIRE_OK(train_op);
    Tensor y = poisoned(shape), saved_mean = poisoned({c}), saved_inv_std = poisoned({c});
    Tensor rm = mean0.clone().value(), rv = var0.clone().value();
    // The running statistics are inputs updated in place: run, then read them back through a
    // second pass that only downloads (they are inputs 3 and 4).
    {
      GpuRuntime& runtime = shared_runtime();
      const cuda::Stream& stream = runtime.plan_stream();
      std::vector<cuda::DeviceBuffer> keep;
      auto up = [&](const Tensor& t) {
        auto b = cuda::DeviceBuffer::allocate(std::max<size_t>(t.byte_size(), 256));
        REQUIRE(b.ok());
        REQUIRE(cuda::copy_to_device_async(b->ptr(), t.raw(), t.byte_size(), stream).ok());
        keep.push_back(std::move(b).value());
        return keep.back().ptr();
      };
      const std::vector<CUdeviceptr> ins{up(x), up(scale), up(bias), up(rm), up(rv)};
      const std::vector<CUdeviceptr> outs{up(y), up(saved_mean), up(saved_inv_std)};
      REQUIRE(runtime.bind(stream, 0, 0).ok());
      REQUIRE((*train_op)->enqueue(LaunchArgs{stream, ins, outs, 0, 0}).ok());
      for (auto [t, ptr] :
           {std::pair{&y, outs[0]}, std::pair{&saved_mean, outs[1]},
            std::pair{&saved_inv_std, outs[2]}, std::pair{&rm, ins[3]}, std::pair{&rv, ins[4]}}) {
        REQUIRE(cuda::copy_to_host_async(t->mutable_raw(), ptr, t->byte_size(), stream).ok());
      }
      REQUIRE(stream.synchronize().ok());
    }
    const std::string impl = (*train_op)->describe();
    auto vec = [](const std::vector<double>& v) {
      Tensor t = Tensor::allocate(DType::kFloat64, {static_cast<int64_t>(v.size())}).value();
      for (size_t i = 0; i < v.size(); ++i) t.mutable_data<double>()[i] = v[i];
      return t;
    };
    expect_close("BatchNorm train", label, "Y", Precision::kFp32, *y_ref, y, kReduced, impl);
    expect_close("BatchNorm train", label, "mean", Precision::kFp32, vec(saved.mean), saved_mean,
                 kReduced, impl);
    // cuDNN's "saved inverse variance" is 1 / sqrt(var + eps).
    expect_close("BatchNorm train", label, "inv_std", Precision::kFp32, vec(saved.inv_std),
                 saved_inv_std, kReduced, impl);
    // Running statistics: ONNX momentum m, unbiased variance (a biased one is off by
    // (1 - m) * var / (count - 1): >= 1e-3 here, far outside the tolerance).
    expect_close("BatchNorm train", label, "run_mean", Precision::kFp32, rm_ref, rm, kReduced,
                 impl);
    expect_close("BatchNorm train", label, "run_var", Precision::kFp32, rv_ref, rv, kReduced, impl);

    auto grad = build_grad("BatchNormalization", a, {&x, &scale, &bias, &mean0, &var0}, shape,
                           Precision::kFp32);
    Tensor dx = poisoned(shape), dscale = poisoned({c}), dbias = poisoned({c});
    run_on_gpu(*grad, {&x, &scale, &bias, &mean0, &var0, &dy, &saved_mean, &saved_inv_std},
               {&dx, &dscale, &dbias});
    expect_close("BatchNorm", label, "dX", Precision::kFp32, g_ref->dx, dx, kReduced,
                 grad->describe());
    expect_close("BatchNorm", label, "dscale", Precision::kFp32, g_ref->dscale, dscale, kReduced,
                 grad->describe());
    expect_close("BatchNorm", label, "dB", Precision::kFp32, g_ref->dbias, dbias, kReduced,
                 grad->describe());
  }
}

TEST_CASE("GPU Relu, pooling and GlobalAveragePool backward against the CPU reference", "[gpu]") {
  PS_REQUIRE_GPU();
  const Precision p = Precision::kFp32;
  {
    Tensor x = random_tensor(DType::kFloat32, {4, 6, 7, 7}, 3000);
    for (int64_t i = 0; i < x.numel(); i += 5) x.mutable_data<float>()[i] = 0.0f;
    const Tensor dy = random_tensor(DType::kFloat32, x.shape(), 3001);
    Result<Tensor> ref = cpu::relu_backward(to_f64(x), to_f64(dy));
    REQUIRE_OK(ref);
    auto op = build_grad("Relu", attrs({}), {&x}, x.shape(), p);
    Tensor dx = poisoned(x.shape());
    run_on_gpu(*op, {&x, &dy}, {&dx});
    expect_close("Relu", "with exact zeros", "dX", p, *ref, dx, 0.0, op->describe());
  }
  struct PoolCase {
    std::string label, op;
    Shape x;
    std::vector<pipeswitch::psm::Attribute> attrs;
  };
  const std::vector<PoolCase> pools = {
      {"ResNet stem 3x3 s2 p1 (ties)",
       "MaxPool",
       {2, 4, 16, 16},
       {attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {2, 2}),
        attr_ints("pads", {1, 1, 1, 1})}},
      {"Inception 3x3 s2 (ties)",
       "MaxPool",
       {2, 3, 15, 15},
       {attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {2, 2})}},
      {"ceil mode, dilation 2",
       "MaxPool",
       {1, 2, 12, 12},
       {attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {2, 2}),
        attr_ints("dilations", {2, 2}), attr_i("ceil_mode", 1)}},
      {"Inception 3x3 s1 p1 counted",
       "AveragePool",
       {2, 5, 9, 9},
       {attr_ints("kernel_shape", {3, 3}), attr_ints("pads", {1, 1, 1, 1}),
        attr_i("count_include_pad", 1)}},
      {"ceil mode, not counted",
       "AveragePool",
       {1, 3, 10, 10},
       {attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {2, 2}),
        attr_ints("pads", {1, 1, 1, 1}), attr_i("ceil_mode", 1)}},
  };
  uint64_t seed = 3100;
  for (const PoolCase& c : pools) {
    const cpu::Attributes a = attrs(c.attrs);
    Tensor x = random_tensor(DType::kFloat32, c.x, seed++);
    if (c.op == "MaxPool") {  // a coarse grid after ReLU: many ties, as after a real ReLU
      for (int64_t i = 0; i < x.numel(); ++i) {
        float& v = x.mutable_data<float>()[i];
        v = std::max(0.0f, std::round(v * 4.0f) / 4.0f);
      }
    }
    Result<std::vector<Tensor>> y =
        cpu::run_op_allocating(c.op, a, std::vector<const Tensor*>{&x}, 1);
    REQUIRE_OK(y);
    const Tensor dy = random_tensor(DType::kFloat32, (*y)[0].shape(), seed++);
    Result<Tensor> ref = c.op == "MaxPool" ? cpu::max_pool_backward(a, to_f64(x), to_f64(dy))
                                           : cpu::average_pool_backward(a, to_f64(x), to_f64(dy));
    REQUIRE_OK(ref);
    auto op = build_grad(c.op, a, {&x}, (*y)[0].shape(), p);
    Tensor dx = poisoned(c.x);
    run_on_gpu(*op, {&x, &dy}, {&dx});
    expect_close(c.op, c.label, "dX", p, *ref, dx, kElementwise, op->describe());
  }
  {
    const Tensor x = random_tensor(DType::kFloat32, {4, 16, 7, 7}, 3200);
    const Tensor dy = random_tensor(DType::kFloat32, {4, 16, 1, 1}, 3201);
    Result<Tensor> ref = cpu::global_average_pool_backward(to_f64(x), to_f64(dy));
    REQUIRE_OK(ref);
    auto op = build_grad("GlobalAveragePool", attrs({}), {&x}, dy.shape(), p);
    Tensor dx = poisoned(x.shape());
    run_on_gpu(*op, {&x, &dy}, {&dx});
    expect_close("GlobalAveragePool", "7x7", "dX", p, *ref, dx, kElementwise, op->describe());
  }
}

TEST_CASE("GPU Add (broadcast), Flatten and Concat backward", "[gpu]") {
  PS_REQUIRE_GPU();
  const Precision p = Precision::kFp32;
  const Tensor a = random_tensor(DType::kFloat32, {2, 3, 4, 5}, 4000);
  const Tensor b = random_tensor(DType::kFloat32, {3, 1, 5}, 4001);
  const Tensor dy = random_tensor(DType::kFloat32, {2, 3, 4, 5}, 4002);
  Result<Tensor> da_ref = cpu::reduce_to_shape(to_f64(dy), a.shape());
  Result<Tensor> db_ref = cpu::reduce_to_shape(to_f64(dy), b.shape());
  REQUIRE_OK(da_ref);
  REQUIRE_OK(db_ref);
  // dA written, dB accumulated onto a base (through the workspace).
  const Tensor base = random_tensor(DType::kFloat32, b.shape(), 4003);
  Tensor db_expected = to_f64(base);
  for (int64_t i = 0; i < db_expected.numel(); ++i) {
    db_expected.mutable_data<double>()[i] += db_ref->data<double>()[i];
  }
  auto add = build_grad("Add", attrs({}), {&a, &b}, dy.shape(), p, /*accumulate=*/2u);
  Tensor da = poisoned(a.shape()), db = base.clone().value();
  run_on_gpu(*add, {&a, &b, &dy}, {&da, &db});
  expect_close("Add", "same shape", "dA", p, *da_ref, da, kElementwise, add->describe());
  expect_close("Add", "[3,1,5] broadcast +=", "dB", p, db_expected, db, kElementwise,
               add->describe());

  const Tensor x = random_tensor(DType::kFloat32, {4, 8, 1, 1}, 4010);
  const Tensor dflat = random_tensor(DType::kFloat32, {4, 8}, 4011);
  auto flatten = build_grad("Flatten", attrs({attr_i("axis", 1)}), {&x}, {4, 8}, p);
  Tensor dx = poisoned(x.shape());
  run_on_gpu(*flatten, {&x, &dflat}, {&dx});
  CHECK(std::memcmp(dx.raw(), dflat.raw(), dx.byte_size()) == 0);

  const Tensor c0 = random_tensor(DType::kFloat32, {2, 3, 4, 4}, 4020);
  const Tensor c1 = random_tensor(DType::kFloat32, {2, 5, 4, 4}, 4021);
  const Tensor c2 = random_tensor(DType::kFloat32, {2, 1, 4, 4}, 4022);
  const Tensor dcat = random_tensor(DType::kFloat32, {2, 9, 4, 4}, 4023);
  const cpu::Attributes cat = attrs({attr_i("axis", 1)});
  const std::vector<Shape> shapes{c0.shape(), c1.shape(), c2.shape()};
  Result<std::vector<Tensor>> cat_ref = cpu::concat_backward(cat, shapes, to_f64(dcat));
  REQUIRE_OK(cat_ref);
  auto concat = build_grad("Concat", cat, {&c0, &c1, &c2}, dcat.shape(), p);
  Tensor g0 = poisoned(c0.shape()), g1 = poisoned(c1.shape()), g2 = poisoned(c2.shape());
  run_on_gpu(*concat, {&c0, &c1, &c2, &dcat}, {&g0, &g1, &g2});
  expect_close("Concat", "axis 1", "d0", p, (*cat_ref)[0], g0, 0.0, concat->describe());
  expect_close("Concat", "axis 1", "d1", p, (*cat_ref)[1], g1, 0.0, concat->describe());
  expect_close("Concat", "axis 1", "d2", p, (*cat_ref)[2], g2, 0.0, concat->describe());
}

TEST_CASE("GPU Gemm backward (transA/transB, alpha, beta, C broadcast) on cuBLAS", "[gpu]") {
  PS_REQUIRE_GPU();
  struct GemmCase {
    std::string label;
    int64_t m, k, n;
    int64_t ta, tb;
    float alpha, beta;
    Shape c;  // empty: no C
  };
  const std::vector<GemmCase> cases = {
      {"fc: transB, bias [N]", 8, 64, 10, 0, 1, 1.0f, 1.0f, {10}},
      {"plain, C [M, N]", 5, 7, 3, 0, 0, 1.0f, 1.0f, {5, 3}},
      {"transA, alpha 2, beta 0.5, C [M, 1]", 6, 4, 9, 1, 0, 2.0f, 0.5f, {6, 1}},
      {"transA transB, no C", 3, 33, 17, 1, 1, 1.0f, 1.0f, {}},
  };
  uint64_t seed = 5000;
  for (const GemmCase& c : cases) {
    const Tensor a =
        random_tensor(DType::kFloat32, c.ta ? Shape{c.k, c.m} : Shape{c.m, c.k}, seed++);
    const Tensor b =
        random_tensor(DType::kFloat32, c.tb ? Shape{c.n, c.k} : Shape{c.k, c.n}, seed++);
    const Tensor cc = random_tensor(DType::kFloat32, c.c.empty() ? Shape{1} : c.c, seed++);
    const Tensor dy = random_tensor(DType::kFloat32, {c.m, c.n}, seed++);
    const cpu::Attributes at = attrs({attr_f("alpha", c.alpha), attr_f("beta", c.beta),
                                      attr_i("transA", c.ta), attr_i("transB", c.tb)});
    const Shape c_shape = c.c;
    Result<cpu::GemmGrads> ref =
        cpu::gemm_backward(at, to_f64(a), to_f64(b), c.c.empty() ? nullptr : &c_shape, to_f64(dy));
    REQUIRE_OK(ref);
    std::vector<const Tensor*> fwd{&a, &b};
    if (!c.c.empty()) fwd.push_back(&cc);
    for (Precision p : {Precision::kFp32, Precision::kTf32}) {
      const double tol = p == Precision::kFp32 ? kReduced : kTf32;
      auto op = build_grad("Gemm", at, fwd, {c.m, c.n}, p);
      Tensor da = poisoned(a.shape()), db = poisoned(b.shape()),
             dc = poisoned(c.c.empty() ? Shape{1} : c.c);
      std::vector<const Tensor*> in = fwd;
      in.push_back(&dy);
      std::vector<Tensor*> out{&da, &db};
      if (!c.c.empty()) out.push_back(&dc);
      run_on_gpu(*op, in, out);
      expect_close("Gemm", c.label, "dA", p, ref->da, da, tol, op->describe());
      expect_close("Gemm", c.label, "dB", p, ref->db, db, tol, op->describe());
      if (!c.c.empty())
        expect_close("Gemm", c.label, "dC", p, ref->dc, dc, kElementwise, op->describe());
    }
  }
}

TEST_CASE("GPU softmax cross-entropy and SGD against the CPU reference", "[gpu]") {
  PS_REQUIRE_GPU();
  const Precision p = Precision::kFp32;
  for (const Shape& shape : {Shape{64, 1000}, Shape{8, 10}, Shape{3, 37}}) {
    const Tensor logits =
        random_tensor(DType::kFloat32, shape, 6000 + static_cast<uint64_t>(shape[1]), -6, 6);
    std::vector<int64_t> labels;
    for (int64_t n = 0; n < shape[0]; ++n) labels.push_back((n * 7 + 3) % shape[1]);
    Tensor dref;
    Result<double> loss_ref = cpu::softmax_cross_entropy(to_f64(logits), labels, &dref);
    REQUIRE_OK(loss_ref);
    Result<std::unique_ptr<GpuOp>> op =
        build_softmax_cross_entropy(shape, OpEnv{shared_runtime(), p});
    REQUIRE_OK(op);
    const Tensor label_tensor = Tensor::from_values<int64_t>({shape[0]}, labels).value();
    Tensor dlogits = poisoned(shape);
    Tensor loss = Tensor::allocate(DType::kFloat64, {1}).value();
    run_on_gpu(**op, {&logits, &label_tensor}, {&dlogits, &loss});
    const double l = loss.data<double>()[0];
    std::printf("[grad] softmax xent %s: loss %.9g (CPU %.9g)\n", shape_string(shape).c_str(), l,
                *loss_ref);
    CHECK(std::abs(l - *loss_ref) <= kElementwise * std::max(1.0, std::abs(*loss_ref)));
    expect_close("SoftmaxXent", shape_string(shape), "dlogits", p, dref, dlogits, kElementwise,
                 (*op)->describe());
  }

  Result<TrainKernels> kernels = TrainKernels::load(OpEnv{shared_runtime(), p});
  REQUIRE_OK(kernels);
  // The SGD group kernel: two tensors in one launch (1000 elements and a tile and a half), five
  // steps against cpu::sgd_update; the momentum buffers start as NaN (never read on step 0).
  const cpu::SgdOptions options{0.1, 0.9, 1e-2};
  const std::vector<int64_t> sizes = {1000, int64_t{kSgdTile} * 3 / 2};
  const cuda::Stream& stream = shared_runtime().plan_stream();
  std::vector<Tensor> p32, p64, buf64(sizes.size());
  std::vector<cuda::DeviceBuffer> param, grad, buf;
  for (size_t t = 0; t < sizes.size(); ++t) {
    const uint64_t bytes = static_cast<uint64_t>(sizes[t]) * 4;
    p32.push_back(random_tensor(DType::kFloat32, Shape{sizes[t]}, 6100 + t));
    p64.push_back(to_f64(p32[t]));
    param.push_back(cuda::DeviceBuffer::allocate(bytes).value());
    grad.push_back(cuda::DeviceBuffer::allocate(bytes).value());
    buf.push_back(cuda::DeviceBuffer::allocate(bytes).value());
    REQUIRE(cuda::copy_to_device_async(param[t].ptr(), p32[t].raw(), bytes, stream).ok());
    REQUIRE(cuda::memset_d8_async(buf[t].ptr(), 0xFF, bytes, stream).ok());
  }
  std::vector<Tensor> g(sizes.size());
  for (int s = 0; s < 5; ++s) {
    Result<train_kernels::SgdGroupParams> sp = plan_sgd_group(options, sizes);
    REQUIRE_OK(sp);
    for (size_t t = 0; t < sizes.size(); ++t) {
      g[t] = random_tensor(DType::kFloat32, Shape{sizes[t]}, 6200 + 10 * t + s);
      REQUIRE(cpu::sgd_update(options, p64[t], to_f64(g[t]), buf64[t]).ok());
      REQUIRE(cuda::copy_to_device_async(grad[t].ptr(), g[t].raw(),
                                         static_cast<uint64_t>(sizes[t]) * 4, stream)
                  .ok());
      sp->param[t] = param[t].ptr();
      sp->grad[t] = grad[t].ptr();
      sp->buf[t] = buf[t].ptr();
      if (s == 0) sp->first_step_bits |= uint64_t{1} << t;
    }
    REQUIRE(kernels->sgd_group(stream, *sp).ok());
    REQUIRE(stream.synchronize().ok());  // the gradients' host tensors are replaced next step
  }
  for (size_t t = 0; t < sizes.size(); ++t) {
    REQUIRE(cuda::copy_to_host_async(p32[t].mutable_raw(), param[t].ptr(),
                                     static_cast<uint64_t>(sizes[t]) * 4, stream)
                .ok());
    REQUIRE(stream.synchronize().ok());
    expect_close("SGD", str_cat("5 steps, momentum 0.9, wd 1e-2, tensor ", t), "param", p, p64[t],
                 p32[t], kElementwise, "kernel ps_sgd_group_f32");
  }
}

}  // namespace
}  // namespace ps::models::gpu
