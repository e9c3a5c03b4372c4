// Parameter blocks of BERT's backward kernels (cuda/kernels/train_bert.cu), shared by nvcc and
// the launchers in models/gpu (grad_bert_ops.cc). Plain trivially copyable structs passed BY
// VALUE as one kernel parameter, filled once at plan time (grad_bert_plan.h; kernel_params.h's
// convention).
#pragma once

#include <cstdint>

#include "cuda/kernels/kernel_params.h"

namespace ps::train_kernels {

// Unary backward dX = dY * f'(X) (the forward op's derivative, models/cpu/grad_unary.cc).
enum UnaryGradOp : int32_t {
  kUnaryGradErf = 0,   // 2/sqrt(pi) exp(-x^2)
  kUnaryGradTanh = 1,  // 1 - tanh(x)^2
  kUnaryGradSqrt = 2,  // 0.5 / sqrt(x)
  kUnaryGradGelu = 3,  // erf form: 0.5 (1 + erf(x/sqrt2)) + x exp(-x^2/2) / sqrt(2 pi)
  kUnaryGradNeg = 4,   // -1
  kUnaryGradExp = 5,   // exp(x)
};
struct UnaryGradParams {
  int64_t count = 0;
  int32_t op = kUnaryGradErf;
  uint32_t accumulate = 0;  // non-zero: dX += the gradient
};

// Binary backward (Sub, Mul, Div, Pow; Add has its own path): for every element i of dY
// (contiguous, `count` elements, index tuple over dims[0..rank)), A and B read through their
// broadcast strides (0 on a broadcast dimension):
//   Sub: ga = g, gb = -g;  Mul: ga = g b, gb = g a;  Div: ga = g / b, gb = -g a / b^2;
//   Pow: ga = g b a^(b-1), gb = g a^b ln a where a > 0, else 0 (models/cpu/grad_elementwise.cc).
// ga and gb are written at dY's shape (a pointer may be null: not computed); each has its own
// accumulate flag (only used when it is written straight into the gradient buffer).
enum BinaryGradOp : int32_t {
  kBinaryGradSub = 0,
  kBinaryGradMul = 1,
  kBinaryGradDiv = 2,
  kBinaryGradPow = 3,
};
struct BinaryGradParams {
  int32_t op = kBinaryGradSub;
  int32_t rank = 0;
  int64_t count = 0;
  int64_t dims[kernels::kMaxRank] = {};
  int64_t a_strides[kernels::kMaxRank] = {};
  int64_t b_strides[kernels::kMaxRank] = {};
  uint32_t accumulate_a = 0;
  uint32_t accumulate_b = 0;
};

// dX[i] = scale * dY[offset(i)] over a contiguous dX of `count` elements, dY read through
// per-dimension strides (0 on the dimensions dY lacks): ReduceMean's backward (scale = 1 /
// the number of averaged elements).
struct SpreadParams {
  int32_t rank = 0;
  uint32_t accumulate = 0;
  int64_t count = 0;
  float scale = 1.0f;
  int32_t pad = 0;
  int64_t dims[kernels::kMaxRank] = {};
  int64_t strides[kernels::kMaxRank] = {};
};

// Softmax backward from its output Y over rows of n elements: the row of (o, i) is the n
// elements at o * n * inner + j * inner + i (inner = product of the dims after the axis).
// dX = Y * (dY - sum_j dY_j Y_j). One warp per row.
struct SoftmaxGradParams {
  int64_t outer = 0;
  int64_t n = 0;
  int64_t inner = 1;
  uint32_t accumulate = 0;
  int32_t pad = 0;
};

// LayerNormalization backward over `rows` rows of `inner` values (the normalized axes), the
// statistics recomputed from X as the forward computes them (two-pass mean and biased
// variance in float32, epsilon added before the square root). scale and bias have `inner`
// elements. dX = inv_std * (g - mean(g) - x^ mean(g x^)) with g = dY * scale,
// x^ = (x - mean) * inv_std; dscale and dbias are the column sums of dY * x^ and dY, first per
// chunk of `rows_per_chunk` rows into partial[2][chunks][inner], then over the chunks.
//  - Rows of at most 1024 values: ps_layer_norm_backward_warpN_f32, one pass: a block of
//    kLayerNormBlockWarps warps per chunk, a warp per row (dX), the chunk's column sums added
//    across its warps in warp order.
//  - Longer rows: ps_layer_norm_backward_dx_f32 (a warp per row; the statistics into
//    stats[2 * row], stats[2 * row + 1]; dX), then ps_layer_norm_param_partials_f32 (a thread
//    per (chunk, column), the chunk's rows in order).
//  - Both: ps_layer_norm_param_final_f32 sums the chunks' partials (a warp per 32 columns and
//    kLayerNormFinalWarps of them a block, the warps' sums in warp order).
// Every sum is in a fixed order: deterministic.
inline constexpr unsigned kLayerNormBlockWarps = 8;
// BERT-base's 768 columns are 24 blocks of the final sum, on 24 of the H100's 132 SMs: 32 warps
// a block make each warp's chain of dependent adds 8 chunks long (251 chunks), not 32.
inline constexpr unsigned kLayerNormFinalWarps = 32;
struct LayerNormGradParams {
  int64_t rows = 0;
  int64_t inner = 0;
  int64_t chunks = 0;
  int64_t rows_per_chunk = 0;
  float epsilon = 1e-5f;
  uint32_t accumulate_dx = 0;
  uint32_t accumulate_scale = 0;
  uint32_t accumulate_bias = 0;
};

// Gather backward: dData [outer, dim, inner] from dY [outer, count, inner] and `count`
// indices (int64 or int32; negatives wrap; out-of-range ones give no gradient, as the forward
// writes zeros for them). Deterministic, no atomics:
//  1. ps_gather_backward_links_{i64,i32}: for index position j, first[j] = 1 when no earlier
//     position holds the same (wrapped) row, next[j] = the next later position with that row
//     (-1: none); a warp per position, O(count / 32) steps (launched with 32 x count threads).
//  2. ps_gather_backward_f32: a thread per (o, j, i) with first[j] adds dY over j's chain, in
//     increasing position order, into dData[o, row, i] (zeroed first unless accumulating).
// A small table (dim <= kGatherSmallTable) instead takes one kernel,
// ps_gather_backward_small_{i64,i32}: a block of 32 x kGatherSmallWarps threads per (o, row,
// 32 columns of inner); warp w sums dY over the positions of its slice [w * span, (w + 1) *
// span) (span = ceil(count / kGatherSmallWarps)) whose index is the row, in increasing order,
// and the slices' sums are added in warp order (written, or added when accumulating). Its
// chains are long (BERT's token types: 2 rows, ~count/2 positions each), which the chained
// scatter walks one dependent load at a time; here dim x count index reads spread over warps.
inline constexpr int64_t kGatherSmallTable = 64;
inline constexpr unsigned kGatherSmallWarps = 8;
struct GatherGradParams {
  int64_t outer = 0;
  int64_t dim = 0;
  int64_t count = 0;  // number of indices
  int64_t inner = 0;
};

}  // namespace ps::train_kernels
