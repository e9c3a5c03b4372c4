// AttentionScores and AttentionContext on the GPU (models/gpu/attention_op.cc: pointer-array
// products reading the heads in place) against float64 references written out here from the
// definitions in common/attention.h, forward and backward, in fp32 and TF32, with the backward's
// three ways of writing dX (whole, accumulate, partial) and dP accumulated. [gpu]: skipped
// without a GPU (GPU-SKIP), run by scripts/gpu-check.sh.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "models/cpu/ops.h"
#include "tests/models/cpu_ops_test_util.h"
#include "tests/models/gpu_grad_check.h"

namespace ps::models::gpu {
namespace {

using cpu::Tensor;
using cpu::test::attr_f;
using cpu::test::attr_i;
using cpu::test::attrs;
using grad_test::to_f64;
using testing::random_tensor;
using namespace grad_gpu;

// X [B, S, C] with heads of D columns in ranges at q, k, v.
struct Geometry {
  int64_t b, s, c, heads, d, q, k, v;
  int64_t size() const { return heads * d; }
};

double at(const Tensor& x, int64_t i) {
  return x.dtype() == DType::kFloat64 ? x.data<double>()[i]
                                      : static_cast<double>(x.data<float>()[i]);
}

Tensor f64(const Shape& shape) {
  Tensor t = to_f64(grad_test::zeros_f32(shape));
  return t;
}

// Y[b, h, i, j] = alpha sum_d X[b, i, q + h D + d] X[b, j, k + h D + d]
Tensor scores_ref(const Geometry& g, const Tensor& x, double alpha) {
  Tensor y = f64({g.b, g.heads, g.s, g.s});
  double* out = y.mutable_data<double>();
  for (int64_t b = 0; b < g.b; ++b)
    for (int64_t h = 0; h < g.heads; ++h)
      for (int64_t i = 0; i < g.s; ++i)
        for (int64_t j = 0; j < g.s; ++j) {
          double sum = 0;
          for (int64_t d = 0; d < g.d; ++d) {
            sum += at(x, (b * g.s + i) * g.c + g.q + h * g.d + d) *
                   at(x, (b * g.s + j) * g.c + g.k + h * g.d + d);
          }
          out[((b * g.heads + h) * g.s + i) * g.s + j] = alpha * sum;
        }
  return y;
}

// Y[b, i, h, d] = sum_j P[b, h, i, j] X[b, j, v + h D + d], P [B, H, M, S]
Tensor context_ref(const Geometry& g, int64_t m, const Tensor& p, const Tensor& x) {
  Tensor y = f64({g.b, m, g.heads, g.d});
  double* out = y.mutable_data<double>();
  for (int64_t b = 0; b < g.b; ++b)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t h = 0; h < g.heads; ++h)
        for (int64_t d = 0; d < g.d; ++d) {
          double sum = 0;
          for (int64_t j = 0; j < g.s; ++j) {
            sum += at(p, ((b * g.heads + h) * m + i) * g.s + j) *
                   at(x, (b * g.s + j) * g.c + g.v + h * g.d + d);
          }
          out[((b * m + i) * g.heads + h) * g.d + d] = sum;
        }
  return y;
}

// The scores' dX: dQ = alpha dY K into the q columns, dK = alpha dY^T Q into the k columns
// (added where the ranges overlap), zeros elsewhere.
Tensor scores_grad_ref(const Geometry& g, const Tensor& x, const Tensor& dy, double alpha) {
  Tensor dx = f64({g.b, g.s, g.c});
  double* out = dx.mutable_data<double>();
  for (int64_t b = 0; b < g.b; ++b)
    for (int64_t h = 0; h < g.heads; ++h)
      for (int64_t i = 0; i < g.s; ++i)
        for (int64_t j = 0; j < g.s; ++j) {
          const double s = alpha * at(dy, ((b * g.heads + h) * g.s + i) * g.s + j);
          for (int64_t d = 0; d < g.d; ++d) {
            const int64_t qi = (b * g.s + i) * g.c + g.q + h * g.d + d;
            const int64_t kj = (b * g.s + j) * g.c + g.k + h * g.d + d;
            out[qi] += s * at(x, kj);
            out[kj] += s * at(x, qi);
          }
        }
  return dx;
}

// The context's dP = dY V^T and dX (dV = P^T dY in the v columns, zeros elsewhere).
void context_grad_ref(const Geometry& g, int64_t m, const Tensor& p, const Tensor& x,
                      const Tensor& dy, Tensor& dp, Tensor& dx) {
  dp = f64({g.b, g.heads, m, g.s});
  dx = f64({g.b, g.s, g.c});
  for (int64_t b = 0; b < g.b; ++b)
    for (int64_t h = 0; h < g.heads; ++h)
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < g.s; ++j) {
          const int64_t pi = ((b * g.heads + h) * m + i) * g.s + j;
          for (int64_t d = 0; d < g.d; ++d) {
            const double dyv = at(dy, ((b * m + i) * g.heads + h) * g.d + d);
            const int64_t vj = (b * g.s + j) * g.c + g.v + h * g.d + d;
            dp.mutable_data<double>()[pi] += dyv * at(x, vj);
            dx.mutable_data<double>()[vj] += at(p, pi) * dyv;
          }
        }
}

// `base` where the column is outside [start, start + size) for every start, else `grad`.
Tensor only_columns(const Tensor& base_f32, const Tensor& grad64, int64_t columns,
                    const std::vector<int64_t>& starts, int64_t size) {
  Tensor out = to_f64(base_f32);
  for (int64_t i = 0; i < out.numel(); ++i) {
    const int64_t col = i % columns;
    for (int64_t s : starts) {
      if (col >= s && col < s + size) out.mutable_data<double>()[i] = grad64.data<double>()[i];
    }
  }
  return out;
}

double tolerance(Precision p, double fp32) { return p == Precision::kTf32 ? kTf32 : fp32; }

const std::vector<Geometry>& geometries() {
  static const std::vector<Geometry> g = {
      // BERT's packing at a small size: q, k, v side by side, 3 heads of 16.
      {2, 37, 144, 3, 16, 0, 48, 96},
      // Odd everything: extra columns, ranges out of order, D = 5 (unaligned heads).
      {3, 7, 41, 2, 5, 30, 3, 17},
  };
  return g;
}

TEST_CASE("GPU AttentionScores and AttentionContext forward against float64", "[gpu]") {
  PS_REQUIRE_GPU();
  uint64_t seed = 4100;
  for (Precision p : {Precision::kFp32, Precision::kTf32}) {
    for (const Geometry& g : geometries()) {
      const std::string label = str_cat("B", g.b, " S", g.s, " C", g.c, " H", g.heads, " D", g.d);
      const Tensor x = random_tensor(DType::kFloat32, {g.b, g.s, g.c}, seed++);
      const double alpha = 0.125;
      const cpu::Attributes sa =
          attrs({attr_i("heads", g.heads), attr_i("size", g.size()), attr_i("q_start", g.q),
                 attr_i("k_start", g.k), attr_f("alpha", static_cast<float>(alpha))});
      const std::vector<TensorSpec> scores_out{
          TensorSpec{DType::kFloat32, {g.b, g.heads, g.s, g.s}, false}};
      const std::vector<const Tensor*> xs{&x};
      Result<testing::GpuOpRun> scores =
          testing::run_gpu_op(shared_runtime(), p, "AttentionScores", sa, xs, scores_out);
      REQUIRE_OK(scores);
      expect_close("AttentionScores", label, "Y", p, scores_ref(g, x, alpha), scores->outputs[0],
                   tolerance(p, kReduced), scores->description);

      for (int64_t m : {g.s, g.s + 3}) {
        const Tensor pr = random_tensor(DType::kFloat32, {g.b, g.heads, m, g.s}, seed++, 0.0, 1.0);
        const cpu::Attributes ca =
            attrs({attr_i("heads", g.heads), attr_i("size", g.size()), attr_i("v_start", g.v)});
        const std::vector<TensorSpec> context_out{
            TensorSpec{DType::kFloat32, {g.b, m, g.heads, g.d}, false}};
        const std::vector<const Tensor*> ins{&pr, &x};
        Result<testing::GpuOpRun> context =
            testing::run_gpu_op(shared_runtime(), p, "AttentionContext", ca, ins, context_out);
        REQUIRE_OK(context);
        expect_close("AttentionContext", str_cat(label, " M", m), "Y", p, context_ref(g, m, pr, x),
                     context->outputs[0], tolerance(p, kReduced), context->description);
      }
    }
  }
}

// FusedAttention (models/gpu/fused_attention_op.cc: one flash-attention kernel) against the
// float64 chain: scores, softmax over the keys, context. Every head-size tile (16, 32, 64),
// sequences ending mid-tile, BERT-base's sequence at its head size.
TEST_CASE("GPU FusedAttention forward against float64", "[gpu]") {
  PS_REQUIRE_GPU();
  uint64_t seed = 4150;
  std::vector<Geometry> cases = geometries();
  cases.push_back({1, 33, 101, 3, 32, 5, 0, 2});  // overlapping ranges, unaligned (scalar copies)
  cases.push_back({2, 251, 768, 4, 64, 0, 256, 512});
  for (Precision p : {Precision::kFp32, Precision::kTf32}) {
    for (const Geometry& g : cases) {
      const std::string label = str_cat("B", g.b, " S", g.s, " C", g.c, " H", g.heads, " D", g.d);
      const Tensor x = random_tensor(DType::kFloat32, {g.b, g.s, g.c}, seed++);
      const double alpha = 0.125;
      Tensor probs = scores_ref(g, x, alpha);
      double* row = probs.mutable_data<double>();
      for (int64_t r = 0; r < g.b * g.heads * g.s; ++r, row += g.s) {
        double top = row[0], sum = 0;
        for (int64_t j = 0; j < g.s; ++j) top = std::max(top, row[j]);
        for (int64_t j = 0; j < g.s; ++j) sum += (row[j] = std::exp(row[j] - top));
        for (int64_t j = 0; j < g.s; ++j) row[j] /= sum;
      }
      const cpu::Attributes a =
          attrs({attr_i("heads", g.heads), attr_i("size", g.size()), attr_i("q_start", g.q),
                 attr_i("k_start", g.k), attr_i("v_start", g.v),
                 attr_f("alpha", static_cast<float>(alpha))});
      const std::vector<TensorSpec> out{
          TensorSpec{DType::kFloat32, {g.b, g.s, g.heads, g.d}, false}};
      const std::vector<const Tensor*> xs{&x};
      Result<testing::GpuOpRun> run =
          testing::run_gpu_op(shared_runtime(), p, "FusedAttention", a, xs, out);
      REQUIRE_OK(run);
      expect_close("FusedAttention", label, "Y", p, context_ref(g, g.s, probs, x), run->outputs[0],
                   tolerance(p, kReduced), run->description);
    }
  }
  // Heads larger than the kernel's 64 columns are refused, naming the way out.
  const Tensor x = random_tensor(DType::kFloat32, {1, 4, 160}, seed++);
  const cpu::Attributes a = attrs({attr_i("heads", 2), attr_i("size", 160), attr_i("q_start", 0),
                                   attr_i("k_start", 0), attr_i("v_start", 0)});
  const std::vector<TensorSpec> out{TensorSpec{DType::kFloat32, {1, 4, 2, 80}, false}};
  const std::vector<const Tensor*> xs{&x};
  Result<testing::GpuOpRun> big =
      testing::run_gpu_op(shared_runtime(), Precision::kTf32, "FusedAttention", a, xs, out);
  REQUIRE_FALSE(big.ok());
  CHECK(big.status().code() == Code::kUnsupported);
  CHECK(big.status().message().find("--skip-passes fuse_attention_softmax") != std::string::npos);
}

TEST_CASE("GPU AttentionScores backward: write, accumulate and partial", "[gpu]") {
  PS_REQUIRE_GPU();
  uint64_t seed = 4200;
  for (Precision p : {Precision::kFp32, Precision::kTf32}) {
    std::vector<Geometry> cases = geometries();
    cases.push_back({2, 9, 24, 2, 6, 0, 6, 0});  // q and k overlapping: each adds to the other
    for (const Geometry& g : cases) {
      const std::string label = str_cat("B", g.b, " S", g.s, " C", g.c, " q", g.q, " k", g.k);
      const double alpha = 0.25;
      const cpu::Attributes a =
          attrs({attr_i("heads", g.heads), attr_i("size", g.size()), attr_i("q_start", g.q),
                 attr_i("k_start", g.k), attr_f("alpha", static_cast<float>(alpha))});
      const Tensor x = random_tensor(DType::kFloat32, {g.b, g.s, g.c}, seed++);
      const Shape y{g.b, g.heads, g.s, g.s};
      const Tensor dy = random_tensor(DType::kFloat32, y, seed++);
      const Tensor ref = scores_grad_ref(g, x, dy, alpha);
      auto op = build_grad("AttentionScores", a, {&x}, y, p);
      Tensor dx = poisoned({g.b, g.s, g.c});
      run_on_gpu(*op, {&x, &dy}, {&dx});
      expect_close("AttentionScores", label, "dX", p, ref, dx, tolerance(p, kReduced),
                   op->describe());
      const Tensor base = random_tensor(DType::kFloat32, {g.b, g.s, g.c}, seed++);
      auto acc = build_grad("AttentionScores", a, {&x}, y, p, 1u);
      Tensor acc_x = base.clone().value();
      run_on_gpu(*acc, {&x, &dy}, {&acc_x});
      expect_close("AttentionScores", label, "dX acc", p, plus(base, ref), acc_x,
                   tolerance(p, kReduced), acc->describe());
      if (std::abs(g.q - g.k) < g.size()) continue;  // partial needs ranges apart
      auto part = build_grad("AttentionScores", a, {&x}, y, p, 0u, ~0u, true);
      Tensor part_x = base.clone().value();
      run_on_gpu(*part, {&x, &dy}, {&part_x});
      expect_close("AttentionScores", label, "dX part", p,
                   only_columns(base, ref, g.c, {g.q, g.k}, g.size()), part_x,
                   tolerance(p, kReduced), part->describe());
    }
  }
}

TEST_CASE("GPU AttentionContext backward: dP and dX written, accumulated, partial", "[gpu]") {
  PS_REQUIRE_GPU();
  uint64_t seed = 4300;
  for (Precision p : {Precision::kFp32, Precision::kTf32}) {
    for (const Geometry& g : geometries()) {
      for (int64_t m : {g.s, g.s + 2}) {
        const std::string label = str_cat("B", g.b, " S", g.s, " M", m, " C", g.c, " v", g.v);
        const cpu::Attributes a =
            attrs({attr_i("heads", g.heads), attr_i("size", g.size()), attr_i("v_start", g.v)});
        const Tensor pr = random_tensor(DType::kFloat32, {g.b, g.heads, m, g.s}, seed++, 0.0, 1.0);
        const Tensor x = random_tensor(DType::kFloat32, {g.b, g.s, g.c}, seed++);
        const Shape y{g.b, m, g.heads, g.d};
        const Tensor dy = random_tensor(DType::kFloat32, y, seed++);
        Tensor dp_ref, dx_ref;
        context_grad_ref(g, m, pr, x, dy, dp_ref, dx_ref);
        auto op = build_grad("AttentionContext", a, {&pr, &x}, y, p);
        Tensor dp = poisoned(pr.shape()), dx = poisoned(x.shape());
        run_on_gpu(*op, {&pr, &x, &dy}, {&dp, &dx});
        expect_close("AttentionContext", label, "dP", p, dp_ref, dp, tolerance(p, kReduced),
                     op->describe());
        expect_close("AttentionContext", label, "dX", p, dx_ref, dx, tolerance(p, kReduced),
                     op->describe());
        // Both accumulated.
        const Tensor base_p = random_tensor(DType::kFloat32, pr.shape(), seed++);
        const Tensor base_x = random_tensor(DType::kFloat32, x.shape(), seed++);
        auto acc = build_grad("AttentionContext", a, {&pr, &x}, y, p, 3u);
        Tensor acc_p = base_p.clone().value(), acc_x = base_x.clone().value();
        run_on_gpu(*acc, {&pr, &x, &dy}, {&acc_p, &acc_x});
        expect_close("AttentionContext", label, "dP acc", p, plus(base_p, dp_ref), acc_p,
                     tolerance(p, kReduced), acc->describe());
        expect_close("AttentionContext", label, "dX acc", p, plus(base_x, dx_ref), acc_x,
                     tolerance(p, kReduced), acc->describe());
        // dX partial (its v columns alone), dP not wanted: its buffer untouched.
        auto part = build_grad("AttentionContext", a, {&pr, &x}, y, p, 0u, 2u, true);
        Tensor part_p = base_p.clone().value(), part_x = base_x.clone().value();
        run_on_gpu(*part, {&pr, &x, &dy}, {&part_p, &part_x});
        expect_close("AttentionContext", label, "dX part", p,
                     only_columns(base_x, dx_ref, g.c, {g.v}, g.size()), part_x,
                     tolerance(p, kReduced), part->describe());
        expect_close("AttentionContext", label, "dP kept", p, to_f64(base_p), part_p, 0.0,
                     part->describe());
      }
    }
  }
}

}  // namespace
}  // namespace ps::models::gpu
