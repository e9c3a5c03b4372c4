// UniqueHandle: the one move-only owner of a C handle (CUstream, CUevent, CUdeviceptr,
// cublasHandle_t, ...) used by every RAII class of cuda/.
//
// A handle equal to `T{}` (nullptr, 0) is "empty" and never passed to the deleter. The deleter
// is a small function object `void operator()(T) const`; it may carry state (the context a
// buffer was allocated in, the device whose primary context is retained), which moves with the
// handle. Deleters report failures themselves (CU_CHECK_RELEASE): a destructor cannot return a
// Status, and a failed release means the context is no longer trustworthy.
#pragma once

#include <utility>

namespace ps::cuda {

template <typename T, typename Deleter>
class UniqueHandle {
 public:
  UniqueHandle() = default;
  // Takes ownership of `handle` (which may be empty); `deleter` releases it later.
  explicit UniqueHandle(T handle, Deleter deleter = Deleter{})
      : handle_(handle), deleter_(std::move(deleter)) {}

  UniqueHandle(const UniqueHandle&) = delete;
  UniqueHandle& operator=(const UniqueHandle&) = delete;

  UniqueHandle(UniqueHandle&& other) noexcept
      : handle_(std::exchange(other.handle_, T{})), deleter_(std::move(other.deleter_)) {}

  UniqueHandle& operator=(UniqueHandle&& other) noexcept {
    if (this != &other) {
      reset();
      handle_ = std::exchange(other.handle_, T{});
      deleter_ = std::move(other.deleter_);
    }
    return *this;
  }

  ~UniqueHandle() { reset(); }

  // The handle, still owned by this object; T{} when empty.
  T get() const { return handle_; }
  const Deleter& deleter() const { return deleter_; }
  explicit operator bool() const { return handle_ != T{}; }

  // Gives up ownership without releasing; the caller now owns the returned handle.
  T release() { return std::exchange(handle_, T{}); }

  // Releases the owned handle (if any) and takes `handle` instead, keeping the deleter.
  void reset(T handle = T{}) {
    T old = std::exchange(handle_, handle);
    if (old != T{}) deleter_(old);
  }

 private:
  T handle_{};
  [[no_unique_address]] Deleter deleter_{};
};

}  // namespace ps::cuda
