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
// order 0, 2, 4, 6, 1, 3, 5, 7, and V's rows are read in that order. The head's columns are
// mapped onto the products' inner and output indices so that a lane reads its K and V operands
// with 16-byte shared loads (forward_tiles). At the end O / l is written, float4 where the
// layout allows (l, the sum, kept per lane and added over the row's four lanes once).
// Precision: TF32 rounds the operands once (one mma a product); fp32 splits each operand in
// two TF32 halves and takes three products (3xTF32: ~2^-21 relative a product, fp32-level).
// Entry points: ps_fused_attention_d{16,32,64}_{f32,tf32}, for head sizes up to 16, 32, 64
// (the tiles' columns past the head size are zeros, which change no product); a grid of
// ceil(S / (kWarps * 16)) * H * B blocks of 32 * kWarps threads.
#include <cstdint>
#include <type_traits>

#include "cuda/kernels/kernel_params.h"
#include "cuda/kernels/warp_mma.h"

namespace attention {

using ps::kernels::FusedAttentionParams;
namespace warp = ps::kernels::warp;

constexpr int kWarps = ps::kernels::kFusedAttentionWarps;  // 64 query rows a block
constexpr int kRows = 16;                                  // query rows a warp (an mma's rows)
static_assert(kWarps * kRows == ps::kernels::kFusedAttentionBlockRows);
constexpr int kKeys = 32;  // keys a tile
constexpr int kThreads = 32 * kWarps;
constexpr int kMinBlocks = 3;  // an SM's share of BERT-base's 384 blocks: <= 168 registers
constexpr unsigned kFull = 0xffffffffu;
constexpr float kLog2e = 1.4426950408889634f;

// Two buffers of a key tile's K and V rows, in X's column order. The strides are chosen so
// the fragment reads of forward_tiles, one 16-byte load each, meet no bank conflict within a
// quarter warp (the 8 lanes g = 0, 1 and t = 0..3 that one 16-byte shared load serves at a
// time): K's row stride is 4 (mod 8) 16-byte chunks, so the rows g = 0 and 1 fall on
// different halves of the banks; V's is 1 (mod 4) chunk, so the rows 2t fall 2t chunks apart
// and g's chunks fill the gaps. Both are multiples of 4 floats for the 16-byte copies.
template <int kD>
struct Tiles {
  static constexpr int kLdK = kD / 4 % 8 == 4 ? kD : kD + 16;
  static constexpr int kLdV = kD + 4;
  alignas(16) float k[2][kKeys][kLdK];
  alignas(16) float v[2][kKeys][kLdV];
};

// The copies of a thread's share of each key tile (K's and V's kKeys x kD, zeros past the
// sequence and past the head's columns), kW floats a copy: a thread copies the same columns of
// every kRowStep-th row, so its addresses are worked out once and advance by a tile's rows.
template <int kD, int kW>
struct TileLoader {
  static constexpr int kPerRow = kD / kW;
  static constexpr int kRowStep = kThreads / kPerRow;
  static_assert(kThreads % kPerRow == 0 && kKeys % kRowStep == 0,
                "a tile is whole copies for every thread");
  const float* src;    // K's first value of this thread in the next tile (V's: + v_offset)
  const float* safe;   // a readable address for the copies that read nothing
  int64_t v_offset;    // V's start minus K's
  int64_t row_step;    // kRowStep rows of X, in floats
  int64_t rows_left;   // rows from this thread's first row of the next tile to the sequence's end
  float* k_dst;        // this thread's first place in buffer 0 of K (V's: the same in t.v)
  float* v_dst;
  bool columns_valid;  // this thread's columns are within the head

  __device__ TileLoader(Tiles<kD>& t, const float* xb, const FusedAttentionParams& p,
                        int64_t kc, int64_t vc) {
    const int j = static_cast<int>(threadIdx.x) / kPerRow;
    const int c = static_cast<int>(threadIdx.x) % kPerRow * kW;
    src = xb + j * p.columns + kc + c;
    safe = xb + kc;
    v_offset = vc - kc;
    row_step = kRowStep * p.columns;
    rows_left = p.seq - j;
    k_dst = &t.k[0][j][c];
    v_dst = &t.v[0][j][c];
    columns_valid = c < p.head_size;
  }

  // Starts the copies of the next tile into buffer `buf` (one commit group).
  __device__ void issue(int buf) {
#pragma unroll
    for (int e = 0; e < kKeys / kRowStep; ++e) {
      const bool valid = columns_valid && e * kRowStep < rows_left;
      const float* at = valid ? src + e * row_step : safe;
      const int k_off = buf * kKeys * Tiles<kD>::kLdK + e * kRowStep * Tiles<kD>::kLdK;
      const int v_off = buf * kKeys * Tiles<kD>::kLdV + e * kRowStep * Tiles<kD>::kLdV;
      warp::copy_async<4 * kW>(k_dst + k_off, at, valid);
      warp::copy_async<4 * kW>(v_dst + v_off, valid ? at + v_offset : safe, valid);
    }
    warp::copy_async_commit();
    src += kKeys / kRowStep * row_step;
    rows_left -= kKeys;
  }
};

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
//
// The products' inner and output indices are mapped onto the head's columns so that a lane's
// operands are contiguous in shared memory (the sums do not depend on the order of their
// terms; A and B only have to agree):
//   S = Q K^T: k slot s (0..7) of step ks is column 4 (s % 4) + 16 (ks / 2) + 2 (ks % 2) + s / 4,
//     so lane t's K values for the steps 2j and 2j + 1 are the 4 columns at 4 (t + 4 j).
//   O = P V: n slot g of output step c is column (8 (c / kVLoad) + g) kVLoad + c % kVLoad
//     (kVLoad = min(kD / 8, 4)), so lane g's V values of a key row are kD / 8 columns in runs of
//     kVLoad, one shared load each, and lane t's outputs of a row are runs of 2 kVLoad columns
//     at (8 p + 2 t) kVLoad.
template <int kD, bool kTf32, int kW>
__device__ void forward_tiles(Tiles<kD>& t, const float* x, float* y,
                              const FusedAttentionParams& p) {
  constexpr int kSteps = kD / 8;  // Q K^T's k steps; O's 8-column tiles
  constexpr int kKeySteps = kKeys / 8;
  constexpr int kPer = kD / 8;           // V columns a lane takes from a key row
  constexpr int kVLoad = kPer < 4 ? kPer : 4;
  const int lane = threadIdx.x % 32, w = threadIdx.x / 32;
  const int g = lane / 4, tq = lane % 4;
  const int d = static_cast<int>(p.head_size);
  const int64_t q_tiles = (p.seq + kWarps * kRows - 1) / (kWarps * kRows);
  const int64_t block = blockIdx.x;
  const int64_t q0 = block % q_tiles * (kWarps * kRows) + w * kRows;
  const int64_t h = block / q_tiles % p.heads, b = block / q_tiles / p.heads;
  const float* xb = x + b * p.seq * p.columns;
  const int64_t qc = p.q_start + h * d, kc = p.k_start + h * d, vc = p.v_start + h * d;
  TileLoader<kD, kW> loader(t, xb, p, kc, vc);
  loader.issue(0);
  // This lane's Q: rows q0 + g and q0 + g + 8, k slots tq and tq + 4 of each step, times
  // alpha log2(e), so the products are the scores in log2 units.
  const float scale = p.alpha * kLog2e;
  Operand<kTf32, 4> q[kSteps];
#pragma unroll
  for (int s = 0; s < kSteps; ++s) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int64_t row = q0 + g + (e % 2) * 8;
      const int col = 4 * tq + 16 * (s / 2) + 2 * (s % 2) + e / 2;
      q[s].set(e, row < p.seq && col < d ? xb[row * p.columns + qc + col] * scale : 0.0f);
    }
  }
  float o[kSteps][4] = {};  // O's rows g (o[c][0], o[c][1]) and g + 8: n slots 2 tq, 2 tq + 1
  float m[2] = {-INFINITY, -INFINITY};  // rows g and g + 8: the running maximum (log2 units)
  float l[2] = {0.0f, 0.0f};            // and this lane's part of the running sum
  const int64_t tiles = (p.seq + kKeys - 1) / kKeys;
  // One key tile (buffer buf, keys from i kKeys) into this warp's O, m and l.
  auto tile = [&](int buf, int64_t i, auto masked) {
    const float(*kt)[Tiles<kD>::kLdK] = t.k[buf];
    const float(*vt)[Tiles<kD>::kLdV] = t.v[buf];
    float s[kKeySteps][4] = {};
#pragma unroll
    for (int n = 0; n < kKeySteps; ++n) {
#pragma unroll
      for (int j = 0; j < kD / 16; ++j) {
        float kv[4];
        warp::load_shared<4>(&kt[8 * n + g][4 * (tq + 4 * j)], kv);
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          Operand<kTf32, 2> kb;
          kb.set(0, kv[2 * half]);
          kb.set(1, kv[2 * half + 1]);
          mma<kTf32>(s[n], q[2 * j + half], kb);
        }
      }
    }
    // The online softmax: keys past the sequence get probability 0 (every tile holds at least
    // one key, so the maximum is finite unless a score is infinite or NaN).
    float mx[2] = {m[0], m[1]};
#pragma unroll
    for (int n = 0; n < kKeySteps; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        if constexpr (decltype(masked)::value) {
          const int64_t key = i * kKeys + 8 * n + 2 * tq + e % 2;
          if (key >= p.seq) s[n][e] = -INFINITY;
        }
        mx[e / 2] = fmaxf(mx[e / 2], s[n][e]);
      }
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(kFull, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(kFull, mx[r], 2));
      const float rescale = warp::exp2_approx(m[r] - mx[r]);  // 0 at the first tile (m = -inf)
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
        s[n][e] = warp::exp2_approx(s[n][e] - m[e / 2]);  // 0 past the sequence
        l[e / 2] += s[n][e];
      }
    }
    // O += P V, a step of 8 keys at a time, the keys in the order 0, 2, 4, 6, 1, 3, 5, 7: this
    // lane's key rows 2 tq and 2 tq + 1 of the step.
#pragma unroll
    for (int n = 0; n < kKeySteps; ++n) {
      Operand<kTf32, 4> pa;
      pa.set(0, s[n][0]);
      pa.set(1, s[n][2]);
      pa.set(2, s[n][1]);
      pa.set(3, s[n][3]);
      float v0[kPer], v1[kPer];
#pragma unroll
      for (int part = 0; part < kPer / kVLoad; ++part) {
        const int col = (8 * part + g) * kVLoad;
        warp::load_shared<kVLoad>(&vt[8 * n + 2 * tq][col], &v0[part * kVLoad]);
        warp::load_shared<kVLoad>(&vt[8 * n + 2 * tq + 1][col], &v1[part * kVLoad]);
      }
#pragma unroll
      for (int c = 0; c < kSteps; ++c) {
        Operand<kTf32, 2> vb;
        vb.set(0, v0[c]);
        vb.set(1, v1[c]);
        mma<kTf32>(o[c], pa, vb);
      }
    }
  };
  for (int64_t i = 0; i < tiles; ++i) {
    const int buf = static_cast<int>(i % 2);
    if (i + 1 < tiles) {
      loader.issue(buf ^ 1);
      warp::copy_async_wait<1>();
    } else {
      warp::copy_async_wait<0>();
    }
    __syncthreads();  // tile i is in shared memory, every thread's copies
    // Only a last tile that ends past the sequence masks its keys.
    if (i + 1 < tiles || p.seq % kKeys == 0) {
      tile(buf, i, std::false_type{});
    } else {
      tile(buf, i, std::true_type{});
    }
    __syncthreads();  // every warp is done with buffer `buf` before tile i + 2 is copied there
  }
  // Y[b, q, h, :] = O / l: this lane's runs of columns (the mapping above) of rows g and g + 8.
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(kFull, l[r], 1);
    l[r] += __shfl_xor_sync(kFull, l[r], 2);
    const int64_t q = q0 + g + 8 * r;
    if (q >= p.seq) continue;
    const float inv = 1.0f / l[r];
    float* yr = y + ((b * p.seq + q) * p.heads + h) * d;
#pragma unroll
    for (int part = 0; part < kPer / kVLoad; ++part) {
      // n slots 2 tq and 2 tq + 1 of the steps part kVLoad .. + kVLoad: 2 kVLoad columns.
      const int first = (8 * part + 2 * tq) * kVLoad;
      float run[2 * kVLoad];
#pragma unroll
      for (int e = 0; e < kVLoad; ++e) {
        run[e] = o[part * kVLoad + e][2 * r] * inv;
        run[kVLoad + e] = o[part * kVLoad + e][2 * r + 1] * inv;
      }
      if (kW == 4 && first + 2 * kVLoad <= d) {
#pragma unroll
        for (int e = 0; e < 2 * kVLoad; e += 4) {
          warp::store_global4(yr + first + e, {run[e], run[e + 1], run[e + 2], run[e + 3]});
        }
      } else {
#pragma unroll
        for (int e = 0; e < 2 * kVLoad; ++e) {
          if (first + e < d) yr[first + e] = run[e];
        }
      }
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
