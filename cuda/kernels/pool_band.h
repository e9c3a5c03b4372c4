// The banded pooling backward (ps_pool_backward_band_f32, train.cu): a block gathers the
// gradient of a band of input rows from the outputs whose windows cover them, which it first
// stages in shared memory (MaxPool: each output's gradient and first-maximum position, found
// from X there and then; AveragePool: each output's gradient already divided by its divisor).
// The element-wise gather it replaces (ps_max_pool_argmax_f32 + ps_max_pool_backward_f32,
// ps_avg_pool_backward_f32) spent most of its time dividing indices; here the coordinates
// come from per-block tables and the outputs are read once per block. 2-D (and 1-D) pooling
// only: D is trivial. The window range arithmetic is shared with the element-wise kernels
// (first_window, last_window) and with the planner (models/gpu/grad_kernel_plan.cc), which
// checks that every band's outputs fit the block's shared memory.
#pragma once

#include <cstdint>

#include "cuda/kernels/dnn_pool_params.h"

#if defined(__CUDACC__)
#define PS_POOL_BAND_HD __host__ __device__
#else
#define PS_POOL_BAND_HD
#endif

namespace ps::pool_band {

inline constexpr int32_t kBlock = 256;          // threads a block
inline constexpr int32_t kOutputs = 2048;       // outputs a block stages (8 KiB of gradients)
inline constexpr int32_t kMaxRows = 256;        // input rows a block gathers
inline constexpr int32_t kMaxWidth = 512;       // input and output row widths (W, OW)
inline constexpr int32_t kTargetInputs = 2048;  // input elements a block, where rows allow

struct PoolBandParams {
  ps::dnn_kernels::PoolParams p;
  int32_t rows = 0;  // rows of the flattened [planes * H] input rows a block gathers
  int32_t pad = 0;
};

// The windows along dimension d whose span covers input position i: [first_window,
// last_window), in index type I (int32_t where the caller knows every position fits).
template <typename I>
PS_POOL_BAND_HD inline I first_window(const ps::dnn_kernels::PoolParams& p, int d, I i) {
  const I at = i + static_cast<I>(p.pad_begin[d]);  // in padded coordinates, >= 0
  const I span = (static_cast<I>(p.kernel[d]) - 1) * static_cast<I>(p.dilation[d]) + 1;
  return at < span ? 0 : (at - span) / static_cast<I>(p.stride[d]) + 1;
}
template <typename I>
PS_POOL_BAND_HD inline I last_window(const ps::dnn_kernels::PoolParams& p, int d, I i) {
  const I last = (i + static_cast<I>(p.pad_begin[d])) / static_cast<I>(p.stride[d]) + 1;
  const I out = static_cast<I>(p.out[d]);
  return last < out ? last : out;
}

struct Range {
  int64_t first = 0, last = 0;
};

// The outputs a band needs, as flattened output rows (plane * out[1] + oh): those whose
// windows cover the flattened input rows [r0, r1) (r0 < r1). Within a plane they are
// consecutive, and a band crossing planes needs the planes' rows in between as well.
PS_POOL_BAND_HD inline Range band_outputs(const ps::dnn_kernels::PoolParams& p, int64_t r0,
                                          int64_t r1) {
  const int64_t h = p.in[1], oh = p.out[1];
  const int64_t plane0 = r0 / h, plane1 = (r1 - 1) / h;
  Range r;
  r.first = plane0 * oh + first_window<int64_t>(p, 1, r0 - plane0 * h);
  r.last = plane1 * oh + last_window<int64_t>(p, 1, (r1 - 1) - plane1 * h);
  if (r.last < r.first) r.last = r.first;  // rows no window covers (a floor-mode remainder)
  return r;
}

}  // namespace ps::pool_band
