#include "cuda/completion_queue.h"

#include <utility>

namespace ps::cuda {

CompletionQueue::CompletionQueue(std::function<void()> notifier, size_t capacity)
    : notifier_(std::move(notifier)), capacity_(capacity) {
  PS_CHECK(capacity_ > 0 && capacity_ < (size_t{1} << 31));
  records_ = std::make_unique<Record[]>(capacity_);
  free_.reserve(capacity_);
  delivered_.reserve(capacity_);
  // Handed out from the back: record 0 first.
  for (size_t i = capacity_; i-- > 0;) {
    records_[i].owner = this;
    records_[i].index = static_cast<uint32_t>(i);
    free_.push_back(static_cast<uint32_t>(i));
  }
}

CompletionQueue::~CompletionQueue() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!idle_.wait_for(lock, kDestroyTimeout, [this] { return idle_locked(); })) {
    fatal(__FILE__, __LINE__,
          str_cat("CompletionQueue destroyed with ", in_flight_,
                  " completions still pending after ", kDestroyTimeout.count(),
                  " s: synchronize the streams before destroying their bridge"));
  }
}

Result<void*> CompletionQueue::reserve(uint64_t token) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (free_.empty()) {
    return resource_exhausted("all ", capacity_, " completion records are in flight or undrained (",
                              in_flight_, " in flight, ", delivered_.size(), " to drain)");
  }
  Record& r = records_[free_.back()];
  free_.pop_back();
  r.token = token;
  r.state = State::kInFlight;
  ++in_flight_;
  return static_cast<void*>(&r);
}

void CompletionQueue::cancel(void* record) {
  auto* r = static_cast<Record*>(record);
  PS_CHECK(r != nullptr && r->owner == this);
  std::lock_guard<std::mutex> lock(mutex_);
  PS_CHECK(r->state == State::kInFlight);
  r->state = State::kFree;
  free_.push_back(r->index);
  --in_flight_;
  if (idle_locked()) idle_.notify_all();
}

void CompletionQueue::deliver(void* record) {
  auto* r = static_cast<Record*>(record);
  r->owner->on_deliver(r);
}

void CompletionQueue::on_deliver(Record* r) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (r->state != State::kInFlight) {
      fatal(__FILE__, __LINE__,
            str_cat("completion token ", r->token, " delivered twice or never reserved"));
    }
    r->state = State::kDelivered;
    delivered_.push_back(r->index);  // within the reserved capacity: no allocation
    --in_flight_;
    ++notifying_;
  }
  // Outside the lock, so the notifier may take its own locks in any order. The queue stays
  // alive meanwhile: the destructor waits for notifying_ to drop to 0.
  if (notifier_) notifier_();
  std::lock_guard<std::mutex> lock(mutex_);
  --notifying_;
  // Under the lock: once it is released this thread touches nothing of the queue again.
  if (idle_locked()) idle_.notify_all();
}

size_t CompletionQueue::drain(std::vector<uint64_t>* out) {
  std::lock_guard<std::mutex> lock(mutex_);
  size_t n = delivered_.size();
  for (uint32_t index : delivered_) {
    Record& r = records_[index];
    out->push_back(r.token);
    r.state = State::kFree;
    free_.push_back(index);
  }
  delivered_.clear();
  return n;
}

bool CompletionQueue::wait_until_idle(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  return idle_.wait_for(lock, timeout, [this] { return idle_locked(); });
}

size_t CompletionQueue::in_flight() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return in_flight_;
}

size_t CompletionQueue::delivered() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return delivered_.size();
}

}  // namespace ps::cuda
