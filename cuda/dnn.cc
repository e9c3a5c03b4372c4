#include "cuda/dnn.h"

#include "cuda/stream.h"

namespace ps::cuda {

Status cudnn_status(cudnnStatus_t status, const char* call, const char* file, int line) {
  if (status == CUDNN_STATUS_SUCCESS) return Status::OK();
  const char* name = cudnnGetErrorString(status);
  char detail[512] = {};
  cudnnGetLastErrorString(detail, sizeof(detail));
  Code code = status == CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED ||
                      status == CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED
                  ? Code::kOutOfMemory
                  : Code::kDevice;
  std::string message = str_cat(call, " failed: ", name ? name : "unknown cuDNN status");
  if (detail[0] != '\0') message += str_cat(" (", detail, ")");
  message += str_cat(" at ", file, ":", line);
  return Status(code, std::move(message));
}

void DnnHandle::Destroy::operator()(cudnnHandle_t handle) const {
  cudnnStatus_t s = cudnnDestroy(handle);
  if (s != CUDNN_STATUS_SUCCESS) {
    fatal(__FILE__, __LINE__, cudnn_status(s, "cudnnDestroy", __FILE__, __LINE__).message());
  }
}

Result<DnnHandle> DnnHandle::create() {
  cudnnHandle_t handle = nullptr;
  CUDNN_TRY(cudnnCreate(&handle));
  DnnHandle d;
  d.handle_ = UniqueHandle<cudnnHandle_t, Destroy>(handle);
  return d;
}

Status DnnHandle::set_stream(const Stream& stream) {
  CUDNN_TRY(cudnnSetStream(get(), stream.get()));
  return Status::OK();
}

}  // namespace ps::cuda
