// Plan-time shape analysis of the matrix products (Gemm, MatMul, MatMulBias): pure functions,
// no device needed, tested on the CPU. The result says how the product maps onto cuBLASLt's
// strided batches: a batch dimension where each operand is either full or broadcast becomes one
// strided batch (stride 0 for the broadcast operand); batch dimensions that mix the two are
// iterated, one matmul call per precomputed offset triple. A weight matrix shared by every
// batch (B 2-D, A contiguous [..., M, K]) folds A's batch into M: one large GEMM.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "common/shape.h"
#include "common/status.h"

namespace ps::models::gpu {

// Row-major product Y[b] = op(A[b]) x op(B[b]) for every batch entry b; element offsets.
struct MatmulPlan {
  int64_t m = 0;
  int64_t n = 0;
  int64_t k = 0;
  bool trans_a = false;  // A is stored [K, M] (Gemm's transA)
  bool trans_b = false;  // B is stored [N, K] (Gemm's transB)
  // One strided batch per call: batch_count products, operand i's matrix j at
  // base_i + j * stride_i (stride 0: the same matrix for every j).
  int64_t batch_count = 1;
  int64_t stride_a = 0;
  int64_t stride_b = 0;
  int64_t stride_y = 0;
  // The calls: {A, B, Y} base offsets, in elements. At least one ({0, 0, 0}).
  std::vector<std::array<int64_t, 3>> calls;
  Shape out_shape;
};

// numpy matmul of A and B (ONNX MatMul): 1-D operands promoted (and the added dimension
// dropped from the output), batch dimensions broadcast. Errors: kInvalidArgument for rank-0
// operands, differing inner dimensions or batch dimensions that do not broadcast (naming the
// shapes).
Result<MatmulPlan> plan_matmul(const Shape& a, const Shape& b);

// MatMulTransB (docs/operators.md): matmul(A, B^T) for a 2-D B stored [N, K] (a linear layer's
// weight as PyTorch keeps it), A with numpy matmul's batching: plan_matmul(A, [K, N]) with B
// read transposed (trans_b; the shared B folds A's batch into M). Errors: B not 2-D, and
// plan_matmul's.
Result<MatmulPlan> plan_matmul_trans_b(const Shape& a, const Shape& b);

// ONNX Gemm: A and B 2-D (transA/transB as given), output [M, N]. Errors as plan_matmul.
Result<MatmulPlan> plan_gemm(const Shape& a, const Shape& b, bool trans_a, bool trans_b);

// The largest power of two (at most 256) dividing every one of `element_offsets` times 4 (the
// bytes of a float32): the alignment of pointers at those offsets from 256-byte aligned bases.
uint32_t float_offset_alignment(std::initializer_list<int64_t> element_offsets);

// The largest power of two (at most 256) dividing the byte offset of every matrix operand
// `which` (0: A, 1: B, 2: Y) addresses in `plan`, given 256-byte aligned base pointers and
// float32 elements: the alignment cuBLASLt may assume.
uint32_t operand_alignment(const MatmulPlan& plan, int which);

}  // namespace ps::models::gpu
