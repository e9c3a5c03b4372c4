// MatMul backward (numpy semantics, batch dimensions broadcast) on cuBLASLt, as models/cpu/
// grad_matmul.cc: dA = dY B^T and dB = A^T dY per batch entry, each summed over the batch
// dimensions its operand was broadcast on (MatMulScale's times alpha, cuBLASLt's alpha);
// MatMulTransB's (B stored [N, K]): dA = dY B and dB = dY^T A, B's transposed copy and its
// gradient's never made. The shapes are planned by plan_matmul_backward (matmul_grad_plan.h): each
// gradient is one strided batch per forward call on the stored operands (no transposes copied), an
// LtMatmul (lt_matmul.h: its algorithm timed at plan time, as the forward's); written straight into
// the gradient (beta = 1 to accumulate) when no operand matrix is shared by several batch entries,
// else into the workspace at the full batch shape and summed by ps_reduce_f32 (then
// ps_accumulate_f32 when accumulating). Precision: CUBLAS_COMPUTE_32F (strict fp32) or
// CUBLAS_COMPUTE_32F_FAST_TF32, per the OpEnv.
#include <algorithm>

#include "cuda/stream.h"
#include "models/gpu/grad_builders.h"
#include "models/gpu/grad_kernel_plan.h"
#include "models/gpu/kernel_op_util.h"
#include "models/gpu/lt_matmul.h"
#include "models/gpu/matmul_grad_plan.h"
#include "models/gpu/matmul_plan.h"
#include "models/gpu/runtime.h"

namespace ps::models::gpu {
namespace {

// The StridedGemm as cuBLASLt's problem (lt_matmul.h's transpose identity: its A is Y, its B
// is X).
LtProblem lt_problem(const StridedGemm& g, bool accumulate) {
  const auto align = [&g](int64_t offset, int64_t stride) {
    return g.count > 1 ? float_offset_alignment({offset, stride})
                       : float_offset_alignment({offset});
  };
  LtProblem p = column_major_problem(
      RowMajorProduct{g.m, g.n, g.k, g.trans_x, g.trans_y, g.count, g.x_stride, g.y_stride,
                      g.out_stride, align(g.x_offset, g.x_stride), align(g.y_offset, g.y_stride),
                      align(g.out_offset, g.out_stride)});
  p.reads_c = accumulate;
  return p;
}

struct Part {
  bool wanted = false;
  bool accumulate = false;
  MatmulGradPart plan;
  size_t full_at = 0;  // workspace byte offset of the full-batch products (reduce only)
  std::vector<LtMatmul> gemms;  // plan.gemms' products
};

class MatmulGradOp final : public GpuOp {
 public:
  Status init(const GradSpec& spec, const OpEnv& env);
  size_t workspace_bytes() const override { return workspace_; }
  Status enqueue(const LaunchArgs& args) const override;
  std::string describe() const override { return description_; }

 private:
  // `vector`: the dB GEMM's BGRADB output (dbias) when dbias_in_gemm_, else 0.
  Status run_part(const LaunchArgs& args, const Part& part, CUdeviceptr dx,
                  CUdeviceptr vector = 0) const;

  Part da_, db_;
  // MatMulTransB's bias (fuse_linear_bias): dY summed over its rows by ps_reduce_f32 (into the
  // scratch, then added, when accumulating).
  size_t inputs_ = 3;  // bound to enqueue: 4 with the bias
  bool want_dbias_ = false, acc_dbias_ = false;
  bool dbias_in_gemm_ = false;  // the dB GEMM's BGRADB epilogue writes dbias (no reduction)
  ReducePlan dbias_plan_;
  int64_t dbias_count_ = 0;
  float alpha_ = 1.0f;     // MatMulScale's: dA = alpha dY B^T, dB = alpha A^T dY
  size_t scratch_at_ = 0;  // the reduced sum before it is accumulated
  size_t lt_at_ = 0;       // cuBLASLt's workspace (after ours)
  cuda::Kernel reduce_, accumulate_;
  size_t workspace_ = 0;
  std::string description_;
};

Status MatmulGradOp::init(const GradSpec& spec, const OpEnv& env) {
  const OpSpec& f = spec.forward;
  const bool trans_b = f.op == "MatMulTransB";
  PS_TRY(check_arity(f, 2, trans_b ? 3 : 2, 1, 1));
  const bool has_bias = f.inputs.size() == 3 && f.inputs[2].present();
  for (const TensorSpec* t : {&f.inputs[0], &f.inputs[1], &f.outputs[0]}) {
    if (t->dtype != DType::kFloat32) return unsupported("non-float32 operands");
  }
  if (has_bias && f.inputs[2].dtype != DType::kFloat32) return unsupported("a non-float32 bias");
  inputs_ = has_bias ? 4 : 3;
  if (f.op == "MatMulScale") {
    AttrReader attrs(f);
    PS_TRY(attrs->check_attrs({"alpha"}));
    PS_ASSIGN_OR_RETURN(alpha_, attrs->attr_float("alpha", 1.0f));
  }
  PS_ASSIGN_OR_RETURN(const MatmulGradPlan plan,
                      plan_matmul_backward(f.inputs[0].shape, f.inputs[1].shape, trans_b));
  const int64_t int_max = 2147483647;
  for (const MatmulGradPart* p : {&plan.da, &plan.db}) {
    for (const StridedGemm& g : p->gemms) {
      if (std::max({g.m, g.n, g.k, g.count}) > int_max) return unsupported("dimensions past int32");
    }
  }
  da_ = Part{spec.wants(0), spec.accumulates(0), plan.da, 0, {}};
  db_ = Part{spec.wants(1), spec.accumulates(1), plan.db, 0, {}};
  size_t at = 0, scratch = 0, lt_bytes = 0;
  want_dbias_ = has_bias && spec.wants(2);
  acc_dbias_ = want_dbias_ && spec.accumulates(2);
  // MatMulTransB's dB GEMM reads dY as cuBLASLt's B transposed, op(B) = dY [rows, N]: its
  // BGRADB epilogue sums op(B) over the rows, which is dbias. Written, not added: only when
  // dbias does not accumulate, dB is one GEMM written straight into the gradient, and cuBLASLt
  // offers an algorithm for it (else ps_reduce_f32 after the GEMMs).
  if (want_dbias_ && !acc_dbias_ && db_.wanted && !db_.accumulate && !db_.plan.reduce &&
      db_.plan.gemms.size() == 1) {
    LtProblem p = lt_problem(db_.plan.gemms[0], false);
    p.epilogue = LtProblem::Epilogue::kBiasGradB;
    LtMatmul product;
    if (product.init(env, p, str_cat(f.op, " backward dB with dbias")).ok()) {
      lt_bytes = product.workspace_bytes();
      db_.gemms.push_back(std::move(product));
      dbias_in_gemm_ = true;
    }
  }
  for (Part* p : {&da_, &db_}) {
    if (!p->wanted) continue;
    const bool beta_one = p->accumulate && !p->plan.reduce;
    for (size_t i = p->gemms.size(); i < p->plan.gemms.size(); ++i) {
      LtMatmul& product = p->gemms.emplace_back();
      PS_TRY(product.init(env, lt_problem(p->plan.gemms[i], beta_one), str_cat(f.op, " backward")));
      lt_bytes = std::max(lt_bytes, product.workspace_bytes());
    }
    if (!p->plan.reduce) continue;
    p->full_at = at;
    at += round_up_256(static_cast<size_t>(p->plan.full_count) * 4);
    if (p->accumulate)
      scratch = std::max(scratch, round_up_256(static_cast<size_t>(p->plan.count) * 4));
  }
  if (want_dbias_ && !dbias_in_gemm_) {
    PS_ASSIGN_OR_RETURN(dbias_plan_,
                        plan_broadcast_backward(f.inputs[2].shape, f.outputs[0].shape));
    dbias_count_ = element_count(f.inputs[2].shape);
    if (acc_dbias_)
      scratch = std::max(scratch, round_up_256(static_cast<size_t>(dbias_count_) * 4));
  }
  scratch_at_ = at;
  lt_at_ = at + scratch;
  workspace_ = lt_at_ + lt_bytes;
  if ((da_.wanted && da_.plan.reduce) || (db_.wanted && db_.plan.reduce) ||
      (want_dbias_ && !dbias_in_gemm_)) {
    PS_ASSIGN_OR_RETURN(reduce_, find_kernel(env, "ps_reduce_f32"));
    PS_ASSIGN_OR_RETURN(accumulate_, find_kernel(env, "ps_accumulate_f32"));
  }
  auto part_text = [](const Part& p, const char* name) -> std::string {
    if (!p.wanted) return "";
    return str_cat(" ", name, " (", p.gemms.front().describe(),
                   p.gemms.size() > 1 ? str_cat(" and ", p.gemms.size() - 1, " more") : "",
                   p.plan.reduce ? ", summed by ps_reduce_f32" : "",
                   p.accumulate ? ", accumulating" : "", ")");
  };
  description_ = str_cat("cublasLt ", f.op, " backward",
                         alpha_ != 1.0f ? str_cat(" (alpha ", alpha_, ")") : std::string(), ":",
                         part_text(da_, "dA"), part_text(db_, "dB"),
                         !want_dbias_     ? ""
                         : dbias_in_gemm_ ? " dbias (the dB GEMM's BGRADB epilogue)"
                                          : " dbias (ps_reduce_f32)");
  return Status::OK();
}

Status MatmulGradOp::run_part(const LaunchArgs& args, const Part& part, CUdeviceptr dx,
                              CUdeviceptr vector) const {
  const MatmulGradPart& p = part.plan;
  const CUdeviceptr target = p.reduce ? args.workspace + part.full_at : dx;
  const bool beta_one = part.accumulate && !p.reduce;
  // inputs {A, B, bias?, dY}: A and B in GradOperand's order, dY last.
  const auto operand = [&args](GradOperand o) {
    return o == GradOperand::kDy ? args.inputs.back() : args.inputs[static_cast<size_t>(o)];
  };
  const auto at = [](CUdeviceptr base, int64_t offset) {
    return base + static_cast<CUdeviceptr>(offset) * 4;
  };
  for (size_t i = 0; i < p.gemms.size(); ++i) {
    const StridedGemm& g = p.gemms[i];
    const CUdeviceptr out = at(target, g.out_offset);
    PS_TRY(part.gemms[i].run(args.stream, alpha_, at(operand(g.y), g.y_offset),
                             at(operand(g.x), g.x_offset), beta_one ? 1.0f : 0.0f, out, out, vector,
                             args.workspace + lt_at_));
  }
  if (!p.reduce) return Status::OK();
  const CUdeviceptr sum = part.accumulate ? args.workspace + scratch_at_ : dx;
  PS_TRY(launch_reduce(reduce_, args.stream, p.reduce_plan, target, sum));
  if (part.accumulate) {
    PS_TRY(accumulate_.launch(args.stream, grid_for(p.count), kBlock, 0, dx, sum,
                              static_cast<uint64_t>(p.count)));
  }
  return Status::OK();
}

Status MatmulGradOp::enqueue(const LaunchArgs& args) const {
  // inputs {A, B, bias?, dY}; outputs {dA, dB, dbias?}.
  if (args.inputs.size() != inputs_ || args.outputs.size() < inputs_ - 1) {
    return invalid_argument("MatMul backward enqueue: ", args.inputs.size(), " inputs, ",
                            args.outputs.size(), " outputs bound, needs ", inputs_, " and ",
                            inputs_ - 1);
  }
  if (args.workspace_bytes < workspace_) {
    return invalid_argument("MatMul backward enqueue: workspace of ", args.workspace_bytes,
                            " bytes, needs ", workspace_);
  }
  if (da_.wanted) PS_TRY(run_part(args, da_, args.outputs[0]));
  if (db_.wanted)
    PS_TRY(run_part(args, db_, args.outputs[1], dbias_in_gemm_ ? args.outputs[2] : 0));
  if (want_dbias_ && !dbias_in_gemm_ && dbias_count_ > 0) {
    const CUdeviceptr target = acc_dbias_ ? args.workspace + scratch_at_ : args.outputs[2];
    PS_TRY(launch_reduce(reduce_, args.stream, dbias_plan_, args.inputs.back(), target));
    if (acc_dbias_) {
      PS_TRY(accumulate_.launch(args.stream, grid_for(dbias_count_), kBlock, 0, args.outputs[2],
                                target, static_cast<uint64_t>(dbias_count_)));
    }
  }
  return Status::OK();
}

}  // namespace

Result<std::unique_ptr<GpuOp>> build_matmul_grad(const GradSpec& spec, const OpEnv& env) {
  auto op = std::make_unique<MatmulGradOp>();
  PS_TRY(op->init(spec, env));
  return std::unique_ptr<GpuOp>(std::move(op));
}

}  // namespace ps::models::gpu
