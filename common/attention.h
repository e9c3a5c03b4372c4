// AttentionScores and AttentionContext, two of our ops (made by
// onnx_loader/passes/fuse_attention.h): multi-head attention's two batched products reading the
// heads IN PLACE in a fused projection's product X [B, S, C] (fuse_head_projections' query, key
// and value), where before three HeadSlice copies and a Transpose moved them. A range of
// columns [start, start + size) of X holds `heads` heads of D = size / heads columns each, head
// h in columns start + h * D ... start + h * D + D - 1:
//   AttentionScores(X)       Y [B, H, S, S]  Y[b, h, i, j] = alpha * sum_d Q[b, i, h, d] K[b, j, h,
//   d]
//                            with Q at q_start, K at k_start (attributes heads, size, q_start,
//                            k_start, alpha): MatMulScale(HeadSlice(X, q_start, perm 0,2,1,3),
//                            HeadSlice(X, k_start, perm 0,2,3,1), alpha)
//   AttentionContext(P, X)   Y [B, M, H, D]  Y[b, i, h, d] = sum_j P[b, h, i, j] V[b, j, h, d]
//                            for P [B, H, M, S], V at v_start (attributes heads, size, v_start):
//                            Transpose(MatMul(P, HeadSlice(X, v_start, perm 0,2,1,3)), 0,2,1,3)
// Their gradients write X's gradient in their own column ranges only (zeros elsewhere; the
// other readers of X add theirs). The geometry is shared by the CPU references, the GPU ops and
// the pass.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "common/shape.h"
#include "common/status.h"

namespace ps {

struct AttentionLayout {
  int64_t batch = 0;      // B
  int64_t seq = 0;        // S: X's rows per batch entry (the keys' and values' length)
  int64_t columns = 0;    // C: X's last dim (the row stride of every head's matrix)
  int64_t heads = 0;      // H
  int64_t head_size = 0;  // D = size / heads
};

// The largest head FusedAttention takes: the GPU kernel's (cuda/kernels/attention.cu holds a
// warp's queries and output in registers, 64 columns at most). fuse_attention_softmax leaves
// larger heads to the three ops, so an imported model runs on every backend.
inline constexpr int64_t kFusedAttentionMaxHeadSize = 64;

// Checks X (rank 3, [B, S, C]), heads and size, and that every range [start, start + size) of
// `starts` fits in C. Errors (kInvalidArgument, naming the op `what`): X not rank 3 or empty;
// heads < 1, size < 1 or heads not dividing size; a range outside [0, C).
Result<AttentionLayout> attention_layout(const char* what, const Shape& x, int64_t heads,
                                         int64_t size, std::initializer_list<int64_t> starts);

// AttentionContext's P against the layout: rank 4 [B, H, M, S] with B, H, S the layout's.
// Returns M. Errors (kInvalidArgument): any other shape.
Result<int64_t> attention_context_rows(const AttentionLayout& l, const Shape& p);

}  // namespace ps
