// The current CUDA context, and how owned objects release into the context they came from.
//
// Every object of cuda/ is created in the context current on the calling thread (Device::open
// makes the device's primary context current). Buffers, pinned memory and modules belong to
// that context, and their deleters make it current again while releasing, so an object may be
// destroyed on a thread or at a moment where another device's context is current.
#pragma once

#include <cuda.h>

#include "common/status.h"
#include "cuda/driver.h"

namespace ps::cuda {

// The context current on the calling thread. Errors: kUnavailable without a driver,
// kInvalidArgument when no context is current (open a Device first).
Result<CUcontext> current_context();

// Makes `context` current for the life of the scope and restores the previous one after.
// For destructors and other paths that cannot return a Status: a driver failure ends the
// process, except that nothing happens once the driver has shut down (static destructors
// running after the driver's own exit handlers).
class ScopedContext {
 public:
  // Precondition: the driver is loaded; `context` is a live context (or null: no change).
  explicit ScopedContext(CUcontext context);
  ~ScopedContext();
  ScopedContext(const ScopedContext&) = delete;
  ScopedContext& operator=(const ScopedContext&) = delete;

  // False when the driver has shut down: the caller must not make further driver calls.
  bool active() const { return active_; }

 private:
  CUcontext previous_ = nullptr;
  bool switched_ = false;
  bool active_ = true;
};

// For a release call in a destructor (cuMemFree, cuStreamDestroy...): OK and
// CUDA_ERROR_DEINITIALIZED (the driver already shut down at process exit, so everything is
// gone anyway) are accepted; any other failure ends the process naming the call and place.
void check_release(CUresult result, const char* call, const char* file, int line);

}  // namespace ps::cuda

#define CU_CHECK_RELEASE(call) ::ps::cuda::check_release((call), #call, __FILE__, __LINE__)
