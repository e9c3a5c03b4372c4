// GpuRuntime: the per-device objects every GPU plan shares, created once at start-up.
//
// It owns (in destruction-safe order) the device's primary context, our kernel module, one
// cuDNN handle, one cuBLAS handle, one cuBLASLt handle, a plan-time stream and a plan-time
// scratch buffer. Handles are bound to a stream and a workspace with bind() before a sequence
// of GpuOp::enqueue() calls, so a plan's ops never race another plan's use of the workspace
// even when they run on different streams. Single-threaded: the executor's thread (the loop
// thread in the server) is the only user.
#pragma once

#include <cublasLt.h>
#include <cuda.h>

#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "common/status.h"
#include "cuda/blas.h"
#include "cuda/device.h"
#include "cuda/device_buffer.h"
#include "cuda/dnn.h"
#include "cuda/module.h"
#include "cuda/stream.h"

namespace ps::models::gpu {

class GpuRuntime {
 public:
  // Opens device `ordinal` (primary context, made current), loads the embedded kernels and
  // creates the library handles and the plan stream. Errors: kUnavailable without a driver or
  // GPU, kDevice when a library refuses.
  static Result<std::unique_ptr<GpuRuntime>> create(int ordinal);

  GpuRuntime(const GpuRuntime&) = delete;
  GpuRuntime& operator=(const GpuRuntime&) = delete;
  ~GpuRuntime();

  const cuda::Device& device() const { return *device_; }
  const cuda::Module& module() const { return module_; }
  cudnnHandle_t dnn() const { return dnn_.get(); }
  cublasHandle_t blas() const { return blas_.get(); }
  cublasLtHandle_t blas_lt() const { return blas_lt_; }

  // Looks a kernel of our module up by its extern "C" name (cached). Plan time only.
  Result<cuda::Kernel> kernel(const char* name);

  // Makes later cuDNN and cuBLAS calls through dnn()/blas() run on `stream` and use
  // [workspace, workspace + bytes) as cuBLAS's workspace (0/0: none). Cheap (no allocation);
  // call before each sequence of enqueues. The memory must outlive the queued work.
  Status bind(const cuda::Stream& stream, CUdeviceptr workspace, size_t bytes);

  // A stream for plan-time work: algorithm searches, warm-up launches.
  const cuda::Stream& plan_stream() const { return plan_stream_; }

  // At least `bytes` of device scratch memory for plan-time work (algorithm searches with real
  // buffers, warm-up runs); grown with cuMemAlloc as needed, so never call it on a request
  // path. The pointer stays valid until the next plan_scratch() call that grows it.
  Result<CUdeviceptr> plan_scratch(size_t bytes);
  // Returns the plan-time scratch memory to the driver (after start-up, before serving).
  void release_plan_scratch();

 private:
  GpuRuntime() = default;

  std::optional<cuda::Device> device_;
  cuda::Module module_;
  cuda::DnnHandle dnn_;
  cuda::BlasHandle blas_;
  cublasLtHandle_t blas_lt_ = nullptr;
  cuda::Stream plan_stream_;
  cuda::DeviceBuffer plan_scratch_;
  std::map<std::string, cuda::Kernel, std::less<>> kernels_;
};

}  // namespace ps::models::gpu
