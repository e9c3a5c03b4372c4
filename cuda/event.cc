#include "cuda/event.h"

#include "cuda/context.h"
#include "cuda/driver.h"
#include "cuda/stream.h"

namespace ps::cuda {

void Event::Destroy::operator()(CUevent event) const {
  CU_CHECK_RELEASE(api().cuEventDestroy(event));
}

Result<Event> Event::create(bool timing) {
  PS_TRY(current_context().status());
  CUevent handle = nullptr;
  CU_TRY(api().cuEventCreate(&handle, timing ? CU_EVENT_DEFAULT : CU_EVENT_DISABLE_TIMING));
  Event e;
  e.event_ = UniqueHandle<CUevent, Destroy>(handle);
  return e;
}

Status Event::record(const Stream& stream) {
  CU_TRY(api().cuEventRecord(get(), stream.get()));
  return Status::OK();
}

Status Event::record_timestamp(const Stream& stream) {
  CUstreamCaptureStatus capture = CU_STREAM_CAPTURE_STATUS_NONE;
  CU_TRY(api().cuStreamIsCapturing(stream.get(), &capture));
  if (capture == CU_STREAM_CAPTURE_STATUS_ACTIVE) {
    CU_TRY(api().cuEventRecordWithFlags(get(), stream.get(), CU_EVENT_RECORD_EXTERNAL));
  } else {
    CU_TRY(api().cuEventRecord(get(), stream.get()));
  }
  return Status::OK();
}

Status Event::synchronize() const {
  CU_TRY(api().cuEventSynchronize(get()));
  return Status::OK();
}

Result<bool> Event::is_done() const {
  CUresult r = api().cuEventQuery(get());
  if (r == CUDA_ERROR_NOT_READY) return false;
  CU_TRY(r);
  return true;
}

Result<float> Event::elapsed_ms(const Event& start, const Event& end) {
  float ms = 0.0f;
  CU_TRY(api().cuEventElapsedTime(&ms, start.get(), end.get()));
  return ms;
}

}  // namespace ps::cuda
