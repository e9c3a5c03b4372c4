// Pooling in the cases cuDNN cannot express exactly: asymmetric pads, ceil-mode overhang,
// dilated max pooling. Same semantics as the CPU reference (models/cpu/pool.cc): padding never
// contributes a value; a max window with no tap inside the input gives the lowest float; NaN
// propagates. One thread per output element (grid-stride loop).
#include <cfloat>
#include <cstdint>

#include "cuda/kernels/dnn_pool_params.h"
#include "cuda/kernels/pool_taps.h"

// y[plane, od, oh, ow] = max or average over the window of x[plane, ...]; x is
// [planes, in[0], in[1], in[2]] and y [planes, out[0], out[1], out[2]], both contiguous.
extern "C" __global__ void ps_dnn_pool_f32(const float* x, float* y,
                                           ps::dnn_kernels::PoolParams p) {
  const uint64_t out_plane = static_cast<uint64_t>(p.out[0] * p.out[1] * p.out[2]);
  const uint64_t in_plane = static_cast<uint64_t>(p.in[0] * p.in[1] * p.in[2]);
  const uint64_t total = out_plane * static_cast<uint64_t>(p.planes);
  const uint64_t step = static_cast<uint64_t>(gridDim.x) * blockDim.x;
  for (uint64_t i = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += step) {
    const uint64_t plane = i / out_plane;
    uint64_t r = i - plane * out_plane;
    const int64_t ow = static_cast<int64_t>(r % p.out[2]);
    r /= p.out[2];
    const int64_t oh = static_cast<int64_t>(r % p.out[1]);
    const int64_t od = static_cast<int64_t>(r / p.out[1]);
    const float* xin = x + plane * in_plane;
    const ps::pool_taps::TapRange rd = ps::pool_taps::valid_taps(p, 0, od);
    const ps::pool_taps::TapRange rh = ps::pool_taps::valid_taps(p, 1, oh);
    const ps::pool_taps::TapRange rw = ps::pool_taps::valid_taps(p, 2, ow);
    const int64_t bd = od * p.stride[0] - p.pad_begin[0];
    const int64_t bh = oh * p.stride[1] - p.pad_begin[1];
    const int64_t bw = ow * p.stride[2] - p.pad_begin[2];
    if (p.kind == ps::dnn_kernels::kPoolMax) {
      float best = -FLT_MAX;
      bool any = false;
      for (int64_t td = rd.first; td < rd.last; ++td) {
        const int64_t id = bd + td * p.dilation[0];
        for (int64_t th = rh.first; th < rh.last; ++th) {
          const int64_t ih = bh + th * p.dilation[1];
          const float* row = xin + (id * p.in[1] + ih) * p.in[2];
          for (int64_t tw = rw.first; tw < rw.last; ++tw) {
            const float v = row[bw + tw * p.dilation[2]];
            if (!any || v > best || (isnan(v) && !isnan(best))) best = v;
            any = true;
          }
        }
      }
      y[i] = best;
    } else {
      float sum = 0.0f;
      for (int64_t td = rd.first; td < rd.last; ++td) {
        const int64_t id = bd + td;
        for (int64_t th = rh.first; th < rh.last; ++th) {
          const float* row = xin + (id * p.in[1] + bh + th) * p.in[2] + bw;
          for (int64_t tw = rw.first; tw < rw.last; ++tw) sum += row[tw];
        }
      }
      const int64_t divisor = ps::pool_taps::counted(p, 0, od, rd) *
                              ps::pool_taps::counted(p, 1, oh, rh) *
                              ps::pool_taps::counted(p, 2, ow, rw);
      y[i] = divisor > 0 ? sum / static_cast<float>(divisor) : 0.0f;
    }
  }
}
