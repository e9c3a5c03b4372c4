// The window arithmetic shared by the pooling kernels (dnn_pool.cu's forward, train.cu's
// backward): which taps of an output's window read inside the input, and how many of them an
// average divides by. Semantics are the CPU reference's (models/cpu/window.h): padding never
// contributes a value; count_include_pad counts the padded taps but not the ceil-mode overhang.
// Device inline functions in a header so that each .cu file, and the host emulation that
// compiles train.cu alone (tests/models/kernel_emulation.h), sees one definition; plain
// comparisons instead of min/max so that the emulation needs no int64 overloads.
#pragma once

#include <cstdint>

#include "cuda/kernels/dnn_pool_params.h"

namespace ps::pool_taps {

template <typename I>
struct TapRangeOf {
  I first, last;  // the taps t in [first, last) read inside the input
};
using TapRange = TapRangeOf<int64_t>;

// The taps of output position o along dimension d that read inside the input, in the index
// type I of the caller (int64_t, or int32_t where the caller has checked that every position
// fits: 32-bit division is several times cheaper on the GPU).
template <typename I>
__device__ inline TapRangeOf<I> valid_taps(const ps::dnn_kernels::PoolParams& p, int d, I o) {
  const I start = o * static_cast<I>(p.stride[d]) - static_cast<I>(p.pad_begin[d]);
  const I dil = static_cast<I>(p.dilation[d]), kernel = static_cast<I>(p.kernel[d]);
  const I in = static_cast<I>(p.in[d]);
  I first, last;
  if (dil == 1) {  // every AveragePool, most MaxPools: no division
    first = start >= 0 ? 0 : -start;
    last = in - start > 0 ? in - start : 0;
  } else {
    first = start >= 0 ? 0 : (-start + dil - 1) / dil;
    last = in - 1 - start < 0 ? 0 : (in - 1 - start) / dil + 1;
  }
  first = first < kernel ? first : kernel;
  last = last < kernel ? last : kernel;
  return {first, last > first ? last : first};
}

// The divisor's factor of dimension d for output o (`valid` = valid_taps(p, d, o)): the valid
// taps, or with count_include_pad the window clipped to the padded input.
template <typename I>
__device__ inline I counted(const ps::dnn_kernels::PoolParams& p, int d, I o, TapRangeOf<I> valid) {
  if (p.kind != ps::dnn_kernels::kPoolAverageIncludePad) return valid.last - valid.first;
  const I pad = static_cast<I>(p.pad_begin[d]);
  const I start = o * static_cast<I>(p.stride[d]) - pad;
  const I lo = start > -pad ? start : -pad;
  const I end = start + static_cast<I>(p.kernel[d]);
  const I limit = static_cast<I>(p.in[d] + p.pad_end[d]);
  const I hi = end < limit ? end : limit;
  return hi > lo ? hi - lo : 0;
}

}  // namespace ps::pool_taps
