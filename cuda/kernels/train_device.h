// Device helpers the training kernels share (train.cu, train_bert.cu): the grid-stride loop's
// index and stride, the gradient store rule, and a warp's float sum. In a header so that each
// .cu file, and the host emulation that compiles one of them alone
// (tests/models/kernel_emulation.h), sees one definition.
#pragma once

#include <cstdint>

namespace ps::train_device {

__device__ inline uint64_t thread_index() {
  return static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline uint64_t grid_stride() { return static_cast<uint64_t>(gridDim.x) * blockDim.x; }

// A gradient kernel either writes its result or adds it to what the buffer holds (the tensor
// is read by several layers and another layer's gradient is already there).
__device__ inline void store(float* dst, uint64_t i, float v, uint32_t accumulate) {
  dst[i] = accumulate != 0u ? dst[i] + v : v;
}

constexpr unsigned kFullMask = 0xffffffffu;

__device__ inline float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

}  // namespace ps::train_device
