// CompletionBridge: how the GPU tells the event loop that queued work has finished, without
// the loop ever blocking on a stream or event.
//
// enqueue(stream, token) queues a host function (cuLaunchHostFunc) behind the work already on
// the stream. When the stream reaches it, the driver's callback thread pushes `token` onto a
// locked queue and calls the notifier (the reactor passes a lambda calling uv_async_send); the
// loop then drain()s the tokens on its own thread. The callback makes no CUDA call (host
// functions must not) and allocates nothing: records come from a fixed pool (CompletionQueue).
//
// Ordering: tokens of one stream are delivered in the order they were enqueued; tokens of
// different streams interleave as the GPU runs them. A host function occupies its stream only
// while it runs, which is a lock and a push.
//
// Lifetime rule: the bridge must outlive every callback it queued. Its destructor enforces this
// by WAITING until all enqueued tokens have been delivered (so the owner normally synchronizes
// or drains its streams first and the wait is empty); if they do not arrive within
// CompletionQueue::kDestroyTimeout the process ends, because freeing the records would let a
// late callback write into freed memory. The bridge is neither copyable nor movable (the
// driver holds pointers into it); own it by value in a stable object or by unique_ptr.
//
// Do not enqueue onto a stream being captured into a CUDA graph: each replay of the graph
// would deliver the same record again, which ends the process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "common/status.h"
#include "cuda/completion_queue.h"

namespace ps::cuda {

class Stream;

class CompletionBridge {
 public:
  // `notifier`: thread-safe, quick, called once per delivered token from the driver's callback
  // thread (see CompletionQueue). `capacity`: how many tokens may be in flight or undrained at
  // once (>= 1); all records are allocated here.
  CompletionBridge(std::function<void()> notifier, size_t capacity);
  ~CompletionBridge() = default;  // waits for pending callbacks (see the lifetime rule)

  CompletionBridge(const CompletionBridge&) = delete;
  CompletionBridge& operator=(const CompletionBridge&) = delete;

  // Queues the delivery of `token` behind the work queued on `stream` so far.
  // Errors: kResourceExhausted when `capacity` tokens are in flight or waiting to be drained;
  // kDevice when cuLaunchHostFunc fails (the record is returned to the pool).
  Status enqueue(const Stream& stream, uint64_t token);

  // Appends every delivered token to *out (delivery order) and frees their records; returns
  // how many. Call it from the notifier's wake-up, on the owner's thread.
  size_t drain(std::vector<uint64_t>* out) { return queue_.drain(out); }

  size_t capacity() const { return queue_.capacity(); }
  size_t in_flight() const { return queue_.in_flight(); }

 private:
  CompletionQueue queue_;
};

}  // namespace ps::cuda
