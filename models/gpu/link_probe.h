// Measuring the host-to-device link for the grouping model (models/optimal_grouping.h): the
// fixed cost of one group copy (enqueue, DMA start, the event that follows it) and the pinned
// bandwidth, on the stream and memory the switching engine really uses.
#pragma once

#include <cuda.h>

#include <cstddef>

#include "common/status.h"
#include "cuda/stream.h"
#include "models/optimal_grouping.h"

namespace ps::models::gpu {

// Times, with device events on `copy`:
//   - 64 copies of 4 KiB each followed by an event record: fixed cost = time / 64;
//   - copies of `bytes` (the whole buffers; median of 5): bandwidth = bytes / (time - fixed).
// `host` is pinned host memory and `device` device memory, each at least `bytes` long
// (>= 1 MiB; 64 MiB gives a steady rate). Blocks until done: call at start-up.
// Errors: kInvalidArgument for buffers under 1 MiB, the driver's otherwise.
Result<TransferModel> probe_link(const cuda::Stream& copy, const void* host, CUdeviceptr device,
                                 size_t bytes);

}  // namespace ps::models::gpu
