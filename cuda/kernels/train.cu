// Training kernels (issue 7): the backward of the layers cuDNN does not cover for us (ReLU,
// max / average / global average pooling), softmax cross-entropy with its gradient, the SGD
// update, and gradient accumulation. Semantics are the CPU reference's (models/cpu/grad*.cc,
// sgd.cc), in float32. Every kernel is deterministic: no atomics; each sum is taken in a fixed
// order, so two runs give the same bits. The gradient kernels take `accumulate`: non-zero adds
// the result to dx instead of overwriting it. Launchers: models/gpu/grad_kernel_ops.cc.
#include <cstdint>

#include "cuda/kernels/dnn_pool_params.h"
#include "cuda/kernels/pool_band.h"
#include "cuda/kernels/pool_taps.h"
#include "cuda/kernels/train_device.h"
#include "cuda/kernels/train_params.h"

namespace train {

using ps::dnn_kernels::PoolParams;
using ps::train_kernels::SoftmaxXentParams;

using ps::train_device::grid_stride;
using ps::train_device::kFullMask;
using ps::train_device::store;
using ps::train_device::thread_index;
using ps::train_device::warp_sum;

// NaN-propagating maximum (a NaN row gives NaN, as std::max_element's rows do on the CPU).
__device__ inline float max_nan(float a, float b) { return (a > b || isnan(a)) ? a : b; }
__device__ inline float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = max_nan(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}

// The outputs whose window holds input position `i` of dimension d as one of its taps: tap t
// reads i when o * stride - pad_begin + t * dilation == i. Calls f(o, t) for each such o in
// [0, out), in increasing o (decreasing t), which is the order the CPU reference adds them in.
// The outputs whose window SPAN covers i form one range, found with two divisions (PyTorch's
// pooling backward does the same); with dilation, those of them where i falls between two
// taps are skipped. I is the index type (pooling_fits_int32 says when int32_t serves).
template <typename I, typename F>
__device__ inline void for_each_window(const PoolParams& p, int d, I i, F f) {
  const I stride = static_cast<I>(p.stride[d]);
  const I dil = static_cast<I>(p.dilation[d]);
  const I at = i + static_cast<I>(p.pad_begin[d]);  // i in padded coordinates, >= 0
  const I last = ps::pool_band::last_window(p, d, i);
  for (I o = ps::pool_band::first_window(p, d, i); o < last; ++o) {
    const I offset = at - o * stride;  // in [0, span)
    if (dil == 1) {
      f(o, offset);
    } else if (offset % dil == 0) {
      f(o, offset / dil);
    }
  }
}

// The window arithmetic of the forward pooling kernel (pool_taps.h).
using ps::pool_taps::TapRangeOf;
using ps::pool_taps::valid_taps;
// The divisor's factor of dimension d for output o (AveragePool's count_include_pad rule).
template <typename I>
__device__ inline I counted(const PoolParams& p, int d, I o) {
  return ps::pool_taps::counted(p, d, o, valid_taps(p, d, o));
}

// Whether every element index of the pooling's input and output, and a grid-stride step past
// the last, fits in int32_t: then the kernels index in 32 bits, whose divisions cost several
// times less than 64-bit ones (ResNet152's MaxPool backward at batch 64: 2.5 ms with 64-bit
// indices, most of it divisions). Uniform over the launch: no divergence.
__device__ inline bool pooling_fits_int32(const PoolParams& p) {
  constexpr uint64_t kLimit = uint64_t{1} << 30;  // leaves room for the grid stride
  const uint64_t out_plane = static_cast<uint64_t>(p.out[0] * p.out[1] * p.out[2]);
  const uint64_t in_plane = static_cast<uint64_t>(p.in[0] * p.in[1] * p.in[2]);
  const uint64_t planes = static_cast<uint64_t>(p.planes);
  return in_plane * planes < kLimit && out_plane * planes < kLimit && grid_stride() < kLimit;
}

// Element i of a pooling input (planes of in[0] x in[1] x in[2]): its plane, its offset in the
// plane and its coordinates.
template <typename I>
struct PoolInput {
  I plane, at, id, ih, iw;
};
template <typename I>
__device__ inline PoolInput<I> pool_input(const PoolParams& p, I in_plane, I i) {
  PoolInput<I> e;
  const I in2 = static_cast<I>(p.in[2]), in1 = static_cast<I>(p.in[1]);
  e.plane = i / in_plane;
  e.at = i - e.plane * in_plane;
  const I row = e.at / in2;
  e.iw = e.at - row * in2;
  e.id = row / in1;
  e.ih = row - e.id * in1;
  return e;
}

// The position inside its plane (id * in[1] + ih) * in[2] + iw of the FIRST maximum of
// output (od, oh, ow)'s window over the plane `xin`, NaNs skipped after the first tap, as the
// CPU reference's; -1 for a window with no tap inside the input.
template <typename I>
__device__ inline I window_argmax(const float* xin, const PoolParams& p, I od, I oh, I ow) {
  const I in2 = static_cast<I>(p.in[2]), in1 = static_cast<I>(p.in[1]);
  I stride[3], pad[3], dil[3];
  for (int d = 0; d < 3; ++d) {
    stride[d] = static_cast<I>(p.stride[d]);
    pad[d] = static_cast<I>(p.pad_begin[d]);
    dil[d] = static_cast<I>(p.dilation[d]);
  }
  const TapRangeOf<I> rd = valid_taps(p, 0, od);
  const TapRangeOf<I> rh = valid_taps(p, 1, oh);
  const TapRangeOf<I> rw = valid_taps(p, 2, ow);
  float best = 0.0f;
  I best_at = -1;
  for (I td = rd.first; td < rd.last; ++td) {
    const I id = od * stride[0] - pad[0] + td * dil[0];
    for (I th = rh.first; th < rh.last; ++th) {
      const I ih = oh * stride[1] - pad[1] + th * dil[1];
      for (I tw = rw.first; tw < rw.last; ++tw) {
        const I iw = ow * stride[2] - pad[2] + tw * dil[2];
        const I at = (id * in1 + ih) * in2 + iw;
        const float v = xin[at];
        if (best_at < 0 || v > best) {
          best = v;
          best_at = at;
        }
      }
    }
  }
  return best_at;
}

// MaxPool backward, pass 1, in index type I (ps_max_pool_argmax_f32).
template <typename I>
__device__ inline void max_pool_argmax(const float* x, int32_t* argmax, const PoolParams& p) {
  const I out2 = static_cast<I>(p.out[2]), out1 = static_cast<I>(p.out[1]);
  const I out_plane = static_cast<I>(p.out[0]) * out1 * out2;
  const I in_plane = static_cast<I>(p.in[0] * p.in[1] * p.in[2]);
  const I total = out_plane * static_cast<I>(p.planes);
  for (I i = static_cast<I>(thread_index()); i < total; i += static_cast<I>(grid_stride())) {
    const I plane = i / out_plane;
    const I r = i - plane * out_plane;
    const I row = r / out2;
    const I ow = r - row * out2;
    const I od = row / out1;
    const I oh = row - od * out1;
    const float* xin = x + static_cast<uint64_t>(plane) * static_cast<uint64_t>(in_plane);
    argmax[i] = static_cast<int32_t>(window_argmax<I>(xin, p, od, oh, ow));
  }
}

// The frame the pooling backward gathers share: every input element i of the pooling (index
// type I), its coordinates and the offset of its plane's outputs; `gather(e, plane_out)`
// returns its gradient, which is written or accumulated.
template <typename I, typename G>
__device__ inline void gather_pool_inputs(const PoolParams& p, float* dx, uint32_t accumulate,
                                          G gather) {
  const I out_plane = static_cast<I>(p.out[0] * p.out[1] * p.out[2]);
  const I in_plane = static_cast<I>(p.in[0] * p.in[1] * p.in[2]);
  const I total = in_plane * static_cast<I>(p.planes);
  for (I i = static_cast<I>(thread_index()); i < total; i += static_cast<I>(grid_stride())) {
    const PoolInput<I> e = pool_input(p, in_plane, i);
    const uint64_t plane_out = static_cast<uint64_t>(e.plane) * static_cast<uint64_t>(out_plane);
    store(dx, static_cast<uint64_t>(i), gather(e, plane_out), accumulate);
  }
}

// MaxPool backward, pass 2, in index type I (ps_max_pool_backward_f32): the outputs whose
// first maximum the input is.
template <typename I>
__device__ inline void max_pool_backward(const int32_t* argmax, const float* dy, float* dx,
                                         const PoolParams& p, uint32_t accumulate) {
  const I out2 = static_cast<I>(p.out[2]), out1 = static_cast<I>(p.out[1]);
  gather_pool_inputs<I>(p, dx, accumulate, [&](const PoolInput<I>& e, uint64_t plane_out) {
    const int32_t* am = argmax + plane_out;
    const float* g = dy + plane_out;
    float sum = 0.0f;
    for_each_window(p, 0, e.id, [&](I od, I) {
      for_each_window(p, 1, e.ih, [&](I oh, I) {
        for_each_window(p, 2, e.iw, [&](I ow, I) {
          const I o = (od * out1 + oh) * out2 + ow;
          if (am[o] == e.at) sum += g[o];
        });
      });
    });
    return sum;
  });
}

// AveragePool backward, in index type I (ps_avg_pool_backward_f32): dY / divisor of every
// window the input is a tap of.
template <typename I>
__device__ inline void avg_pool_backward(const float* dy, float* dx, const PoolParams& p,
                                         uint32_t accumulate) {
  const I out2 = static_cast<I>(p.out[2]), out1 = static_cast<I>(p.out[1]);
  gather_pool_inputs<I>(p, dx, accumulate, [&](const PoolInput<I>& e, uint64_t plane_out) {
    const float* g = dy + plane_out;
    float sum = 0.0f;
    for_each_window(p, 0, e.id, [&](I od, I) {
      const int64_t cd = counted(p, 0, od);
      for_each_window(p, 1, e.ih, [&](I oh, I) {
        const int64_t ch = counted(p, 1, oh);
        for_each_window(p, 2, e.iw, [&](I ow, I) {
          const int64_t divisor = cd * ch * static_cast<int64_t>(counted(p, 2, ow));
          if (divisor > 0) sum += g[(od * out1 + oh) * out2 + ow] / static_cast<float>(divisor);
        });
      });
    });
    return sum;
  });
}

// The banded pooling backward (pool_band.h; ps_pool_backward_band_f32): block b gathers the
// flattened input rows [b * rows, (b + 1) * rows) of [planes * H, W]. Precondition: bp comes
// from plan_pool_band (2-D pooling, every index in int32_t, the band's outputs within
// kOutputs, rows within kMaxRows, W and OW within kMaxWidth). The sums are the element-wise
// kernels' bit for bit: the same terms (AveragePool's dY / divisor; MaxPool's dY where the
// window's first maximum is the input) added in the same order (oh, then ow, increasing).
__device__ inline void pool_backward_band(const float* x, const float* dy, float* dx,
                                          const ps::pool_band::PoolBandParams& bp,
                                          uint32_t accumulate) {
  using namespace ps::pool_band;
  __shared__ float grad[kOutputs];   // each staged output's gradient term
  __shared__ int32_t arg[kOutputs];  // MaxPool: its window's first maximum (in-plane position)
  __shared__ int32_t row_first[kMaxRows], row_last[kMaxRows];  // staged rows covering a row
  __shared__ int32_t row_at[kMaxRows];                         // the row's ih * W
  __shared__ int32_t col_first[kMaxWidth], col_last[kMaxWidth];  // outputs covering a column
  const PoolParams& p = bp.p;
  const bool is_max = p.kind == ps::dnn_kernels::kPoolMax;
  const int32_t h = static_cast<int32_t>(p.in[1]), w = static_cast<int32_t>(p.in[2]);
  const int32_t oh_count = static_cast<int32_t>(p.out[1]), ow_count = static_cast<int32_t>(p.out[2]);
  const int32_t in_plane = h * w;
  const int32_t total_rows = static_cast<int32_t>(p.planes) * h;
  const int32_t r0 = static_cast<int32_t>(blockIdx.x) * bp.rows;
  const int32_t r1 = r0 + bp.rows < total_rows ? r0 + bp.rows : total_rows;
  const Range band = band_outputs(p, r0, r1);
  const int32_t out_row0 = static_cast<int32_t>(band.first);
  const int32_t staged = static_cast<int32_t>(band.last - band.first) * ow_count;
  const int32_t t = static_cast<int32_t>(threadIdx.x), step = static_cast<int32_t>(blockDim.x);

  for (int32_t k = t; k < r1 - r0; k += step) {
    const int32_t plane = (r0 + k) / h, ih = r0 + k - plane * h;
    const int32_t base = plane * oh_count - out_row0;
    const int32_t first = first_window(p, 1, ih), last = last_window(p, 1, ih);
    row_first[k] = base + first;
    row_last[k] = base + (last > first ? last : first);
    row_at[k] = ih * w;
  }
  for (int32_t iw = t; iw < w; iw += step) {
    const int32_t first = first_window(p, 2, iw), last = last_window(p, 2, iw);
    col_first[iw] = first;
    col_last[iw] = last > first ? last : first;
  }
  for (int32_t q = t; q < staged; q += step) {
    const int32_t row = q / ow_count, ow = q - row * ow_count;
    const int32_t out_row = out_row0 + row;
    const int32_t plane = out_row / oh_count, oh = out_row - plane * oh_count;
    const float g = dy[out_row * ow_count + ow];
    if (is_max) {
      arg[q] = window_argmax<int32_t>(x + static_cast<uint64_t>(plane) * in_plane, p, 0, oh, ow);
      grad[q] = g;
    } else {
      const int64_t divisor = static_cast<int64_t>(counted<int32_t>(p, 0, 0)) *
                              counted<int32_t>(p, 1, oh) * counted<int32_t>(p, 2, ow);
      grad[q] = divisor > 0 ? g / static_cast<float>(divisor) : 0.0f;
    }
  }
  __syncthreads();

  // Element j = k * W + iw of the band, (k, iw) advanced without dividing.
  const int32_t count = (r1 - r0) * w;
  const int32_t dk = step / w, dw = step - dk * w;
  int32_t k = t / w, iw = t - k * w;
  for (int32_t j = t; j < count; j += step) {
    const int32_t at = row_at[k] + iw;
    const int32_t c0 = col_first[iw], c1 = col_last[iw];
    float sum = 0.0f;
    for (int32_t r = row_first[k]; r < row_last[k]; ++r) {
      for (int32_t c = c0; c < c1; ++c) {
        const int32_t q = r * ow_count + c;
        if (!is_max || arg[q] == at) sum += grad[q];
      }
    }
    store(dx, static_cast<uint64_t>(r0 + k) * static_cast<uint64_t>(w) + iw, sum, accumulate);
    k += dk;
    iw += dw;
    if (iw >= w) {
      iw -= w;
      ++k;
    }
  }
}

// Four floats, loaded and stored as one 16-byte access (ld/st.global.v4.f32).
struct alignas(16) Float4 {
  float v[4];
};

// Whether every pointer is 16-byte aligned (arena and workspace offsets are): then the
// elementwise kernels below move four floats per access, as PyTorch's vectorised kernels do,
// and the last count % 4 one at a time. Uniform over the launch.
__device__ inline bool aligned16(const void* a, const void* b, const void* c) {
  return ((reinterpret_cast<uintptr_t>(a) | reinterpret_cast<uintptr_t>(b) |
           reinterpret_cast<uintptr_t>(c)) & 15u) == 0;
}

// The elements [first, count) the vector loop left, one at a time.
__device__ inline uint64_t vector_head(uint64_t count, bool vectorised) {
  return vectorised ? count / 4 * 4 : 0;
}

}  // namespace train

// dx = dy where x > 0, else 0 (Relu's backward; NaN in x gives 0, as the CPU reference's
// `x > 0` test does). Launch for (count + 3) / 4 threads' work.
extern "C" __global__ void ps_relu_backward_f32(const float* x, const float* dy, float* dx,
                                                uint64_t count, uint32_t accumulate) {
  const bool wide = train::aligned16(x, dy, dx);
  if (wide) {
    const auto* x4 = reinterpret_cast<const train::Float4*>(x);
    const auto* dy4 = reinterpret_cast<const train::Float4*>(dy);
    auto* dx4 = reinterpret_cast<train::Float4*>(dx);
    for (uint64_t q = train::thread_index(); q < count / 4; q += train::grid_stride()) {
      const train::Float4 a = x4[q], g = dy4[q];
      train::Float4 r;
      for (int k = 0; k < 4; ++k) r.v[k] = a.v[k] > 0.0f ? g.v[k] : 0.0f;
      if (accumulate != 0u) {
        const train::Float4 d = dx4[q];
        for (int k = 0; k < 4; ++k) r.v[k] = d.v[k] + r.v[k];
      }
      dx4[q] = r;
    }
  }
  for (uint64_t i = train::vector_head(count, wide) + train::thread_index(); i < count;
       i += train::grid_stride()) {
    train::store(dx, i, x[i] > 0.0f ? dy[i] : 0.0f, accumulate);
  }
}

// dst += src: the gradient of a tensor read by several layers is the sum of theirs. Launch for
// (count + 3) / 4 threads' work.
extern "C" __global__ void ps_accumulate_f32(float* dst, const float* src, uint64_t count) {
  const bool wide = train::aligned16(dst, src, src);
  if (wide) {
    auto* d4 = reinterpret_cast<train::Float4*>(dst);
    const auto* s4 = reinterpret_cast<const train::Float4*>(src);
    for (uint64_t q = train::thread_index(); q < count / 4; q += train::grid_stride()) {
      train::Float4 d = d4[q];
      const train::Float4 a = s4[q];
      for (int k = 0; k < 4; ++k) d.v[k] += a.v[k];
      d4[q] = d;
    }
  }
  for (uint64_t i = train::vector_head(count, wide) + train::thread_index(); i < count;
       i += train::grid_stride()) {
    dst[i] += src[i];
  }
}

// x *= scale (Gemm's dC = beta * reduced dY when beta != 1).
extern "C" __global__ void ps_scale_f32(float* x, float scale, uint64_t count) {
  for (uint64_t i = train::thread_index(); i < count; i += train::grid_stride()) x[i] *= scale;
}

// One SGD step of a group of tensors (SgdGroupParams): block b updates tile b - block_start[t]
// of the tensor t whose blocks hold b, its threads striding the tile (coalesced).
extern "C" __global__ void ps_sgd_group_f32(ps::train_kernels::SgdGroupParams p) {
  const uint32_t b = blockIdx.x;
  // The last tensor whose first block is <= b (an empty tensor's range is empty: skipped).
  int lo = 0, hi = p.count - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (p.block_start[mid] <= b) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  const int t = lo;
  float* param = reinterpret_cast<float*>(p.param[t]);
  const float* grad = reinterpret_cast<const float*>(p.grad[t]);
  float* buf = reinterpret_cast<float*>(p.buf[t]);
  const bool first = ((p.first_step_bits >> t) & 1u) != 0;
  const uint64_t begin = static_cast<uint64_t>(b - p.block_start[t]) * p.tile;
  const uint64_t n = static_cast<uint64_t>(p.n[t]);
  const uint64_t end = begin + p.tile < n ? begin + p.tile : n;
  for (uint64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const float w = param[i];
    const float d_p = grad[i] + p.weight_decay * w;
    float step = d_p;
    if (p.momentum != 0.0f) {
      step = first ? d_p : p.momentum * buf[i] + d_p;
      buf[i] = step;
    }
    param[i] = w - p.learning_rate * step;
  }
}

// Softmax cross-entropy and its gradient in ONE block (blockDim.x a multiple of 32, <= 1024):
// warp w takes rows w, w + warps, ...; each row's max, sum of exponentials and log in float32;
// each warp's row losses summed in double in row order, then the warps' sums in warp order, so
// the loss is deterministic. *loss = grad_scale * sum of the row losses. A label outside
// [0, classes) makes its row's loss NaN (a kernel cannot fail; the trainer sees the NaN) and
// its gradient the plain softmax.
extern "C" __global__ void ps_softmax_xent_f32(const float* logits, const int64_t* labels,
                                               float* dlogits, double* loss,
                                               ps::train_kernels::SoftmaxXentParams p) {
  __shared__ double warp_loss[32];
  const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  double mine = 0;
  for (int64_t row = warp; row < p.rows; row += warps) {
    const float* x = logits + row * p.classes;
    float* dx = dlogits + row * p.classes;
    float m = -INFINITY;
    for (int64_t k = lane; k < p.classes; k += 32) m = train::max_nan(m, x[k]);
    m = train::warp_max(m);
    float s = 0.0f;
    for (int64_t k = lane; k < p.classes; k += 32) s += expf(x[k] - m);
    s = train::warp_sum(s);
    const float log_s = logf(s);
    const int64_t label = labels[row];
    for (int64_t k = lane; k < p.classes; k += 32) {
      dx[k] = (expf(x[k] - m - log_s) - (k == label ? 1.0f : 0.0f)) * p.grad_scale;
    }
    if (lane == 0) {
      const bool ok = label >= 0 && label < p.classes;
      mine += ok ? static_cast<double>(log_s) + static_cast<double>(m) -
                       static_cast<double>(x[ok ? label : 0])
                 : static_cast<double>(NAN);
    }
  }
  if (lane == 0) warp_loss[warp] = mine;
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0;
    for (unsigned w = 0; w < warps; ++w) total += warp_loss[w];
    *loss = total * static_cast<double>(p.grad_scale);
  }
}

// GlobalAveragePool backward: dx[plane, i] = dy[plane] / inner over dx [planes, inner].
extern "C" __global__ void ps_global_avg_pool_backward_f32(const float* dy, float* dx,
                                                           uint64_t planes, uint64_t inner,
                                                           uint32_t accumulate) {
  const uint64_t total = planes * inner;
  const float divisor = static_cast<float>(inner);
  for (uint64_t i = train::thread_index(); i < total; i += train::grid_stride()) {
    train::store(dx, i, dy[i / inner] / divisor, accumulate);
  }
}

// MaxPool backward, pass 1: for every output, the index inside its plane of the FIRST maximum
// of its window in row-major tap order (a later equal value never wins), -1 for a window with
// no tap inside the input: the CPU reference's rule, which is also PyTorch's. Precondition (the
// launcher checks): a plane has fewer than 2^31 elements.
extern "C" __global__ void ps_max_pool_argmax_f32(const float* x, int32_t* argmax,
                                                  ps::dnn_kernels::PoolParams p) {
  if (train::pooling_fits_int32(p)) {
    train::max_pool_argmax<int32_t>(x, argmax, p);
  } else {
    train::max_pool_argmax<int64_t>(x, argmax, p);
  }
}

// MaxPool backward, pass 2: every input element gathers dy of the outputs whose first maximum
// it is, in increasing output order (no atomics: deterministic).
extern "C" __global__ void ps_max_pool_backward_f32(const int32_t* argmax, const float* dy,
                                                    float* dx, ps::dnn_kernels::PoolParams p,
                                                    uint32_t accumulate) {
  if (train::pooling_fits_int32(p)) {
    train::max_pool_backward<int32_t>(argmax, dy, dx, p, accumulate);
  } else {
    train::max_pool_backward<int64_t>(argmax, dy, dx, p, accumulate);
  }
}

// AveragePool backward: every input element gathers dy / divisor of the windows it is a tap
// of (the forward's divisor: count_include_pad counts explicit pads, never the ceil-mode
// overhang), in increasing output order. Dilations are 1 (AveragePool has none).
extern "C" __global__ void ps_avg_pool_backward_f32(const float* dy, float* dx,
                                                  ps::dnn_kernels::PoolParams p,
                                                  uint32_t accumulate) {
  if (train::pooling_fits_int32(p)) {
    train::avg_pool_backward<int32_t>(dy, dx, p, accumulate);
  } else {
    train::avg_pool_backward<int64_t>(dy, dx, p, accumulate);
  }
}

// The banded pooling backward (pool_band.h): MaxPool (x read for each window's first maximum)
// or AveragePool (x unused) over 2-D windows, one block a band of input rows, kBlock threads.
// Grid: ceil(planes * H / bp.rows) blocks.
extern "C" __global__ void ps_pool_backward_band_f32(const float* x, const float* dy, float* dx,
                                                     ps::pool_band::PoolBandParams bp,
                                                     uint32_t accumulate) {
  train::pool_backward_band(x, dy, dx, bp, accumulate);
}
