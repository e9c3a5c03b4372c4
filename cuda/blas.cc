#include "cuda/blas.h"

#include "cuda/stream.h"

namespace ps::cuda {

Status cublas_status(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return Status::OK();
  const char* name = cublasGetStatusName(status);
  const char* text = cublasGetStatusString(status);
  Code code = status == CUBLAS_STATUS_ALLOC_FAILED ? Code::kOutOfMemory : Code::kDevice;
  return Status(code, str_cat(call, " failed: ", name ? name : "unknown cuBLAS status", " (",
                              text ? text : "", ") at ", file, ":", line));
}

void BlasHandle::Destroy::operator()(cublasHandle_t handle) const {
  cublasStatus_t s = cublasDestroy(handle);
  if (s != CUBLAS_STATUS_SUCCESS) {
    fatal(__FILE__, __LINE__, cublas_status(s, "cublasDestroy", __FILE__, __LINE__).message());
  }
}

Result<BlasHandle> BlasHandle::create() {
  cublasHandle_t handle = nullptr;
  CUBLAS_TRY(cublasCreate(&handle));
  BlasHandle b;
  b.handle_ = UniqueHandle<cublasHandle_t, Destroy>(handle);
  return b;
}

Status BlasHandle::set_stream(const Stream& stream) {
  CUBLAS_TRY(cublasSetStream(get(), stream.get()));
  return Status::OK();
}

Status BlasHandle::set_workspace(CUdeviceptr workspace, size_t bytes) {
  void* memory = reinterpret_cast<void*>(workspace);  // NOLINT(performance-no-int-to-ptr)
  CUBLAS_TRY(cublasSetWorkspace(get(), memory, bytes));
  return Status::OK();
}

}  // namespace ps::cuda
