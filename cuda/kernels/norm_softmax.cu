// Row-wise float32 kernels: Softmax / LogSoftmax along one axis (AddSoftmax: of X plus a
// broadcast mask, added as a row is read) and LayerNormalization.
//
// Softmax over the last axis gives each row to one warp and keeps the row in registers (rows
// up to 1024 elements: BERT's 251-wide attention rows read once), subtracting the exact row
// maximum; longer rows get a block and three passes; a softmax over an inner axis gives one
// thread to each (outer, inner) column (consecutive threads read consecutive addresses).
// LayerNorm likewise: a warp per row in registers up to 1024 elements (BERT's 768), a block per
// row beyond; statistics are two-pass (mean, then the mean squared deviation) in float32. The
// warp-row kernels have one entry point per share of a row a lane holds (see below).
// Launchers: models/gpu/norm_softmax_ops.cc.
#include <cstdint>

#include "cuda/kernels/kernel_params.h"

namespace norm_softmax {

using ps::kernels::LayerNormParams;
using ps::kernels::SoftmaxParams;

constexpr unsigned kFull = 0xffffffffu;

__device__ inline float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFull, v, o));
  return v;
}
__device__ inline float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}

// Block-wide reduction through shared memory (blockDim.x a multiple of 32, <= 1024). Every
// thread gets the result.
template <bool kMax>
__device__ float block_reduce(float v) {
  __shared__ float partial[32];
  __shared__ float result;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  v = kMax ? warp_max(v) : warp_sum(v);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    const int warps = blockDim.x / 32;
    float w = lane < warps ? partial[lane] : (kMax ? -INFINITY : 0.0f);
    w = kMax ? warp_max(w) : warp_sum(w);
    if (lane == 0) result = w;
  }
  __syncthreads();
  const float r = result;
  __syncthreads();  // partial/result are reused by the next call
  return r;
}

__device__ inline int64_t global_warp() {
  return (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
}
__device__ inline int64_t warp_count() { return static_cast<int64_t>(gridDim.x) * blockDim.x / 32; }

// NaN-propagating max (fmaxf would drop a NaN; the CPU reference's std::max keeps the first
// operand, so a NaN row yields NaN outputs there too).
__device__ inline float max_nan(float a, float b) { return (a > b || isnan(a)) ? a : b; }

// AddSoftmax: where row `row`'s mask row starts (SoftmaxParams).
__device__ inline int64_t mask_row(const SoftmaxParams& p, int64_t row) {
  int64_t at = 0;
  for (int i = 0; i < p.mask_terms; ++i) {
    at += (row / p.mask_div[i]) % p.mask_dim[i] * p.mask_stride[i];
  }
  return at;
}

// Element c of a row: in[c], or in[c] + mrow[c * mask_col] (AddSoftmax: rounded to float32 as
// the Add kernel rounds it) when mrow is not null.
__device__ inline float masked(const float* in, const float* mrow, int64_t mask_col, int64_t c) {
  return mrow != nullptr ? in[c] + mrow[c * mask_col] : in[c];
}

template <int kPerLane>
__device__ void softmax_warp_rows(const float* x, const float* mask, float* y,
                                  const SoftmaxParams& p) {
  const int lane = threadIdx.x % 32;
  const int n = static_cast<int>(p.n);
  for (int64_t row = global_warp(); row < p.outer; row += warp_count()) {
    const float* in = x + row * p.n;
    const float* mrow = mask != nullptr ? mask + mask_row(p, row) : nullptr;
    float* out = y + row * p.n;
    float v[kPerLane];
    float m = -INFINITY;
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      const int c = k * 32 + lane;
      v[k] = c < n ? masked(in, mrow, p.mask_col, c) : -INFINITY;
      m = max_nan(m, v[k]);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) m = max_nan(m, __shfl_xor_sync(kFull, m, o));
    // Each exponential once, kept for the output (the same bits as computing it again).
    float e[kPerLane];
    float s = 0;
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      const int c = k * 32 + lane;
      e[k] = c < n ? expf(v[k] - m) : 0.0f;
      s += e[k];
    }
    s = warp_sum(s);
    if (p.log) {
      const float log_s = logf(s);
#pragma unroll
      for (int k = 0; k < kPerLane; ++k) {
        const int c = k * 32 + lane;
        if (c < n) out[c] = v[k] - m - log_s;
      }
    } else {
      const float inv = 1.0f / s;
#pragma unroll
      for (int k = 0; k < kPerLane; ++k) {
        const int c = k * 32 + lane;
        if (c < n) out[c] = e[k] * inv;
      }
    }
  }
}

__device__ void softmax_block_rows(const float* x, const float* mask, float* y,
                                   const SoftmaxParams& p) {
  for (int64_t row = blockIdx.x; row < p.outer; row += gridDim.x) {
    const float* in = x + row * p.n;
    const float* mrow = mask != nullptr ? mask + mask_row(p, row) : nullptr;
    float* out = y + row * p.n;
    float m = -INFINITY;
    for (int64_t c = threadIdx.x; c < p.n; c += blockDim.x) {
      m = max_nan(m, masked(in, mrow, p.mask_col, c));
    }
    m = block_reduce<true>(m);
    float s = 0;
    for (int64_t c = threadIdx.x; c < p.n; c += blockDim.x) {
      s += expf(masked(in, mrow, p.mask_col, c) - m);
    }
    s = block_reduce<false>(s);
    const float log_s = logf(s), inv = 1.0f / s;
    for (int64_t c = threadIdx.x; c < p.n; c += blockDim.x) {
      const float v = masked(in, mrow, p.mask_col, c);
      out[c] = p.log ? v - m - log_s : expf(v - m) * inv;
    }
  }
}

__device__ void softmax_columns(const float* x, float* y, const SoftmaxParams& p) {
  const int64_t columns = p.outer * p.inner;
  for (int64_t col = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; col < columns;
       col += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t o = col / p.inner, i = col % p.inner;
    const float* in = x + o * p.n * p.inner + i;
    float* out = y + o * p.n * p.inner + i;
    float m = -INFINITY;
    for (int64_t k = 0; k < p.n; ++k) m = max_nan(m, in[k * p.inner]);
    float s = 0;
    for (int64_t k = 0; k < p.n; ++k) s += expf(in[k * p.inner] - m);
    const float log_s = logf(s), inv = 1.0f / s;
    for (int64_t k = 0; k < p.n; ++k) {
      const float v = in[k * p.inner];
      out[k * p.inner] = p.log ? v - m - log_s : expf(v - m) * inv;
    }
  }
}

// X's element i of a row: in[i], or in[i] + res[i] (AddLayerNormalization: the residual Add,
// rounded to float32 as the Add kernel rounds it) when res is not null.
__device__ inline float ln_input(const float* in, const float* res, int64_t i) {
  return res != nullptr ? in[i] + res[i] : in[i];
}

template <int kPerLane>
__device__ void layer_norm_warp_rows(const float* x, const float* residual, const float* scale,
                                     const float* bias, float* y, float* mean_out,
                                     float* inv_std_out, const LayerNormParams& p) {
  const int lane = threadIdx.x % 32;
  const int n = static_cast<int>(p.inner);
  for (int64_t row = global_warp(); row < p.rows; row += warp_count()) {
    const float* in = x + row * p.inner;
    const float* res = residual != nullptr ? residual + row * p.inner : nullptr;
    float* out = y + row * p.inner;
    float v[kPerLane];
    float s = 0;
    if (n == 32 * kPerLane) {
      // A full row (BERT's 768 = 32 x 24): no bounds to check, so the loads carry no branch and
      // go out together. Guarded by `c < n`, each load sat in its own branch and waited for the
      // one before: 24 round trips to memory a row, ~15 us for one row on an H100.
      if (res != nullptr) {
#pragma unroll
        for (int k = 0; k < kPerLane; ++k) v[k] = in[k * 32 + lane] + res[k * 32 + lane];
      } else {
#pragma unroll
        for (int k = 0; k < kPerLane; ++k) v[k] = in[k * 32 + lane];
      }
#pragma unroll
      for (int k = 0; k < kPerLane; ++k) s += v[k];
    } else {
#pragma unroll
      for (int k = 0; k < kPerLane; ++k) {
        const int c = k * 32 + lane;
        v[k] = c < n ? ln_input(in, res, c) : 0.0f;
        s += v[k];
      }
    }
    const float mean = warp_sum(s) / static_cast<float>(n);
    float sq = 0;
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      const int c = k * 32 + lane;
      const float d = c < n ? v[k] - mean : 0.0f;
      sq += d * d;
    }
    const float inv_std = rsqrtf(warp_sum(sq) / static_cast<float>(n) + p.epsilon);
    if (n == 32 * kPerLane && p.scale_len == p.inner && p.bias_len == p.inner) {
      // Full rows with a whole-row scale and bias (BERT's): their loads go out eight at a time,
      // ahead of those eight stores (the compiler keeps a load after any store before it, out
      // might alias them: one at a time, each load waited for the store before it).
      constexpr int kChunk = 8;
#pragma unroll
      for (int k0 = 0; k0 < kPerLane; k0 += kChunk) {
        float g[kChunk], b[kChunk];
#pragma unroll
        for (int j = 0; j < kChunk && k0 + j < kPerLane; ++j) {
          g[j] = scale[(k0 + j) * 32 + lane];
          b[j] = bias[(k0 + j) * 32 + lane];
        }
#pragma unroll
        for (int j = 0; j < kChunk && k0 + j < kPerLane; ++j) {
          float r = (v[k0 + j] - mean) * inv_std * g[j];
          r += b[j];
          out[(k0 + j) * 32 + lane] = r;
        }
      }
    } else {
#pragma unroll
      for (int k = 0; k < kPerLane; ++k) {
        const int c = k * 32 + lane;
        if (c < n) {
          // Scale and bias usually span the whole row: skip the modulo then.
          float r = (v[k] - mean) * inv_std * scale[p.scale_len == p.inner ? c : c % p.scale_len];
          if (p.bias_len > 0) r += bias[p.bias_len == p.inner ? c : c % p.bias_len];
          out[c] = r;
        }
      }
    }
    if (lane == 0) {
      if (mean_out != nullptr) mean_out[row] = mean;
      if (inv_std_out != nullptr) inv_std_out[row] = inv_std;
    }
  }
}

__device__ void layer_norm_block_rows(const float* x, const float* residual, const float* scale,
                                      const float* bias, float* y, float* mean_out,
                                      float* inv_std_out, const LayerNormParams& p) {
  for (int64_t row = blockIdx.x; row < p.rows; row += gridDim.x) {
    const float* in = x + row * p.inner;
    const float* res = residual != nullptr ? residual + row * p.inner : nullptr;
    float* out = y + row * p.inner;
    float s = 0;
    for (int64_t c = threadIdx.x; c < p.inner; c += blockDim.x) s += ln_input(in, res, c);
    const float mean = block_reduce<false>(s) / static_cast<float>(p.inner);
    float sq = 0;
    for (int64_t c = threadIdx.x; c < p.inner; c += blockDim.x) {
      const float d = ln_input(in, res, c) - mean;
      sq += d * d;
    }
    const float inv_std = rsqrtf(block_reduce<false>(sq) / static_cast<float>(p.inner) + p.epsilon);
    for (int64_t c = threadIdx.x; c < p.inner; c += blockDim.x) {
      float r = (ln_input(in, res, c) - mean) * inv_std * scale[c % p.scale_len];
      if (p.bias_len > 0) r += bias[c % p.bias_len];
      out[c] = r;
    }
    if (threadIdx.x == 0) {
      if (mean_out != nullptr) mean_out[row] = mean;
      if (inv_std_out != nullptr) inv_std_out[row] = inv_std;
    }
  }
}

}  // namespace norm_softmax

// A warp per row, the row in registers: one entry point per share of a row a lane holds (N,
// rows of n <= 32 * N; inner == 1), each compiled to the registers its N needs. (One kernel
// holding every N took the largest's 96 registers for Softmax and 127 for LayerNorm: two blocks
// of 256 threads an SM, a quarter of the warps that hide the loads' latency; BERT-base's
// softmax took 38.5 us a layer against a 16 us floor, 20 us split. LayerNorm's miss has
// another cause: docs/gpu-executor.md.)
// The LayerNorm ones are bounded to two blocks of 256 threads an SM (128 registers; 96 for N =
// 24): their batched loads would otherwise take 152, one block an SM.
#define PS_NORM_SOFTMAX_WARP(N)                                                                    \
  extern "C" __global__ void ps_softmax_warp##N##_f32(const float* x, const float* mask, float* y, \
                                                      ps::kernels::SoftmaxParams p) {              \
    norm_softmax::softmax_warp_rows<N>(x, mask, y, p);                                             \
  }                                                                                                \
  extern "C" __global__ void __launch_bounds__(256, 2)                                             \
      ps_layer_norm_warp##N##_f32(const float* x, const float* residual, const float* scale,       \
                                  const float* bias, float* y, float* mean_out,                    \
                                  float* inv_std_out, ps::kernels::LayerNormParams p) {            \
    norm_softmax::layer_norm_warp_rows<N>(x, residual, scale, bias, y, mean_out, inv_std_out, p);  \
  }
PS_NORM_SOFTMAX_WARP(1)
PS_NORM_SOFTMAX_WARP(2)
PS_NORM_SOFTMAX_WARP(4)
PS_NORM_SOFTMAX_WARP(8)
PS_NORM_SOFTMAX_WARP(16)
PS_NORM_SOFTMAX_WARP(24)
PS_NORM_SOFTMAX_WARP(32)
#undef PS_NORM_SOFTMAX_WARP

// Softmax / LogSoftmax over rows too long for a warp or an inner axis. mode 1: a block per row
// (inner == 1; AddSoftmax's mask, or null); mode 2: a thread per column (mask null).
extern "C" __global__ void ps_softmax_f32(const float* x, const float* mask, float* y,
                                          ps::kernels::SoftmaxParams p, int32_t mode) {
  if (mode == 1) {
    norm_softmax::softmax_block_rows(x, mask, y, p);
  } else {
    norm_softmax::softmax_columns(x, y, p);
  }
}

// LayerNormalization over rows too long for a warp, a block per row. Every LayerNorm kernel:
// residual null, or added to X (AddLayerNormalization); mean_out / inv_std_out may be null.
extern "C" __global__ void ps_layer_norm_f32(const float* x, const float* residual,
                                             const float* scale, const float* bias, float* y,
                                             float* mean_out, float* inv_std_out,
                                             ps::kernels::LayerNormParams p) {
  norm_softmax::layer_norm_block_rows(x, residual, scale, bias, y, mean_out, inv_std_out, p);
}
