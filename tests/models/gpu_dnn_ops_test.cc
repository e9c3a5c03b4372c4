// The cuDNN/cuBLAS operators on the GPU against the CPU reference ([gpu]: skipped without a
// GPU). The CPU result of each case is computed once and compared with the GPU in strict fp32
// and in TF32. Every comparison prints one line (op, case, precision, worst relative error,
// implementation), so a run reports the worst errors seen; a failure names the case.
#include <catch2/catch.hpp>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "models/gpu/conv_algo.h"
#include "tests/models/gpu_dnn_test_util.h"
#include "tests/models/gpu_op_check.h"
#include "tests/support/gpu.h"

// REQUIREs that a Result is OK, printing its status and `what` when not.
#define DNN_REQUIRE_OK(result, what)                                                           \
  do {                                                                                         \
    INFO(what << ": " << ((result).ok() ? std::string("ok") : (result).status().to_string())); \
    REQUIRE((result).ok());                                                                    \
  } while (0)

namespace ps::models::gpu {
namespace {

using namespace dnn_test;
using testing::random_tensor;
using testing::shared_runtime;

// Strict fp32 against a double-accumulating reference: ~1e-5 (FFT/Winograd kernels allowed).
constexpr double kFp32Tolerance = 2e-5;
// TF32 inputs keep 10 mantissa bits.
constexpr double kTf32Tolerance = 5e-3;
// Pooling and batch norm do not depend on the precision (float sums and one rsqrt).
constexpr double kExactishTolerance = 1e-6;
constexpr double kBatchNormTolerance = 3e-6;

enum class Precisions { kBoth, kFp32Only };

// Runs `op` on the CPU once and on the GPU in the requested precisions, checking every output
// within the tolerance of its precision (`fp32_tolerance` for strict fp32).
void check_op(const std::string& label, const std::string& op, const cpu::Attributes& a,
              const std::vector<const cpu::Tensor*>& inputs, std::initializer_list<size_t> weights,
              Precisions which = Precisions::kBoth, double fp32_tolerance = kFp32Tolerance) {
  INFO(op << " " << label);
  Result<std::vector<cpu::Tensor>> expected = cpu::run_op_allocating(op, a, inputs, 1);
  DNN_REQUIRE_OK(expected, "CPU reference");
  std::vector<TensorSpec> out_specs;
  for (const cpu::Tensor& t : *expected)
    out_specs.push_back(TensorSpec{t.dtype(), t.shape(), false});
  std::vector<Precision> precisions{Precision::kFp32};
  if (which == Precisions::kBoth) precisions.push_back(Precision::kTf32);
  for (Precision p : precisions) {
    const double tolerance = p == Precision::kFp32 ? fp32_tolerance : kTf32Tolerance;
    Result<testing::GpuOpRun> run =
        testing::run_gpu_op(shared_runtime(), p, op, a, inputs, out_specs, weights);
    DNN_REQUIRE_OK(run, precision_name(p));
    for (size_t i = 0; i < expected->size(); ++i) {
      Result<testing::TensorError> e = testing::compare_tensors((*expected)[i], run->outputs[i]);
      REQUIRE(e.ok());
      std::printf("[dnn] %-18s %-44s %s out%zu Y%s: max_rel %.3g (max_abs %.3g at %lld) | %s\n",
                  op.c_str(), label.c_str(), std::string(precision_name(p)).c_str(), i,
                  shape_string((*expected)[i].shape()).c_str(), e->max_rel, e->max_abs,
                  static_cast<long long>(e->worst_index), run->description.c_str());
      INFO(precision_name(p) << " output " << i << " " << shape_string((*expected)[i].shape())
                             << " via " << run->description << ": max_rel " << e->max_rel << " at "
                             << e->worst_index << ", mismatches " << e->mismatches);
      CHECK(e->mismatches == 0);
      CHECK(e->max_rel <= tolerance);
    }
  }
}

struct ConvCase {
  std::string label;
  Shape x, w;
  std::vector<pipeswitch::psm::Attribute> attrs;
  bool bias = true;
  std::string activation = "none";  // FusedConv only when not "" and op is FusedConv
  bool residual = false;
  std::string op = "FusedConv";
};

void run_conv_case(const ConvCase& c, uint64_t seed) {
  std::vector<pipeswitch::psm::Attribute> list = c.attrs;
  if (c.op == "FusedConv") {
    list.push_back(attr_s("activation", c.activation));
    list.push_back(attr_i("has_residual", c.residual ? 1 : 0));
  }
  const cpu::Attributes a = attrs(list);
  const cpu::Tensor x = random_tensor(DType::kFloat32, c.x, seed);
  const cpu::Tensor w = random_tensor(DType::kFloat32, c.w, seed + 1, -0.5, 0.5);
  const cpu::Tensor b = random_tensor(DType::kFloat32, {c.w[0]}, seed + 2);
  std::vector<const cpu::Tensor*> inputs{&x, &w, c.bias ? &b : nullptr};
  cpu::Tensor residual;
  if (c.residual) {
    // The output shape, from the CPU reference of the convolution alone.
    const std::vector<pipeswitch::psm::Attribute> plain(c.attrs.begin(), c.attrs.end());
    Result<std::vector<cpu::Tensor>> y =
        cpu::run_op_allocating("Conv", attrs(plain), std::vector<const cpu::Tensor*>{&x, &w}, 1);
    REQUIRE(y.ok());
    residual = random_tensor(DType::kFloat32, (*y)[0].shape(), seed + 3);
    inputs.push_back(&residual);
  }
  check_op(c.label, c.op, a, inputs, {1, 2});
}

TEST_CASE("dnn Conv: ResNet152 layer shapes", "[gpu]") {
  PS_REQUIRE_GPU();
  const std::vector<ConvCase> cases = {
      {"stem 7x7 s2 p3 +bias relu",
       {8, 3, 224, 224},
       {64, 3, 7, 7},
       {attr_ints("pads", {3, 3, 3, 3}), attr_ints("strides", {2, 2})},
       true,
       "relu"},
      {"1x1 256->64 @56 +bias relu", {8, 256, 56, 56}, {64, 256, 1, 1}, {}, true, "relu"},
      {"3x3 64->64 @56 +bias relu",
       {8, 64, 56, 56},
       {64, 64, 3, 3},
       {attr_ints("pads", {1, 1, 1, 1})},
       true,
       "relu"},
      {"1x1 64->256 @56 +bias +residual relu",
       {8, 64, 56, 56},
       {256, 64, 1, 1},
       {},
       true,
       "relu",
       true},
      {"downsample 1x1 s2 256->512 +bias",
       {8, 256, 56, 56},
       {512, 256, 1, 1},
       {attr_ints("strides", {2, 2})},
       true,
       "none"},
      {"3x3 s2 128 @56->28 +bias relu",
       {8, 128, 56, 56},
       {128, 128, 3, 3},
       {attr_ints("pads", {1, 1, 1, 1}), attr_ints("strides", {2, 2})},
       true,
       "relu"},
      {"3x3 512 @7 +bias relu",
       {8, 512, 7, 7},
       {512, 512, 3, 3},
       {attr_ints("pads", {1, 1, 1, 1})},
       true,
       "relu"},
      {"1x1 512->2048 @7 +bias +residual relu",
       {8, 512, 7, 7},
       {2048, 512, 1, 1},
       {},
       true,
       "relu",
       true},
  };
  uint64_t seed = 100;
  for (const ConvCase& c : cases) run_conv_case(c, seed += 10);
}

TEST_CASE("dnn Conv: Inception v3 layer shapes", "[gpu]") {
  PS_REQUIRE_GPU();
  const std::vector<ConvCase> cases = {
      {"stem 3x3 s2 valid 3->32",
       {8, 3, 299, 299},
       {32, 3, 3, 3},
       {attr_ints("strides", {2, 2})},
       true,
       "relu"},
      {"1x7 p(0,3) 128->128 @17",
       {8, 128, 17, 17},
       {128, 128, 1, 7},
       {attr_ints("pads", {0, 3, 0, 3})},
       true,
       "relu"},
      {"7x1 p(3,0) 128->192 @17",
       {8, 128, 17, 17},
       {192, 128, 7, 1},
       {attr_ints("pads", {3, 0, 3, 0})},
       true,
       "relu"},
      {"3x3 s2 valid 288->384 @35",
       {8, 288, 35, 35},
       {384, 288, 3, 3},
       {attr_ints("strides", {2, 2})},
       true,
       "relu"},
      {"1x3 p(0,1) 384->384 @8",
       {8, 384, 8, 8},
       {384, 384, 1, 3},
       {attr_ints("pads", {0, 1, 0, 1})},
       true,
       "relu"},
      {"5x5 p2 48->64 @35",
       {8, 48, 35, 35},
       {64, 48, 5, 5},
       {attr_ints("pads", {2, 2, 2, 2})},
       true,
       "relu"},
  };
  uint64_t seed = 200;
  for (const ConvCase& c : cases) run_conv_case(c, seed += 10);
}

TEST_CASE("dnn Conv: attribute combinations", "[gpu]") {
  PS_REQUIRE_GPU();
  const std::vector<ConvCase> cases = {
      {"plain Conv, no bias", {2, 8, 13, 11}, {16, 8, 3, 3}, {}, false, "none", false, "Conv"},
      {"plain Conv, bias",
       {2, 8, 13, 11},
       {16, 8, 3, 3},
       {attr_ints("pads", {1, 2, 1, 2})},
       true,
       "none",
       false,
       "Conv"},
      {"fused relu, no bias", {2, 8, 13, 11}, {16, 8, 3, 3}, {}, false, "relu"},
      {"fused residual only", {2, 8, 13, 11}, {16, 8, 3, 3}, {}, false, "none", true},
      {"fused bias+residual, no act", {2, 8, 13, 11}, {16, 8, 3, 3}, {}, true, "none", true},
      {"groups 4, stride 2",
       {2, 16, 15, 15},
       {32, 4, 3, 3},
       {attr_i("group", 4), attr_ints("strides", {2, 2}), attr_ints("pads", {1, 1, 1, 1})},
       true,
       "relu"},
      {"depthwise",
       {2, 32, 14, 14},
       {32, 1, 3, 3},
       {attr_i("group", 32), attr_ints("pads", {1, 1, 1, 1})},
       true,
       "relu"},
      {"dilation 2",
       {2, 8, 17, 17},
       {8, 8, 3, 3},
       {attr_ints("dilations", {2, 2}), attr_ints("pads", {2, 2, 2, 2})},
       true,
       "none"},
      {"auto_pad SAME_UPPER s1",
       {1, 8, 10, 9},
       {8, 8, 3, 3},
       {attr_s("auto_pad", "SAME_UPPER")},
       true,
       "relu"},
      {"auto_pad VALID s3",
       {1, 8, 10, 9},
       {8, 8, 2, 2},
       {attr_s("auto_pad", "VALID"), attr_ints("strides", {3, 3})},
       true,
       "none"},
      {"harmless end pad",
       {1, 4, 7, 7},
       {8, 4, 3, 3},
       {attr_ints("pads", {0, 0, 1, 1}), attr_ints("strides", {2, 2})},
       true,
       "relu"},
      {"1-D conv", {2, 6, 30}, {10, 6, 5}, {attr_ints("pads", {2, 2})}, true, "relu"},
      {"3-D conv",
       {1, 4, 6, 7, 8},
       {6, 4, 3, 3, 3},
       {attr_ints("pads", {1, 1, 1, 1, 1, 1})},
       true,
       "relu",
       true},
  };
  uint64_t seed = 300;
  for (const ConvCase& c : cases) run_conv_case(c, seed += 10);

  // Random geometries.
  std::mt19937_64 rng(12345);
  auto pick = [&rng](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  for (int i = 0; i < 12; ++i) {
    const int64_t group = pick(0, 2) == 0 ? 2 : 1;
    const int64_t c = group * pick(1, 6), m = group * pick(1, 6);
    const int64_t kh = pick(1, 4), kw = pick(1, 4);
    const int64_t sh = pick(1, 3), sw = pick(1, 3);
    const int64_t dh = pick(1, 2), dw = pick(1, 2);
    const int64_t ph = pick(0, 2), pw = pick(0, 2);
    const int64_t h = (kh - 1) * dh + 1 + pick(0, 12), w = (kw - 1) * dw + 1 + pick(0, 12);
    const bool relu = pick(0, 1) == 1, residual = pick(0, 1) == 1, bias = pick(0, 1) == 1;
    ConvCase cc{str_cat("random #", i, " g", group, " k", kh, "x", kw, " s", sh, "x", sw, " d", dh,
                        "x", dw, " p", ph, "x", pw),
                {pick(1, 3), c, h, w},
                {m, c / group, kh, kw},
                {attr_i("group", group), attr_ints("strides", {sh, sw}),
                 attr_ints("dilations", {dh, dw}), attr_ints("pads", {ph, pw, ph, pw})},
                bias,
                relu ? "relu" : "none",
                residual};
    run_conv_case(cc, 1000 + static_cast<uint64_t>(i) * 7);
  }
}

TEST_CASE("dnn Conv: the algorithm choice is cached per shape and precision", "[gpu]") {
  PS_REQUIRE_GPU();
  const cpu::Attributes a = attrs({attr_ints("pads", {1, 1, 1, 1})});
  const std::vector<TensorSpec> inputs{f32({3, 24, 19, 19}), f32({40, 24, 3, 3})};
  const std::vector<TensorSpec> outputs{f32({3, 40, 19, 19})};
  const OpSpec spec{"Conv", "cache-test", a, inputs, outputs};
  for (Precision p : {Precision::kFp32, Precision::kTf32}) {
    auto first = build_op(spec, OpEnv{shared_runtime(), p});
    DNN_REQUIRE_OK(first, "build_op");
    const size_t entries = conv_algo_cache_size();
    auto second = build_op(spec, OpEnv{shared_runtime(), p});
    REQUIRE(second.ok());
    CHECK(conv_algo_cache_size() == entries);
    CHECK_THAT((*second)->describe(), Catch::Contains("cached choice"));
    CHECK((*second)->workspace_bytes() == (*first)->workspace_bytes());
    CHECK((*second)->workspace_bytes() <= kConvWorkspaceCap);
    std::printf("[dnn] conv cache %s: %s\n", std::string(precision_name(p)).c_str(),
                (*first)->describe().c_str());
  }
}

TEST_CASE("dnn Conv: refusals name the cause", "[gpu]") {
  PS_REQUIRE_GPU();
  const cpu::Attributes a = attrs({attr_s("auto_pad", "SAME_UPPER"), attr_ints("strides", {2, 2})});
  const std::vector<TensorSpec> inputs{f32({1, 4, 16, 16}), f32({8, 4, 3, 3})};
  const std::vector<TensorSpec> outputs{f32({1, 8, 8, 8})};
  auto op = build_op(OpSpec{"Conv", "conv_same", a, inputs, outputs},
                     OpEnv{shared_runtime(), Precision::kTf32});
  REQUIRE_FALSE(op.ok());
  CHECK(op.status().code() == Code::kUnsupported);
  CHECK_THAT(op.status().message(), Catch::Contains("conv_same"));
  CHECK_THAT(op.status().message(), Catch::Contains("asymmetric"));
}

struct PoolCase {
  std::string label;
  std::string op;
  Shape x;
  std::vector<pipeswitch::psm::Attribute> attrs;
};

TEST_CASE("dnn pooling: ResNet, Inception and edge cases", "[gpu]") {
  PS_REQUIRE_GPU();
  const std::vector<PoolCase> cases = {
      {"ResNet max 3x3 s2 p1",
       "MaxPool",
       {8, 64, 112, 112},
       {attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {2, 2}),
        attr_ints("pads", {1, 1, 1, 1})}},
      {"Inception max 3x3 s2 valid",
       "MaxPool",
       {8, 64, 147, 147},
       {attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {2, 2})}},
      {"Inception avg 3x3 s1 p1 include pad",
       "AveragePool",
       {8, 192, 35, 35},
       {attr_ints("kernel_shape", {3, 3}), attr_ints("pads", {1, 1, 1, 1}),
        attr_i("count_include_pad", 1)}},
      {"avg 3x3 s1 p1 exclude pad",
       "AveragePool",
       {4, 64, 17, 17},
       {attr_ints("kernel_shape", {3, 3}), attr_ints("pads", {1, 1, 1, 1})}},
      {"GoogLeNet max 3x3 s2 ceil",
       "MaxPool",
       {2, 64, 112, 112},
       {attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {2, 2}), attr_i("ceil_mode", 1)}},
      {"avg 3x3 s2 p1 ceil include pad",
       "AveragePool",
       {2, 16, 28, 28},
       {attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {2, 2}),
        attr_ints("pads", {1, 1, 1, 1}), attr_i("ceil_mode", 1), attr_i("count_include_pad", 1)}},
      {"avg 2x2 s2 ceil exclude pad",
       "AveragePool",
       {2, 16, 9, 9},
       {attr_ints("kernel_shape", {2, 2}), attr_ints("strides", {2, 2}), attr_i("ceil_mode", 1)}},
      {"max asymmetric pads",
       "MaxPool",
       {2, 8, 10, 11},
       {attr_ints("kernel_shape", {3, 2}), attr_ints("pads", {0, 1, 2, 0})}},
      {"avg asymmetric pads include",
       "AveragePool",
       {2, 8, 10, 11},
       {attr_ints("kernel_shape", {3, 3}), attr_ints("pads", {1, 0, 0, 2}),
        attr_i("count_include_pad", 1)}},
      {"max dilation 2",
       "MaxPool",
       {2, 8, 12, 12},
       {attr_ints("kernel_shape", {3, 3}), attr_ints("dilations", {2, 2})}},
      {"max SAME_UPPER s2",
       "MaxPool",
       {2, 8, 12, 12},
       {attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {2, 2}),
        attr_s("auto_pad", "SAME_UPPER")}},
      {"1-D max",
       "MaxPool",
       {2, 8, 33},
       {attr_ints("kernel_shape", {4}), attr_ints("strides", {2})}},
      {"3-D avg",
       "AveragePool",
       {1, 4, 6, 7, 8},
       {attr_ints("kernel_shape", {2, 2, 2}), attr_ints("strides", {2, 2, 2})}},
      {"ResNet global avg 7x7", "GlobalAveragePool", {8, 2048, 7, 7}, {}},
      {"Inception global avg 8x8", "GlobalAveragePool", {8, 2048, 8, 8}, {}},
      {"global max", "GlobalMaxPool", {4, 32, 9, 10}, {}},
      {"global avg 1-D", "GlobalAveragePool", {4, 32, 50}, {}},
  };
  uint64_t seed = 500;
  for (const PoolCase& c : cases) {
    const cpu::Tensor x = random_tensor(DType::kFloat32, c.x, seed += 3);
    check_op(c.label, c.op, attrs(c.attrs), {&x}, {}, Precisions::kFp32Only, kExactishTolerance);
  }
}

TEST_CASE("dnn BatchNormalization: inference", "[gpu]") {
  PS_REQUIRE_GPU();
  const std::vector<std::pair<Shape, float>> cases = {
      {{8, 64, 56, 56}, 1e-5f}, {{8, 16}, 1e-3f}, {{4, 12, 30}, 1e-5f}, {{2, 6, 4, 5, 6}, 0.1f}};
  uint64_t seed = 700;
  for (const auto& [shape, epsilon] : cases) {
    const int64_t c = shape[1];
    const cpu::Tensor x = random_tensor(DType::kFloat32, shape, seed += 5, -3, 3);
    const cpu::Tensor scale = random_tensor(DType::kFloat32, {c}, seed + 1, 0.5, 1.5);
    const cpu::Tensor bias = random_tensor(DType::kFloat32, {c}, seed + 2);
    const cpu::Tensor mean = random_tensor(DType::kFloat32, {c}, seed + 3);
    const cpu::Tensor var = random_tensor(DType::kFloat32, {c}, seed + 4, 0.1, 2.0);
    check_op(str_cat("X", shape_string(shape), " eps ", epsilon), "BatchNormalization",
             attrs({attr_f("epsilon", epsilon)}), {&x, &scale, &bias, &mean, &var}, {1, 2, 3, 4},
             Precisions::kFp32Only, kBatchNormTolerance);
  }
}

// The BERT linear layers at their real size (the CPU reference takes a few seconds here).
TEST_CASE("dnn MatMulBias: BERT [8*251, 768] x [768, 768]", "[gpu]") {
  PS_REQUIRE_GPU();
  const cpu::Tensor x = random_tensor(DType::kFloat32, {8, 251, 768}, 800);
  const cpu::Tensor w = random_tensor(DType::kFloat32, {768, 768}, 801, -0.1, 0.1);
  const cpu::Tensor b = random_tensor(DType::kFloat32, {768}, 802);
  check_op("[8,251,768] x [768,768] + bias", "MatMulBias", attrs({}), {&x, &w, &b}, {1, 2});
}

TEST_CASE("dnn MatMulBias: BERT [8*251, 768] x [768, 3072]", "[gpu]") {
  PS_REQUIRE_GPU();
  const cpu::Tensor x = random_tensor(DType::kFloat32, {8, 251, 768}, 805);
  const cpu::Tensor w = random_tensor(DType::kFloat32, {768, 3072}, 803, -0.1, 0.1);
  const cpu::Tensor b = random_tensor(DType::kFloat32, {3072}, 804);
  check_op("[8,251,768] x [768,3072] + bias", "MatMulBias", attrs({}), {&x, &w, &b}, {1, 2});
}

TEST_CASE("dnn MatMul: BERT attention batches", "[gpu]") {
  PS_REQUIRE_GPU();
  const cpu::Tensor q = random_tensor(DType::kFloat32, {8, 12, 251, 64}, 810);
  const cpu::Tensor kt = random_tensor(DType::kFloat32, {8, 12, 64, 251}, 811);
  check_op("scores [8,12,251,64] x [8,12,64,251]", "MatMul", attrs({}), {&q, &kt}, {});
  const cpu::Tensor p = random_tensor(DType::kFloat32, {8, 12, 251, 251}, 812, 0, 0.01);
  const cpu::Tensor v = random_tensor(DType::kFloat32, {8, 12, 251, 64}, 813);
  check_op("context [8,12,251,251] x [8,12,251,64]", "MatMul", attrs({}), {&p, &v}, {});
  // The scores with their scale folded in (fuse_matmul_scale), cuBLASLt's alpha.
  const cpu::Tensor qs = random_tensor(DType::kFloat32, {2, 3, 17, 8}, 814);
  const cpu::Tensor ks = random_tensor(DType::kFloat32, {2, 3, 8, 17}, 815);
  check_op("scaled scores [2,3,17,8] x [2,3,8,17] * 0.3", "MatMulScale",
           attrs({attr_f("alpha", 0.3f)}), {&qs, &ks}, {});
}

TEST_CASE("dnn MatMulTransB: linear layers with the weight stored [N, K]", "[gpu]") {
  PS_REQUIRE_GPU();
  const cpu::Tensor x = random_tensor(DType::kFloat32, {8, 251, 768}, 830);
  const cpu::Tensor w = random_tensor(DType::kFloat32, {3072, 768}, 831);
  check_op("[8,251,768] x [3072,768]^T", "MatMulTransB", attrs({}), {&x, &w}, {});
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{2, 5, 7}, {4, 7}}, {{3, 7}, {9, 7}}, {{7}, {5, 7}}, {{2, 3, 4, 33}, {65, 33}}};
  uint64_t seed = 840;
  for (const auto& [sa, sb] : cases) {
    const cpu::Tensor a = random_tensor(DType::kFloat32, sa, seed += 2);
    const cpu::Tensor b = random_tensor(DType::kFloat32, sb, seed + 1);
    check_op(str_cat(shape_string(sa), " x ", shape_string(sb), "^T"), "MatMulTransB", attrs({}),
             {&a, &b}, {});
    // With the linear layer's bias (fuse_linear_bias): the BIAS epilogue.
    const cpu::Tensor bias = random_tensor(DType::kFloat32, {sb[0]}, seed + 7);
    check_op(str_cat(shape_string(sa), " x ", shape_string(sb), "^T + bias"), "MatMulTransB",
             attrs({}), {&a, &b, &bias}, {1, 2});
  }
  const cpu::Tensor bias = random_tensor(DType::kFloat32, {3072}, 832);
  check_op("[8,251,768] x [3072,768]^T + bias", "MatMulTransB", attrs({}), {&x, &w, &bias}, {1, 2});
}

TEST_CASE("dnn MatMul: broadcasting, 1-D operands, random shapes", "[gpu]") {
  PS_REQUIRE_GPU();
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{5, 7}, {7, 3}},
      {{64}, {3, 64, 5}},
      {{2, 3, 4}, {4}},
      {{17}, {17}},
      {{2, 1, 4, 5}, {1, 3, 5, 6}},
      {{4, 5}, {7, 5, 6}},
      {{3, 1, 9, 7}, {2, 7, 5}},
      {{6, 33, 65}, {6, 65, 31}},
      {{1, 1}, {1, 1}},
  };
  uint64_t seed = 900;
  for (const auto& [sa, sb] : cases) {
    const cpu::Tensor a = random_tensor(DType::kFloat32, sa, seed += 2);
    const cpu::Tensor b = random_tensor(DType::kFloat32, sb, seed + 1);
    check_op(str_cat(shape_string(sa), " x ", shape_string(sb)), "MatMul", attrs({}), {&a, &b}, {});
  }
  std::mt19937_64 rng(777);
  auto pick = [&rng](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  for (int i = 0; i < 8; ++i) {
    const int64_t m = pick(1, 70), k = pick(1, 90), n = pick(1, 70), batch = pick(1, 4);
    const Shape sa = pick(0, 1) ? Shape{batch, m, k} : Shape{m, k};
    const Shape sb = pick(0, 1) ? Shape{batch, k, n} : Shape{k, n};
    const cpu::Tensor a = random_tensor(DType::kFloat32, sa, 950 + i);
    const cpu::Tensor b = random_tensor(DType::kFloat32, sb, 960 + i);
    const cpu::Tensor bias = random_tensor(DType::kFloat32, {n}, 970 + i);
    check_op(str_cat("random ", shape_string(sa), " x ", shape_string(sb)), "MatMulBias", attrs({}),
             {&a, &b, &bias}, {1, 2});
  }
}

TEST_CASE("dnn Gemm: transposes, alpha, beta, C broadcast", "[gpu]") {
  PS_REQUIRE_GPU();
  struct GemmCase {
    bool ta, tb;
    float alpha, beta;
    Shape c;  // empty: no C
    bool has_c;
  };
  const std::vector<GemmCase> cases = {
      {false, true, 1.0f, 1.0f, {1000}, true},      // ResNet's classifier: bias epilogue
      {false, false, 1.0f, 1.0f, {1, 1000}, true},  // bias epilogue, 2-D bias
      {true, false, 0.5f, 2.0f, {8, 1000}, true},   // full C
      {true, true, 1.5f, 0.25f, {1000}, true},      // row vector, beta != 1: broadcast
      {false, true, 1.0f, 1.0f, {8, 1}, true},      // column vector: broadcast
      {false, false, 1.0f, 1.0f, {}, true},         // scalar C
      {false, true, 2.0f, 0.0f, {8, 1000}, true},   // beta 0 ignores C
      {false, false, 1.0f, 1.0f, {}, false},        // no C
  };
  uint64_t seed = 1100;
  for (const GemmCase& g : cases) {
    const int64_t m = 8, k = 2048, n = 1000;
    const cpu::Tensor a =
        random_tensor(DType::kFloat32, g.ta ? Shape{k, m} : Shape{m, k}, seed += 3);
    const cpu::Tensor b =
        random_tensor(DType::kFloat32, g.tb ? Shape{n, k} : Shape{k, n}, seed + 1, -0.1, 0.1);
    const cpu::Tensor c = random_tensor(DType::kFloat32, g.c, seed + 2);
    std::vector<const cpu::Tensor*> inputs{&a, &b};
    if (g.has_c) inputs.push_back(&c);
    check_op(str_cat("tA", g.ta, " tB", g.tb, " alpha ", g.alpha, " beta ", g.beta, " C ",
                     g.has_c ? shape_string(g.c) : std::string("none")),
             "Gemm",
             attrs({attr_i("transA", g.ta), attr_i("transB", g.tb), attr_f("alpha", g.alpha),
                    attr_f("beta", g.beta)}),
             inputs, {1, 2});
  }
}

}  // namespace
}  // namespace ps::models::gpu
