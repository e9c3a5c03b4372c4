// Page-locked ("pinned") host memory: what makes host-to-device copies asynchronous and run at
// full PCIe bandwidth. Model weights live in a PinnedBuffer; memory that already exists (read
// from a file, owned by someone else) is pinned in place with a HostRegistration.
//
// Both are CU_MEMHOSTALLOC_PORTABLE / CU_MEMHOSTREGISTER_PORTABLE: pinned for every context,
// so one copy of a model's weights serves every GPU.
#pragma once

#include <cuda.h>

#include <cstddef>

#include "common/status.h"
#include "cuda/handle.h"

namespace ps::cuda {

class PinnedBuffer {
 public:
  // Allocates `bytes` (> 0) of pinned host memory (cuMemHostAlloc). Precondition: a context is
  // current (Device::open). Contents are uninitialised. Pinning is expensive (0.4-0.6 s per
  // GiB on an H100 host, the pages' first touch included): allocate at start-up or
  // registration, never per request.
  // Errors: kInvalidArgument for 0 bytes or no current context, kOutOfMemory, kDevice.
  static Result<PinnedBuffer> allocate(size_t bytes);

  PinnedBuffer() = default;  // empty
  PinnedBuffer(PinnedBuffer&& other) noexcept;
  PinnedBuffer& operator=(PinnedBuffer&& other) noexcept;
  ~PinnedBuffer() = default;  // frees the memory

  void* data() const { return memory_.get(); }
  size_t size() const { return size_; }
  // The address kernels read this memory at (it is mapped into the device's address space:
  // CU_MEMHOSTALLOC_DEVICEMAP; with unified addressing the same value as data()). Reads cross
  // PCIe. Errors: kInvalidArgument for an empty buffer, kDevice.
  Result<CUdeviceptr> device_address() const;
  template <typename T>
  T* as() const {
    return static_cast<T*>(memory_.get());
  }

 private:
  struct Free {
    CUcontext context = nullptr;
    void operator()(void* p) const;
  };

  UniqueHandle<void*, Free> memory_;
  size_t size_ = 0;
};

class HostRegistration {
 public:
  // Pins the existing range [p, p + bytes) (cuMemHostRegister, portable). The caller keeps
  // owning the memory and must keep it alive until this object is destroyed, which unpins it.
  // Precondition: a context is current; the range is not registered already.
  // Errors: kInvalidArgument for an empty range, kDevice naming the call otherwise
  // (CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED included).
  static Result<HostRegistration> register_range(void* p, size_t bytes);

  HostRegistration() = default;  // empty
  HostRegistration(HostRegistration&& other) noexcept;
  HostRegistration& operator=(HostRegistration&& other) noexcept;
  ~HostRegistration() = default;  // unregisters

  void* data() const { return range_.get(); }
  size_t size() const { return size_; }

 private:
  struct Unregister {
    CUcontext context = nullptr;
    void operator()(void* p) const;
  };

  UniqueHandle<void*, Unregister> range_;
  size_t size_ = 0;
};

}  // namespace ps::cuda
