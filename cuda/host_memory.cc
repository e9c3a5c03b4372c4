#include "cuda/host_memory.h"

#include <utility>

#include "cuda/context.h"
#include "cuda/driver.h"

namespace ps::cuda {

void PinnedBuffer::Free::operator()(void* p) const {
  ScopedContext scope(context);
  if (scope.active()) CU_CHECK_RELEASE(api().cuMemFreeHost(p));
}

Result<PinnedBuffer> PinnedBuffer::allocate(size_t bytes) {
  if (bytes == 0) return invalid_argument("PinnedBuffer::allocate: 0 bytes");
  PS_ASSIGN_OR_RETURN(CUcontext context, current_context());
  void* p = nullptr;
  Status s = cu_status(api().cuMemHostAlloc(&p, bytes, CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP), "cuMemHostAlloc",
                       __FILE__, __LINE__);
  if (!s.ok()) return s.with_context(str_cat("allocating ", bytes, " bytes of pinned host memory"));
  PinnedBuffer b;
  b.memory_ = UniqueHandle<void*, Free>(p, Free{context});
  b.size_ = bytes;
  return b;
}

Result<CUdeviceptr> PinnedBuffer::device_address() const {
  if (!memory_) return invalid_argument("PinnedBuffer::device_address on an empty buffer");
  ScopedContext scope(memory_.deleter().context);
  CUdeviceptr address = 0;
  CU_TRY(api().cuMemHostGetDevicePointer(&address, memory_.get(), 0));
  return address;
}

PinnedBuffer::PinnedBuffer(PinnedBuffer&& other) noexcept
    : memory_(std::move(other.memory_)), size_(std::exchange(other.size_, 0)) {}

PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& other) noexcept {
  memory_ = std::move(other.memory_);
  size_ = std::exchange(other.size_, 0);
  return *this;
}

void HostRegistration::Unregister::operator()(void* p) const {
  ScopedContext scope(context);
  if (scope.active()) CU_CHECK_RELEASE(api().cuMemHostUnregister(p));
}

Result<HostRegistration> HostRegistration::register_range(void* p, size_t bytes) {
  if (p == nullptr || bytes == 0) {
    return invalid_argument("HostRegistration::register_range: empty range");
  }
  PS_ASSIGN_OR_RETURN(CUcontext context, current_context());
  Status s = cu_status(api().cuMemHostRegister(p, bytes, CU_MEMHOSTREGISTER_PORTABLE),
                       "cuMemHostRegister", __FILE__, __LINE__);
  if (!s.ok()) return s.with_context(str_cat("pinning ", bytes, " bytes of host memory at ", p));
  HostRegistration r;
  r.range_ = UniqueHandle<void*, Unregister>(p, Unregister{context});
  r.size_ = bytes;
  return r;
}

HostRegistration::HostRegistration(HostRegistration&& other) noexcept
    : range_(std::move(other.range_)), size_(std::exchange(other.size_, 0)) {}

HostRegistration& HostRegistration::operator=(HostRegistration&& other) noexcept {
  range_ = std::move(other.range_);
  size_ = std::exchange(other.size_, 0);
  return *this;
}

}  // namespace ps::cuda
