// Plan-time shape analysis of MatMul's backward (grad_matmul.cc): pure functions, no device,
// tested on the CPU (tests/models/gpu_train_bert_emulation_test.cc runs the plans with a host
// GEMM and the emulated ps_reduce_f32 against cpu::matmul_backward).
//
// From the forward's strided batches (matmul_plan.h): dA[b] = dY[b] B[b]^T and dB[b] = A[b]^T
// dY[b] for every output batch entry b. When each matrix of an operand is used by exactly one
// batch entry (no broadcast; BERT's attention products, and the linear layers' folded
// [B*S, K] x [K, N], whose dB is then ONE GEMM over B*S rows), the products are written
// straight into the gradient (beta = 1 to accumulate). Otherwise (the operand was broadcast
// over batch dimensions) they are written per output batch entry into a workspace buffer of
// the full batch shape and summed to the operand's shape by ps_reduce_f32.
#pragma once

#include <cstdint>
#include <vector>

#include "common/shape.h"
#include "common/status.h"
#include "models/gpu/index_plan.h"

namespace ps::models::gpu {

// Which of the backward's inputs a GEMM operand is: the forward's A or B, or dY.
enum class GradOperand { kA, kB, kDy };

// Row-major out[j] = op(X[j]) op(Y[j]) for j < count, op(X) [m, k], op(Y) [k, n]; X stored
// [m, k] (or [k, m] when trans_x), Y stored [k, n] (or [n, k] when trans_y); matrix j of each
// operand at offset + j * stride (elements; stride 0: one matrix for every j).
struct StridedGemm {
  GradOperand x = GradOperand::kDy, y = GradOperand::kB;
  int64_t m = 0, n = 0, k = 0;
  bool trans_x = false, trans_y = false;
  int64_t count = 1;
  int64_t x_offset = 0, y_offset = 0, out_offset = 0;
  int64_t x_stride = 0, y_stride = 0, out_stride = 0;
};

// One gradient. dA: X = dY, Y = B (trans_y; MatMulTransB's B is stored [N, K]: not
// transposed). dB: X = A (trans_x), Y = dY; MatMulTransB's dB [N, K] = dY^T A: X = dY
// (trans_x), Y = A.
struct MatmulGradPart {
  std::vector<StridedGemm> gemms;
  int64_t count = 0;  // elements of the gradient (its operand's)
  // The gemms write a buffer of full_count elements (full batch shape x the operand's matrix)
  // that `reduce` sums to the operand's shape; else they write the gradient itself.
  bool reduce = false;
  int64_t full_count = 0;
  ReducePlan reduce_plan;
};

struct MatmulGradPlan {
  MatmulGradPart da, db;
};

// numpy MatMul of A and B (1-D operands promoted; their gradients have the operand's shape);
// with trans_b, MatMulTransB's (B 2-D [N, K], matmul_plan.h's plan_matmul_trans_b).
// Errors: those of plan_matmul (plan_matmul_trans_b); an empty operand (kUnsupported).
Result<MatmulGradPlan> plan_matmul_backward(const Shape& a, const Shape& b, bool trans_b = false);

}  // namespace ps::models::gpu
