// Asynchronous copies and fills on a stream: thin, checked wrappers of the driver calls.
//
// All return once the operation is queued. Host memory must be pinned (PinnedBuffer,
// HostRegistration) for a copy to be truly asynchronous; with pageable memory the driver
// stages it and the call may block. The caller keeps every buffer alive, and does not touch
// the host side, until the stream has passed the copy (an Event, Stream::synchronize or a
// CompletionBridge token says when). A size of 0 queues nothing and returns OK.
#pragma once

#include <cuda.h>

#include <cstddef>
#include <cstdint>

#include "common/status.h"

namespace ps::cuda {

class Stream;

// Copies `bytes` from host `src` to device `dst`.
Status copy_to_device_async(CUdeviceptr dst, const void* src, size_t bytes, const Stream& stream);

// Copies `bytes` from device `src` to host `dst`.
Status copy_to_host_async(void* dst, CUdeviceptr src, size_t bytes, const Stream& stream);

// Copies `bytes` between two device ranges (same or peer-accessible devices).
Status copy_device_async(CUdeviceptr dst, CUdeviceptr src, size_t bytes, const Stream& stream);

// Copies `bytes` from `src` in context `src_context` to `dst` in context `dst_context` on
// `stream` (cuMemcpyPeerAsync): between two GPUs over NVLink or PCIe peer-to-peer where the
// contexts have peer access, else staged by the driver; within one context a plain
// device-to-device copy.
Status copy_peer_async(CUdeviceptr dst, CUcontext dst_context, CUdeviceptr src,
                       CUcontext src_context, size_t bytes, const Stream& stream);

// Sets `count` 32-bit words at `dst` (4-byte aligned) to `value`.
Status memset_d32_async(CUdeviceptr dst, uint32_t value, size_t count, const Stream& stream);

// Sets a 2-D region of 32-bit words to `value` on `stream`: `height` rows of `width` words,
// rows `pitch_bytes` apart (a multiple of 4) from `dst` (4-byte aligned). Nothing when either
// extent is 0. HeadSlice's backward zeroes the columns of dX its slice does not cover.
Status memset_2d_d32_async(CUdeviceptr dst, size_t pitch_bytes, uint32_t value, size_t width,
                           size_t height, const Stream& stream);

// Sets `bytes` bytes at `dst` to `value`.
Status memset_d8_async(CUdeviceptr dst, uint8_t value, size_t bytes, const Stream& stream);

}  // namespace ps::cuda
