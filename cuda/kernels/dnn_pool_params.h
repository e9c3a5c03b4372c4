// The parameters of ps_dnn_pool_f32 (cuda/kernels/dnn_pool.cu), shared by the kernel and its
// host-side builder (models/gpu/pool_op.cc). Plain data: passed by value as one kernel argument.
#pragma once

#include <cstdint>

namespace ps::dnn_kernels {

enum PoolKind : int32_t {
  kPoolMax = 0,
  kPoolAverageExcludePad = 1,  // divisor: taps inside the input
  kPoolAverageIncludePad = 2,  // divisor: taps inside input + explicit pads (not the ceil overhang)
};

// Three spatial dimensions (D, H, W; leading trivial ones for 1-D and 2-D pooling). Input
// position of output o, tap t: o * stride - pad_begin + t * dilation.
struct PoolParams {
  int64_t in[3];
  int64_t out[3];
  int64_t kernel[3];
  int64_t stride[3];
  int64_t dilation[3];
  int64_t pad_begin[3];
  int64_t pad_end[3];
  int64_t planes;  // N * C
  int32_t kind;    // PoolKind
  int32_t unused = 0;
};

}  // namespace ps::dnn_kernels
