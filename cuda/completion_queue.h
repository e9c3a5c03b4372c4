// CompletionQueue: the host side of CompletionBridge, with no CUDA in it (so it is tested
// without a GPU).
//
// A fixed pool of records, one per completion that may be outstanding. reserve() takes a record
// for a token; deliver(record), called from any thread (the driver's callback thread), moves
// the token onto the delivered queue and calls the notifier; drain(), on the owner's thread,
// hands delivered tokens out and returns their records to the pool. Nothing allocates after
// construction: a record is busy from reserve() until the drain() that hands its token out, so
// at most `capacity` tokens are ever in flight or waiting, and reserve() beyond that fails.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "common/status.h"

namespace ps::cuda {

class CompletionQueue {
 public:
  // `notifier` is called once per delivered token, on the delivering thread, without any lock
  // of this queue held: it must be thread-safe and quick (uv_async_send is; it coalesces, so
  // the owner drains everything on each wake-up). An empty notifier is allowed (the owner then
  // polls drain()). Precondition: capacity in [1, 2^31).
  CompletionQueue(std::function<void()> notifier, size_t capacity);

  // Waits until every reserved record has been delivered or cancelled, and every deliver()
  // call has returned: records must outlive the callbacks that point at them. Ends the process
  // if that takes more than kDestroyTimeout (a record that is never delivered: a hung GPU or
  // a broken context), since freeing the records would let a late callback write freed memory.
  ~CompletionQueue();

  CompletionQueue(const CompletionQueue&) = delete;
  CompletionQueue& operator=(const CompletionQueue&) = delete;

  static constexpr std::chrono::seconds kDestroyTimeout{60};

  // Takes a free record for `token`, to be passed to deliver() exactly once (or to cancel()).
  // Errors: kResourceExhausted when all records are in flight or delivered but not drained.
  Result<void*> reserve(uint64_t token);

  // Returns a reserved record that will never be delivered (its host function could not be
  // queued). Precondition: `record` came from reserve() and was neither delivered nor cancelled.
  void cancel(void* record);

  // Delivers a reserved record's token: queues it for drain() and calls the notifier. Any
  // thread; allocates nothing, makes no CUDA call. Delivering a record twice is a broken
  // invariant and ends the process (a host function replayed by a CUDA graph would do that).
  static void deliver(void* record);

  // Appends all delivered tokens to *out in delivery order and frees their records. Returns
  // how many were appended. For the owner's thread (any thread is safe).
  size_t drain(std::vector<uint64_t>* out);

  // Blocks until no record is in flight (every reserved one delivered or cancelled) or
  // `timeout` passes; returns whether it became idle. For shutdown and tests.
  bool wait_until_idle(std::chrono::milliseconds timeout);

  size_t capacity() const { return capacity_; }
  // Reserved and not yet delivered.
  size_t in_flight() const;
  // Delivered and not yet drained.
  size_t delivered() const;

 private:
  enum class State : uint8_t { kFree, kInFlight, kDelivered };
  struct Record {
    CompletionQueue* owner = nullptr;
    uint64_t token = 0;
    uint32_t index = 0;
    State state = State::kFree;
  };

  void on_deliver(Record* record);
  bool idle_locked() const { return in_flight_ == 0 && notifying_ == 0; }

  const std::function<void()> notifier_;
  const size_t capacity_;
  std::unique_ptr<Record[]> records_;
  mutable std::mutex mutex_;
  std::condition_variable idle_;
  std::vector<uint32_t> free_;       // indices of free records; capacity reserved up front
  std::vector<uint32_t> delivered_;  // indices in delivery order; capacity reserved up front
  size_t in_flight_ = 0;
  size_t notifying_ = 0;  // deliver() calls between queueing their token and returning
};

}  // namespace ps::cuda
