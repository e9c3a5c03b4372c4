// Gemm, MatMul, MatMulBias, MatMulScale (alpha) and MatMulTransB (with or without a bias) on
// cuBLASLt.
//
// Row-major ONNX operands meet column-major cuBLASLt through the transpose identity: a
// row-major [R, C] matrix is a column-major [C, R] one, so Y = A x B (row-major) is computed as
// Y^T = B^T x A^T (column-major) with cuBLASLt's "A" = our B and "B" = our A, no copies.
// Batches are strided batches (matmul_plan.h). MatMulBias and Gemm with a bias-like C and
// beta = 1 use the BIAS epilogue (bias over the rows of Y^T = the last dim of Y). Any other C
// is broadcast into Y first (ps_dnn_broadcast_2d_f32) and added with beta (C = D in place).
// Precision: CUBLAS_COMPUTE_32F (strict fp32) or CUBLAS_COMPUTE_32F_FAST_TF32. The algorithm:
// lt_matmul.h's (cuBLASLt's heuristic candidates timed once on plan scratch, cached).
#include <optional>

#include "cuda/module.h"
#include "cuda/stream.h"
#include "models/cpu/op_context.h"
#include "models/gpu/dnn_builders.h"
#include "models/gpu/lt_matmul.h"
#include "models/gpu/matmul_plan.h"
#include "models/gpu/runtime.h"

namespace ps::models::gpu {
namespace {

std::string spec_string(const TensorSpec& t) {
  return str_cat(dtype_name(t.dtype), shape_string(t.shape));
}

// How Gemm's C (or MatMulBias's bias) enters the product.
enum class Addend {
  kNone,       // beta = 0 / no C
  kBias,       // BIAS epilogue, vector over the last dim (input `addend_input`)
  kFull,       // C is [M, N]: cuBLASLt's C operand, beta
  kBroadcast,  // C broadcast into Y first, then C = Y with beta
};

class MatmulOp final : public GpuOp {
 public:
  explicit MatmulOp(MatmulPlan plan) : plan_(std::move(plan)) {}

  // Plan-time construction: the broadcast kernel, the product (lt_matmul.h).
  Status init(const OpEnv& env, Addend addend, size_t addend_input, float alpha, float beta,
              const Shape& c_shape, std::string_view what);

  size_t workspace_bytes() const override { return lt_.workspace_bytes(); }
  Status enqueue(const LaunchArgs& args) const override;
  std::string describe() const override { return description_; }

 private:
  MatmulPlan plan_;
  bool empty_ = false;
  Addend addend_ = Addend::kNone;
  size_t addend_input_ = 2;
  float alpha_ = 1.0f, beta_ = 0.0f;
  LtMatmul lt_;
  cuda::Kernel broadcast_;
  int64_t c_row_stride_ = 0, c_col_stride_ = 0;
  std::string description_;
};

Status MatmulOp::enqueue(const LaunchArgs& args) const {
  if (args.inputs.size() < 2 || args.outputs.empty()) {
    return invalid_argument("matmul enqueue: ", args.inputs.size(), " inputs bound");
  }
  if (empty_) return Status::OK();
  if (args.workspace_bytes < lt_.workspace_bytes()) {
    return invalid_argument("matmul enqueue: workspace of ", args.workspace_bytes,
                            " bytes, the op needs ", lt_.workspace_bytes());
  }
  const CUdeviceptr a = args.inputs[0], b = args.inputs[1], y = args.outputs[0];
  const CUdeviceptr c = addend_ == Addend::kNone ? 0 : args.inputs[addend_input_];
  if (addend_ == Addend::kBroadcast) {
    const uint64_t total = static_cast<uint64_t>(plan_.m * plan_.n);
    PS_TRY(broadcast_.launch(args.stream, cuda::blocks_for(total, 256), 256, 0, y, c,
                             static_cast<uint64_t>(plan_.m), static_cast<uint64_t>(plan_.n),
                             c_row_stride_, c_col_stride_));
  }
  const auto at = [](CUdeviceptr base, int64_t offset) {
    return base + static_cast<CUdeviceptr>(offset) * 4;
  };
  for (const auto& call : plan_.calls) {
    // cuBLASLt's A is our B and its B our A (the transpose identity above).
    const CUdeviceptr d = at(y, call[2]);
    PS_TRY(lt_.run(args.stream, alpha_, at(b, call[1]), at(a, call[0]), beta_,
                   addend_ == Addend::kFull ? c : d, d, addend_ == Addend::kBias ? c : 0,
                   args.workspace));
  }
  return Status::OK();
}

Status MatmulOp::init(const OpEnv& env, Addend addend, size_t addend_input, float alpha, float beta,
                      const Shape& c_shape, std::string_view what) {
  addend_ = addend;
  addend_input_ = addend_input;
  alpha_ = alpha;
  beta_ = addend == Addend::kFull || addend == Addend::kBroadcast ? beta : 0.0f;
  if (plan_.m * plan_.n == 0 || plan_.batch_count == 0 || plan_.calls.empty()) {
    empty_ = true;
    description_ = "matmul with an empty output (nothing to do)";
    return Status::OK();
  }
  if (plan_.k == 0) return unsupported("an inner dimension K of 0");
  if (addend == Addend::kBroadcast) {
    Shape c2 = c_shape;
    while (c2.size() < 2) c2.insert(c2.begin(), 1);
    c_row_stride_ = c2[0] == 1 ? 0 : c2[1];
    c_col_stride_ = c2[1] == 1 ? 0 : 1;
    PS_ASSIGN_OR_RETURN(broadcast_, env.runtime.kernel("ps_dnn_broadcast_2d_f32"));
  }
  // Y = op(A) op(B), row-major: cuBLASLt's A is our B (operand 1), its B our A.
  LtProblem p = column_major_problem(
      RowMajorProduct{plan_.m, plan_.n, plan_.k, plan_.trans_a, plan_.trans_b, plan_.batch_count,
                      plan_.stride_a, plan_.stride_b, plan_.stride_y, operand_alignment(plan_, 0),
                      operand_alignment(plan_, 1), operand_alignment(plan_, 2)});
  p.reads_c = beta_ != 0.0f;
  if (addend == Addend::kBias) p.epilogue = LtProblem::Epilogue::kBias;
  PS_TRY(lt_.init(env, p, what));
  const char* addend_text = addend == Addend::kBias        ? ", bias epilogue"
                            : addend == Addend::kFull      ? ", + beta*C"
                            : addend == Addend::kBroadcast ? ", broadcast C + beta*C"
                                                           : "";
  description_ = str_cat("cublasLt ", what, " ", lt_.describe(), " x", plan_.calls.size(),
                         alpha_ != 1.0f ? str_cat(", alpha ", alpha_) : std::string(), addend_text);
  return Status::OK();
}

Status require_float32(const TensorSpec& t, std::string_view what) {
  if (t.dtype != DType::kFloat32) {
    return unsupported(what, " is ", spec_string(t), ": only float32 runs on cuBLASLt here");
  }
  return Status::OK();
}

Status check_output(const OpSpec& spec, const Shape& shape) {
  if (spec.outputs.size() != 1 || !spec.outputs[0].present() ||
      spec.outputs[0].dtype != DType::kFloat32 || spec.outputs[0].shape != shape) {
    return invalid_argument(
        "output Y must be float32", shape_string(shape), ", got ",
        spec.outputs.empty() ? std::string("none") : spec_string(spec.outputs[0]));
  }
  return Status::OK();
}

}  // namespace

Result<std::unique_ptr<GpuOp>> build_matmul(const OpSpec& spec, const OpEnv& env) {
  const bool scaled = spec.op == "MatMulScale";
  const bool trans_b = spec.op == "MatMulTransB";
  // MatMulTransB's bias is optional (a linear layer's, fused for training).
  const bool with_bias =
      spec.op == "MatMulBias" || (trans_b && spec.inputs.size() == 3 && spec.inputs[2].present());
  const std::string op(spec.op);
  const cpu::OpContext ctx(op, spec.attrs, {}, {});
  PS_TRY(scaled ? ctx.check_attrs({"alpha"}) : ctx.check_attrs({}));
  PS_ASSIGN_OR_RETURN(const float alpha, ctx.attr_float("alpha", 1.0f));
  const size_t arity = with_bias ? 3 : 2;
  if (spec.inputs.size() != arity) {
    return invalid_argument("needs ", trans_b ? "2 or 3" : std::to_string(arity), " inputs, got ",
                            spec.inputs.size());
  }
  for (size_t i = 0; i < arity; ++i) {
    if (!spec.inputs[i].present()) return invalid_argument("input ", i, " is missing");
    PS_TRY(require_float32(spec.inputs[i], i == 0 ? "A" : i == 1 ? "B" : "bias"));
  }
  PS_ASSIGN_OR_RETURN(MatmulPlan plan,
                      trans_b ? plan_matmul_trans_b(spec.inputs[0].shape, spec.inputs[1].shape)
                              : plan_matmul(spec.inputs[0].shape, spec.inputs[1].shape));
  if (with_bias) {
    const Shape& bias = spec.inputs[2].shape;
    if (bias.empty() || bias.back() != plan.n || element_count(bias) != plan.n) {
      return invalid_argument("bias ", spec_string(spec.inputs[2]), " must have shape [", plan.n,
                              "] (the last dimension of the product)");
    }
  }
  PS_TRY(check_output(spec, plan.out_shape));
  auto matmul = std::make_unique<MatmulOp>(std::move(plan));
  PS_TRY(matmul->init(env, with_bias ? Addend::kBias : Addend::kNone, 2, alpha, 0.0f, {}, op));
  return std::unique_ptr<GpuOp>(std::move(matmul));
}

Result<std::unique_ptr<GpuOp>> build_gemm(const OpSpec& spec, const OpEnv& env) {
  const std::string op(spec.op);
  const cpu::OpContext ctx(op, spec.attrs, {}, {});
  PS_TRY(ctx.check_attrs({"alpha", "beta", "transA", "transB"}));
  PS_ASSIGN_OR_RETURN(const float alpha, ctx.attr_float("alpha", 1.0f));
  PS_ASSIGN_OR_RETURN(const float beta, ctx.attr_float("beta", 1.0f));
  PS_ASSIGN_OR_RETURN(const int64_t trans_a, ctx.attr_int("transA", 0));
  PS_ASSIGN_OR_RETURN(const int64_t trans_b, ctx.attr_int("transB", 0));
  if (spec.inputs.size() < 2 || spec.inputs.size() > 3 || !spec.inputs[0].present() ||
      !spec.inputs[1].present()) {
    return invalid_argument("needs inputs A, B and optionally C, got ", spec.inputs.size());
  }
  PS_TRY(require_float32(spec.inputs[0], "A"));
  PS_TRY(require_float32(spec.inputs[1], "B"));
  const TensorSpec* c =
      spec.inputs.size() == 3 && spec.inputs[2].present() ? &spec.inputs[2] : nullptr;
  if (c) PS_TRY(require_float32(*c, "C"));
  PS_ASSIGN_OR_RETURN(MatmulPlan plan, plan_gemm(spec.inputs[0].shape, spec.inputs[1].shape,
                                                 trans_a != 0, trans_b != 0));
  Addend addend = Addend::kNone;
  Shape c_shape;
  if (c) {
    c_shape = c->shape;
    const std::optional<Shape> b = broadcast_shapes(c_shape, plan.out_shape);
    if (c_shape.size() > 2 || !b || *b != plan.out_shape) {
      return invalid_argument("C ", spec_string(*c), " does not broadcast to ",
                              shape_string(plan.out_shape));
    }
    if (beta != 0.0f) {
      const bool row_vector =
          !c_shape.empty() && c_shape.back() == plan.n && element_count(c_shape) == plan.n;
      if (c_shape == plan.out_shape) {
        addend = Addend::kFull;
      } else if (row_vector && beta == 1.0f) {
        addend = Addend::kBias;
      } else {
        addend = Addend::kBroadcast;
      }
    }
  }
  PS_TRY(check_output(spec, plan.out_shape));
  auto gemm = std::make_unique<MatmulOp>(std::move(plan));
  PS_TRY(gemm->init(env, addend, 2, alpha, beta, c_shape, "Gemm"));
  return std::unique_ptr<GpuOp>(std::move(gemm));
}

}  // namespace ps::models::gpu
