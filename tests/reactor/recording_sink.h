// Test support: a CompletionSink that keeps every completion in arrival order, for tests that
// drive a backend directly (training jobs post many completions under one ticket).
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <vector>

#include "reactor/backend.h"

namespace ps::reactor::testing {

// Keeps every completion in arrival order; waits for conditions over them.
class RecordingSink final : public CompletionSink {
 public:
  void post(Completion c) override {
    std::lock_guard lock(mutex_);
    all_.push_back(std::move(c));
    arrived_.notify_all();
  }
  void wake() override {}

  // Waits (at most 2 minutes) until pred(all completions so far) holds.
  template <typename Pred>
  void wait_until(Pred pred) {
    std::unique_lock lock(mutex_);
    const bool ok = arrived_.wait_for(lock, std::chrono::minutes(2), [&] { return pred(all_); });
    PS_CHECK(ok);
  }
  Completion wait_for_ticket(CompletionKind kind, uint64_t ticket) {
    Completion out;
    wait_until([&](const std::vector<Completion>& all) {
      for (const Completion& c : all) {
        if (c.kind == kind && c.ticket == ticket &&
            (kind != CompletionKind::kTraining || c.finished)) {
          out = c;
          return true;
        }
      }
      return false;
    });
    return out;
  }
  // The losses of job `job`'s steps, by the model's step number (1-based: after the step).
  std::map<uint64_t, double> losses(uint64_t job) {
    std::lock_guard lock(mutex_);
    std::map<uint64_t, double> out;
    for (const Completion& c : all_) {
      if (c.kind == CompletionKind::kTraining && c.ticket == job && c.training.steps > 0) {
        out[c.training.step] = c.training.loss;
      }
    }
    return out;
  }

 private:
  std::mutex mutex_;
  std::condition_variable arrived_;
  std::vector<Completion> all_;
};

}  // namespace ps::reactor::testing
