// FusedAttention forward (ours, inference; models/gpu/fused_attention_op.cc launches it):
// Y[b, i, h, :] = sum_j softmax_j(alpha Q[b, i, h] . K[b, j, h]) V[b, j, h] for the heads read
// in place in X [B, S, C] (FusedAttentionParams), flash-attention style: the scores and the
// probabilities never leave the SM. BERT-base at batch 8 wrote and read them (24 MB each a
// layer) between three kernels (AttentionScores, Softmax, AttentionContext).
//
// A block of kWarps warps takes kWarps * 16 query rows of one (batch, head); each warp its own
// 16 rows. Keys come in tiles of kKeys: the tile's K and V into shared memory, then per warp
//   S = Q K^T (16 x kKeys), the online softmax over it (the running maximum m and sum l per
//   row; the output so far scaled by exp(m_old - m_new)), O += P V (16 x D).
// At the end O / l is written. A row's two lanes (lane = 2 * row + half) own half of its scores
// and half of its output columns in the softmax and the scaling.
// The products: TF32 tensor cores through WMMA (m16n16k8, fp32 accumulation) or, in fp32
// precision, plain fp32 FMAs in the same layout (the emulation tests run that path on the CPU).
// Entry points: ps_fused_attention_d{16,32,64}_{f32,tf32}, for head sizes up to 16, 32, 64
// (the tiles' columns past the head size are zeros, which change no product); a grid of
// ceil(S / (kWarps * 16)) * H * B blocks of 32 * kWarps threads. Larger heads would need more
// than the 48 KB of static shared memory (dynamic shared memory and a smaller tile: not yet).
#include <cstdint>

#include "cuda/kernels/kernel_params.h"

#if defined(__CUDACC__)
#include <mma.h>
#endif

namespace attention {

using ps::kernels::FusedAttentionParams;

constexpr int kWarps = 2;  // 32 query rows a block: 39 KB of shared memory at D = 64
constexpr int kRows = 16;  // query rows a warp (a WMMA tile's rows)
constexpr int kKeys = 32;  // keys a tile
constexpr int kThreads = 32 * kWarps;
constexpr unsigned kFull = 0xffffffffu;

// Row strides of the shared tiles, in floats: multiples of 4 (WMMA's ldm) that keep every tile
// a WMMA call touches 32-byte aligned (rows at multiples of 8 * stride), and off the 32 banks.
template <int kD>
struct Tiles {
  static constexpr int kLd = kD + 4;
  static constexpr int kSld = kKeys + 4;
  alignas(32) float q[kWarps * kRows][kLd];
  alignas(32) float k[kKeys][kLd];
  alignas(32) float v[kKeys][kLd];
  alignas(32) float s[kWarps][kRows][kSld];  // a warp's scores, then its probabilities
  alignas(32) float o[kWarps][kRows][kLd];   // a warp's output so far
};

// kRowsT rows of one head's columns of X staged through registers: this thread's kW-float
// groups threadIdx.x, threadIdx.x + kThreads, ... of the [kRowsT, kD] tile (zeros past the
// sequence and past the head's d columns). Loading all of them before storing any keeps a
// tile's loads in flight together.
template <int kD, int kW, int kRowsT>
struct Stage {
  static constexpr int kPerRow = kD / kW;
  static constexpr int kGroups = kRowsT * kPerRow / kThreads;
  static_assert(kRowsT * kPerRow % kThreads == 0, "a tile is whole groups for every thread");
  float r[kGroups][kW];

  __device__ void load(const float* xb, const FusedAttentionParams& p, int64_t row0,
                       int64_t col) {
#pragma unroll
    for (int e = 0; e < kGroups; ++e) {
      const int g = static_cast<int>(threadIdx.x) + e * kThreads;
      const int j = g / kPerRow, c = g % kPerRow * kW;
      const int64_t at = row0 + j;
      if (at < p.seq && c < p.head_size) {
        const float* src = xb + at * p.columns + col + c;
        if constexpr (kW == 4) {
          const float4 v = *reinterpret_cast<const float4*>(src);
          r[e][0] = v.x;
          r[e][1] = v.y;
          r[e][2] = v.z;
          r[e][3] = v.w;
        } else {
          r[e][0] = *src;
        }
      } else {
#pragma unroll
        for (int w = 0; w < kW; ++w) r[e][w] = 0.0f;
      }
    }
  }
  __device__ void store(float (*dst)[Tiles<kD>::kLd]) const {
#pragma unroll
    for (int e = 0; e < kGroups; ++e) {
      const int g = static_cast<int>(threadIdx.x) + e * kThreads;
      const int j = g / kPerRow, c = g % kPerRow * kW;
#pragma unroll
      for (int w = 0; w < kW; ++w) dst[j][c + w] = r[e][w];
    }
  }
};

// S (16 x kKeys, unscaled) = Q_w K^T in fp32 FMAs: lane (row, half) computes row `row`'s
// columns half * 16 ... + 15 over the head's d columns.
template <int kD>
__device__ void scores_fp32(const Tiles<kD>& t, int warp, int d, float* s) {
  const int lane = threadIdx.x % 32, row = lane / 2, half = lane % 2;
  const float* q = t.q[warp * kRows + row];
  for (int c = 0; c < kKeys / 2; ++c) {
    const float* k = t.k[half * (kKeys / 2) + c];
    float acc = 0.0f;
    for (int i = 0; i < d; ++i) acc += q[i] * k[i];
    s[row * Tiles<kD>::kSld + half * (kKeys / 2) + c] = acc;
  }
}

// O_w (16 x d) += P_w (16 x kKeys) V (kKeys x d) in fp32 FMAs: lane (row, half) takes row
// `row`'s output columns half, half + 2, ...
template <int kD>
__device__ void context_fp32(const Tiles<kD>& t, int d, const float* p, float* o) {
  const int lane = threadIdx.x % 32, row = lane / 2, half = lane % 2;
  const float* pr = p + row * Tiles<kD>::kSld;
  float* orow = o + row * Tiles<kD>::kLd;
  for (int c = half; c < d; c += 2) {
    float acc = orow[c];
    for (int j = 0; j < kKeys; ++j) acc += pr[j] * t.v[j][c];
    orow[c] = acc;
  }
}

#if defined(__CUDACC__)
namespace wmma = nvcuda::wmma;
using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
using FragBCol = wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::col_major>;
using FragBRow = wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
using FragC = wmma::fragment<wmma::accumulator, 16, 16, 8, float>;

template <typename Frag>
__device__ inline void to_tf32(Frag& f) {
#pragma unroll
  for (int i = 0; i < f.num_elements; ++i) f.x[i] = wmma::__float_to_tf32(f.x[i]);
}

// S = Q_w K^T on the tensor cores: K's rows read as the columns of B (col-major).
template <int kD>
__device__ void scores_tf32(const Tiles<kD>& t, int warp, float* s) {
  FragC acc[kKeys / 16];
#pragma unroll
  for (int n = 0; n < kKeys / 16; ++n) wmma::fill_fragment(acc[n], 0.0f);
#pragma unroll
  for (int k = 0; k < kD; k += 8) {
    FragA a;
    wmma::load_matrix_sync(a, &t.q[warp * kRows][k], Tiles<kD>::kLd);
    to_tf32(a);
#pragma unroll
    for (int n = 0; n < kKeys / 16; ++n) {
      FragBCol b;
      wmma::load_matrix_sync(b, &t.k[n * 16][k], Tiles<kD>::kLd);
      to_tf32(b);
      wmma::mma_sync(acc[n], a, b, acc[n]);
    }
  }
#pragma unroll
  for (int n = 0; n < kKeys / 16; ++n) {
    wmma::store_matrix_sync(s + n * 16, acc[n], Tiles<kD>::kSld, wmma::mem_row_major);
  }
}

// O_w += P_w V on the tensor cores, the output's 16-column tiles through shared memory.
template <int kD>
__device__ void context_tf32(const Tiles<kD>& t, const float* p, float* o) {
  FragA a[kKeys / 8];
#pragma unroll
  for (int k = 0; k < kKeys / 8; ++k) {
    wmma::load_matrix_sync(a[k], p + k * 8, Tiles<kD>::kSld);
    to_tf32(a[k]);
  }
#pragma unroll
  for (int n = 0; n < kD / 16; ++n) {
    FragC acc;
    wmma::load_matrix_sync(acc, o + n * 16, Tiles<kD>::kLd, wmma::mem_row_major);
#pragma unroll
    for (int k = 0; k < kKeys / 8; ++k) {
      FragBRow b;
      wmma::load_matrix_sync(b, &t.v[k * 8][n * 16], Tiles<kD>::kLd);
      to_tf32(b);
      wmma::mma_sync(acc, a[k], b, acc);
    }
    wmma::store_matrix_sync(o + n * 16, acc, Tiles<kD>::kLd, wmma::mem_row_major);
  }
}
#endif

// Any head_size <= kD (kD a multiple of 16), in both precisions; kW = 4 reads X as float4
// (FusedAttentionParams::vec4).
template <int kD, bool kTf32, int kW>
__device__ void forward_tiles(Tiles<kD>& t, const float* x, float* y,
                              const FusedAttentionParams& p) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int row = lane / 2, half = lane % 2;
  const int d = static_cast<int>(p.head_size);
  const int64_t q_tiles = (p.seq + kWarps * kRows - 1) / (kWarps * kRows);
  const int64_t block = blockIdx.x;
  const int64_t q0 = block % q_tiles * (kWarps * kRows);
  const int64_t h = block / q_tiles % p.heads, b = block / q_tiles / p.heads;
  const float* xb = x + b * p.seq * p.columns;
  const int64_t qc = p.q_start + h * d, kc = p.k_start + h * d, vc = p.v_start + h * d;
  // The block's query rows (zeros past the sequence; columns past d zero too), then the key
  // tiles: tile n + 1's K and V load into registers while tile n is computed.
  Stage<kD, kW, kWarps * kRows> qs;
  qs.load(xb, p, q0, qc);
  qs.store(t.q);
  float* s = &t.s[warp][0][0];
  float* o = &t.o[warp][0][0];
  for (int i = lane; i < kRows * Tiles<kD>::kLd; i += 32) o[i] = 0.0f;
  float m = -INFINITY, l = 0.0f;  // row `row`'s running maximum and sum (both its lanes)
  // Scalar reads (kW = 1) take 4x the registers a tile: they load each tile when it is due.
  constexpr bool kPrefetch = kW == 4;
  Stage<kD, kW, kKeys> ks, vs;
  if constexpr (kPrefetch) {
    ks.load(xb, p, 0, kc);
    vs.load(xb, p, 0, vc);
  }
  for (int64_t k0 = 0; k0 < p.seq; k0 += kKeys) {
    __syncthreads();  // every warp is done with the previous tile
    if constexpr (!kPrefetch) {
      ks.load(xb, p, k0, kc);
      ks.store(t.k);
      vs.load(xb, p, k0, vc);
      vs.store(t.v);
    } else {
      ks.store(t.k);
      vs.store(t.v);
    }
    __syncthreads();
    if (kPrefetch && k0 + kKeys < p.seq) {
      ks.load(xb, p, k0 + kKeys, kc);
      vs.load(xb, p, k0 + kKeys, vc);
    }
#if defined(__CUDACC__)
    if constexpr (kTf32) {
      scores_tf32<kD>(t, warp, s);
    } else {
      scores_fp32<kD>(t, warp, d, s);
    }
#else
    scores_fp32<kD>(t, warp, d, s);
#endif
    __syncwarp();
    // The online softmax over the tile: keys past the sequence get probability 0 (every tile
    // holds at least one key, so the maximum is finite unless a score is infinite or NaN).
    float* sr = s + row * Tiles<kD>::kSld + half * (kKeys / 2);
    float v[kKeys / 2];
    float tile_max = -INFINITY;
#pragma unroll
    for (int c = 0; c < kKeys / 2; ++c) {
      const int64_t key = k0 + half * (kKeys / 2) + c;
      v[c] = key < p.seq ? p.alpha * sr[c] : -INFINITY;
      tile_max = fmaxf(tile_max, v[c]);
    }
    tile_max = fmaxf(tile_max, __shfl_xor_sync(kFull, tile_max, 1));
    const float m_new = fmaxf(m, tile_max);
    const float scale = m == -INFINITY ? 0.0f : expf(m - m_new);
    float sum = 0.0f;
#pragma unroll
    for (int c = 0; c < kKeys / 2; ++c) {
      const float e = v[c] == -INFINITY ? 0.0f : expf(v[c] - m_new);
      sr[c] = e;
      sum += e;
    }
    sum += __shfl_xor_sync(kFull, sum, 1);
    l = l * scale + sum;
    m = m_new;
    float* orow = o + row * Tiles<kD>::kLd;
    for (int c = half; c < kD; c += 2) orow[c] *= scale;
    __syncwarp();
#if defined(__CUDACC__)
    if constexpr (kTf32) {
      context_tf32<kD>(t, s, o);
    } else {
      context_fp32<kD>(t, d, s, o);
    }
#else
    context_fp32<kD>(t, d, s, o);
#endif
    __syncwarp();
  }
  // Y[b, q, h, :] = O / l, a row at a time (the row's l from its first lane).
  for (int r = 0; r < kRows; ++r) {
    const float lr = __shfl_sync(kFull, l, 2 * r);
    const int64_t q = q0 + warp * kRows + r;
    if (q >= p.seq) continue;
    float* yr = y + ((b * p.seq + q) * p.heads + h) * d;
    for (int c = lane; c < d; c += 32) yr[c] = o[r * Tiles<kD>::kLd + c] / lr;
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
  extern "C" __global__ void __launch_bounds__(32 * attention::kWarps)                            \
      ps_fused_attention_d##D##_f32(const float* x, float* y,                                    \
                                    ps::kernels::FusedAttentionParams p) {                       \
    attention::forward<D, false>(x, y, p);                                                       \
  }                                                                                              \
  extern "C" __global__ void __launch_bounds__(32 * attention::kWarps)                            \
      ps_fused_attention_d##D##_tf32(const float* x, float* y,                                   \
                                     ps::kernels::FusedAttentionParams p) {                      \
    attention::forward<D, true>(x, y, p);                                                        \
  }
PS_FUSED_ATTENTION(16)
PS_FUSED_ATTENTION(32)
PS_FUSED_ATTENTION(64)
#undef PS_FUSED_ATTENTION
