// DnnHandle: an owned cuDNN handle, and CUDNN_TRY.
//
// Like cuBLAS, cuDNN works in the context current at creation (the primary context), and
// libcudnn loads without libcuda, so binaries start on machines without a driver.
#pragma once

#include <cudnn.h>

#include "common/status.h"
#include "cuda/handle.h"

namespace ps::cuda {

class Stream;

// The Status for a cuDNN result: kDevice (kOutOfMemory for a failed host or device allocation)
// naming the call, cudnnGetErrorString, cuDNN's last detailed message when it has one, and the
// place; OK for CUDNN_STATUS_SUCCESS.
Status cudnn_status(cudnnStatus_t status, const char* call, const char* file, int line);

class DnnHandle {
 public:
  // Creates a handle in the current context (precondition: Device::open on this thread).
  // Errors: kDevice naming cudnnCreate's status.
  static Result<DnnHandle> create();

  DnnHandle() = default;  // empty
  DnnHandle(DnnHandle&&) noexcept = default;
  DnnHandle& operator=(DnnHandle&&) noexcept = default;
  ~DnnHandle() = default;  // cudnnDestroy

  // Queues all later calls through this handle on `stream`.
  Status set_stream(const Stream& stream);

  cudnnHandle_t get() const { return handle_.get(); }

 private:
  struct Destroy {
    void operator()(cudnnHandle_t handle) const;
  };

  UniqueHandle<cudnnHandle_t, Destroy> handle_;
};

}  // namespace ps::cuda

// Evaluates a cuDNN call; on failure returns its Status from the enclosing function.
#define CUDNN_TRY(call)                                                             \
  do {                                                                              \
    cudnnStatus_t ps_cudnn_status_ = (call);                                        \
    if (ps_cudnn_status_ != CUDNN_STATUS_SUCCESS)                                   \
      return ::ps::cuda::cudnn_status(ps_cudnn_status_, #call, __FILE__, __LINE__); \
  } while (0)
