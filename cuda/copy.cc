#include "cuda/copy.h"

#include "cuda/driver.h"
#include "cuda/stream.h"

namespace ps::cuda {

Status copy_to_device_async(CUdeviceptr dst, const void* src, size_t bytes, const Stream& stream) {
  if (bytes == 0) return Status::OK();
  CU_TRY(api().cuMemcpyHtoDAsync(dst, src, bytes, stream.get()));
  return Status::OK();
}

Status copy_to_host_async(void* dst, CUdeviceptr src, size_t bytes, const Stream& stream) {
  if (bytes == 0) return Status::OK();
  CU_TRY(api().cuMemcpyDtoHAsync(dst, src, bytes, stream.get()));
  return Status::OK();
}

Status copy_device_async(CUdeviceptr dst, CUdeviceptr src, size_t bytes, const Stream& stream) {
  if (bytes == 0) return Status::OK();
  CU_TRY(api().cuMemcpyDtoDAsync(dst, src, bytes, stream.get()));
  return Status::OK();
}

Status copy_peer_async(CUdeviceptr dst, CUcontext dst_context, CUdeviceptr src,
                       CUcontext src_context, size_t bytes, const Stream& stream) {
  if (bytes == 0) return Status::OK();
  CU_TRY(api().cuMemcpyPeerAsync(dst, dst_context, src, src_context, bytes, stream.get()));
  return Status::OK();
}

Status memset_d32_async(CUdeviceptr dst, uint32_t value, size_t count, const Stream& stream) {
  if (count == 0) return Status::OK();
  if (dst % 4 != 0)
    return invalid_argument("memset_d32_async: address ", dst, " is not 4-byte aligned");
  CU_TRY(api().cuMemsetD32Async(dst, value, count, stream.get()));
  return Status::OK();
}

Status memset_2d_d32_async(CUdeviceptr dst, size_t pitch_bytes, uint32_t value, size_t width,
                           size_t height, const Stream& stream) {
  if (width == 0 || height == 0) return Status::OK();
  if (dst % 4 != 0 || pitch_bytes % 4 != 0 || (height > 1 && pitch_bytes < width * 4)) {
    return invalid_argument("memset_2d_d32_async: address ", dst, " or pitch ", pitch_bytes,
                            " does not fit ", width, " aligned words a row");
  }
  CU_TRY(api().cuMemsetD2D32Async(dst, pitch_bytes, value, width, height, stream.get()));
  return Status::OK();
}

Status memset_d8_async(CUdeviceptr dst, uint8_t value, size_t bytes, const Stream& stream) {
  if (bytes == 0) return Status::OK();
  CU_TRY(api().cuMemsetD8Async(dst, value, bytes, stream.get()));
  return Status::OK();
}

}  // namespace ps::cuda
