// Scanning a device tensor for NaN/Inf: the debug runs' check (Plan::run_debug after every
// layer, GpuTrainer::debug_step after every item of a training step). Synchronous: copies the
// tensor to the host and reads it there.
#pragma once

#include <cuda.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "cuda/stream.h"
#include "models/gpu/op.h"

namespace ps::models::gpu {

struct NonFinite {
  int64_t count = 0;       // NaN or Inf values
  int64_t first = -1;      // the first one's element index
  double first_value = 0;  // and its value
  double max_abs = 0;      // the largest finite magnitude (how close the tensor is to overflow)
};

// Scans `count` elements of `dtype` at host `p`. Non-float dtypes have none.
NonFinite scan_non_finite(const uint8_t* p, DType dtype, int64_t count);
// Copies [address, address + spec.bytes()) to `host` (resized) through `stream`, waits and
// scans it.
Result<NonFinite> scan_device_tensor(CUdeviceptr address, const TensorSpec& spec,
                                     const cuda::Stream& stream, std::vector<uint8_t>& host);
// "N of M values are NaN or Inf (first at element i: v)".
std::string describe_non_finite(const NonFinite& bad, const TensorSpec& spec);

}  // namespace ps::models::gpu
