#include "cuda/host_bridge.h"

#include <utility>

#include "cuda/driver.h"
#include "cuda/stream.h"

namespace ps::cuda {

CompletionBridge::CompletionBridge(std::function<void()> notifier, size_t capacity)
    : queue_(std::move(notifier), capacity) {}

Status CompletionBridge::enqueue(const Stream& stream, uint64_t token) {
  PS_ASSIGN_OR_RETURN(void* record, queue_.reserve(token));
  CUresult r = api().cuLaunchHostFunc(stream.get(), &CompletionQueue::deliver, record);
  if (r != CUDA_SUCCESS) {
    queue_.cancel(record);
    return cu_status(r, "cuLaunchHostFunc", __FILE__, __LINE__)
        .with_context(str_cat("completion token ", token));
  }
  return Status::OK();
}

}  // namespace ps::cuda
