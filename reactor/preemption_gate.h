// Inference before training (issue 7, "Driving and preemption"): the backend counts the
// inference requests it has accepted and not finished; a training job, between two layers,
// parks at the gate while that count is above zero and goes on by itself when it drops to zero.
// Nothing of the job is lost: it simply waits where it is, its state in place.
//
// The gate also measures what the issue asks for: how long after an inference arrived the job
// parked (the preemption latency: at most the rest of one layer) and how long it stayed parked.
//
// Thread-safe. The counting side (arrived/finished) is the backend's; the parking side is the
// training job's thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <optional>

namespace ps::reactor {

class PreemptionGate {
 public:
  using Clock = std::chrono::steady_clock;

  // One inference request accepted. The first of a busy period (count 0 -> 1) stamps its
  // arrival: a job that parks later measures its latency from there.
  void inference_arrived();
  // One finished (or cancelled). The last (count -> 0) wakes every parked job.
  void inference_finished();

  struct Park {
    Clock::duration latency{};  // the busy period's first arrival -> the job parked
    Clock::duration parked{};   // parked -> woken
  };
  // The training side, between layers. When no inference is pending (or after release()),
  // returns nullopt at once (one atomic load). Otherwise parks until none is, and says how.
  std::optional<Park> park_if_busy();

  // From now on nobody parks, and every parked job wakes (shutdown). Idempotent.
  void release();

  size_t pending() const { return pending_.load(std::memory_order_acquire); }

 private:
  std::atomic<size_t> pending_{0};
  mutable std::mutex mutex_;
  std::condition_variable idle_;
  Clock::time_point busy_since_{};
  bool released_ = false;
};

}  // namespace ps::reactor
