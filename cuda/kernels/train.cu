// Training kernels (issue 7): the backward of the layers cuDNN does not cover for us (ReLU,
// max / average / global average pooling), softmax cross-entropy with its gradient, the SGD
// update, and gradient accumulation. Semantics are the CPU reference's (models/cpu/grad*.cc,
// sgd.cc), in float32. Every kernel is deterministic: no atomics; each sum is taken in a fixed
// order, so two runs give the same bits. The gradient kernels take `accumulate`: non-zero adds
// the result to dx instead of overwriting it. Launchers: models/gpu/grad_kernel_ops.cc.
#include <cstdint>

#include "cuda/kernels/dnn_pool_params.h"
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
template <typename F>
__device__ inline void for_each_window(const PoolParams& p, int d, int64_t i, F f) {
  for (int64_t t = p.kernel[d] - 1; t >= 0; --t) {
    const int64_t num = i + p.pad_begin[d] - t * p.dilation[d];
    if (num < 0 || num % p.stride[d] != 0) continue;
    const int64_t o = num / p.stride[d];
    if (o < p.out[d]) f(o, t);
  }
}

// The window arithmetic of the forward pooling kernel (pool_taps.h).
using ps::pool_taps::TapRange;
using ps::pool_taps::valid_taps;
// The divisor's factor of dimension d for output o (AveragePool's count_include_pad rule).
__device__ inline int64_t counted(const PoolParams& p, int d, int64_t o) {
  return ps::pool_taps::counted(p, d, o, valid_taps(p, d, o));
}

// Element i of a pooling input (planes of in[0] x in[1] x in[2]): its plane, its offset in the
// plane and its coordinates.
struct PoolInput {
  uint64_t plane;
  int64_t at, id, ih, iw;
};
__device__ inline PoolInput pool_input(const PoolParams& p, uint64_t in_plane, uint64_t i) {
  PoolInput e;
  e.plane = i / in_plane;
  e.at = static_cast<int64_t>(i - e.plane * in_plane);
  e.iw = e.at % p.in[2];
  e.ih = (e.at / p.in[2]) % p.in[1];
  e.id = e.at / (p.in[2] * p.in[1]);
  return e;
}

}  // namespace train

// dx = dy where x > 0, else 0 (Relu's backward; NaN in x gives 0, as the CPU reference's
// `x > 0` test does).
extern "C" __global__ void ps_relu_backward_f32(const float* x, const float* dy, float* dx,
                                                uint64_t count, uint32_t accumulate) {
  for (uint64_t i = train::thread_index(); i < count; i += train::grid_stride()) {
    train::store(dx, i, x[i] > 0.0f ? dy[i] : 0.0f, accumulate);
  }
}

// dst += src: the gradient of a tensor read by several layers is the sum of theirs.
extern "C" __global__ void ps_accumulate_f32(float* dst, const float* src, uint64_t count) {
  for (uint64_t i = train::thread_index(); i < count; i += train::grid_stride()) dst[i] += src[i];
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
  const uint64_t out_plane = static_cast<uint64_t>(p.out[0] * p.out[1] * p.out[2]);
  const uint64_t in_plane = static_cast<uint64_t>(p.in[0] * p.in[1] * p.in[2]);
  const uint64_t total = out_plane * static_cast<uint64_t>(p.planes);
  for (uint64_t i = train::thread_index(); i < total; i += train::grid_stride()) {
    const uint64_t plane = i / out_plane;
    uint64_t r = i - plane * out_plane;
    const int64_t ow = static_cast<int64_t>(r % p.out[2]);
    r /= p.out[2];
    const int64_t oh = static_cast<int64_t>(r % p.out[1]);
    const int64_t od = static_cast<int64_t>(r / p.out[1]);
    const float* xin = x + plane * in_plane;
    const train::TapRange rd = train::valid_taps(p, 0, od);
    const train::TapRange rh = train::valid_taps(p, 1, oh);
    const train::TapRange rw = train::valid_taps(p, 2, ow);
    float best = 0.0f;
    int64_t best_at = -1;
    for (int64_t td = rd.first; td < rd.last; ++td) {
      const int64_t id = od * p.stride[0] - p.pad_begin[0] + td * p.dilation[0];
      for (int64_t th = rh.first; th < rh.last; ++th) {
        const int64_t ih = oh * p.stride[1] - p.pad_begin[1] + th * p.dilation[1];
        for (int64_t tw = rw.first; tw < rw.last; ++tw) {
          const int64_t iw = ow * p.stride[2] - p.pad_begin[2] + tw * p.dilation[2];
          const int64_t at = (id * p.in[1] + ih) * p.in[2] + iw;
          const float v = xin[at];
          if (best_at < 0 || v > best) {
            best = v;
            best_at = at;
          }
        }
      }
    }
    argmax[i] = static_cast<int32_t>(best_at);
  }
}

// MaxPool backward, pass 2: every input element gathers dy of the outputs whose first maximum
// it is, in increasing output order (no atomics: deterministic).
extern "C" __global__ void ps_max_pool_backward_f32(const int32_t* argmax, const float* dy,
                                                    float* dx, ps::dnn_kernels::PoolParams p,
                                                    uint32_t accumulate) {
  const uint64_t out_plane = static_cast<uint64_t>(p.out[0] * p.out[1] * p.out[2]);
  const uint64_t in_plane = static_cast<uint64_t>(p.in[0] * p.in[1] * p.in[2]);
  const uint64_t total = in_plane * static_cast<uint64_t>(p.planes);
  for (uint64_t i = train::thread_index(); i < total; i += train::grid_stride()) {
    const train::PoolInput e = train::pool_input(p, in_plane, i);
    const int64_t at = e.at, id = e.id, ih = e.ih, iw = e.iw;
    const int32_t* am = argmax + e.plane * out_plane;
    const float* g = dy + e.plane * out_plane;
    float sum = 0.0f;
    train::for_each_window(p, 0, id, [&](int64_t od, int64_t) {
      train::for_each_window(p, 1, ih, [&](int64_t oh, int64_t) {
        train::for_each_window(p, 2, iw, [&](int64_t ow, int64_t) {
          const int64_t o = (od * p.out[1] + oh) * p.out[2] + ow;
          if (am[o] == at) sum += g[o];
        });
      });
    });
    train::store(dx, i, sum, accumulate);
  }
}

// AveragePool backward: every input element gathers dy / divisor of the windows it is a tap
// of (the forward's divisor: count_include_pad counts explicit pads, never the ceil-mode
// overhang), in increasing output order. Dilations are 1 (AveragePool has none).
extern "C" __global__ void ps_avg_pool_backward_f32(const float* dy, float* dx,
                                                    ps::dnn_kernels::PoolParams p,
                                                    uint32_t accumulate) {
  const uint64_t out_plane = static_cast<uint64_t>(p.out[0] * p.out[1] * p.out[2]);
  const uint64_t in_plane = static_cast<uint64_t>(p.in[0] * p.in[1] * p.in[2]);
  const uint64_t total = in_plane * static_cast<uint64_t>(p.planes);
  for (uint64_t i = train::thread_index(); i < total; i += train::grid_stride()) {
    const train::PoolInput e = train::pool_input(p, in_plane, i);
    const int64_t id = e.id, ih = e.ih, iw = e.iw;
    const float* g = dy + e.plane * out_plane;
    float sum = 0.0f;
    train::for_each_window(p, 0, id, [&](int64_t od, int64_t) {
      const int64_t cd = train::counted(p, 0, od);
      train::for_each_window(p, 1, ih, [&](int64_t oh, int64_t) {
        const int64_t ch = train::counted(p, 1, oh);
        train::for_each_window(p, 2, iw, [&](int64_t ow, int64_t) {
          const int64_t divisor = cd * ch * train::counted(p, 2, ow);
          if (divisor > 0) {
            sum += g[(od * p.out[1] + oh) * p.out[2] + ow] / static_cast<float>(divisor);
          }
        });
      });
    });
    train::store(dx, i, sum, accumulate);
  }
}
