#include "cuda/stream.h"

#include "cuda/context.h"
#include "cuda/driver.h"
#include "cuda/event.h"

namespace ps::cuda {

void Stream::Destroy::operator()(CUstream stream) const {
  CU_CHECK_RELEASE(api().cuStreamDestroy(stream));
}

Result<Stream> Stream::create(StreamPriority priority) {
  PS_TRY(current_context().status());
  int least = 0;
  int greatest = 0;
  CU_TRY(api().cuCtxGetStreamPriorityRange(&least, &greatest));
  int value = least;
  switch (priority) {
    case StreamPriority::kLow:
      value = least;
      break;
    case StreamPriority::kNormal:
      value = least + (greatest - least) / 2;
      break;
    case StreamPriority::kHigh:
      value = greatest;
      break;
  }
  CUstream handle = nullptr;
  CU_TRY(api().cuStreamCreateWithPriority(&handle, CU_STREAM_NON_BLOCKING, value));
  Stream s;
  s.stream_ = UniqueHandle<CUstream, Destroy>(handle);
  s.priority_class_ = priority;
  return s;
}

Result<int> Stream::priority() const {
  int value = 0;
  CU_TRY(api().cuStreamGetPriority(get(), &value));
  return value;
}

Status Stream::synchronize() const {
  CU_TRY(api().cuStreamSynchronize(get()));
  return Status::OK();
}

Status Stream::wait(const Event& event) const {
  CU_TRY(api().cuStreamWaitEvent(get(), event.get(), 0));
  return Status::OK();
}

Result<bool> Stream::is_done() const {
  CUresult r = api().cuStreamQuery(get());
  if (r == CUDA_ERROR_NOT_READY) return false;
  CU_TRY(r);
  return true;
}

}  // namespace ps::cuda
