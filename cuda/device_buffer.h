// DeviceBuffer: device memory from cuMemAlloc, owned.
//
// Not for request paths: the server carves everything a request needs from the pre-mapped
// pool (cuda/device_pool.h). DeviceBuffer serves start-up allocations, tests, and the
// `no-pool` ablation, which allocates per request on purpose to measure what the pool saves.
#pragma once

#include <cuda.h>

#include <cstddef>

#include "common/status.h"
#include "cuda/handle.h"

namespace ps::cuda {

class DeviceBuffer {
 public:
  // Allocates `bytes` (> 0) in the current context (precondition: one is current).
  // Errors: kInvalidArgument for 0 bytes or no current context, kOutOfMemory when the device
  // is full, kDevice otherwise; each names the size asked for.
  static Result<DeviceBuffer> allocate(size_t bytes);
  // The same from CUDA managed memory (cuMemAllocManaged, attached globally): one address valid
  // on the host and the device, pages migrating on demand. Callers must not ask for more than
  // the device has free (an oversubscribed managed range can hang the GPU); the `managed`
  // ablation checks cuMemGetInfo first.
  static Result<DeviceBuffer> allocate_managed(size_t bytes);

  DeviceBuffer() = default;  // empty
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  ~DeviceBuffer() = default;  // frees the memory (in its own context)

  CUdeviceptr ptr() const { return memory_.get(); }
  size_t size() const { return size_; }
  // `T*`-typed device address of byte `offset`, for kernel arguments.
  template <typename T>
  T* as(size_t offset = 0) const {
    return reinterpret_cast<T*>(memory_.get() + offset);
  }

 private:
  struct Free {
    CUcontext context = nullptr;
    void operator()(CUdeviceptr ptr) const;
  };

  static Result<DeviceBuffer> allocate_impl(size_t bytes, bool managed);

  UniqueHandle<CUdeviceptr, Free> memory_;
  size_t size_ = 0;
};

}  // namespace ps::cuda
