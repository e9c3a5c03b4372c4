// Gemm backward (Y = alpha * A' B' + beta * C, A' = op(A), B' = op(B)) on cuBLAS, as
// models/cpu/grad_gemm.cc: dA' = alpha dY B'^T and dB' = alpha A'^T dY, each transposed back
// when the input was (so each is ONE cublasGemmEx on the stored operands, no copies), with
// beta = 1 when the gradient accumulates; dC = beta * dY summed over C's broadcast dimensions
// (ps_reduce_f32, then ps_scale_f32 when beta != 1; through the workspace when accumulating).
// Precision: CUBLAS_COMPUTE_32F (strict fp32) or CUBLAS_COMPUTE_32F_FAST_TF32, per call.
#include <cublas_v2.h>

#include "cuda/blas.h"
#include "cuda/stream.h"
#include "models/gpu/grad_builders.h"
#include "models/gpu/grad_kernel_plan.h"
#include "models/gpu/kernel_op_util.h"
#include "models/gpu/runtime.h"

namespace ps::models::gpu {
namespace {

// One row-major product out[M, N] = alpha * op(X) op(Y) + beta * out, with op(X) [M, K] and
// op(Y) [K, N]; X and Y are stored row-major ([M, K] or [K, M] by trans_x...). cuBLAS is
// column-major: out^T = op(Y)^T op(X)^T, so cuBLAS's A is Y and its B is X, each transposed
// exactly when the row-major operand is.
struct RowMajorGemm {
  int64_t m = 0, n = 0, k = 0;
  bool trans_x = false, trans_y = false;
  float alpha = 1.0f;
  bool accumulate = false;

  Status run(cublasHandle_t blas, cublasComputeType_t compute, CUdeviceptr x, CUdeviceptr y,
             CUdeviceptr out) const {
    const float beta = accumulate ? 1.0f : 0.0f;
    const int64_t ldy = trans_y ? k : n;  // row length of Y as stored
    const int64_t ldx = trans_x ? m : k;
    CUBLAS_TRY(cublasGemmEx(blas, trans_y ? CUBLAS_OP_T : CUBLAS_OP_N,
                            trans_x ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(n),
                            static_cast<int>(m), static_cast<int>(k), &alpha,
                            reinterpret_cast<const void*>(y), CUDA_R_32F, static_cast<int>(ldy),
                            reinterpret_cast<const void*>(x), CUDA_R_32F, static_cast<int>(ldx),
                            &beta, reinterpret_cast<void*>(out), CUDA_R_32F, static_cast<int>(n),
                            compute, CUBLAS_GEMM_DEFAULT));
    return Status::OK();
  }
};

class GemmGradOp final : public GpuOp {
 public:
  Status init(const GradSpec& spec, const OpEnv& env);
  size_t workspace_bytes() const override { return workspace_; }
  Status enqueue(const LaunchArgs& args) const override;
  std::string describe() const override { return description_; }

 private:
  cublasHandle_t blas_ = nullptr;
  cublasComputeType_t compute_ = CUBLAS_COMPUTE_32F;
  bool want_da_ = false, want_db_ = false, want_dc_ = false;
  bool da_from_b_first_ = false, db_from_dy_first_ = false;  // operand order (see init)
  RowMajorGemm da_, db_;
  ReducePlan dc_plan_;
  int64_t dc_count_ = 0;
  float beta_ = 1.0f;
  bool acc_dc_ = false;
  cuda::Kernel reduce_, scale_, accumulate_;
  size_t workspace_ = 0;
  std::string description_;
};

Status GemmGradOp::init(const GradSpec& spec, const OpEnv& env) {
  const OpSpec& f = spec.forward;
  PS_TRY(check_arity(f, 2, 3, 1, 1));
  AttrReader attrs(f);
  PS_TRY(attrs->check_attrs({"alpha", "beta", "transA", "transB"}));
  PS_ASSIGN_OR_RETURN(const float alpha, attrs->attr_float("alpha", 1.0f));
  PS_ASSIGN_OR_RETURN(const float beta, attrs->attr_float("beta", 1.0f));
  PS_ASSIGN_OR_RETURN(const int64_t trans_a, attrs->attr_int("transA", 0));
  PS_ASSIGN_OR_RETURN(const int64_t trans_b, attrs->attr_int("transB", 0));
  const TensorSpec& a = f.inputs[0];
  const TensorSpec& b = f.inputs[1];
  const TensorSpec* c = optional_input(f, 2);
  for (const TensorSpec* t : {&a, &b, c, &f.outputs[0]}) {
    if (t != nullptr && t->dtype != DType::kFloat32) return unsupported("non-float32 operands");
  }
  if (a.shape.size() != 2 || b.shape.size() != 2) return invalid_argument("A and B must be 2-D");
  const int64_t m = trans_a ? a.shape[1] : a.shape[0], k = trans_a ? a.shape[0] : a.shape[1];
  const int64_t n = trans_b ? b.shape[0] : b.shape[1];
  if ((trans_b ? b.shape[1] : b.shape[0]) != k || f.outputs[0].shape != Shape{m, n}) {
    return invalid_argument("A ", shape_string(a.shape), ", B ", shape_string(b.shape),
                            " (transA ", trans_a, ", transB ", trans_b, ") do not give Y ",
                            shape_string(f.outputs[0].shape));
  }
  const int64_t int_max = 2147483647;
  if (m > int_max || n > int_max || k > int_max) return unsupported("dimensions past int32");
  blas_ = env.runtime.blas();
  compute_ = env.precision == Precision::kFp32 ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32F_FAST_TF32;
  want_da_ = spec.wants(0);
  want_db_ = spec.wants(1);
  want_dc_ = c != nullptr && spec.wants(2);
  // dA: without transA, dA [m, k] = dY [m, n] * B'^T (B'^T = B^T stored [k, n], or B stored
  // [n, k] under transB); with transA, dA [k, m] = B' dY^T.
  if (!trans_a) {
    da_ = RowMajorGemm{m, k, n, false, !trans_b, alpha, spec.accumulates(0)};
    da_from_b_first_ = false;  // X = dY, Y = B
  } else {
    da_ = RowMajorGemm{k, m, n, trans_b != 0, true, alpha, spec.accumulates(0)};
    da_from_b_first_ = true;  // X = B, Y = dY
  }
  // dB: without transB, dB [k, n] = A'^T dY; with transB, dB [n, k] = dY^T A'.
  if (!trans_b) {
    db_ = RowMajorGemm{k, n, m, trans_a == 0, false, alpha, spec.accumulates(1)};
    db_from_dy_first_ = false;  // X = A, Y = dY
  } else {
    db_ = RowMajorGemm{n, k, m, true, trans_a != 0, alpha, spec.accumulates(1)};
    db_from_dy_first_ = true;  // X = dY, Y = A
  }
  if (want_dc_) {
    PS_ASSIGN_OR_RETURN(dc_plan_, plan_broadcast_backward(c->shape, Shape{m, n}));
    dc_count_ = c->numel();
    beta_ = beta;
    acc_dc_ = spec.accumulates(2);
    if (acc_dc_) workspace_ = round_up_256(static_cast<size_t>(dc_count_) * 4);
    PS_ASSIGN_OR_RETURN(reduce_, find_kernel(env, "ps_reduce_f32"));
    PS_ASSIGN_OR_RETURN(scale_, find_kernel(env, "ps_scale_f32"));
    PS_ASSIGN_OR_RETURN(accumulate_, find_kernel(env, "ps_accumulate_f32"));
  }
  description_ = str_cat("cublasGemmEx backward (", precision_name(env.precision), "):",
                         want_da_ ? " dA" : "", want_db_ ? " dB" : "",
                         want_dc_ ? " dC by ps_reduce_f32" : "");
  return Status::OK();
}

Status GemmGradOp::enqueue(const LaunchArgs& args) const {
  // inputs {A, B, C?, dY}; outputs {dA, dB, dC?}.
  if (args.inputs.size() < 3 || args.outputs.size() < 2 || (want_dc_ && args.outputs.size() < 3)) {
    return invalid_argument("Gemm backward enqueue: ", args.inputs.size(), " inputs, ",
                            args.outputs.size(), " outputs bound");
  }
  if (args.workspace_bytes < workspace_) {
    return invalid_argument("Gemm backward enqueue: workspace of ", args.workspace_bytes,
                            " bytes, needs ", workspace_);
  }
  const CUdeviceptr a = args.inputs[0], b = args.inputs[1], dy = args.inputs.back();
  if (want_da_) {
    PS_TRY(da_from_b_first_ ? da_.run(blas_, compute_, b, dy, args.outputs[0])
                            : da_.run(blas_, compute_, dy, b, args.outputs[0]));
  }
  if (want_db_) {
    PS_TRY(db_from_dy_first_ ? db_.run(blas_, compute_, dy, a, args.outputs[1])
                             : db_.run(blas_, compute_, a, dy, args.outputs[1]));
  }
  if (want_dc_ && dc_count_ > 0) {
    const CUdeviceptr target = acc_dc_ ? args.workspace : args.outputs[2];
    PS_TRY(launch_reduce(reduce_, args.stream, dc_plan_, dy, target));
    const auto count = static_cast<uint64_t>(dc_count_);
    if (beta_ != 1.0f) {
      PS_TRY(scale_.launch(args.stream, grid_for(dc_count_), kBlock, 0, target, beta_, count));
    }
    if (acc_dc_) {
      PS_TRY(accumulate_.launch(args.stream, grid_for(dc_count_), kBlock, 0, args.outputs[2],
                                target, count));
    }
  }
  return Status::OK();
}

}  // namespace

Result<std::unique_ptr<GpuOp>> build_gemm_grad(const GradSpec& spec, const OpEnv& env) {
  auto op = std::make_unique<GemmGradOp>();
  PS_TRY(op->init(spec, env));
  return std::unique_ptr<GpuOp>(std::move(op));
}

}  // namespace ps::models::gpu
