// CPU-only tests of the dnn operators' planning helpers (no [gpu] tag: they need no device):
// convolution and pooling geometry (window_plan.h), matrix-product batching (matmul_plan.h),
// the transpose identity that maps row-major products onto cuBLASLt (lt_matmul.h), the builder
// table.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>

#include "models/gpu/lt_matmul.h"
#include "models/gpu/matmul_plan.h"
#include "models/gpu/op.h"
#include "models/gpu/window_plan.h"
#include "tests/models/gpu_dnn_test_util.h"

namespace ps::models::gpu {
namespace {

using namespace dnn_test;

Result<ConvPlan> conv(const std::string& op, const cpu::Attributes& a,
                      std::vector<TensorSpec> inputs, Shape out) {
  const std::vector<TensorSpec> outputs{f32(std::move(out))};
  return plan_conv(OpSpec{op, "conv", a, inputs, outputs});
}

Result<PoolPlan> pool(const std::string& op, const cpu::Attributes& a, Shape x, Shape out) {
  const std::vector<TensorSpec> inputs{f32(std::move(x))};
  const std::vector<TensorSpec> outputs{f32(std::move(out))};
  return plan_pool(OpSpec{op, "pool", a, inputs, outputs});
}

TEST_CASE("dnn table: sorted, every op found") {
  const std::span<const OpEntry> table = dnn_op_table();
  REQUIRE(table.size() == 14);
  for (size_t i = 1; i < table.size(); ++i) CHECK(table[i - 1].op < table[i].op);
  for (const char* op : {"Conv", "FusedConv", "MaxPool", "AveragePool", "GlobalAveragePool",
                         "GlobalMaxPool", "BatchNormalization", "Gemm", "MatMul", "MatMulBias",
                         "MatMulScale", "MatMulTransB", "AttentionScores", "AttentionContext"}) {
    INFO(op);
    CHECK(gpu_supports(op));
  }
}

TEST_CASE("plan_conv: ResNet stem, bottleneck and downsample geometry") {
  auto stem = conv("Conv", attrs({attr_ints("pads", {3, 3, 3, 3}), attr_ints("strides", {2, 2})}),
                   {f32({8, 3, 224, 224}), f32({64, 3, 7, 7})}, {8, 64, 112, 112});
  REQUIRE(stem.ok());
  CHECK(stem->cudnn_pads == std::vector<int64_t>{3, 3});
  CHECK(stem->windows[0].stride == 2);
  CHECK_FALSE(stem->relu);
  CHECK_FALSE(stem->has_bias);

  auto fused =
      conv("FusedConv", attrs({attr_s("activation", "relu"), attr_i("has_residual", 1)}),
           {f32({8, 256, 56, 56}), f32({512, 256, 1, 1}), f32({512}), f32({8, 512, 28, 28})},
           {8, 512, 28, 28});
  CHECK(fused.status().code() == Code::kInvalidArgument);  // no stride: output is 56x56

  auto down =
      conv("FusedConv",
           attrs({attr_ints("strides", {2, 2}), attr_s("activation", "relu"),
                  attr_i("has_residual", 1)}),
           {f32({8, 256, 56, 56}), f32({512, 256, 1, 1}), f32({512}), f32({8, 512, 28, 28})},
           {8, 512, 28, 28});
  REQUIRE(down.ok());
  CHECK(down->relu);
  CHECK(down->has_bias);
  CHECK(down->has_residual);
  CHECK(down->out_shape == Shape{8, 512, 28, 28});
}

TEST_CASE("plan_conv: Inception 1x7 and depthwise groups") {
  auto c17 = conv("Conv", attrs({attr_ints("pads", {0, 3, 0, 3})}),
                  {f32({8, 128, 17, 17}), f32({192, 128, 1, 7}), f32({192})}, {8, 192, 17, 17});
  REQUIRE(c17.ok());
  CHECK(c17->cudnn_pads == std::vector<int64_t>{0, 3});
  auto dw = conv("Conv", attrs({attr_i("group", 32), attr_ints("pads", {1, 1, 1, 1})}),
                 {f32({2, 32, 9, 9}), f32({32, 1, 3, 3})}, {2, 32, 9, 9});
  REQUIRE(dw.ok());
  CHECK(dw->group == 32);
}

TEST_CASE("cudnn_conv_shape: dims, bias broadcast and the 1-D convolution's extra dimension") {
  auto dw = conv("Conv",
                 attrs({attr_i("group", 32), attr_ints("pads", {1, 1, 1, 1}),
                        attr_ints("strides", {2, 2})}),
                 {f32({2, 32, 9, 9}), f32({32, 1, 3, 3})}, {2, 32, 5, 5});
  REQUIRE(dw.ok());
  const CudnnConvShape s = cudnn_conv_shape(*dw);
  CHECK(s.x == std::vector<int64_t>{2, 32, 9, 9});
  CHECK(s.w == std::vector<int64_t>{32, 1, 3, 3});
  CHECK(s.y == std::vector<int64_t>{2, 32, 5, 5});
  CHECK(s.bias == std::vector<int64_t>{1, 32, 1, 1});
  CHECK(s.pads == std::vector<int64_t>{1, 1});
  CHECK(s.strides == std::vector<int64_t>{2, 2});
  CHECK(s.dilations == std::vector<int64_t>{1, 1});

  auto one_d = conv("Conv", attrs({attr_ints("pads", {2, 2}), attr_ints("dilations", {2})}),
                    {f32({4, 8, 50}), f32({16, 8, 3})}, {4, 16, 50});
  REQUIRE(one_d.ok());
  const CudnnConvShape t = cudnn_conv_shape(*one_d);
  CHECK(t.x == std::vector<int64_t>{4, 8, 1, 50});  // a leading trivial spatial dimension
  CHECK(t.w == std::vector<int64_t>{16, 8, 1, 3});
  CHECK(t.y == std::vector<int64_t>{4, 16, 1, 50});
  CHECK(t.pads == std::vector<int64_t>{0, 2});
  CHECK(t.dilations == std::vector<int64_t>{1, 2});
  // The algorithm caches' key tells the two shapes (and any group) apart.
  CHECK(s.key != t.key);
  CHECK(s.key.find("g32") != std::string::npos);
}

TEST_CASE("plan_conv: padding cuDNN cannot express is refused, harmless padding accepted") {
  // SAME_UPPER, stride 2 on an even input: begin 0, end 1, and the end pad is used.
  auto same = conv("Conv", attrs({attr_s("auto_pad", "SAME_UPPER"), attr_ints("strides", {2, 2})}),
                   {f32({1, 4, 224, 224}), f32({8, 4, 3, 3})}, {1, 8, 112, 112});
  CHECK(same.status().code() == Code::kUnsupported);
  CHECK_THAT(same.status().message(), Catch::Contains("asymmetric padding"));
  // End padding no window reaches: in 7, k 3, s 2, pads 0/1 gives 3 outputs either way.
  auto harmless =
      conv("Conv", attrs({attr_ints("pads", {0, 0, 1, 1}), attr_ints("strides", {2, 2})}),
           {f32({1, 4, 7, 7}), f32({8, 4, 3, 3})}, {1, 8, 3, 3});
  REQUIRE(harmless.ok());
  CHECK(harmless->cudnn_pads == std::vector<int64_t>{0, 0});
  // SAME_UPPER with stride 1 and an odd kernel is symmetric.
  auto same1 = conv("Conv", attrs({attr_s("auto_pad", "SAME_UPPER")}),
                    {f32({1, 4, 10, 10}), f32({8, 4, 3, 3})}, {1, 8, 10, 10});
  REQUIRE(same1.ok());
  CHECK(same1->cudnn_pads == std::vector<int64_t>{1, 1});
}

TEST_CASE("plan_conv: bad attributes and specs") {
  const std::vector<TensorSpec> xw{f32({1, 4, 8, 8}), f32({8, 4, 3, 3})};
  CHECK(
      conv("FusedConv", attrs({attr_s("activation", "gelu")}), xw, {1, 8, 6, 6}).status().code() ==
      Code::kUnsupported);
  CHECK(conv("FusedConv", attrs({attr_i("has_residual", 1)}), xw, {1, 8, 6, 6}).status().code() ==
        Code::kInvalidArgument);
  CHECK(conv("Conv", attrs({attr_i("group", 3)}), xw, {1, 8, 6, 6}).status().code() ==
        Code::kInvalidArgument);
  CHECK(conv("Conv", attrs({}), xw, {1, 8, 7, 7}).status().code() == Code::kInvalidArgument);
  CHECK(
      conv("Conv", attrs({attr_ints("kernel_shape", {5, 5})}), xw, {1, 8, 6, 6}).status().code() ==
      Code::kInvalidArgument);
  CHECK(conv("Conv", attrs({attr_s("auto_pad", "BOGUS")}), xw, {1, 8, 6, 6}).status().code() ==
        Code::kInvalidArgument);
  CHECK(conv("Conv", attrs({attr_i("unknown", 1)}), xw, {1, 8, 6, 6}).status().code() ==
        Code::kUnsupported);
  const std::vector<TensorSpec> f64{TensorSpec{DType::kFloat64, {1, 4, 8, 8}, false},
                                    TensorSpec{DType::kFloat64, {8, 4, 3, 3}, false}};
  CHECK(conv("Conv", attrs({}), f64, {1, 8, 6, 6}).status().code() == Code::kUnsupported);
  CHECK(conv("Conv", attrs({}), {f32({1, 4, 8, 8, 8, 8}), f32({8, 4, 3, 3, 3, 3})},
             {1, 8, 6, 6, 6, 6})
            .status()
            .code() == Code::kUnsupported);
  CHECK(conv("Conv", attrs({}), {f32({1, 4, 8, 8}), f32({8, 4, 3, 3}), f32({7})}, {1, 8, 6, 6})
            .status()
            .code() == Code::kInvalidArgument);
}

TEST_CASE("plan_pool: cuDNN where exact, our kernel for ceil mode, asymmetric pads, dilation") {
  // Inception v3: 3x3 s2 valid max pool, 147 -> 73.
  auto inc =
      pool("MaxPool", attrs({attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {2, 2})}),
           {8, 64, 147, 147}, {8, 64, 73, 73});
  REQUIRE(inc.ok());
  CHECK(inc->cudnn_exact);
  CHECK(inc->mode == PoolMode::kMax);
  // Inception's 3x3 s1 p1 average pool, pads counted (PyTorch's default).
  auto avg = pool("AveragePool",
                  attrs({attr_ints("kernel_shape", {3, 3}), attr_ints("pads", {1, 1, 1, 1}),
                         attr_i("count_include_pad", 1)}),
                  {8, 192, 35, 35}, {8, 192, 35, 35});
  REQUIRE(avg.ok());
  CHECK(avg->cudnn_exact);
  CHECK(avg->mode == PoolMode::kAverageIncludePad);
  // GoogLeNet's ceil-mode max pool: 112 -> 56 (floor would give 55).
  auto ceil = pool("MaxPool",
                   attrs({attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {2, 2}),
                          attr_i("ceil_mode", 1)}),
                   {1, 64, 112, 112}, {1, 64, 56, 56});
  REQUIRE(ceil.ok());
  CHECK_FALSE(ceil->cudnn_exact);
  CHECK_THAT(ceil->why_not_cudnn, Catch::Contains("ceil mode"));
  // Ceil mode where PyTorch clips the window that would start in the end padding: in 4, k 2,
  // s 3, pad 1: ONNX says 3, PyTorch 2 (== floor mode, so cuDNN fits).
  const cpu::Attributes clip_attrs =
      attrs({attr_ints("kernel_shape", {2, 2}), attr_ints("strides", {3, 3}),
             attr_ints("pads", {1, 1, 1, 1}), attr_i("ceil_mode", 1)});
  auto clipped = pool("MaxPool", clip_attrs, {1, 2, 4, 4}, {1, 2, 2, 2});
  REQUIRE(clipped.ok());
  CHECK(clipped->windows[0].out == 2);
  CHECK(clipped->cudnn_exact);
  auto onnx_size = pool("MaxPool", clip_attrs, {1, 2, 4, 4}, {1, 2, 3, 3});
  REQUIRE(onnx_size.ok());
  CHECK(onnx_size->windows[0].out == 3);
  CHECK_FALSE(onnx_size->cudnn_exact);
  CHECK(pool("MaxPool", clip_attrs, {1, 2, 4, 4}, {1, 2, 4, 4}).status().code() ==
        Code::kInvalidArgument);
  // Asymmetric pads and dilation go to our kernel.
  auto asym = pool("AveragePool",
                   attrs({attr_ints("kernel_shape", {3, 3}), attr_ints("pads", {0, 0, 1, 1})}),
                   {1, 2, 8, 8}, {1, 2, 7, 7});
  REQUIRE(asym.ok());
  CHECK_FALSE(asym->cudnn_exact);
  auto dil =
      pool("MaxPool", attrs({attr_ints("kernel_shape", {2, 2}), attr_ints("dilations", {2, 2})}),
           {1, 2, 8, 8}, {1, 2, 6, 6});
  REQUIRE(dil.ok());
  CHECK_FALSE(dil->cudnn_exact);
  // AveragePool with dilations is refused (as by the CPU reference).
  CHECK_FALSE(pool("AveragePool",
                   attrs({attr_ints("kernel_shape", {2, 2}), attr_ints("dilations", {2, 2})}),
                   {1, 2, 8, 8}, {1, 2, 6, 6})
                  .ok());
}

TEST_CASE("plan_pool: global pools, Indices output, bad specs") {
  auto g = pool("GlobalAveragePool", attrs({}), {8, 2048, 7, 7}, {8, 2048, 1, 1});
  REQUIRE(g.ok());
  REQUIRE(g->windows.size() == 1);
  CHECK(g->windows[0].in == 49);
  CHECK(g->windows[0].kernel == 49);
  CHECK(g->mode == PoolMode::kAverageExcludePad);
  auto gmax = pool("GlobalMaxPool", attrs({}), {2, 3, 4, 5, 6}, {2, 3, 1, 1, 1});
  REQUIRE(gmax.ok());
  CHECK(gmax->windows[0].in == 120);
  CHECK(pool("GlobalMaxPool", attrs({}), {2, 3, 4, 5}, {2, 3, 1}).status().code() ==
        Code::kInvalidArgument);

  const cpu::Attributes a = attrs({attr_ints("kernel_shape", {2, 2})});
  const std::vector<TensorSpec> inputs{f32({1, 2, 4, 4})};
  const std::vector<TensorSpec> with_indices{f32({1, 2, 3, 3}),
                                             TensorSpec{DType::kInt64, {1, 2, 3, 3}, false}};
  CHECK(plan_pool(OpSpec{"MaxPool", "p", a, inputs, with_indices}).status().code() ==
        Code::kUnsupported);
  CHECK(pool("MaxPool", attrs({attr_ints("kernel_shape", {2})}), {1, 2, 4, 4}, {1, 2, 3, 3})
            .status()
            .code() == Code::kInvalidArgument);
  CHECK(pool("MaxPool", attrs({}), {1, 2, 4, 4}, {1, 2, 3, 3}).ok() == false);  // no kernel_shape
}

TEST_CASE("plan_matmul: BERT shapes") {
  // A linear layer: [8, 251, 768] x [768, 3072] folds the batch into M.
  auto lin = plan_matmul({8, 251, 768}, {768, 3072});
  REQUIRE(lin.ok());
  CHECK(lin->m == 8 * 251);
  CHECK(lin->n == 3072);
  CHECK(lin->k == 768);
  CHECK(lin->batch_count == 1);
  CHECK(lin->calls.size() == 1);
  CHECK(lin->out_shape == Shape{8, 251, 3072});
  // Attention scores: one strided batch of 96.
  auto qk = plan_matmul({8, 12, 251, 64}, {8, 12, 64, 251});
  REQUIRE(qk.ok());
  CHECK(qk->batch_count == 96);
  CHECK(qk->stride_a == 251 * 64);
  CHECK(qk->stride_b == 64 * 251);
  CHECK(qk->stride_y == 251 * 251);
  CHECK(qk->calls.size() == 1);
  CHECK(qk->out_shape == Shape{8, 12, 251, 251});
  auto pv = plan_matmul({8, 12, 251, 251}, {8, 12, 251, 64});
  REQUIRE(pv.ok());
  CHECK(operand_alignment(*pv, 0) == 4);    // 251*251 floats between A's matrices
  CHECK(operand_alignment(*pv, 1) == 256);  // 251*64*4 = 256*251
  CHECK(operand_alignment(*pv, 2) == 256);
}

TEST_CASE("plan_matmul_trans_b: a linear layer's weight stored [N, K]") {
  // BERT's FFN in a training package: [8, 251, 768] x [3072, 768]^T, one folded GEMM with B
  // read transposed.
  auto lin = plan_matmul_trans_b({8, 251, 768}, {3072, 768});
  REQUIRE(lin.ok());
  CHECK(lin->trans_b);
  CHECK_FALSE(lin->trans_a);
  CHECK(lin->m == 8 * 251);
  CHECK(lin->n == 3072);
  CHECK(lin->k == 768);
  CHECK(lin->calls.size() == 1);
  CHECK(lin->out_shape == Shape{8, 251, 3072});
  auto vec = plan_matmul_trans_b({768}, {10, 768});
  REQUIRE(vec.ok());
  CHECK(vec->out_shape == Shape{10});
  CHECK_FALSE(plan_matmul_trans_b({8, 251, 768}, {768, 3072}).ok());     // K differs
  CHECK_FALSE(plan_matmul_trans_b({8, 251, 768}, {1, 3072, 768}).ok());  // B not 2-D
  CHECK_FALSE(plan_matmul_trans_b({8, 251, 768}, {768}).ok());
}

TEST_CASE("plan_matmul: 1-D operands and broadcasting") {
  auto vec = plan_matmul({64}, {3, 64, 5});
  REQUIRE(vec.ok());
  CHECK(vec->out_shape == Shape{3, 5});
  CHECK(vec->m == 1);
  CHECK(vec->batch_count == 3);
  CHECK(vec->stride_a == 0);
  CHECK(vec->stride_b == 320);
  CHECK(vec->stride_y == 5);
  auto mv = plan_matmul({2, 3, 4}, {4});
  REQUIRE(mv.ok());
  CHECK(mv->out_shape == Shape{2, 3});
  auto dot = plan_matmul({4}, {4});
  REQUIRE(dot.ok());
  CHECK(dot->out_shape == Shape{});
  // Mixed broadcasting: the leading dimension becomes a loop of calls.
  auto mixed = plan_matmul({2, 1, 4, 5}, {1, 3, 5, 6});
  REQUIRE(mixed.ok());
  CHECK(mixed->out_shape == Shape{2, 3, 4, 6});
  CHECK(mixed->batch_count == 3);
  CHECK(mixed->stride_a == 0);
  CHECK(mixed->stride_b == 30);
  REQUIRE(mixed->calls.size() == 2);
  CHECK(mixed->calls[1] == std::array<int64_t, 3>{20, 0, 72});
  CHECK(operand_alignment(*mixed, 0) == 16);  // 20 floats = 80 bytes
  // A shared A over B's batch: stride 0 for A.
  auto shared_a = plan_matmul({4, 5}, {7, 5, 6});
  REQUIRE(shared_a.ok());
  CHECK(shared_a->batch_count == 7);
  CHECK(shared_a->stride_a == 0);
}

TEST_CASE("plan_matmul and plan_gemm: errors") {
  CHECK(plan_matmul({}, {3}).status().code() == Code::kInvalidArgument);
  CHECK(plan_matmul({2, 3}, {4, 5}).status().code() == Code::kInvalidArgument);
  CHECK(plan_matmul({2, 2, 3}, {3, 3, 5}).status().code() == Code::kInvalidArgument);
  auto g = plan_gemm({7, 3}, {5, 7}, true, true);
  REQUIRE(g.ok());
  CHECK(g->m == 3);
  CHECK(g->n == 5);
  CHECK(g->k == 7);
  CHECK(g->out_shape == Shape{3, 5});
  CHECK(plan_gemm({7, 3}, {5, 7}, false, true).status().code() == Code::kInvalidArgument);
  CHECK(plan_gemm({2, 7, 3}, {3, 5}, false, false).status().code() == Code::kInvalidArgument);
}

// cuBLASLt's column-major strided-batch semantics on the host: D[j] = op(A[j]) op(B[j]).
std::vector<double> host_lt(const LtProblem& p, const std::vector<double>& a,
                            const std::vector<double>& b) {
  std::vector<double> d(static_cast<size_t>((p.batch - 1) * p.stride_d + p.ldd * p.n), 0.0);
  for (int64_t j = 0; j < p.batch; ++j) {
    for (int64_t r = 0; r < p.m; ++r) {
      for (int64_t c = 0; c < p.n; ++c) {
        double s = 0;
        for (int64_t t = 0; t < p.k; ++t) {
          const double av = p.trans_a ? a[j * p.stride_a + r * p.lda + t]   // A stored [k, m]
                                      : a[j * p.stride_a + t * p.lda + r];  // A stored [m, k]
          const double bv =
              p.trans_b ? b[j * p.stride_b + t * p.ldb + c] : b[j * p.stride_b + c * p.ldb + t];
          s += av * bv;
        }
        d[static_cast<size_t>(j * p.stride_d + c * p.ldd + r)] = s;
      }
    }
  }
  return d;
}

TEST_CASE("column_major_problem: a row-major product is cuBLASLt's, operands swapped") {
  struct Case {
    int64_t m, n, k;
    bool trans_x, trans_y;
    int64_t batch;
    bool shared_y;  // Y's stride 0: one matrix for every j (a weight)
  };
  for (const Case& c : {Case{3, 5, 4, false, false, 1, false}, Case{3, 5, 4, true, false, 2, false},
                        Case{3, 5, 4, false, true, 3, true}, Case{2, 3, 6, true, true, 2, false}}) {
    INFO("m " << c.m << " n " << c.n << " k " << c.k << " trans " << c.trans_x << c.trans_y
              << " batch " << c.batch);
    const int64_t xs = c.m * c.k, ys = c.shared_y ? 0 : c.k * c.n, os = c.m * c.n;
    std::vector<double> x(static_cast<size_t>(c.batch * xs)),
        y(static_cast<size_t>((c.batch - 1) * ys + c.k * c.n));
    for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.7 * static_cast<double>(i));
    for (size_t i = 0; i < y.size(); ++i) y[i] = std::cos(0.3 * static_cast<double>(i));
    const LtProblem p = column_major_problem(
        RowMajorProduct{c.m, c.n, c.k, c.trans_x, c.trans_y, c.batch, xs, ys, os, 64, 32, 16});
    CHECK(p.align_a == 32);  // Y's
    CHECK(p.align_b == 64);  // X's
    CHECK(p.align_d == 16);
    const std::vector<double> d = host_lt(p, y, x);  // cuBLASLt's A is Y, its B is X
    for (int64_t j = 0; j < c.batch; ++j) {
      for (int64_t r = 0; r < c.m; ++r) {
        for (int64_t col = 0; col < c.n; ++col) {
          double want = 0;
          for (int64_t t = 0; t < c.k; ++t) {
            const double xv = c.trans_x ? x[j * xs + t * c.m + r] : x[j * xs + r * c.k + t];
            const double yv = c.trans_y ? y[j * ys + col * c.k + t] : y[j * ys + t * c.n + col];
            want += xv * yv;
          }
          CHECK(d[static_cast<size_t>(j * os + r * c.n + col)] == Approx(want).epsilon(1e-12));
        }
      }
    }
  }
}

}  // namespace
}  // namespace ps::models::gpu
