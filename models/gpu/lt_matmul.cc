#include "models/gpu/lt_matmul.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <vector>

#include "cuda/copy.h"
#include "models/gpu/choice_cache.h"
#include "models/gpu/plan_timing.h"
#include "models/gpu/runtime.h"

namespace ps::models::gpu {
namespace {

struct DestroyPreference {
  void operator()(cublasLtMatmulPreference_t p) const { cublasLtMatmulPreferenceDestroy(p); }
};
using Preference = cuda::UniqueHandle<cublasLtMatmulPreference_t, DestroyPreference>;

struct AlgoChoice {
  cublasLtMatmulAlgo_t algo{};
  size_t workspace_bytes = 0;
};
ChoiceCache<AlgoChoice>& choice_cache() {
  static ChoiceCache<AlgoChoice> c;
  return c;
}

// An int32 configuration attribute of an algorithm (-1 when cuBLASLt does not say).
int32_t algo_config(const cublasLtMatmulAlgo_t& algo,
                    cublasLtMatmulAlgoConfigAttributes_t attribute) {
  int32_t value = -1;
  size_t written = 0;
  (void)cublasLtMatmulAlgoConfigGetAttribute(&algo, attribute, &value, sizeof(value), &written);
  return value;
}

// The split-K count an algorithm is configured with (1: none).
int split_k_of(const cublasLtMatmulAlgo_t& algo) {
  return std::max(1, static_cast<int>(algo_config(algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM)));
}

// PS_LT_LOG=1 in the environment (read once): every timed candidate on stderr (the problem,
// cuBLASLt's algorithm id, tile and split-K, workspace, time and the TFLOPS it reaches), to see
// which products miss their floor. A measuring knob.
void log_candidate(std::string_view what, const LtProblem& p,
                   const cublasLtMatmulHeuristicResult_t& r, float ms) {
  static const bool on = [] {
    const char* v = std::getenv("PS_LT_LOG");
    return v != nullptr && v[0] == '1';
  }();
  if (!on) return;
  auto config = [&r](cublasLtMatmulAlgoConfigAttributes_t a) { return algo_config(r.algo, a); };
  const double flops = 2.0 * static_cast<double>(p.m) * static_cast<double>(p.n) *
                       static_cast<double>(p.k) * static_cast<double>(p.batch);
  std::fprintf(stderr,
               "lt %.*s m=%lld n=%lld k=%lld batch=%lld: algo %d tile %d split-K %d ws %zu B "
               "%.4f ms %.1f TFLOPS\n",
               static_cast<int>(what.size()), what.data(), static_cast<long long>(p.m),
               static_cast<long long>(p.n), static_cast<long long>(p.k),
               static_cast<long long>(p.batch), config(CUBLASLT_ALGO_CONFIG_ID),
               config(CUBLASLT_ALGO_CONFIG_TILE_ID), config(CUBLASLT_ALGO_CONFIG_SPLITK_NUM),
               r.workspaceSize, ms, ms > 0 ? flops / (ms * 1e9) : 0.0);
}

// Bytes a stored operand spans: `batch` matrices of `cols` columns of leading dimension `ld`.
size_t operand_bytes(int64_t rows, int64_t cols, int64_t ld, int64_t batch, int64_t stride) {
  const int64_t one = ld * (cols - 1) + rows;
  return static_cast<size_t>(one + stride * std::max<int64_t>(batch - 1, 0)) * 4;
}

std::string problem_key(const OpEnv& env, const LtProblem& p) {
  return str_cat("dev", env.runtime.device().ordinal(), "|", precision_name(env.precision), "|m",
                 p.m, "n", p.n, "k", p.k, "t", p.trans_a, p.trans_b, "|ld", p.lda, ",", p.ldb, ",",
                 p.ldd, "|b", p.batch, ",", p.stride_a, ",", p.stride_b, ",", p.stride_d, "|c",
                 p.reads_c, static_cast<int>(p.epilogue), "|a", p.align_a, ",", p.align_b, ",",
                 p.align_d, p.pointer_array ? "|pointers" : "");
}

}  // namespace

LtProblem column_major_problem(const RowMajorProduct& r) {
  LtProblem p;
  p.m = r.n;
  p.n = r.m;
  p.k = r.k;
  p.trans_a = r.trans_y;
  p.trans_b = r.trans_x;
  p.lda = r.trans_y ? r.k : r.n;
  p.ldb = r.trans_x ? r.m : r.k;
  p.ldd = r.n;
  p.batch = r.batch;
  p.stride_a = r.stride_y;
  p.stride_b = r.stride_x;
  p.stride_d = r.stride_out;
  p.align_a = r.align_y;
  p.align_b = r.align_x;
  p.align_d = r.align_out;
  return p;
}

Result<LtMatmul::Layout> LtMatmul::make_layout(int64_t rows, int64_t cols, int64_t ld,
                                               int64_t batch, int64_t stride, bool pointer_array) {
  cublasLtMatrixLayout_t raw = nullptr;
  CUBLAS_TRY(cublasLtMatrixLayoutCreate(&raw, CUDA_R_32F, static_cast<uint64_t>(rows),
                                        static_cast<uint64_t>(cols), ld));
  Layout layout(raw);
  if (pointer_array) {
    const uint32_t mode = CUBLASLT_BATCH_MODE_POINTER_ARRAY;
    CUBLAS_TRY(cublasLtMatrixLayoutSetAttribute(raw, CUBLASLT_MATRIX_LAYOUT_BATCH_MODE, &mode,
                                                sizeof(mode)));
  }
  if (batch > 1 || pointer_array) {
    const auto count = static_cast<int32_t>(batch);
    CUBLAS_TRY(cublasLtMatrixLayoutSetAttribute(raw, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                                                sizeof(count)));
  }
  if (batch > 1 && !pointer_array) {
    CUBLAS_TRY(cublasLtMatrixLayoutSetAttribute(raw, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                &stride, sizeof(stride)));
  }
  return layout;
}

Status LtMatmul::run_with(const cuda::Stream& stream, float alpha, CUdeviceptr a, CUdeviceptr b,
                          float beta, CUdeviceptr c, CUdeviceptr d, CUdeviceptr bias,
                          CUdeviceptr workspace, size_t workspace_bytes,
                          const cublasLtMatmulAlgo_t* algo) const {
  if (problem_.epilogue != LtProblem::Epilogue::kNone) {
    const void* vector = reinterpret_cast<const void*>(bias);
    CUBLAS_TRY(cublasLtMatmulDescSetAttribute(desc_.get(), CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                              &vector, sizeof(vector)));
  }
  const auto ptr = [](CUdeviceptr p) { return reinterpret_cast<void*>(p); };
  CUBLAS_TRY(cublasLtMatmul(lt_, desc_.get(), &alpha, ptr(a), a_.get(), ptr(b), b_.get(), &beta,
                            ptr(problem_.reads_c ? c : d), d_.get(), ptr(d), d_.get(), algo,
                            ptr(workspace), workspace_bytes, stream.get()));
  return Status::OK();
}

Status LtMatmul::run(const cuda::Stream& stream, float alpha, CUdeviceptr a, CUdeviceptr b,
                     float beta, CUdeviceptr c, CUdeviceptr d, CUdeviceptr bias,
                     CUdeviceptr workspace) const {
  return run_with(stream, alpha, a, b, beta, c, d, bias, workspace, workspace_bytes_, &algo_);
}

int lt_candidates() {
  static const int count = [] {
    const char* v = std::getenv("PS_LT_CANDIDATES");
    if (v == nullptr) return kLtCandidates;
    const int n = std::atoi(v);
    return n >= 1 && n <= kLtCandidatesMax ? n : kLtCandidates;
  }();
  return count;
}

Status LtMatmul::init(const OpEnv& env, const LtProblem& p, std::string_view what) {
  if (p.m <= 0 || p.n <= 0 || p.k <= 0 || p.batch <= 0) {
    return internal_error("LtMatmul: an empty product (m ", p.m, ", n ", p.n, ", k ", p.k,
                          ", batch ", p.batch, ")");
  }
  problem_ = p;
  lt_ = env.runtime.blas_lt();
  tf32_ = env.precision == Precision::kTf32;
  cublasLtMatmulDesc_t raw = nullptr;
  CUBLAS_TRY(cublasLtMatmulDescCreate(
      &raw, tf32_ ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, CUDA_R_32F));
  desc_ = Desc(raw);
  const cublasOperation_t op_a = p.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  CUBLAS_TRY(cublasLtMatmulDescSetAttribute(raw, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof(op_a)));
  CUBLAS_TRY(cublasLtMatmulDescSetAttribute(raw, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof(op_b)));
  if (p.epilogue != LtProblem::Epilogue::kNone) {
    const cublasLtEpilogue_t epilogue = p.epilogue == LtProblem::Epilogue::kBias
                                            ? CUBLASLT_EPILOGUE_BIAS
                                            : CUBLASLT_EPILOGUE_BGRADB;
    CUBLAS_TRY(cublasLtMatmulDescSetAttribute(raw, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue,
                                              sizeof(epilogue)));
  }
  const int64_t a_rows = p.trans_a ? p.k : p.m, a_cols = p.trans_a ? p.m : p.k;
  const int64_t b_rows = p.trans_b ? p.n : p.k, b_cols = p.trans_b ? p.k : p.n;
  PS_ASSIGN_OR_RETURN(a_, make_layout(a_rows, a_cols, p.lda, p.batch, p.stride_a, p.pointer_array));
  PS_ASSIGN_OR_RETURN(b_, make_layout(b_rows, b_cols, p.ldb, p.batch, p.stride_b, p.pointer_array));
  PS_ASSIGN_OR_RETURN(d_, make_layout(p.m, p.n, p.ldd, p.batch, p.stride_d, p.pointer_array));

  const std::string key = problem_key(env, p);
  const std::optional<AlgoChoice> cached = choice_cache().find(key);
  cached_ = cached.has_value();
  if (cached) {
    algo_ = cached->algo;
    workspace_bytes_ = cached->workspace_bytes;
    return Status::OK();
  }

  cublasLtMatmulPreference_t pref_raw = nullptr;
  CUBLAS_TRY(cublasLtMatmulPreferenceCreate(&pref_raw));
  Preference pref(pref_raw);
  const uint64_t cap = kLtWorkspaceCap;
  // C is D, or (Gemm's full C) a whole tensor whose alignment is at least D's.
  const std::array<std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t>, 4> aligns = {{
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, p.align_a},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, p.align_b},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, p.align_d},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, p.align_d},
  }};
  CUBLAS_TRY(cublasLtMatmulPreferenceSetAttribute(
      pref_raw, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &cap, sizeof(cap)));
  for (const auto& [attribute, bytes] : aligns) {
    CUBLAS_TRY(cublasLtMatmulPreferenceSetAttribute(pref_raw, attribute, &bytes, sizeof(bytes)));
  }
  std::array<cublasLtMatmulHeuristicResult_t, kLtCandidatesMax> results{};
  int returned = 0;
  CUBLAS_TRY(cublasLtMatmulAlgoGetHeuristic(lt_, raw, a_.get(), b_.get(), d_.get(), d_.get(),
                                            pref_raw, lt_candidates(), results.data(), &returned));
  if (returned <= 0) {
    return unsupported("cuBLASLt has no algorithm for ", what, " (m ", p.m, ", n ", p.n, ", k ",
                       p.k, ", batch ", p.batch, ")");
  }
  AlgoChoice choice{results[0].algo, round_up_256(results[0].workspaceSize)};
  if (returned > 1) {
    // Time the candidates once on scratch: A | B | D (C = D) | bias | workspace, any contents;
    // pointer arrays: each operand's matrices side by side (the strides of one matrix's span),
    // then the three arrays after the workspace.
    const auto stride_of = [&p](int64_t stride, int64_t ld, int64_t cols) {
      return p.pointer_array ? ld * cols : stride;
    };
    const int64_t sa = stride_of(p.stride_a, p.lda, a_cols);
    const int64_t sb = stride_of(p.stride_b, p.ldb, b_cols);
    const int64_t sd = stride_of(p.stride_d, p.ldd, p.n);
    const size_t b_at = round_up_256(operand_bytes(a_rows, a_cols, p.lda, p.batch, sa));
    const size_t d_at = b_at + round_up_256(operand_bytes(b_rows, b_cols, p.ldb, p.batch, sb));
    const size_t bias_at = d_at + round_up_256(operand_bytes(p.m, p.n, p.ldd, p.batch, sd));
    const int64_t vector = p.epilogue == LtProblem::Epilogue::kBias        ? p.m
                           : p.epilogue == LtProblem::Epilogue::kBiasGradB ? p.n
                                                                           : 0;
    const size_t ws_at = bias_at + round_up_256(static_cast<size_t>(vector) * 4);
    const size_t arrays_at = ws_at + kLtWorkspaceCap;
    const size_t array_bytes = round_up_256(static_cast<size_t>(p.batch) * sizeof(uint64_t));
    PS_ASSIGN_OR_RETURN(
        const CUdeviceptr s,
        env.runtime.plan_scratch(arrays_at + (p.pointer_array ? 3 * array_bytes : 0)));
    const cuda::Stream& stream = env.runtime.plan_stream();
    // The operands' addresses as run_with takes them: the matrices, or their pointer arrays.
    CUdeviceptr op_a = s, op_b = s + b_at, op_d = s + d_at;
    if (p.pointer_array) {
      std::vector<uint64_t> arrays(3 * static_cast<size_t>(p.batch));
      for (int64_t j = 0; j < p.batch; ++j) {
        arrays[static_cast<size_t>(j)] = s + static_cast<uint64_t>(j * sa) * 4;
        arrays[static_cast<size_t>(p.batch + j)] = s + b_at + static_cast<uint64_t>(j * sb) * 4;
        arrays[static_cast<size_t>(2 * p.batch + j)] = s + d_at + static_cast<uint64_t>(j * sd) * 4;
      }
      op_a = s + arrays_at;
      op_b = op_a + array_bytes;
      op_d = op_b + array_bytes;
      for (int i = 0; i < 3; ++i) {
        PS_TRY(cuda::copy_to_device_async(op_a + i * array_bytes,
                                          arrays.data() + i * static_cast<size_t>(p.batch),
                                          static_cast<size_t>(p.batch) * sizeof(uint64_t), stream));
      }
      PS_TRY(stream.synchronize());
    }
    std::optional<float> best_ms;
    for (int i = 0; i < returned; ++i) {
      const cublasLtMatmulHeuristicResult_t& r = results[static_cast<size_t>(i)];
      Result<float> ms = time_candidate(stream, 3, [&] {
        return run_with(stream, 1.0f, op_a, op_b, p.reads_c ? 1.0f : 0.0f, op_d, op_d, s + bias_at,
                        s + ws_at, r.workspaceSize, &r.algo);
      });
      log_candidate(what, p, r, ms.ok() ? *ms : -1.0f);
      if (!ms.ok()) {
        (void)stream.synchronize();
        continue;
      }
      if (!best_ms || *ms < *best_ms) {
        best_ms = *ms;
        choice = AlgoChoice{r.algo, round_up_256(r.workspaceSize)};
      }
    }
  }
  choice_cache().store(key, choice);
  algo_ = choice.algo;
  workspace_bytes_ = choice.workspace_bytes;
  return Status::OK();
}

std::string LtMatmul::describe() const {
  return str_cat("m=", problem_.m, " n=", problem_.n, " k=", problem_.k, " batch=", problem_.batch,
                 " (", tf32_ ? "tf32" : "fp32", ")",
                 problem_.epilogue == LtProblem::Epilogue::kBiasGradB ? ", BGRADB" : "",
                 problem_.pointer_array ? ", pointer arrays" : "",
                 split_k_of(algo_) > 1 ? str_cat(", split-K ", split_k_of(algo_)) : std::string(),
                 ", ws ", workspace_bytes_, " B", cached_ ? ", cached choice" : "");
}

}  // namespace ps::models::gpu
