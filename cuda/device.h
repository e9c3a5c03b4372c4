// Device: one GPU and its primary context, retained for the life of the object.
//
// We use the device's PRIMARY context (cuDevicePrimaryCtxRetain), the one the CUDA runtime,
// cuBLAS and cuDNN use, so handles of those libraries and our own streams, events and memory
// all live in one context per device and can be mixed freely.
#pragma once

#include <cuda.h>

#include <cstddef>
#include <string>
#include <utility>

#include "common/status.h"
#include "cuda/handle.h"

namespace ps::cuda {

class Device {
 public:
  // Loads the driver if needed, retains `ordinal`'s primary context and makes it current on the
  // calling thread. Errors: kUnavailable without a driver or GPU, kInvalidArgument for an
  // ordinal outside [0, count()), kDevice when the driver refuses.
  static Result<Device> open(int ordinal);

  // Number of visible CUDA devices. Errors: kUnavailable without a driver.
  static Result<int> count();

  Device(Device&&) noexcept = default;
  Device& operator=(Device&&) noexcept = default;
  // Releases the primary context; the driver destroys it when its last user lets go.
  // Everything created in the context (streams, buffers, modules...) must be destroyed first.
  ~Device() = default;

  // Makes this device's context current on the calling thread (needed once per thread, and
  // after another device's context was made current on it).
  Status make_current() const;

  int ordinal() const { return ordinal_; }
  CUdevice handle() const { return device_; }
  CUcontext context() const { return context_.get(); }
  const std::string& name() const { return name_; }
  size_t total_memory() const { return total_memory_; }
  int cc_major() const { return cc_major_; }
  int cc_minor() const { return cc_minor_; }
  int multiprocessor_count() const { return multiprocessor_count_; }

  // (free, total) bytes of device memory now, from cuMemGetInfo in this device's context
  // (made current for the call; the caller's current context is restored).
  Result<std::pair<size_t, size_t>> memory_info() const;

 private:
  struct ReleasePrimaryContext {
    CUdevice device = 0;
    void operator()(CUcontext context) const;
  };

  Device() = default;

  int ordinal_ = -1;
  CUdevice device_ = 0;
  UniqueHandle<CUcontext, ReleasePrimaryContext> context_;
  std::string name_;
  size_t total_memory_ = 0;
  int cc_major_ = 0;
  int cc_minor_ = 0;
  int multiprocessor_count_ = 0;
};

}  // namespace ps::cuda
