// One cuBLASLt matrix product (a strided batch of them), column-major, with its algorithm
// chosen once per problem: cuBLASLt's heuristic candidates (up to lt_candidates(), workspace up
// to kLtWorkspaceCap) timed on plan scratch when there are several, the choice cached per
// device, precision and problem. The forward products (gemm_op.cc) and MatMul's backward
// (grad_matmul.cc) describe their row-major products to it through the transpose identity (a
// row-major [R, C] matrix is a column-major [C, R] one).
//
// Why the backward is here too: cublasGemmStridedBatchedEx with CUBLAS_GEMM_DEFAULT, which it
// used, picks by cuBLAS's own rules within whatever workspace the trainer's stream has; on the
// H100 BERT-base's linear-layer gradients ran at ~85-120 TFLOPS (TF32) against ~150-200 for
// the same shapes forward through this chooser.
#pragma once

#include <cublasLt.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/status.h"
#include "cuda/blas.h"
#include "cuda/stream.h"
#include "models/gpu/op.h"

namespace ps::models::gpu {

inline constexpr size_t kLtWorkspaceCap = size_t{32} << 20;
inline constexpr int kLtCandidates = 6;
inline constexpr int kLtCandidatesMax = 32;

// How many heuristic candidates a new problem times: kLtCandidates, or PS_LT_CANDIDATES (1 to
// kLtCandidatesMax) from the environment, read once per process (a measuring knob: more
// candidates, longer plans).
int lt_candidates();

// D[j] = alpha op(A[j]) op(B[j]) + beta C[j] (+ bias) for j < batch, float32, column-major:
// op(A) [m, k], op(B) [k, n], D and C [m, n] with leading dimension ldd. A is stored [m, k]
// (or [k, m] when trans_a) with leading dimension lda, B [k, n] (or [n, k]) with ldb; matrix
// j of an operand at its pointer + j * stride elements (stride 0: one matrix for every j).
struct LtProblem {
  int64_t m = 0, n = 0, k = 0;
  bool trans_a = false, trans_b = false;
  int64_t lda = 0, ldb = 0, ldd = 0;
  int64_t batch = 1;
  int64_t stride_a = 0, stride_b = 0, stride_d = 0;
  // The byte alignment every call's pointer of the operand has (a power of two, at most 256).
  uint32_t align_a = 256, align_b = 256, align_d = 256;
  bool reads_c = false;  // beta may be non-zero (C's layout is D's)
  // The operands run() takes are device arrays of `batch` pointers each (cuBLASLt's
  // CUBLASLT_BATCH_MODE_POINTER_ARRAY): matrix j of an operand wherever its array says (the
  // strides unused; align_*: every pointer's alignment). head_gemm.h's heads read in place.
  bool pointer_array = false;
  enum class Epilogue {
    kNone,
    kBias,       // CUBLASLT_EPILOGUE_BIAS: a vector of m floats added to every column of D
    kBiasGradB,  // CUBLASLT_EPILOGUE_BGRADB: op(B) summed over k written to a vector of n
  };
  Epilogue epilogue = Epilogue::kNone;
};

// A row-major product out[j] = op(X[j]) op(Y[j]) for j < batch: op(X) [m, k], op(Y) [k, n],
// out [m, n]; X stored [m, k] (or [k, m] when trans_x), Y [k, n] (or [n, k] when trans_y), every
// matrix contiguous; matrix j of an operand at its pointer + j * stride elements; align_*: the
// operands' pointer alignments in bytes.
struct RowMajorProduct {
  int64_t m = 0, n = 0, k = 0;
  bool trans_x = false, trans_y = false;
  int64_t batch = 1;
  int64_t stride_x = 0, stride_y = 0, stride_out = 0;
  uint32_t align_x = 256, align_y = 256, align_out = 256;
};

// The transpose identity: a row-major [R, C] matrix is a column-major [C, R] one, so out^T =
// op(Y)^T op(X)^T is the column-major problem, with cuBLASLt's A = Y and B = X (each transposed
// exactly when the row-major operand is). Run it with LtMatmul::run(..., a = Y, b = X, ...).
LtProblem column_major_problem(const RowMajorProduct& r);

class LtMatmul {
 public:
  LtMatmul() = default;
  LtMatmul(LtMatmul&&) = default;
  LtMatmul& operator=(LtMatmul&&) = default;

  // Descriptors, layouts and the algorithm (timed on env.runtime's plan stream and scratch
  // unless cached). Errors: kUnsupported when cuBLASLt offers no algorithm (naming `what` and
  // the problem; BGRADB is not offered for every layout: callers fall back), cuBLAS's errors.
  Status init(const OpEnv& env, const LtProblem& problem, std::string_view what);

  // Queues the product on `stream`. `bias`: the vector the epilogue reads or writes (kNone:
  // unused); `workspace`: at least workspace_bytes().
  Status run(const cuda::Stream& stream, float alpha, CUdeviceptr a, CUdeviceptr b, float beta,
             CUdeviceptr c, CUdeviceptr d, CUdeviceptr bias, CUdeviceptr workspace) const;

  size_t workspace_bytes() const { return workspace_bytes_; }
  // "m=.. n=.. k=.. batch=.. (tf32)[, BGRADB][, split-K S], ws N B[, cached choice]" (a
  // split-K the heuristic's candidate came with).
  std::string describe() const;

 private:
  Status run_with(const cuda::Stream& stream, float alpha, CUdeviceptr a, CUdeviceptr b, float beta,
                  CUdeviceptr c, CUdeviceptr d, CUdeviceptr bias, CUdeviceptr workspace,
                  size_t workspace_bytes, const cublasLtMatmulAlgo_t* algo) const;

  struct DestroyDesc {
    void operator()(cublasLtMatmulDesc_t d) const { cublasLtMatmulDescDestroy(d); }
  };
  struct DestroyLayout {
    void operator()(cublasLtMatrixLayout_t l) const { cublasLtMatrixLayoutDestroy(l); }
  };
  using Desc = cuda::UniqueHandle<cublasLtMatmulDesc_t, DestroyDesc>;
  using Layout = cuda::UniqueHandle<cublasLtMatrixLayout_t, DestroyLayout>;
  static Result<Layout> make_layout(int64_t rows, int64_t cols, int64_t ld, int64_t batch,
                                    int64_t stride, bool pointer_array);

  LtProblem problem_;
  cublasLtHandle_t lt_ = nullptr;
  Desc desc_;
  Layout a_, b_, d_;
  cublasLtMatmulAlgo_t algo_{};
  size_t workspace_bytes_ = 0;
  bool tf32_ = false;
  bool cached_ = false;
};

}  // namespace ps::models::gpu
