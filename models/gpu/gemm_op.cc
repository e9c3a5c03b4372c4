// Gemm, MatMul, MatMulBias and MatMulScale (alpha) on cuBLASLt.
//
// Row-major ONNX operands meet column-major cuBLASLt through the transpose identity: a
// row-major [R, C] matrix is a column-major [C, R] one, so Y = A x B (row-major) is computed as
// Y^T = B^T x A^T (column-major) with cuBLASLt's "A" = our B and "B" = our A, no copies.
// Batches are strided batches (matmul_plan.h). MatMulBias and Gemm with a bias-like C and
// beta = 1 use the BIAS epilogue (bias over the rows of Y^T = the last dim of Y). Any other C
// is broadcast into Y first (ps_dnn_broadcast_2d_f32) and added with beta (C = D in place).
// Precision: CUBLAS_COMPUTE_32F (strict fp32) or CUBLAS_COMPUTE_32F_FAST_TF32. The algorithm:
// cuBLASLt's heuristic candidates timed once on plan scratch, cached per shape.
#include <cublasLt.h>

#include <array>
#include <map>
#include <mutex>
#include <optional>

#include "cuda/blas.h"
#include "cuda/module.h"
#include "cuda/stream.h"
#include "models/cpu/op_context.h"
#include "models/gpu/dnn_builders.h"
#include "models/gpu/matmul_plan.h"
#include "models/gpu/plan_timing.h"
#include "models/gpu/runtime.h"

namespace ps::models::gpu {
namespace {

constexpr size_t kLtWorkspaceCap = size_t{32} << 20;
constexpr int kHeuristicCandidates = 6;

struct DestroyMatmulDesc {
  void operator()(cublasLtMatmulDesc_t d) const { cublasLtMatmulDescDestroy(d); }
};
struct DestroyLayout {
  void operator()(cublasLtMatrixLayout_t d) const { cublasLtMatrixLayoutDestroy(d); }
};
struct DestroyPreference {
  void operator()(cublasLtMatmulPreference_t d) const { cublasLtMatmulPreferenceDestroy(d); }
};
using MatmulDesc = cuda::UniqueHandle<cublasLtMatmulDesc_t, DestroyMatmulDesc>;
using Layout = cuda::UniqueHandle<cublasLtMatrixLayout_t, DestroyLayout>;
using Preference = cuda::UniqueHandle<cublasLtMatmulPreference_t, DestroyPreference>;

Result<Layout> make_layout(uint64_t rows, uint64_t cols, int64_t ld, int64_t batch_count,
                           int64_t batch_stride) {
  cublasLtMatrixLayout_t raw = nullptr;
  CUBLAS_TRY(cublasLtMatrixLayoutCreate(&raw, CUDA_R_32F, rows, cols, ld));
  Layout layout(raw);
  if (batch_count > 1) {
    const int32_t count = static_cast<int32_t>(batch_count);
    CUBLAS_TRY(cublasLtMatrixLayoutSetAttribute(raw, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                                                sizeof(count)));
    CUBLAS_TRY(cublasLtMatrixLayoutSetAttribute(raw, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                &batch_stride, sizeof(batch_stride)));
  }
  return layout;
}

struct AlgoChoice {
  cublasLtMatmulAlgo_t algo{};
  size_t workspace_bytes = 0;
  int candidates = 0;
};
std::mutex& algo_mutex() {
  static std::mutex m;
  return m;
}
std::map<std::string, AlgoChoice>& algo_cache() {
  static std::map<std::string, AlgoChoice> c;
  return c;
}

size_t round_up(size_t n) { return (n + 255) & ~size_t{255}; }

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
  MatmulOp(MatmulPlan plan, cublasLtHandle_t lt) : plan_(std::move(plan)), lt_(lt) {}

  // Plan-time construction: descriptors, layouts, algorithm.
  Status init(const OpEnv& env, Addend addend, size_t addend_input, float alpha, float beta,
              const Shape& c_shape, std::string_view what);

  size_t workspace_bytes() const override { return workspace_bytes_; }
  Status enqueue(const LaunchArgs& args) const override;
  std::string describe() const override { return description_; }

 private:
  // Queues the whole product; pointers already resolved.
  Status run(const cuda::Stream& stream, CUdeviceptr a, CUdeviceptr b, CUdeviceptr c, CUdeviceptr y,
             CUdeviceptr ws, size_t ws_bytes, const cublasLtMatmulAlgo_t* algo) const;

  MatmulPlan plan_;
  cublasLtHandle_t lt_;
  bool empty_ = false;
  Addend addend_ = Addend::kNone;
  size_t addend_input_ = 2;
  float alpha_ = 1.0f, beta_ = 0.0f;
  MatmulDesc desc_;
  Layout lt_a_, lt_b_, lt_d_;
  cublasLtMatmulAlgo_t algo_{};
  size_t workspace_bytes_ = 0;
  cuda::Kernel broadcast_;
  int64_t c_row_stride_ = 0, c_col_stride_ = 0;
  std::string description_;
};

Status MatmulOp::run(const cuda::Stream& stream, CUdeviceptr a, CUdeviceptr b, CUdeviceptr c,
                     CUdeviceptr y, CUdeviceptr ws, size_t ws_bytes,
                     const cublasLtMatmulAlgo_t* algo) const {
  if (addend_ == Addend::kBroadcast) {
    const uint64_t total = static_cast<uint64_t>(plan_.m * plan_.n);
    PS_TRY(broadcast_.launch(stream, cuda::blocks_for(total, 256), 256, 0, y, c,
                             static_cast<uint64_t>(plan_.m), static_cast<uint64_t>(plan_.n),
                             c_row_stride_, c_col_stride_));
  }
  if (addend_ == Addend::kBias) {
    const void* bias = reinterpret_cast<const void*>(c);
    CUBLAS_TRY(cublasLtMatmulDescSetAttribute(desc_.get(), CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                              sizeof(bias)));
  }
  const CUdeviceptr c_operand = addend_ == Addend::kFull ? c : y;
  for (const auto& call : plan_.calls) {
    // cuBLASLt's A is our B and its B our A (the transpose identity above).
    const auto lt_a = reinterpret_cast<const void*>(b + static_cast<CUdeviceptr>(call[1]) * 4);
    const auto lt_b = reinterpret_cast<const void*>(a + static_cast<CUdeviceptr>(call[0]) * 4);
    const CUdeviceptr d = y + static_cast<CUdeviceptr>(call[2]) * 4;
    const CUdeviceptr c_at = c_operand == y ? d : c_operand;
    CUBLAS_TRY(cublasLtMatmul(lt_, desc_.get(), &alpha_, lt_a, lt_a_.get(), lt_b, lt_b_.get(),
                              &beta_, reinterpret_cast<const void*>(c_at), lt_d_.get(),
                              reinterpret_cast<void*>(d), lt_d_.get(), algo,
                              reinterpret_cast<void*>(ws), ws_bytes, stream.get()));
  }
  return Status::OK();
}

Status MatmulOp::enqueue(const LaunchArgs& args) const {
  if (args.inputs.size() < 2 || args.outputs.empty()) {
    return invalid_argument("matmul enqueue: ", args.inputs.size(), " inputs bound");
  }
  if (empty_) return Status::OK();
  if (args.workspace_bytes < workspace_bytes_) {
    return invalid_argument("matmul enqueue: workspace of ", args.workspace_bytes,
                            " bytes, the op needs ", workspace_bytes_);
  }
  const CUdeviceptr c = addend_ == Addend::kNone ? 0 : args.inputs[addend_input_];
  return run(args.stream, args.inputs[0], args.inputs[1], c, args.outputs[0], args.workspace,
             workspace_bytes_, &algo_);
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

  const bool tf32 = env.precision == Precision::kTf32;
  cublasLtMatmulDesc_t raw = nullptr;
  CUBLAS_TRY(cublasLtMatmulDescCreate(
      &raw, tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, CUDA_R_32F));
  desc_ = MatmulDesc(raw);
  const cublasOperation_t op_a = plan_.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = plan_.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  CUBLAS_TRY(cublasLtMatmulDescSetAttribute(raw, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof(op_a)));
  CUBLAS_TRY(cublasLtMatmulDescSetAttribute(raw, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof(op_b)));
  if (addend == Addend::kBias) {
    const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    CUBLAS_TRY(cublasLtMatmulDescSetAttribute(raw, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue,
                                              sizeof(epilogue)));
  }
  const uint64_t m = static_cast<uint64_t>(plan_.m);
  const uint64_t n = static_cast<uint64_t>(plan_.n);
  const uint64_t k = static_cast<uint64_t>(plan_.k);
  const int64_t bc = plan_.batch_count;
  PS_ASSIGN_OR_RETURN(lt_a_, plan_.trans_b ? make_layout(k, n, plan_.k, bc, plan_.stride_b)
                                           : make_layout(n, k, plan_.n, bc, plan_.stride_b));
  PS_ASSIGN_OR_RETURN(lt_b_, plan_.trans_a ? make_layout(m, k, plan_.m, bc, plan_.stride_a)
                                           : make_layout(k, m, plan_.k, bc, plan_.stride_a));
  PS_ASSIGN_OR_RETURN(lt_d_, make_layout(n, m, plan_.n, bc, plan_.stride_y));

  // Alignments: cuBLASLt's A is our B (operand 1), its B our A (operand 0).
  const uint32_t align_a = operand_alignment(plan_, 1);
  const uint32_t align_b = operand_alignment(plan_, 0);
  const uint32_t align_d = operand_alignment(plan_, 2);
  cublasLtMatmulPreference_t pref_raw = nullptr;
  CUBLAS_TRY(cublasLtMatmulPreferenceCreate(&pref_raw));
  Preference pref(pref_raw);
  const uint64_t cap = kLtWorkspaceCap;
  CUBLAS_TRY(cublasLtMatmulPreferenceSetAttribute(
      pref_raw, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &cap, sizeof(cap)));
  CUBLAS_TRY(cublasLtMatmulPreferenceSetAttribute(
      pref_raw, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a, sizeof(align_a)));
  CUBLAS_TRY(cublasLtMatmulPreferenceSetAttribute(
      pref_raw, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b, sizeof(align_b)));
  CUBLAS_TRY(cublasLtMatmulPreferenceSetAttribute(
      pref_raw, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_d, sizeof(align_d)));
  CUBLAS_TRY(cublasLtMatmulPreferenceSetAttribute(
      pref_raw, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_d, sizeof(align_d)));

  const std::string key =
      str_cat("dev", env.runtime.device().ordinal(), "|", precision_name(env.precision), "|m", m,
              "n", n, "k", k, "t", plan_.trans_a, plan_.trans_b, "|b", bc, ",", plan_.stride_a, ",",
              plan_.stride_b, ",", plan_.stride_y, "|e", static_cast<int>(addend), beta_ != 0, "|a",
              align_a, ",", align_b, ",", align_d);
  std::optional<AlgoChoice> cached;
  {
    std::lock_guard<std::mutex> lock(algo_mutex());
    if (auto it = algo_cache().find(key); it != algo_cache().end()) cached = it->second;
  }
  AlgoChoice choice;
  if (cached) {
    choice = *cached;
  } else {
    std::array<cublasLtMatmulHeuristicResult_t, kHeuristicCandidates> results{};
    int returned = 0;
    CUBLAS_TRY(cublasLtMatmulAlgoGetHeuristic(lt_, raw, lt_a_.get(), lt_b_.get(), lt_d_.get(),
                                              lt_d_.get(), pref_raw, kHeuristicCandidates,
                                              results.data(), &returned));
    if (returned <= 0) {
      return unsupported("cuBLASLt has no algorithm for ", what, " (m ", m, ", n ", n, ", k ", k,
                         ", batch ", bc, ")");
    }
    choice.candidates = returned;
    choice.algo = results[0].algo;
    choice.workspace_bytes = round_up(results[0].workspaceSize);
    if (returned > 1) {
      // Time the candidates once on scratch: A | B | C/bias | Y | workspace (any contents).
      auto extent = [&](int which, int64_t matrix) {
        int64_t last = 0;
        for (const auto& call : plan_.calls)
          last = std::max(last, call[static_cast<size_t>(which)]);
        const int64_t stride = which == 0   ? plan_.stride_a
                               : which == 1 ? plan_.stride_b
                                            : plan_.stride_y;
        return static_cast<size_t>(last + stride * std::max<int64_t>(bc - 1, 0) + matrix) * 4;
      };
      const size_t a_bytes = extent(0, plan_.m * plan_.k);
      const size_t b_bytes = extent(1, plan_.k * plan_.n);
      const size_t y_bytes = extent(2, plan_.m * plan_.n);
      const size_t c_bytes =
          addend == Addend::kNone ? 0 : static_cast<size_t>(plan_.m * plan_.n) * 4;
      const size_t b_at = round_up(a_bytes);
      const size_t c_at = b_at + round_up(b_bytes);
      const size_t y_at = c_at + round_up(c_bytes);
      const size_t ws_at = y_at + round_up(y_bytes);
      PS_ASSIGN_OR_RETURN(const CUdeviceptr s, env.runtime.plan_scratch(ws_at + kLtWorkspaceCap));
      const cuda::Stream& stream = env.runtime.plan_stream();
      float best_ms = 0;
      bool have_best = false;
      for (int i = 0; i < returned; ++i) {
        const cublasLtMatmulHeuristicResult_t& r = results[static_cast<size_t>(i)];
        Result<float> ms = time_candidate(stream, 3, [&] {
          return run(stream, s, s + b_at, s + c_at, s + y_at, s + ws_at, r.workspaceSize, &r.algo);
        });
        if (!ms.ok()) {
          (void)stream.synchronize();
          continue;
        }
        if (!have_best || *ms < best_ms) {
          have_best = true;
          best_ms = *ms;
          choice.algo = r.algo;
          choice.workspace_bytes = round_up(r.workspaceSize);
        }
      }
    }
    std::lock_guard<std::mutex> lock(algo_mutex());
    algo_cache().emplace(key, choice);
  }
  algo_ = choice.algo;
  workspace_bytes_ = choice.workspace_bytes;
  const char* addend_text = addend == Addend::kBias        ? ", bias epilogue"
                            : addend == Addend::kFull      ? ", + beta*C"
                            : addend == Addend::kBroadcast ? ", broadcast C + beta*C"
                                                           : "";
  description_ = str_cat("cublasLt ", what, " m=", m, " n=", n, " k=", k, " batch=", bc, "x",
                         plan_.calls.size(), " (", tf32 ? "tf32" : "fp32", ")",
                         alpha_ != 1.0f ? str_cat(", alpha ", alpha_) : std::string(), addend_text,
                         ", ws ", workspace_bytes_, " B", cached ? ", cached choice" : "");
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
  const bool with_bias = spec.op == "MatMulBias";
  const bool scaled = spec.op == "MatMulScale";
  const bool trans_b = spec.op == "MatMulTransB";
  const std::string op(spec.op);
  const cpu::OpContext ctx(op, spec.attrs, {}, {});
  PS_TRY(scaled ? ctx.check_attrs({"alpha"}) : ctx.check_attrs({}));
  PS_ASSIGN_OR_RETURN(const float alpha, ctx.attr_float("alpha", 1.0f));
  const size_t arity = with_bias ? 3 : 2;
  if (spec.inputs.size() != arity) {
    return invalid_argument("needs ", arity, " inputs, got ", spec.inputs.size());
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
  auto matmul = std::make_unique<MatmulOp>(std::move(plan), env.runtime.blas_lt());
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
  auto gemm = std::make_unique<MatmulOp>(std::move(plan), env.runtime.blas_lt());
  PS_TRY(gemm->init(env, addend, 2, alpha, beta, c_shape, "Gemm"));
  return std::unique_ptr<GpuOp>(std::move(gemm));
}

}  // namespace ps::models::gpu
