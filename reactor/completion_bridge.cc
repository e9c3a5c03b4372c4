#include "reactor/completion_bridge.h"

namespace ps::reactor {

CompletionBridge::~CompletionBridge() {
  // close() must have run (the loop frees the handle); a live handle here would be a leak.
  PS_CHECK(async_ == nullptr);
}

Status CompletionBridge::open(uv_loop_t* loop, Backend* backend, Handler handler) {
  PS_CHECK(async_ == nullptr);
  auto* async = new uv_async_t;
  const int rc = uv_async_init(loop, async, &CompletionBridge::on_async);
  if (rc != 0) {
    delete async;
    return internal_error("uv_async_init: ", uv_strerror(rc));
  }
  async->data = this;
  async_ = async;
  backend_ = backend;
  handler_ = std::move(handler);
  std::lock_guard lock(mutex_);
  open_ = true;
  return Status::OK();
}

void CompletionBridge::close() {
  if (async_ == nullptr) return;
  {
    std::lock_guard lock(mutex_);
    open_ = false;
    queue_.clear();
  }
  uv_close(reinterpret_cast<uv_handle_t*>(async_),
           [](uv_handle_t* handle) { delete reinterpret_cast<uv_async_t*>(handle); });
  async_ = nullptr;
}

void CompletionBridge::post(Completion completion) {
  std::lock_guard lock(mutex_);
  if (!open_) return;
  queue_.push_back(std::move(completion));
  // Under the lock, so close() cannot free the handle between the check and the send.
  uv_async_send(async_);
}

void CompletionBridge::wake() {
  std::lock_guard lock(mutex_);
  if (open_) uv_async_send(async_);
}

void CompletionBridge::on_async(uv_async_t* handle) {
  static_cast<CompletionBridge*>(handle->data)->drain_now();
}

void CompletionBridge::drain_now() {
  std::vector<Completion> batch;
  {
    std::lock_guard lock(mutex_);
    batch.swap(queue_);
  }
  if (backend_ != nullptr) backend_->drain(&batch);
  for (Completion& c : batch) {
    if (handler_) handler_(std::move(c));
  }
}

}  // namespace ps::reactor
