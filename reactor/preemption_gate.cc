#include "reactor/preemption_gate.h"

#include "common/status.h"

namespace ps::reactor {

void PreemptionGate::inference_arrived() {
  std::lock_guard lock(mutex_);
  if (pending_.load(std::memory_order_relaxed) == 0) busy_since_ = Clock::now();
  pending_.fetch_add(1, std::memory_order_release);
}

void PreemptionGate::inference_finished() {
  std::lock_guard lock(mutex_);
  const size_t before = pending_.fetch_sub(1, std::memory_order_acq_rel);
  PS_CHECK(before > 0);
  if (before == 1) idle_.notify_all();
}

std::optional<PreemptionGate::Park> PreemptionGate::park_if_busy() {
  if (pending_.load(std::memory_order_acquire) == 0) return std::nullopt;
  std::unique_lock lock(mutex_);
  if (released_ || pending_.load(std::memory_order_relaxed) == 0) return std::nullopt;
  Park park;
  const Clock::time_point parked_at = Clock::now();
  park.latency = parked_at - busy_since_;
  idle_.wait(lock, [this] { return released_ || pending_.load(std::memory_order_relaxed) == 0; });
  park.parked = Clock::now() - parked_at;
  return park;
}

void PreemptionGate::release() {
  std::lock_guard lock(mutex_);
  released_ = true;
  idle_.notify_all();
}

}  // namespace ps::reactor
