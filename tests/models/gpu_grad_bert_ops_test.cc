// BERT's GPU backward operators (grad_matmul.cc, grad_bert_ops.cc) on the device against the
// float64 CPU references (models/cpu/grad.h), in overwrite and accumulate modes, with unwanted
// gradients skipped. [gpu]: skipped without a GPU (GPU-SKIP), run by scripts/gpu-check.sh.
// Tolerances (gpu_grad_check.h): kElementwise for one rounding per element or double-summed
// broadcast reductions (views, Transpose, Gather, Sub/Mul/Div, unary, ReduceMean); kReduced for
// float32 sums (MatMul in fp32, Softmax's and LayerNorm's row and column sums) and Pow (powf
// and logf); kTf32 for MatMul in TF32. The kernels' logic also runs without a GPU under the host
// emulation (gpu_train_bert_emulation_test.cc).
#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <vector>

#include "models/cpu/grad.h"
#include "models/cpu/ops.h"
#include "tests/models/cpu_ops_test_util.h"
#include "tests/models/gpu_grad_check.h"

namespace ps::models::gpu {
namespace {

using cpu::Tensor;
using cpu::test::attr_f;
using cpu::test::attr_i;
using cpu::test::attr_ints;
using cpu::test::attrs;
using grad_test::to_f64;
using testing::random_tensor;
using namespace grad_gpu;

Shape forward_shape(const std::string& op, const cpu::Attributes& a,
                    const std::vector<const Tensor*>& inputs) {
  Result<std::vector<Tensor>> y = cpu::run_op_allocating(op, a, inputs, 1);
  REQUIRE_OK(y);
  return (*y)[0].shape();
}

TEST_CASE(
    "GPU MatMul, MatMulTransB and MatMulScale backward (attention, linear, broadcast batches) on "
    "cuBLASLt, "
    "fp32 and TF32",
    "[gpu]") {
  PS_REQUIRE_GPU();
  struct Case {
    std::string label;
    Shape a, b;
  };
  const std::vector<Case> cases = {
      {"attention QK^T", {2, 4, 16, 8}, {2, 4, 8, 16}},
      {"attention PV", {2, 4, 16, 16}, {2, 4, 16, 8}},
      {"linear folded", {2, 16, 32}, {32, 48}},
      {"A broadcast", {16, 8}, {3, 8, 5}},
      {"both broadcast", {2, 1, 6, 8}, {3, 8, 4}},
      {"1-D x 2-D", {8}, {8, 5}},
  };
  const std::vector<Case> trans_b_cases = {
      {"linear [N, K] folded", {2, 16, 32}, {48, 32}},
      {"2-D", {16, 8}, {5, 8}},
      {"1-D", {8}, {5, 8}},
  };
  uint64_t seed = 3000;
  // MatMulScale: attention's scores times head_size^-0.5 (alpha in both GEMMs).
  const float alpha = 0.125f;
  for (const std::string name : {"MatMul", "MatMulTransB", "MatMulScale"}) {
    const cpu::Attributes at = name == "MatMulScale" ? attrs({attr_f("alpha", alpha)}) : attrs({});
    for (const Case& c : name == "MatMulTransB" ? trans_b_cases : cases) {
      const Tensor a = random_tensor(DType::kFloat32, c.a, seed++);
      const Tensor b = random_tensor(DType::kFloat32, c.b, seed++);
      const Shape y = forward_shape(name, at, {&a, &b});
      const Tensor dy = random_tensor(DType::kFloat32, y, seed++);
      Result<cpu::MatMulGrads> ref =
          name == "MatMul" ? cpu::matmul_backward(to_f64(a), to_f64(b), to_f64(dy))
          : name == "MatMulScale"
              ? cpu::matmul_scale_backward(to_f64(a), to_f64(b), to_f64(dy), alpha)
              : cpu::matmul_trans_b_backward(to_f64(a), to_f64(b), to_f64(dy));
      REQUIRE_OK(ref);
      for (Precision p : {Precision::kFp32, Precision::kTf32}) {
        const double tol = p == Precision::kFp32 ? kReduced : kTf32;
        auto op = build_grad(name, at, {&a, &b}, y, p);
        Tensor da = poisoned(c.a), db = poisoned(c.b);
        run_on_gpu(*op, {&a, &b, &dy}, {&da, &db});
        expect_close(name, c.label, "dA", p, ref->da, da, tol, op->describe());
        expect_close(name, c.label, "dB", p, ref->db, db, tol, op->describe());
        // Accumulating both onto a base (beta = 1, or the reduced sum through the workspace).
        const Tensor base_a = random_tensor(DType::kFloat32, c.a, seed++);
        const Tensor base_b = random_tensor(DType::kFloat32, c.b, seed++);
        auto acc = build_grad(name, at, {&a, &b}, y, p, /*accumulate=*/3u);
        Tensor acc_a = base_a.clone().value(), acc_b = base_b.clone().value();
        run_on_gpu(*acc, {&a, &b, &dy}, {&acc_a, &acc_b});
        expect_close(name, c.label, "dA acc", p, plus(base_a, ref->da), acc_a, tol,
                     acc->describe());
        expect_close(name, c.label, "dB acc", p, plus(base_b, ref->db), acc_b, tol,
                     acc->describe());
      }
      if (name == "MatMulTransB") {
        // With the linear layer's bias: dbias = dY summed over its rows (and accumulated).
        const Tensor bias = random_tensor(DType::kFloat32, {c.b[0]}, seed++);
        Result<Tensor> ref_bias = cpu::reduce_to_shape(to_f64(dy), {c.b[0]});
        REQUIRE_OK(ref_bias);
        for (const uint32_t acc_bits : {0u, 7u}) {
          auto op = build_grad(name, at, {&a, &b, &bias}, y, Precision::kTf32, acc_bits);
          const Tensor base_a = random_tensor(DType::kFloat32, c.a, seed++);
          const Tensor base_b = random_tensor(DType::kFloat32, c.b, seed++);
          const Tensor base_bias = random_tensor(DType::kFloat32, {c.b[0]}, seed++);
          Tensor da = acc_bits ? base_a.clone().value() : poisoned(c.a);
          Tensor db = acc_bits ? base_b.clone().value() : poisoned(c.b);
          Tensor dbias = acc_bits ? base_bias.clone().value() : poisoned({c.b[0]});
          run_on_gpu(*op, {&a, &b, &bias, &dy}, {&da, &db, &dbias});
          const std::string label = c.label + (acc_bits ? " + bias, accumulating" : " + bias");
          const Tensor zero_a = zeros_f32(c.a), zero_b = zeros_f32(c.b);
          const Tensor zero_bias = zeros_f32({c.b[0]});
          expect_close(name, label, "dA", Precision::kTf32,
                       plus(acc_bits ? base_a : zero_a, ref->da), da, kTf32, op->describe());
          expect_close(name, label, "dB", Precision::kTf32,
                       plus(acc_bits ? base_b : zero_b, ref->db), db, kTf32, op->describe());
          expect_close(name, label, "dbias", Precision::kTf32,
                       plus(acc_bits ? base_bias : zero_bias, *ref_bias), dbias, kReduced,
                       op->describe());
        }
      }
      // Only dB wanted: dA's address is 0.
      auto only_b = build_grad(name, at, {&a, &b}, y, Precision::kFp32, 0u, /*wanted=*/2u);
      Tensor db = poisoned(c.b);
      run_on_gpu(*only_b, {&a, &b, &dy}, {nullptr, &db});
      expect_close(name, c.label, "dB only", Precision::kFp32, ref->db, db, kReduced,
                   only_b->describe());
    }
  }
}

TEST_CASE("GPU LayerNormalization backward (dX, dscale, dbias) against the CPU reference", "[gpu]") {
  PS_REQUIRE_GPU();
  struct Case {
    std::string label;
    Shape x;
    int64_t axis;
    float epsilon;
  };
  const std::vector<Case> cases = {
      {"BERT hidden eps 1e-12", {2, 16, 64}, -1, 1e-12f},
      {"70 rows of 33", {70, 33}, 1, 1e-5f},
      {"two normalized axes", {3, 4, 40}, 1, 1e-5f},
      {"4096 rows of 768 (BERT-base batch)", {32, 128, 768}, -1, 1e-12f},
  };
  uint64_t seed = 3100;
  for (const Case& c : cases) {
    const int64_t ax = c.axis < 0 ? c.axis + static_cast<int64_t>(c.x.size()) : c.axis;
    const Shape norm(c.x.begin() + ax, c.x.end());
    const Tensor x = random_tensor(DType::kFloat32, c.x, seed++, -2, 2);
    const Tensor scale = random_tensor(DType::kFloat32, norm, seed++, 0.5, 1.5);
    const Tensor bias = random_tensor(DType::kFloat32, norm, seed++);
    const Tensor dy = random_tensor(DType::kFloat32, c.x, seed++);
    const cpu::Attributes a = attrs({attr_i("axis", c.axis), attr_f("epsilon", c.epsilon)});
    Result<cpu::LayerNormGrads> ref =
        cpu::layer_norm_backward(a, to_f64(x), to_f64(scale), &norm, to_f64(dy));
    REQUIRE_OK(ref);
    const Precision p = Precision::kFp32;
    auto op = build_grad("LayerNormalization", a, {&x, &scale, &bias}, c.x, p);
    Tensor dx = poisoned(c.x), ds = poisoned(norm), dbias = poisoned(norm);
    run_on_gpu(*op, {&x, &scale, &bias, &dy}, {&dx, &ds, &dbias});
    expect_close("LayerNormalization", c.label, "dX", p, ref->dx, dx, kReduced, op->describe());
    expect_close("LayerNormalization", c.label, "dscale", p, ref->dscale, ds, kReduced, op->describe());
    expect_close("LayerNormalization", c.label, "dbias", p, ref->dbias, dbias, kReduced, op->describe());
    // Deterministic: a second run gives the same bits.
    Tensor dx2 = poisoned(c.x), ds2 = poisoned(norm), dbias2 = poisoned(norm);
    run_on_gpu(*op, {&x, &scale, &bias, &dy}, {&dx2, &ds2, &dbias2});
    CHECK(std::memcmp(dx.raw(), dx2.raw(), dx.byte_size()) == 0);
    CHECK(std::memcmp(ds.raw(), ds2.raw(), ds.byte_size()) == 0);
    CHECK(std::memcmp(dbias.raw(), dbias2.raw(), dbias.byte_size()) == 0);
    // Accumulate dX and dbias, skip dscale.
    const Tensor base_x = random_tensor(DType::kFloat32, c.x, seed++);
    const Tensor base_b = random_tensor(DType::kFloat32, norm, seed++);
    auto acc = build_grad("LayerNormalization", a, {&x, &scale, &bias}, c.x, p, 5u, 5u);
    Tensor acc_x = base_x.clone().value(), acc_b = base_b.clone().value();
    run_on_gpu(*acc, {&x, &scale, &bias, &dy}, {&acc_x, nullptr, &acc_b});
    expect_close("LayerNormalization", c.label, "dX acc", p, plus(base_x, ref->dx), acc_x, kReduced, acc->describe());
    expect_close("LayerNormalization", c.label, "dbias acc", p, plus(base_b, ref->dbias), acc_b, kReduced, acc->describe());
  }
}

TEST_CASE(
    "GPU Softmax and AddSoftmax backward from Y (last and inner axes) against the CPU "
    "reference",
    "[gpu]") {
  PS_REQUIRE_GPU();
  struct Case {
    std::string label;
    Shape x;
    int64_t axis;
  };
  const std::vector<Case> cases = {
      {"attention probs", {2, 4, 16, 16}, -1},
      {"rows of 128", {2, 2, 8, 128}, -1},
      {"inner axis", {3, 5, 4}, 1},
  };
  uint64_t seed = 3200;
  for (const Case& c : cases) {
    const cpu::Attributes a = attrs({attr_i("axis", c.axis)});
    const Tensor x = random_tensor(DType::kFloat32, c.x, seed++, -4, 4);
    Result<std::vector<Tensor>> y = cpu::run_op_allocating("Softmax", a, std::vector<const Tensor*>{&x}, 1);
    REQUIRE_OK(y);
    const Tensor& yv = (*y)[0];
    const Tensor dy = random_tensor(DType::kFloat32, c.x, seed++);
    Result<Tensor> ref = cpu::softmax_backward(a, to_f64(yv), to_f64(dy));
    REQUIRE_OK(ref);
    const Precision p = Precision::kFp32;
    auto op = build_grad("Softmax", a, {&x}, c.x, p);
    Tensor dx = poisoned(c.x);
    run_on_gpu(*op, {&x, &dy, &yv}, {&dx});  // inputs {X, dY, Y}
    expect_close("Softmax", c.label, "dX", p, *ref, dx, kReduced, op->describe());
    const Tensor base = random_tensor(DType::kFloat32, c.x, seed++);
    auto acc = build_grad("Softmax", a, {&x}, c.x, p, 1u);
    Tensor acc_x = base.clone().value();
    run_on_gpu(*acc, {&x, &dy, &yv}, {&acc_x});
    expect_close("Softmax", c.label, "dX acc", p, plus(base, *ref), acc_x, kReduced, acc->describe());
  }
  // AddSoftmax (fuse_add_softmax: Y = Softmax(X + M)): inputs {X, M, dY, Y}, dX as Softmax's;
  // the mask's gradient is refused (the pass fuses only masks no parameter reaches).
  const cpu::Attributes a = attrs({attr_i("axis", -1)});
  const Shape xs = {2, 4, 16, 16};
  const Tensor x = random_tensor(DType::kFloat32, xs, seed++, -4, 4);
  const Tensor m = random_tensor(DType::kFloat32, {2, 1, 16, 16}, seed++, -4, 4);
  Result<std::vector<Tensor>> y =
      cpu::run_op_allocating("AddSoftmax", a, std::vector<const Tensor*>{&x, &m}, 1);
  REQUIRE_OK(y);
  const Tensor& yv = (*y)[0];
  const Tensor dy = random_tensor(DType::kFloat32, xs, seed++);
  Result<Tensor> ref = cpu::softmax_backward(a, to_f64(yv), to_f64(dy));
  REQUIRE_OK(ref);
  for (const uint32_t acc_bits : {0u, 1u}) {
    auto op = build_grad("AddSoftmax", a, {&x, &m}, xs, Precision::kFp32, acc_bits, 1u);
    const Tensor base = random_tensor(DType::kFloat32, xs, seed++);
    Tensor dx = acc_bits ? base.clone().value() : poisoned(xs);
    run_on_gpu(*op, {&x, &m, &dy, &yv}, {&dx});
    const Tensor zero = zeros_f32(xs);
    expect_close("AddSoftmax", "BERT mask", acc_bits ? "dX acc" : "dX", Precision::kFp32,
                 plus(acc_bits ? base : zero, *ref), dx, kReduced, op->describe());
  }
  const std::vector<TensorSpec> in{spec_of(x), spec_of(m)};
  const std::vector<TensorSpec> out{TensorSpec{DType::kFloat32, xs, false}};
  const OpSpec forward{"AddSoftmax", "test", a, in, out};
  const Result<std::unique_ptr<GpuOp>> with_dm =
      build_grad_op(GradSpec{forward, 3u, 0u}, OpEnv{shared_runtime(), Precision::kFp32});
  CHECK(with_dm.status().code() == Code::kUnsupported);
}

TEST_CASE("GPU Gather backward: embeddings with repeated ids (int64, int32), the pooler's "
          "hidden[:, 0], accumulate",
          "[gpu]") {
  PS_REQUIRE_GPU();
  const Precision p = Precision::kFp32;
  // Word embeddings: vocab 50 x 32, ids [4, 16] with heavy repetition (ids in [0, 8) and
  // negatives), int64 and int32.
  const Tensor table = random_tensor(DType::kFloat32, {50, 32}, 3300);
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < 64; ++i) ids.push_back(i % 3 == 0 ? -(i % 7) - 1 : (i * 5) % 8);
  Result<Tensor> ids64 = Tensor::from_values<int64_t>({4, 16}, std::span<const int64_t>(ids));
  REQUIRE_OK(ids64);
  std::vector<int32_t> ids32v(ids.begin(), ids.end());
  Result<Tensor> ids32 = Tensor::from_values<int32_t>({4, 16}, std::span<const int32_t>(ids32v));
  REQUIRE_OK(ids32);
  const Tensor dy = random_tensor(DType::kFloat32, {4, 16, 32}, 3301);
  const cpu::Attributes axis0 = attrs({attr_i("axis", 0)});
  Result<Tensor> ref = cpu::gather_backward(axis0, {50, 32}, *ids64, to_f64(dy));
  REQUIRE_OK(ref);
  for (const Tensor* idx : {&*ids64, &*ids32}) {
    const std::string label = idx->dtype() == DType::kInt64 ? "embedding int64" : "embedding int32";
    auto op = build_grad("Gather", axis0, {&table, idx}, {4, 16, 32}, p, 0u, 1u);
    Tensor dd = poisoned({50, 32});
    run_on_gpu(*op, {&table, idx, &dy}, {&dd, nullptr});
    expect_close("Gather", label, "dData", p, *ref, dd, kElementwise, op->describe());
    Tensor again = poisoned({50, 32});  // deterministic: the same bits again
    run_on_gpu(*op, {&table, idx, &dy}, {&again, nullptr});
    CHECK(std::memcmp(dd.raw(), again.raw(), dd.byte_size()) == 0);
  }
  const Tensor base = random_tensor(DType::kFloat32, {50, 32}, 3302);
  auto acc = build_grad("Gather", axis0, {&table, &*ids64}, {4, 16, 32}, p, 1u, 1u);
  Tensor acc_d = base.clone().value();
  run_on_gpu(*acc, {&table, &*ids64, &dy}, {&acc_d, nullptr});
  expect_close("Gather", "embedding int64", "dData acc", p, plus(base, *ref), acc_d, kElementwise, acc->describe());

  // Past kGatherSmallTable rows the chained scatter runs: vocab 200, repeated ids; and BERT's
  // token types (2 rows, ~150 positions each, a partial column tile) on the small-table kernel.
  struct Case {
    const char* label;
    Shape table;
    Shape ids;
    int64_t rows_used;
    double tolerance;
  };
  for (const Case& c : {Case{"vocab 200 (chained)", {200, 32}, {4, 16}, 200, kElementwise},
                        Case{"token types (small table)", {2, 40}, {3, 100}, 2, kReduced}}) {
    std::vector<int64_t> v;
    for (int64_t i = 0; i < element_count(c.ids); ++i) v.push_back((i * 37 + i / 5) % c.rows_used);
    if (c.rows_used == 200) v[5] = v[9] = v[40] = 17;
    Result<Tensor> vt = Tensor::from_values<int64_t>(c.ids, std::span<const int64_t>(v));
    REQUIRE_OK(vt);
    Shape y_shape = c.ids;
    y_shape.push_back(c.table[1]);
    const Tensor t = random_tensor(DType::kFloat32, c.table, 3305);
    const Tensor g = random_tensor(DType::kFloat32, y_shape, 3306);
    Result<Tensor> r = cpu::gather_backward(axis0, c.table, *vt, to_f64(g));
    REQUIRE_OK(r);
    auto op = build_grad("Gather", axis0, {&t, &*vt}, y_shape, p, 0u, 1u);
    Tensor d = poisoned(c.table);
    run_on_gpu(*op, {&t, &*vt, &g}, {&d, nullptr});
    expect_close("Gather", c.label, "dData", p, *r, d, c.tolerance, op->describe());
    CHECK((op->describe().find("small") != std::string::npos) == (c.rows_used == 2));
  }

  // The pooler: hidden [4, 16, 32], scalar index 0 on axis 1, dY [4, 32].
  const Tensor hidden = random_tensor(DType::kFloat32, {4, 16, 32}, 3303);
  Result<Tensor> zero = Tensor::from_values<int64_t>({}, {int64_t{0}});
  REQUIRE_OK(zero);
  const Tensor dy1 = random_tensor(DType::kFloat32, {4, 32}, 3304);
  const cpu::Attributes axis1 = attrs({attr_i("axis", 1)});
  Result<Tensor> ref1 = cpu::gather_backward(axis1, {4, 16, 32}, *zero, to_f64(dy1));
  REQUIRE_OK(ref1);
  auto pool = build_grad("Gather", axis1, {&hidden, &*zero}, {4, 32}, p, 0u, 1u);
  Tensor dh = poisoned({4, 16, 32});
  run_on_gpu(*pool, {&hidden, &*zero, &dy1}, {&dh, nullptr});
  expect_close("Gather", "pooler hidden[:, 0]", "dData", p, *ref1, dh, kElementwise, pool->describe());
}

TEST_CASE("GPU Transpose, Squeeze/Unsqueeze and ReduceMean backward", "[gpu]") {
  PS_REQUIRE_GPU();
  const Precision p = Precision::kFp32;
  struct TCase {
    Shape x;
    std::vector<int64_t> perm;
  };
  uint64_t seed = 3400;
  for (const TCase& c : {TCase{{2, 16, 4, 8}, {0, 2, 1, 3}}, TCase{{2, 4, 16, 8}, {0, 1, 3, 2}},
                         TCase{{2, 16, 4, 8}, {0, 2, 3, 1}}, TCase{{5, 7}, {1, 0}}}) {
    const cpu::Attributes a = attrs({attr_ints("perm", c.perm)});
    const Tensor x = random_tensor(DType::kFloat32, c.x, seed++);
    const Shape y = forward_shape("Transpose", a, {&x});
    const Tensor dy = random_tensor(DType::kFloat32, y, seed++);
    Result<Tensor> ref = cpu::transpose_backward(a, to_f64(dy));
    REQUIRE_OK(ref);
    const std::string label = "perm " + shape_string(c.perm);
    auto op = build_grad("Transpose", a, {&x}, y, p);
    Tensor dx = poisoned(c.x);
    run_on_gpu(*op, {&x, &dy}, {&dx});
    expect_close("Transpose", label, "dX", p, *ref, dx, kElementwise, op->describe());
    const Tensor base = random_tensor(DType::kFloat32, c.x, seed++);
    auto acc = build_grad("Transpose", a, {&x}, y, p, 1u);
    Tensor acc_x = base.clone().value();
    run_on_gpu(*acc, {&x, &dy}, {&acc_x});
    expect_close("Transpose", label, "dX acc", p, plus(base, *ref), acc_x, kElementwise, acc->describe());
  }
  // Unsqueeze (the attention mask's [B, 1, 1, S]) and Squeeze: views.
  const Tensor m = random_tensor(DType::kFloat32, {2, 8}, seed++);
  const Tensor dm = random_tensor(DType::kFloat32, {2, 1, 1, 8}, seed++);
  auto unsq = build_grad("Unsqueeze", attrs({attr_ints("axes", {1, 2})}), {&m}, {2, 1, 1, 8}, p);
  Tensor dmx = poisoned({2, 8});
  run_on_gpu(*unsq, {&m, &dm}, {&dmx});
  Result<Tensor> ref_m = cpu::reshape_backward({2, 8}, to_f64(dm));
  REQUIRE_OK(ref_m);
  expect_close("Unsqueeze", "[2, 8] -> [2, 1, 1, 8]", "dX", p, *ref_m, dmx, 0.0, unsq->describe());

  // ReduceMean over the last axis with keepdims (LayerNorm's opset-13 decomposition).
  const cpu::Attributes rm = attrs({attr_ints("axes", {-1}), attr_i("keepdims", 1)});
  const Tensor x = random_tensor(DType::kFloat32, {2, 16, 64}, seed++);
  const Tensor dy = random_tensor(DType::kFloat32, {2, 16, 1}, seed++);
  Result<Tensor> ref = cpu::reduce_mean_backward(rm, {}, {2, 16, 64}, to_f64(dy));
  REQUIRE_OK(ref);
  auto op = build_grad("ReduceMean", rm, {&x}, {2, 16, 1}, p);
  Tensor dx = poisoned({2, 16, 64});
  run_on_gpu(*op, {&x, &dy}, {&dx});
  expect_close("ReduceMean", "axes [-1] keepdims", "dX", p, *ref, dx, kElementwise, op->describe());
  const Tensor base = random_tensor(DType::kFloat32, {2, 16, 64}, seed++);
  auto acc = build_grad("ReduceMean", rm, {&x}, {2, 16, 1}, p, 1u);
  Tensor acc_x = base.clone().value();
  run_on_gpu(*acc, {&x, &dy}, {&acc_x});
  expect_close("ReduceMean", "axes [-1] keepdims", "dX acc", p, plus(base, *ref), acc_x, kElementwise, acc->describe());
}

// HeadSlice's backward in its three modes: writing dX whole (zeros outside its columns),
// adding its columns (accumulate), and writing its columns alone (partial: the other columns
// keep what is there).
TEST_CASE("GPU HeadSlice backward: write, accumulate and partial", "[gpu]") {
  PS_REQUIRE_GPU();
  const Precision p = Precision::kFp32;
  struct HCase {
    Shape x;
    int64_t start, size, heads;
    std::vector<int64_t> perm;
  };
  uint64_t seed = 3900;
  for (const HCase& c : {HCase{{2, 37, 3 * 64}, 64, 64, 4, {0, 2, 3, 1}},
                         HCase{{2, 37, 3 * 64}, 128, 64, 4, {0, 2, 1, 3}},
                         HCase{{3, 5, 29}, 3, 24, 4, {2, 0, 3, 1}}}) {
    const cpu::Attributes a = attrs({attr_i("start", c.start), attr_i("size", c.size),
                                     attr_i("heads", c.heads), attr_ints("perm", c.perm)});
    const Tensor x = random_tensor(DType::kFloat32, c.x, seed++);
    const Shape y = forward_shape("HeadSlice", a, {&x});
    const Tensor dy = random_tensor(DType::kFloat32, y, seed++);
    Result<Tensor> ref = cpu::head_slice_backward(a, c.x, to_f64(dy));
    REQUIRE_OK(ref);
    const std::string label =
        str_cat("columns ", c.start, "+", c.size, " perm ", shape_string(c.perm));
    auto op = build_grad("HeadSlice", a, {&x}, y, p);
    Tensor dx = poisoned(c.x);
    run_on_gpu(*op, {&x, &dy}, {&dx});
    expect_close("HeadSlice", label, "dX", p, *ref, dx, 0.0, op->describe());
    const Tensor base = random_tensor(DType::kFloat32, c.x, seed++);
    auto acc = build_grad("HeadSlice", a, {&x}, y, p, 1u);
    Tensor acc_x = base.clone().value();
    run_on_gpu(*acc, {&x, &dy}, {&acc_x});
    expect_close("HeadSlice", label, "dX acc", p, plus(base, *ref), acc_x, kElementwise,
                 acc->describe());
    // Partial: the slice's columns are dY's, the others the base's, untouched.
    auto part = build_grad("HeadSlice", a, {&x}, y, p, 0u, ~0u, true);
    Tensor part_x = base.clone().value();
    run_on_gpu(*part, {&x, &dy}, {&part_x});
    Tensor expected = to_f64(base);
    const int64_t columns = c.x.back();
    for (int64_t i = 0; i < expected.numel(); ++i) {
      const int64_t col = i % columns;
      if (col >= c.start && col < c.start + c.size) {
        expected.mutable_data<double>()[i] = ref->data<double>()[i];
      }
    }
    expect_close("HeadSlice", label, "dX part", p, expected, part_x, 0.0, part->describe());
  }
}

TEST_CASE("GPU Sub/Mul/Div/Pow (broadcast) and Erf/Tanh/Sqrt/Gelu backward", "[gpu]") {
  PS_REQUIRE_GPU();
  const Precision p = Precision::kFp32;
  struct BCase {
    std::string op;
    Shape a, b;
  };
  const std::vector<BCase> cases = {
      {"Sub", {2, 16, 64}, {2, 16, 1}},  // x - mean
      {"Div", {2, 16, 64}, {2, 16, 1}},  // (x - mean) / std
      {"Mul", {2, 16, 64}, {64}},        // * gamma
      {"Mul", {2, 1, 1, 16}, {}},        // the mask * -10000
      {"Sub", {}, {2, 1, 1, 16}},        // 1 - mask
      {"Div", {2, 4, 16, 16}, {}},       // scores / sqrt(d)
      {"Pow", {2, 16, 64}, {}},          // (x - mean)^2
      {"Pow", {3, 5}, {5}},
  };
  uint64_t seed = 3500;
  for (const BCase& c : cases) {
    const std::string label = shape_string(c.a) + " x " + shape_string(c.b);
    const bool pow = c.op == "Pow";
    const Tensor a = random_tensor(DType::kFloat32, c.a, seed++, pow ? 0.2 : -1.0, pow ? 2.0 : 1.0);
    const Tensor b = random_tensor(DType::kFloat32, c.b, seed++, 0.5, 2.5);
    const Shape y = *broadcast_shapes(c.a, c.b);
    const Tensor dy = random_tensor(DType::kFloat32, y, seed++);
    Result<cpu::BinaryGrads> ref = cpu::binary_backward(c.op, to_f64(a), to_f64(b), to_f64(dy));
    REQUIRE_OK(ref);
    const double tol = pow ? kReduced : kElementwise;
    auto op = build_grad(c.op, attrs({}), {&a, &b}, y, p);
    Tensor da = poisoned(c.a), db = poisoned(c.b);
    run_on_gpu(*op, {&a, &b, &dy}, {&da, &db});
    expect_close(c.op, label, "dA", p, ref->da, da, tol, op->describe());
    expect_close(c.op, label, "dB", p, ref->db, db, tol, op->describe());
    const Tensor base_a = random_tensor(DType::kFloat32, c.a, seed++);
    const Tensor base_b = random_tensor(DType::kFloat32, c.b, seed++);
    auto acc = build_grad(c.op, attrs({}), {&a, &b}, y, p, 3u);
    Tensor acc_a = base_a.clone().value(), acc_b = base_b.clone().value();
    run_on_gpu(*acc, {&a, &b, &dy}, {&acc_a, &acc_b});
    expect_close(c.op, label, "dA acc", p, plus(base_a, ref->da), acc_a, tol, acc->describe());
    expect_close(c.op, label, "dB acc", p, plus(base_b, ref->db), acc_b, tol, acc->describe());
  }
  for (const std::string u : {"Erf", "Tanh", "Sqrt", "Gelu"}) {
    const Tensor x = random_tensor(DType::kFloat32, {2, 16, 64}, seed++, u == "Sqrt" ? 0.05 : -3.0, 3.0);
    const Tensor dy = random_tensor(DType::kFloat32, {2, 16, 64}, seed++);
    Result<Tensor> ref = cpu::unary_backward(u, to_f64(x), to_f64(dy));
    REQUIRE_OK(ref);
    auto op = build_grad(u, attrs({}), {&x}, x.shape(), p);
    Tensor dx = poisoned(x.shape());
    run_on_gpu(*op, {&x, &dy}, {&dx});
    expect_close(u, "[2, 16, 64]", "dX", p, *ref, dx, kElementwise, op->describe());
    const Tensor base = random_tensor(DType::kFloat32, x.shape(), seed++);
    auto acc = build_grad(u, attrs({}), {&x}, x.shape(), p, 1u);
    Tensor acc_x = base.clone().value();
    run_on_gpu(*acc, {&x, &dy}, {&acc_x});
    expect_close(u, "[2, 16, 64]", "dX acc", p, plus(base, *ref), acc_x, kElementwise, acc->describe());
  }
}

}  // namespace
}  // namespace ps::models::gpu
