// FusedAttention forward (ours, inference; models/gpu/fused_attention_op.cc launches it):
// Y[b, i, h, :] = sum_j softmax_j(alpha Q[b, i, h] . K[b, j, h]) V[b, j, h] for the heads read
// in place in X [B, S, C] (FusedAttentionParams), flash-attention style: the scores and the
// probabilities never leave the registers. BERT-base at batch 8 wrote and read them (24 MB each
// a layer) between three kernels (AttentionScores, Softmax, AttentionContext).
//
// A block of kWarps warps takes kWarps * 16 query rows of one (batch, head); each warp its own
// 16 rows, whose Q it holds in registers as mma A fragments (warp_mma.h). Keys come in tiles of
// kKeys, copied into shared memory by cp.async one tile ahead (two buffers). Per tile a warp
//   S = Q K^T (16 x kKeys) in mma accumulators, the online softmax over them in registers (the
//   running maximum m per row; the output so far scaled by 2^(m_old - m_new)), O += P V.
// P goes from the accumulators (a lane holds keys 2t and 2t + 1 of its rows g and g + 8) to A
// fragments (which want keys t and t + 4) without moving: the keys of a step are taken in the
// order 0, 2, 4, 6, 1, 3, 5, 7, and V's rows are read in that order. At the end O / l is
// written (l, the sum, kept per lane and added over the row's four lanes once).
// Precision: TF32 rounds the operands once (one mma a product); fp32 splits each operand in
// two TF32 halves and takes three products (3xTF32: ~2^-21 relative a product, fp32-level).
// Entry points: ps_fused_attention_d{16,32,64}_{f32,tf32}, for head sizes up to 16, 32, 64
// (the tiles' columns past the head size are zeros, which change no product); a grid of
// ceil(S / (kWarps * 16)) * H * B blocks of 32 * kWarps threads.
#include <cstdint>

#include "cuda/kernels/kernel_params.h"
#include "cuda/kernels/warp_mma.h"

namespace attention {

using ps::kernels::FusedAttentionParams;
namespace warp = ps::kernels::warp;

constexpr int kWarps = 4;  // 64 query rows a block
constexpr int kRows = 16;  // query rows a warp (an mma's rows)
constexpr int kKeys = 32;  // keys a tile
constexpr int kThreads = 32 * kWarps;
constexpr int kMinBlocks = 3;  // an SM's share of BERT-base's 384 blocks: <= 168 registers
constexpr unsigned kFull = 0xffffffffu;
constexpr float kLog2e = 1.4426950408889634f;

// Two buffers of a key tile's K and V rows. The row stride is 4 words past a multiple of 32
// (or 20 at kD = 16), so a warp's fragment reads (rows g, columns t; rows 2t, columns g) hit 32
// different banks; and a multiple of 4 for the 16-byte copies.
template <int kD>
struct Tiles {
  static constexpr int kLd = kD + 4;
  alignas(16) float k[2][kKeys][kLd];
  alignas(16) float v[2][kKeys][kLd];
};

// Starts the copies of the key tile at row k0 (K's and V's kKeys x kD, zeros past the sequence
// and past the head's columns) into buffer `buf`, kW floats a copy.
template <int kD, int kW>
__device__ void load_tile(Tiles<kD>& t, int buf, const float* xb, const FusedAttentionParams& p,
                          int64_t k0, int64_t kc, int64_t vc) {
  constexpr int kPerRow = kD / kW;
  static_assert(kKeys * kPerRow % kThreads == 0, "a tile is whole copies for every thread");
#pragma unroll
  for (int e = 0; e < kKeys * kPerRow / kThreads; ++e) {
    const int i = static_cast<int>(threadIdx.x) + e * kThreads;
    const int j = i / kPerRow, c = i % kPerRow * kW;
    const int64_t row = k0 + j;
    const bool valid = row < p.seq && c < p.head_size;
    const int64_t at = valid ? row * p.columns + c : 0;
    warp::copy_async<4 * kW>(&t.k[buf][j][c], xb + (valid ? kc + at : 0), valid);
    warp::copy_async<4 * kW>(&t.v[buf][j][c], xb + (valid ? vc + at : 0), valid);
  }
  warp::copy_async_commit();
}

// An A or B operand: TF32 alone, or (fp32) its hi and lo halves.
template <bool kTf32, int kN>
struct Operand {
  uint32_t hi[kN];
  uint32_t lo[kTf32 ? 1 : kN];
  __device__ void set(int i, float x) {
    if constexpr (kTf32) {
      hi[i] = warp::to_tf32(x);
    } else {
      const warp::Split3 s(x);
      hi[i] = s.hi;
      lo[i] = s.lo;
    }
  }
};

template <bool kTf32>
__device__ inline void mma(float (&d)[4], const Operand<kTf32, 4>& a, const Operand<kTf32, 2>& b) {
  if constexpr (kTf32) {
    warp::mma_m16n8k8(d, a.hi, b.hi);
  } else {
    warp::mma_m16n8k8_3x(d, a.hi, a.lo, b.hi, b.lo);
  }
}

// Any head_size <= kD (kD a multiple of 16), in both precisions; kW = 4 copies X as float4
// (FusedAttentionParams::vec4).
template <int kD, bool kTf32, int kW>
__device__ void forward_tiles(Tiles<kD>& t, const float* x, float* y,
                              const FusedAttentionParams& p) {
  constexpr int kSteps = kD / 8;    // Q K^T's k steps; O's 8-column tiles
  constexpr int kKeySteps = kKeys / 8;
  const int lane = threadIdx.x % 32, w = threadIdx.x / 32;
  const int g = lane / 4, tq = lane % 4;
  const int d = static_cast<int>(p.head_size);
  const int64_t q_tiles = (p.seq + kWarps * kRows - 1) / (kWarps * kRows);
  const int64_t block = blockIdx.x;
  const int64_t q0 = block % q_tiles * (kWarps * kRows) + w * kRows;
  const int64_t h = block / q_tiles % p.heads, b = block / q_tiles / p.heads;
  const float* xb = x + b * p.seq * p.columns;
  const int64_t qc = p.q_start + h * d, kc = p.k_start + h * d, vc = p.v_start + h * d;
  load_tile<kD, kW>(t, 0, xb, p, 0, kc, vc);
  // This lane's Q: rows q0 + g and q0 + g + 8, columns 8 s + tq and 8 s + tq + 4.
  Operand<kTf32, 4> q[kSteps];
#pragma unroll
  for (int s = 0; s < kSteps; ++s) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int64_t row = q0 + g + (e % 2) * 8;
      const int col = 8 * s + tq + (e / 2) * 4;
      q[s].set(e, row < p.seq && col < d ? xb[row * p.columns + qc + col] : 0.0f);
    }
  }
  float o[kSteps][4] = {};  // O's rows g (o[s][0], o[s][1]) and g + 8, columns 8 s + 2 tq, + 1
  float m[2] = {-INFINITY, -INFINITY};  // rows g and g + 8: the running maximum (log2 units)
  float l[2] = {0.0f, 0.0f};            // and this lane's part of the running sum
  const float scale = p.alpha * kLog2e;
  const int64_t tiles = (p.seq + kKeys - 1) / kKeys;
  for (int64_t i = 0; i < tiles; ++i) {
    const int buf = static_cast<int>(i % 2);
    if (i + 1 < tiles) {
      load_tile<kD, kW>(t, buf ^ 1, xb, p, (i + 1) * kKeys, kc, vc);
      warp::copy_async_wait<1>();
    } else {
      warp::copy_async_wait<0>();
    }
    __syncthreads();  // tile i is in shared memory, every thread's copies
    const float(*kt)[Tiles<kD>::kLd] = t.k[buf];
    const float(*vt)[Tiles<kD>::kLd] = t.v[buf];
    float s[kKeySteps][4] = {};
#pragma unroll
    for (int ks = 0; ks < kSteps; ++ks) {
#pragma unroll
      for (int n = 0; n < kKeySteps; ++n) {
        Operand<kTf32, 2> kb;
        kb.set(0, kt[8 * n + g][8 * ks + tq]);
        kb.set(1, kt[8 * n + g][8 * ks + tq + 4]);
        mma<kTf32>(s[n], q[ks], kb);
      }
    }
    // The online softmax: keys past the sequence get probability 0 (every tile holds at least
    // one key, so the maximum is finite unless a score is infinite or NaN).
    float mx[2] = {m[0], m[1]};
#pragma unroll
    for (int n = 0; n < kKeySteps; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t key = i * kKeys + 8 * n + 2 * tq + e % 2;
        s[n][e] = key < p.seq ? s[n][e] * scale : -INFINITY;
        mx[e / 2] = fmaxf(mx[e / 2], s[n][e]);
      }
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(kFull, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(kFull, mx[r], 2));
      const float rescale = exp2f(m[r] - mx[r]);  // 0 at the first tile (m = -inf)
      m[r] = mx[r];
      l[r] *= rescale;
#pragma unroll
      for (int c = 0; c < kSteps; ++c) {
        o[c][2 * r] *= rescale;
        o[c][2 * r + 1] *= rescale;
      }
    }
#pragma unroll
    for (int n = 0; n < kKeySteps; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[n][e] = exp2f(s[n][e] - m[e / 2]);  // 0 past the sequence
        l[e / 2] += s[n][e];
      }
    }
    // O += P V, a step of 8 keys at a time, the keys in the order 0, 2, 4, 6, 1, 3, 5, 7.
#pragma unroll
    for (int n = 0; n < kKeySteps; ++n) {
      Operand<kTf32, 4> pa;
      pa.set(0, s[n][0]);
      pa.set(1, s[n][2]);
      pa.set(2, s[n][1]);
      pa.set(3, s[n][3]);
#pragma unroll
      for (int c = 0; c < kSteps; ++c) {
        Operand<kTf32, 2> vb;
        vb.set(0, vt[8 * n + 2 * tq][8 * c + g]);
        vb.set(1, vt[8 * n + 2 * tq + 1][8 * c + g]);
        mma<kTf32>(o[c], pa, vb);
      }
    }
    __syncthreads();  // every warp is done with buffer `buf` before tile i + 2 is copied there
  }
  // Y[b, q, h, :] = O / l.
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(kFull, l[r], 1);
    l[r] += __shfl_xor_sync(kFull, l[r], 2);
    const int64_t q = q0 + g + 8 * r;
    if (q >= p.seq) continue;
    float* yr = y + ((b * p.seq + q) * p.heads + h) * d;
#pragma unroll
    for (int c = 0; c < kSteps; ++c) {
      const int col = 8 * c + 2 * tq;
      if (col < d) yr[col] = o[c][2 * r] / l[r];
      if (col + 1 < d) yr[col + 1] = o[c][2 * r + 1] / l[r];
    }
  }
}

template <int kD, bool kTf32>
__device__ void forward(const float* x, float* y, const FusedAttentionParams& p) {
  __shared__ Tiles<kD> t;
  if (p.vec4 != 0) {
    forward_tiles<kD, kTf32, 4>(t, x, y, p);
  } else {
    forward_tiles<kD, kTf32, 1>(t, x, y, p);
  }
}

}  // namespace attention

#define PS_FUSED_ATTENTION(D)                                                                    \
  extern "C" __global__ void __launch_bounds__(attention::kThreads, attention::kMinBlocks)                          \
      ps_fused_attention_d##D##_f32(const float* x, float* y,                                    \
                                    ps::kernels::FusedAttentionParams p) {                       \
    attention::forward<D, false>(x, y, p);                                                       \
  }                                                                                              \
  extern "C" __global__ void __launch_bounds__(attention::kThreads, attention::kMinBlocks)                          \
      ps_fused_attention_d##D##_tf32(const float* x, float* y,                                   \
                                     ps::kernels::FusedAttentionParams p) {                      \
    attention::forward<D, true>(x, y, p);                                                        \
  }
PS_FUSED_ATTENTION(16)
PS_FUSED_ATTENTION(32)
PS_FUSED_ATTENTION(64)
#undef PS_FUSED_ATTENTION
