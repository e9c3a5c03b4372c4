#include "models/gpu/matmul_grad_plan.h"

#include <algorithm>
#include <optional>
#include <set>

#include "models/gpu/grad_kernel_plan.h"
#include "models/gpu/matmul_plan.h"

namespace ps::models::gpu {
namespace {

// True when the matrices offset + j * stride over every call and j are all distinct and
// cover `matrices` of them: each operand matrix gets exactly one batch entry's product.
bool one_to_one(const MatmulPlan& p, int which, int64_t stride, int64_t matrices) {
  std::set<int64_t> seen;
  const int64_t count = std::max<int64_t>(p.batch_count, 1);
  for (const auto& call : p.calls) {
    for (int64_t j = 0; j < count; ++j) {
      if (!seen.insert(call[static_cast<size_t>(which)] + j * stride).second) return false;
    }
  }
  return static_cast<int64_t>(seen.size()) == matrices;
}

}  // namespace

Result<MatmulGradPlan> plan_matmul_backward(const Shape& a, const Shape& b, bool trans_b) {
  PS_ASSIGN_OR_RETURN(const MatmulPlan fwd,
                      trans_b ? plan_matmul_trans_b(a, b) : plan_matmul(a, b));
  if (element_count(a) == 0 || element_count(b) == 0) {
    return unsupported(trans_b ? "MatMulTransB" : "MatMul", " backward of an empty operand (A ",
                       shape_string(a), ", B ", shape_string(b), ")");
  }
  // The operands as matrices with batch dimensions (1-D promoted), and the output batch; B as
  // [K, N] (MatMulTransB's 2-D B, stored [N, K], never broadcast over a batch: its dB is one
  // GEMM over every row of A).
  Shape a2 = a, b2 = trans_b ? Shape{b[1], b[0]} : b;
  if (a2.size() == 1) a2.insert(a2.begin(), 1);
  if (b2.size() == 1) b2.push_back(1);
  const int64_t m = a2[a2.size() - 2], k = a2.back(), n = b2.back();
  const Shape a_batch(a2.begin(), a2.end() - 2), b_batch(b2.begin(), b2.end() - 2);
  const std::optional<Shape> batch = broadcast_shapes(a_batch, b_batch);
  if (!batch) return internal_error("MatMul backward: batch dimensions do not broadcast");
  const int64_t batches = element_count(*batch);

  const int64_t bc = fwd.batch_count;
  const int64_t ym = fwd.m * fwd.n;  // one output matrix (m folded when B is shared)
  MatmulGradPlan plan;
  // dA [fwd.m, k] per entry = dY [fwd.m, n] x B^T.
  MatmulGradPart& da = plan.da;
  da.count = element_count(a);
  da.reduce = !one_to_one(fwd, 0, fwd.stride_a, da.count / (fwd.m * k));
  // dB [k, n] per entry = A^T [k, fwd.m] x dY [fwd.m, n].
  MatmulGradPart& db = plan.db;
  db.count = element_count(b);
  db.reduce = !one_to_one(fwd, 1, fwd.stride_b, db.count / (k * n));
  for (const auto& call : fwd.calls) {
    StridedGemm ga;  // X = dY, Y = B
    ga.m = fwd.m;
    ga.n = k;
    ga.k = n;
    ga.trans_y = !trans_b;
    ga.count = bc;
    ga.x_offset = call[2];
    ga.x_stride = fwd.stride_y;
    ga.y_offset = call[1];
    ga.y_stride = fwd.stride_b;
    if (da.reduce) {
      ga.out_offset = call[2] / ym * (fwd.m * k);
      ga.out_stride = bc > 1 ? fwd.m * k : 0;
    } else {
      ga.out_offset = call[0];
      ga.out_stride = fwd.stride_a;
    }
    da.gemms.push_back(ga);

    StridedGemm gb;
    gb.trans_x = true;
    gb.count = bc;
    if (trans_b) {  // dB [n, k] = dY^T A (B shared: one call, no batch)
      gb.x = GradOperand::kDy;
      gb.y = GradOperand::kA;
      gb.m = n;
      gb.n = k;
      gb.k = fwd.m;
      gb.x_offset = call[2];
      gb.x_stride = fwd.stride_y;
      gb.y_offset = call[0];
      gb.y_stride = fwd.stride_a;
    } else {  // dB [k, n] = A^T dY
      gb.x = GradOperand::kA;
      gb.y = GradOperand::kDy;
      gb.m = k;
      gb.n = n;
      gb.k = fwd.m;
      gb.x_offset = call[0];
      gb.x_stride = fwd.stride_a;
      gb.y_offset = call[2];
      gb.y_stride = fwd.stride_y;
    }
    if (db.reduce) {
      gb.out_offset = call[2] / ym * (k * n);
      gb.out_stride = bc > 1 ? k * n : 0;
    } else {
      gb.out_offset = call[1];
      gb.out_stride = fwd.stride_b;
    }
    db.gemms.push_back(gb);
  }
  // A reduced gradient: the per-entry products [batch..., rows, cols] summed to the operand.
  // (Only when an operand is broadcast, which never folds m: fwd.m is A's own m there.)
  auto plan_reduce_part = [&](MatmulGradPart& part, const Shape& operand, int64_t rows,
                              int64_t cols) -> Status {
    if (!part.reduce) return Status::OK();
    Shape full = *batch;
    full.push_back(rows);
    full.push_back(cols);
    part.full_count = batches * rows * cols;
    PS_ASSIGN_OR_RETURN(part.reduce_plan, plan_broadcast_backward(operand, full));
    return Status::OK();
  };
  PS_TRY(plan_reduce_part(da, a2, m, k));
  if (trans_b && db.reduce) return internal_error("MatMulTransB backward: B's gradient summed");
  PS_TRY(plan_reduce_part(db, b2, k, n));
  return plan;
}

}  // namespace ps::models::gpu
