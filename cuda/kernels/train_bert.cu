// BERT's backward kernels (issue 7): unary derivatives (Erf, Tanh, Sqrt, Gelu, Neg, Exp), the
// element-wise gradients of Sub/Mul/Div/Pow at dY's shape (reduce.cu's ps_reduce_f32 then sums
// them to each input's shape), ReduceMean's spread, Softmax, LayerNormalization and Gather.
// Semantics are the CPU references' (models/cpu/grad*.cc), in float32. Every kernel is
// deterministic: no atomics, every sum in a fixed order (Gather's repeated indices are chained
// and summed in position order by one thread). The parameter blocks and the rules:
// train_bert_params.h. Launchers: models/gpu/grad_bert_ops.cc; plans: grad_bert_plan.h.
#include <cstdint>

#include "cuda/kernels/train_bert_params.h"
#include "cuda/kernels/train_device.h"

namespace train_bert {

using ps::train_kernels::BinaryGradParams;
using ps::train_kernels::GatherGradParams;
using ps::train_kernels::LayerNormGradParams;
using ps::train_kernels::SoftmaxGradParams;
using ps::train_kernels::SpreadParams;
using ps::train_kernels::UnaryGradParams;

using ps::train_device::grid_stride;
using ps::train_device::kFullMask;
using ps::train_device::store;
using ps::train_device::thread_index;
using ps::train_device::warp_sum;

// The warps of the grid: warp w takes rows w, w + warps, ... (every lane of a warp walks the
// same rows, so the shuffles are uniform).
struct WarpRows {
  uint64_t first, stride;
  unsigned lane;
};
__device__ inline WarpRows warp_rows() {
  const uint64_t t = thread_index();
  return {t / 32, grid_stride() / 32, static_cast<unsigned>(threadIdx.x % 32)};
}

__device__ inline float unary_derivative(int32_t op, float x) {
  switch (op) {
    case ps::train_kernels::kUnaryGradErf:
      return 1.12837916709551257f * expf(-x * x);
    case ps::train_kernels::kUnaryGradTanh: {
      const float t = tanhf(x);
      return 1.0f - t * t;
    }
    case ps::train_kernels::kUnaryGradSqrt:
      return 0.5f / sqrtf(x);
    case ps::train_kernels::kUnaryGradGelu:
      return 0.5f * (1.0f + erff(x * 0.70710678118654752f)) +
             x * expf(-0.5f * x * x) * 0.39894228040143268f;
    case ps::train_kernels::kUnaryGradNeg:
      return -1.0f;
    default:  // kUnaryGradExp
      return expf(x);
  }
}

// The two gradients of a binary op at one element (g = dY, x = A, y = B).
__device__ inline void binary_derivatives(int32_t op, float g, float x, float y, float* ga,
                                          float* gb) {
  switch (op) {
    case ps::train_kernels::kBinaryGradSub:
      *ga = g;
      *gb = -g;
      break;
    case ps::train_kernels::kBinaryGradMul:
      *ga = g * y;
      *gb = g * x;
      break;
    case ps::train_kernels::kBinaryGradDiv:
      *ga = g / y;
      *gb = -g * x / (y * y);
      break;
    default:  // kBinaryGradPow; x^1 and x^2 exactly, as the forward's x * x
      *ga = y == 2.0f ? g * 2.0f * x : g * y * powf(x, y - 1.0f);
      *gb = x > 0.0f ? g * (y == 2.0f ? x * x : powf(x, y)) * logf(x) : 0.0f;
      break;
  }
}

// A dY row of the LayerNorm partial sums: x^ of column `col` in row r.
__device__ inline float layer_norm_xhat(const float* x, const float* stats, int64_t r,
                                        int64_t inner, int64_t col) {
  return (x[r * inner + col] - stats[2 * r]) * stats[2 * r + 1];
}

// Gather: the row index j picks (negatives wrap), -1 when out of range.
template <typename I>
__device__ inline int64_t wrapped(const I* idx, int64_t j, int64_t dim) {
  int64_t v = static_cast<int64_t>(idx[j]);
  if (v < -dim || v >= dim) return -1;
  return v < 0 ? v + dim : v;
}

// A warp per index position j: its lanes compare 32 positions a step, earlier ones until one
// holds j's row (then j is not the first), later ones until the first that does (next[j]).
template <typename I>
__device__ inline void gather_links(const I* idx, int64_t* rows, int32_t* first, int32_t* next,
                                    const GatherGradParams& p) {
  const int64_t lane = static_cast<int64_t>(thread_index() % 32);
  const uint64_t warps = grid_stride() / 32;
  for (uint64_t w = thread_index() / 32; w < static_cast<uint64_t>(p.count); w += warps) {
    const auto j = static_cast<int64_t>(w);  // the same for every lane: the loops are uniform
    const int64_t v = wrapped(idx, j, p.dim);
    bool earlier = false;
    int32_t after = -1;
    if (v >= 0) {
      for (int64_t base = 0; base < j && !earlier; base += 32) {
        const int64_t k = base + lane;
        earlier = __ballot_sync(kFullMask, k < j && wrapped(idx, k, p.dim) == v) != 0u;
      }
      for (int64_t base = j + 1; base < p.count; base += 32) {
        const int64_t k = base + lane;
        const unsigned hits = __ballot_sync(kFullMask, k < p.count && wrapped(idx, k, p.dim) == v);
        if (hits != 0u) {
          after = static_cast<int32_t>(base + __ffs(hits) - 1);
          break;
        }
      }
    }
    if (lane == 0) {
      rows[j] = v;
      first[j] = v >= 0 && !earlier ? 1 : 0;
      next[j] = after;
    }
  }
}

// train_bert_params.h's small-table Gather backward; blockDim (32, kGatherSmallWarps).
template <typename I>
__device__ inline void gather_small(const float* dy, const I* idx, float* ddata,
                                    const GatherGradParams& p, uint32_t accumulate) {
  constexpr unsigned kWarps = ps::train_kernels::kGatherSmallWarps;
  __shared__ float partial[kWarps][32];
  const int64_t tiles = (p.inner + 31) / 32;
  const int64_t blocks = p.outer * p.dim * tiles;
  const int64_t span = (p.count + kWarps - 1) / kWarps;
  const int64_t k0 = static_cast<int64_t>(threadIdx.y) * span;
  const int64_t k1 = k0 + span < p.count ? k0 + span : p.count;
  for (int64_t b = blockIdx.x; b < blocks; b += gridDim.x) {
    const int64_t tile = b % tiles, od = b / tiles;
    const int64_t row = od % p.dim, o = od / p.dim;
    const int64_t i = tile * 32 + threadIdx.x;
    float s = 0.0f;
    if (i < p.inner) {
      for (int64_t k = k0; k < k1; ++k) {
        if (wrapped(idx, k, p.dim) == row) s += dy[(o * p.count + k) * p.inner + i];
      }
    }
    partial[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && i < p.inner) {
      float total = 0.0f;
      for (unsigned w = 0; w < kWarps; ++w) total += partial[w][threadIdx.x];
      store(ddata, (o * p.dim + row) * p.inner + i, total, accumulate);
    }
    __syncthreads();  // partial is reused by the next block's tile
  }
}

}  // namespace train_bert

// dX = dY * f'(X) over p.count elements (p.op: train_bert_params.h's UnaryGradOp).
extern "C" __global__ void ps_unary_backward_f32(const float* x, const float* dy, float* dx,
                                                 ps::train_kernels::UnaryGradParams p) {
  const uint64_t count = static_cast<uint64_t>(p.count);
  for (uint64_t i = train_bert::thread_index(); i < count; i += train_bert::grid_stride()) {
    train_bert::store(dx, i, dy[i] * train_bert::unary_derivative(p.op, x[i]), p.accumulate);
  }
}

// Sub/Mul/Div/Pow: the gradients of A and B at dY's shape (ga / gb may be null).
extern "C" __global__ void ps_binary_backward_f32(const float* a, const float* b, const float* dy,
                                                  float* ga, float* gb,
                                                  ps::train_kernels::BinaryGradParams p) {
  const uint64_t count = static_cast<uint64_t>(p.count);
  for (uint64_t i = train_bert::thread_index(); i < count; i += train_bert::grid_stride()) {
    int64_t oa = 0, ob = 0;
    uint64_t rem = i;
#pragma unroll
    for (int d = ps::kernels::kMaxRank - 1; d >= 0; --d) {
      if (d < p.rank) {
        const uint64_t dim = static_cast<uint64_t>(p.dims[d]);
        const auto at = static_cast<int64_t>(rem % dim);
        rem /= dim;
        oa += at * p.a_strides[d];
        ob += at * p.b_strides[d];
      }
    }
    float va = 0.0f, vb = 0.0f;
    train_bert::binary_derivatives(p.op, dy[i], a[oa], b[ob], &va, &vb);
    if (ga != nullptr) train_bert::store(ga, i, va, p.accumulate_a);
    if (gb != nullptr) train_bert::store(gb, i, vb, p.accumulate_b);
  }
}

// dX[i] = scale * dY[offset(i)] (ReduceMean backward: dY spread over the averaged axes).
extern "C" __global__ void ps_spread_backward_f32(const float* dy, float* dx,
                                                  ps::train_kernels::SpreadParams p) {
  const uint64_t count = static_cast<uint64_t>(p.count);
  for (uint64_t i = train_bert::thread_index(); i < count; i += train_bert::grid_stride()) {
    int64_t off = 0;
    uint64_t rem = i;
#pragma unroll
    for (int d = ps::kernels::kMaxRank - 1; d >= 0; --d) {
      if (d < p.rank) {
        const uint64_t dim = static_cast<uint64_t>(p.dims[d]);
        off += static_cast<int64_t>(rem % dim) * p.strides[d];
        rem /= dim;
      }
    }
    train_bert::store(dx, i, p.scale * dy[off], p.accumulate);
  }
}

// Softmax backward from Y: a warp per row, dX = Y * (dY - sum(dY * Y)) (the sum in float32,
// lane partials in element order, then the warp's butterfly: a fixed order).
extern "C" __global__ void ps_softmax_backward_f32(const float* y, const float* dy, float* dx,
                                                   ps::train_kernels::SoftmaxGradParams p) {
  const train_bert::WarpRows w = train_bert::warp_rows();
  const uint64_t rows = static_cast<uint64_t>(p.outer * p.inner);
  for (uint64_t r = w.first; r < rows; r += w.stride) {
    const int64_t o = static_cast<int64_t>(r) / p.inner, i = static_cast<int64_t>(r) % p.inner;
    const int64_t base = o * p.n * p.inner + i;
    float s = 0.0f;
    for (int64_t j = w.lane; j < p.n; j += 32) s += dy[base + j * p.inner] * y[base + j * p.inner];
    s = train_bert::warp_sum(s);
    for (int64_t j = w.lane; j < p.n; j += 32) {
      const int64_t at = base + j * p.inner;
      train_bert::store(dx, static_cast<uint64_t>(at), y[at] * (dy[at] - s), p.accumulate);
    }
  }
}

// LayerNormalization backward, pass 1: a warp per row; the row's statistics into `stats`
// (mean, inv_std) and, when dx is not null, dX.
extern "C" __global__ void ps_layer_norm_backward_dx_f32(const float* x, const float* scale,
                                                         const float* dy, float* dx,
                                                         float* stats,
                                                         ps::train_kernels::LayerNormGradParams p) {
  const train_bert::WarpRows w = train_bert::warp_rows();
  const float h = static_cast<float>(p.inner);
  for (uint64_t r = w.first; r < static_cast<uint64_t>(p.rows); r += w.stride) {
    const int64_t base = static_cast<int64_t>(r) * p.inner;
    const float* xr = x + base;
    const float* gr = dy + base;
    float s = 0.0f;
    for (int64_t k = w.lane; k < p.inner; k += 32) s += xr[k];
    const float mean = train_bert::warp_sum(s) / h;
    float v = 0.0f;
    for (int64_t k = w.lane; k < p.inner; k += 32) {
      const float d = xr[k] - mean;
      v += d * d;
    }
    const float inv_std = 1.0f / sqrtf(train_bert::warp_sum(v) / h + p.epsilon);
    if (w.lane == 0) {
      stats[2 * r] = mean;
      stats[2 * r + 1] = inv_std;
    }
    if (dx == nullptr) continue;
    float mg = 0.0f, mgx = 0.0f;
    for (int64_t k = w.lane; k < p.inner; k += 32) {
      const float g = gr[k] * scale[k];
      mg += g;
      mgx += g * (xr[k] - mean) * inv_std;
    }
    mg = train_bert::warp_sum(mg) / h;
    mgx = train_bert::warp_sum(mgx) / h;
    for (int64_t k = w.lane; k < p.inner; k += 32) {
      const float xhat = (xr[k] - mean) * inv_std;
      train_bert::store(dx, static_cast<uint64_t>(base + k),
                        inv_std * (gr[k] * scale[k] - mg - xhat * mgx), p.accumulate_dx);
    }
  }
}

// LayerNormalization backward in ONE pass for rows of at most 32 * kPerLane elements (BERT's
// 768 = 32 x 24): a block of warps per chunk of p.rows_per_chunk rows (warp w takes the
// chunk's rows w, w + warps, ...), each row read once into registers. dX (dx non-null) is the
// looping ps_layer_norm_backward_dx_f32's, the same arithmetic in the same order (each lane's
// partial sums over its elements in index order, then the butterfly); the chunk's column sums
// of dY * x^ and dY (partial non-null) stay in the lanes' registers over the warp's rows and
// are added across the warps in warp order through shared memory into
// partial[0][chunk][col] and partial[1][chunk][col], which ps_layer_norm_param_final_f32 sums.
// A full row's loads carry no bounds check, so they go out together (a partial row's are
// clamped to the row and unconditional: the padding lanes' values are read and not used).
// Before: the dX kernel (a warp per row, statistics written out) and a partial-sums kernel
// that read X and dY again (a thread per (chunk, column) walking 32 rows), ~30 us for BERT's
// 2008 x 768 against a ~6 us floor (18 MB) on the H100. One entry point per share of a row a
// lane holds, as the forward's (norm_softmax.cu): ps_layer_norm_backward_warpN_f32.
namespace train_bert {
template <int kPerLane>
__device__ void layer_norm_backward_rows(const float* x, const float* scale, const float* dy,
                                         float* dx, float* partial,
                                         const ps::train_kernels::LayerNormGradParams& p) {
  __shared__ float sums[2][32 * kPerLane];
  const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  const int n = static_cast<int>(p.inner);
  const float h = static_cast<float>(p.inner);
  const bool full = n == 32 * kPerLane;
  auto in_row = [&](int k) { return full || k * 32 + static_cast<int>(lane) < n; };
  // The lane's k-th column, clamped to the row (a partial row's padding lanes read its last).
  auto column = [&](int k) {
    const int at = k * 32 + static_cast<int>(lane);
    return full || at < n ? at : n - 1;
  };
  for (int64_t chunk = blockIdx.x; chunk < p.chunks; chunk += gridDim.x) {
    const int64_t begin = chunk * p.rows_per_chunk;
    const int64_t end = begin + p.rows_per_chunk < p.rows ? begin + p.rows_per_chunk : p.rows;
    float ss[kPerLane], sb[kPerLane];
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) ss[k] = sb[k] = 0.0f;
    for (int64_t r = begin + warp; r < end; r += warps) {
      const int64_t base = r * p.inner;
      const float* xr = x + base;
      const float* gr = dy + base;
      // dY * scale is formed where it is used (twice), not held: 128 registers a thread
      // instead of 187 (ptxas, sm_90, N = 24), so two blocks fit an SM.
      float xv[kPerLane], dv[kPerLane];
      if (full) {
        // Fixed offsets from the lane's first element: no index arithmetic held per load.
        const float *xl = xr + lane, *gl = gr + lane;
#pragma unroll
        for (int k = 0; k < kPerLane; ++k) {
          xv[k] = xl[k * 32];
          dv[k] = gl[k * 32];
        }
      } else {
#pragma unroll
        for (int k = 0; k < kPerLane; ++k) {
          const int c = column(k);  // a select, not a branch around the load
          xv[k] = xr[c];
          dv[k] = gr[c];
        }
      }
      float s = 0.0f;
#pragma unroll
      for (int k = 0; k < kPerLane; ++k) {
        if (in_row(k)) s += xv[k];
      }
      const float mean = warp_sum(s) / h;
      float v = 0.0f;
#pragma unroll
      for (int k = 0; k < kPerLane; ++k) {
        const float d = xv[k] - mean;
        if (in_row(k)) v += d * d;
      }
      const float inv_std = 1.0f / sqrtf(warp_sum(v) / h + p.epsilon);
      float mg = 0.0f, mgx = 0.0f;
#pragma unroll
      for (int k = 0; k < kPerLane; ++k) {
        if (in_row(k)) {
          const float g = dv[k] * scale[column(k)];
          mg += g;
          mgx += g * (xv[k] - mean) * inv_std;
        }
      }
      mg = warp_sum(mg) / h;
      mgx = warp_sum(mgx) / h;
#pragma unroll
      for (int k = 0; k < kPerLane; ++k) {
        if (in_row(k)) {
          const float xhat = (xv[k] - mean) * inv_std;
          if (dx != nullptr) {
            store(dx, static_cast<uint64_t>(base + k * 32 + lane),
                  inv_std * (dv[k] * scale[column(k)] - mg - xhat * mgx), p.accumulate_dx);
          }
          ss[k] += dv[k] * xhat;
          sb[k] += dv[k];
        }
      }
    }
    if (partial == nullptr) continue;
    // The warps' sums in warp order: warp 0 writes, each next one adds.
    for (unsigned w = 0; w < warps; ++w) {
      if (warp == w) {
#pragma unroll
        for (int k = 0; k < kPerLane; ++k) {
          if (in_row(k)) {
            const int c = k * 32 + static_cast<int>(lane);
            sums[0][c] = w == 0 ? ss[k] : sums[0][c] + ss[k];
            sums[1][c] = w == 0 ? sb[k] : sums[1][c] + sb[k];
          }
        }
      }
      __syncthreads();
    }
    const int64_t total = p.chunks * p.inner;
    for (int c = static_cast<int>(threadIdx.x); c < n; c += static_cast<int>(blockDim.x)) {
      partial[chunk * p.inner + c] = sums[0][c];
      partial[total + chunk * p.inner + c] = sums[1][c];
    }
    __syncthreads();  // `sums` is the next chunk's
  }
}
}  // namespace train_bert

// One block of 32 x ps::train_kernels::kLayerNormBlockWarps threads per chunk (the launcher's
// grid: p.chunks blocks; more chunks than blocks loop).
#define PS_LAYER_NORM_BACKWARD_WARP(N)                                                         \
  extern "C" __global__ void __launch_bounds__(32 * ps::train_kernels::kLayerNormBlockWarps)  \
      ps_layer_norm_backward_warp##N##_f32(const float* x, const float* scale, const float* dy, \
                                           float* dx, float* partial,                          \
                                           ps::train_kernels::LayerNormGradParams p) {         \
    train_bert::layer_norm_backward_rows<N>(x, scale, dy, dx, partial, p);                     \
  }
PS_LAYER_NORM_BACKWARD_WARP(1)
PS_LAYER_NORM_BACKWARD_WARP(2)
PS_LAYER_NORM_BACKWARD_WARP(4)
PS_LAYER_NORM_BACKWARD_WARP(8)
PS_LAYER_NORM_BACKWARD_WARP(16)
PS_LAYER_NORM_BACKWARD_WARP(24)
PS_LAYER_NORM_BACKWARD_WARP(32)
#undef PS_LAYER_NORM_BACKWARD_WARP

// LayerNormalization backward, pass 2: per (chunk, column), the sums of dY * x^ and of dY over
// the chunk's rows in row order, into partial[0][chunk][col] and partial[1][chunk][col].
extern "C" __global__ void ps_layer_norm_param_partials_f32(
    const float* x, const float* dy, const float* stats, float* partial,
    ps::train_kernels::LayerNormGradParams p) {
  const uint64_t total = static_cast<uint64_t>(p.chunks * p.inner);
  for (uint64_t t = train_bert::thread_index(); t < total; t += train_bert::grid_stride()) {
    const int64_t c = static_cast<int64_t>(t) / p.inner, col = static_cast<int64_t>(t) % p.inner;
    const int64_t begin = c * p.rows_per_chunk;
    const int64_t end = begin + p.rows_per_chunk < p.rows ? begin + p.rows_per_chunk : p.rows;
    float ss = 0.0f, sb = 0.0f;
    for (int64_t r = begin; r < end; ++r) {
      const float g = dy[r * p.inner + col];
      ss += g * train_bert::layer_norm_xhat(x, stats, r, p.inner, col);
      sb += g;
    }
    partial[t] = ss;
    partial[total + t] = sb;
  }
}

// LayerNormalization backward, last pass: dscale and dbias (either may be null) = the chunks'
// partial sums. A block of kLayerNormFinalWarps warps per 32 columns (lane = column, so a
// warp's loads are one row of the partials): warp w adds chunks w, w + warps, ... in order
// (four chunks' loads issued before their adds), then the warps' sums are added in warp order
// (a fixed order: deterministic). Grid: ceil(inner / 32) blocks.
extern "C" __global__ void __launch_bounds__(32 * ps::train_kernels::kLayerNormFinalWarps)
    ps_layer_norm_param_final_f32(const float* partial, float* dscale, float* dbias,
                                  ps::train_kernels::LayerNormGradParams p) {
  __shared__ float sums[2][ps::train_kernels::kLayerNormFinalWarps][32];
  const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  const int64_t total = p.chunks * p.inner;
  for (int64_t col0 = static_cast<int64_t>(blockIdx.x) * 32; col0 < p.inner;
       col0 += static_cast<int64_t>(gridDim.x) * 32) {
    const int64_t col = col0 + lane;
    float ss = 0.0f, sb = 0.0f;
    if (col < p.inner) {
      constexpr int kAhead = 4;
      int64_t c = warp;
      for (; c + (kAhead - 1) * warps < p.chunks; c += kAhead * warps) {
        float vs[kAhead], vb[kAhead];
#pragma unroll
        for (int k = 0; k < kAhead; ++k) {
          vs[k] = partial[(c + k * warps) * p.inner + col];
          vb[k] = partial[total + (c + k * warps) * p.inner + col];
        }
#pragma unroll
        for (int k = 0; k < kAhead; ++k) {
          ss += vs[k];
          sb += vb[k];
        }
      }
      for (; c < p.chunks; c += warps) {
        ss += partial[c * p.inner + col];
        sb += partial[total + c * p.inner + col];
      }
    }
    sums[0][warp][lane] = ss;
    sums[1][warp][lane] = sb;
    __syncthreads();
    if (warp == 0 && col < p.inner) {
      ss = sums[0][0][lane];
      sb = sums[1][0][lane];
      for (unsigned w = 1; w < warps; ++w) {
        ss += sums[0][w][lane];
        sb += sums[1][w][lane];
      }
      const auto at = static_cast<uint64_t>(col);
      if (dscale != nullptr) train_bert::store(dscale, at, ss, p.accumulate_scale);
      if (dbias != nullptr) train_bert::store(dbias, at, sb, p.accumulate_bias);
    }
    __syncthreads();  // `sums` is the next columns'
  }
}

// Gather backward, pass 1 (train_bert_params.h's GatherGradParams): the wrapped row of each
// index position, whether it is the first with its row, and the next position with it.
extern "C" __global__ void ps_gather_backward_links_i64(const int64_t* idx, int64_t* rows,
                                                        int32_t* first, int32_t* next,
                                                        ps::train_kernels::GatherGradParams p) {
  train_bert::gather_links(idx, rows, first, next, p);
}
extern "C" __global__ void ps_gather_backward_links_i32(const int32_t* idx, int64_t* rows,
                                                        int32_t* first, int32_t* next,
                                                        ps::train_kernels::GatherGradParams p) {
  train_bert::gather_links(idx, rows, first, next, p);
}

// Gather backward of a small table (train_bert_params.h): one kernel, no links.
extern "C" __global__ void __launch_bounds__(256)
    ps_gather_backward_small_i64(const float* dy, const int64_t* idx, float* ddata,
                                 ps::train_kernels::GatherGradParams p, uint32_t accumulate) {
  train_bert::gather_small(dy, idx, ddata, p, accumulate);
}
extern "C" __global__ void __launch_bounds__(256)
    ps_gather_backward_small_i32(const float* dy, const int32_t* idx, float* ddata,
                                 ps::train_kernels::GatherGradParams p, uint32_t accumulate) {
  train_bert::gather_small(dy, idx, ddata, p, accumulate);
}

// Gather backward, pass 2: a thread per (o, j, i) whose j is the first position of its row
// adds dY[o, j', i] over the chain j' = j, next[j], ... (increasing positions) to
// dData[o, row, i]. Each dData element has at most one writer: no atomics.
extern "C" __global__ void ps_gather_backward_f32(const float* dy, const int64_t* rows,
                                                  const int32_t* first, const int32_t* next,
                                                  float* ddata,
                                                  ps::train_kernels::GatherGradParams p) {
  const uint64_t total = static_cast<uint64_t>(p.outer * p.count * p.inner);
  for (uint64_t t = train_bert::thread_index(); t < total; t += train_bert::grid_stride()) {
    const int64_t i = static_cast<int64_t>(t) % p.inner;
    const int64_t oj = static_cast<int64_t>(t) / p.inner;
    const int64_t j = oj % p.count, o = oj / p.count;
    if (first[j] == 0) continue;
    float s = 0.0f;
    for (int64_t k = j; k >= 0; k = next[k]) s += dy[(o * p.count + k) * p.inner + i];
    const int64_t at = (o * p.dim + rows[j]) * p.inner + i;
    ddata[at] += s;
  }
}
