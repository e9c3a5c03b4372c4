// BlasHandle: an owned cuBLAS handle, and CUBLAS_TRY.
//
// cuBLAS runs in the context current when the handle is created; we always use the device's
// primary context (Device::open), which is the one cuBLAS would pick anyway. libcublas does not
// need libcuda at load time, so linking it keeps binaries starting on machines without a driver.
#pragma once

#include <cublas_v2.h>
#include <cuda.h>

#include <cstddef>

#include "common/status.h"
#include "cuda/handle.h"

namespace ps::cuda {

class Stream;

// The Status for a cuBLAS result: kDevice (kOutOfMemory for CUBLAS_STATUS_ALLOC_FAILED) naming
// the call, cublasGetStatusName/String and the place; OK for CUBLAS_STATUS_SUCCESS.
Status cublas_status(cublasStatus_t status, const char* call, const char* file, int line);

class BlasHandle {
 public:
  // Creates a handle in the current context (precondition: Device::open on this thread).
  // Errors: kDevice naming cublasCreate's status (CUBLAS_STATUS_NOT_INITIALIZED without a GPU).
  static Result<BlasHandle> create();

  BlasHandle() = default;  // empty
  BlasHandle(BlasHandle&&) noexcept = default;
  BlasHandle& operator=(BlasHandle&&) noexcept = default;
  ~BlasHandle() = default;  // cublasDestroy

  // Queues all later calls through this handle on `stream`. Note: cuBLAS resets the workspace
  // to its default pool here, so call set_workspace() after every set_stream().
  Status set_stream(const Stream& stream);

  // Gives cuBLAS `bytes` of device memory at `workspace` (owned by the caller, e.g. carved from
  // the pool; 256-byte aligned) instead of letting it allocate its own, which keeps cuMemAlloc
  // off request paths. The memory must stay valid while calls using it may run.
  Status set_workspace(CUdeviceptr workspace, size_t bytes);

  cublasHandle_t get() const { return handle_.get(); }

 private:
  struct Destroy {
    void operator()(cublasHandle_t handle) const;
  };

  UniqueHandle<cublasHandle_t, Destroy> handle_;
};

}  // namespace ps::cuda

// Evaluates a cuBLAS call; on failure returns its Status from the enclosing function.
#define CUBLAS_TRY(call)                                                              \
  do {                                                                                \
    cublasStatus_t ps_cublas_status_ = (call);                                        \
    if (ps_cublas_status_ != CUBLAS_STATUS_SUCCESS)                                   \
      return ::ps::cuda::cublas_status(ps_cublas_status_, #call, __FILE__, __LINE__); \
  } while (0)
