#include "cuda/context.h"

namespace ps::cuda {

Result<CUcontext> current_context() {
  PS_TRY(load_driver().status());
  CUcontext context = nullptr;
  CU_TRY(api().cuCtxGetCurrent(&context));
  if (context == nullptr) {
    return invalid_argument("no CUDA context is current on this thread (open a Device first)");
  }
  return context;
}

ScopedContext::ScopedContext(CUcontext context) {
  if (context == nullptr) return;
  CUresult r = api().cuCtxGetCurrent(&previous_);
  if (r == CUDA_ERROR_DEINITIALIZED) {
    active_ = false;
    return;
  }
  CU_CHECK(r);
  if (previous_ == context) return;
  CU_CHECK(api().cuCtxSetCurrent(context));
  switched_ = true;
}

ScopedContext::~ScopedContext() {
  if (switched_) CU_CHECK_RELEASE(api().cuCtxSetCurrent(previous_));
}

void check_release(CUresult result, const char* call, const char* file, int line) {
  if (result == CUDA_SUCCESS || result == CUDA_ERROR_DEINITIALIZED) return;
  fatal(file, line, cu_status(result, call, file, line).message());
}

}  // namespace ps::cuda
