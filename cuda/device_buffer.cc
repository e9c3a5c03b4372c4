#include "cuda/device_buffer.h"

#include <utility>

#include "cuda/context.h"
#include "cuda/driver.h"

namespace ps::cuda {

void DeviceBuffer::Free::operator()(CUdeviceptr ptr) const {
  ScopedContext scope(context);
  if (scope.active()) CU_CHECK_RELEASE(api().cuMemFree(ptr));
}

Result<DeviceBuffer> DeviceBuffer::allocate(size_t bytes) { return allocate_impl(bytes, false); }

Result<DeviceBuffer> DeviceBuffer::allocate_managed(size_t bytes) {
  return allocate_impl(bytes, true);
}

Result<DeviceBuffer> DeviceBuffer::allocate_impl(size_t bytes, bool managed) {
  if (bytes == 0) return invalid_argument("DeviceBuffer::allocate: 0 bytes");
  PS_ASSIGN_OR_RETURN(CUcontext context, current_context());
  CUdeviceptr ptr = 0;
  Status s = managed ? cu_status(api().cuMemAllocManaged(&ptr, bytes, CU_MEM_ATTACH_GLOBAL),
                                 "cuMemAllocManaged", __FILE__, __LINE__)
                     : cu_status(api().cuMemAlloc(&ptr, bytes), "cuMemAlloc", __FILE__, __LINE__);
  if (!s.ok()) {
    return s.with_context(
        str_cat("allocating ", bytes, " bytes of ", managed ? "managed" : "device", " memory"));
  }
  DeviceBuffer b;
  b.memory_ = UniqueHandle<CUdeviceptr, Free>(ptr, Free{context});
  b.size_ = bytes;
  return b;
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : memory_(std::move(other.memory_)), size_(std::exchange(other.size_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  memory_ = std::move(other.memory_);
  size_ = std::exchange(other.size_, 0);
  return *this;
}

}  // namespace ps::cuda
