// Latency statistics of one model: totals since start and percentiles over a window of the
// most recent samples (a ring), so STATS and /metrics stay cheap and bounded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ps::reactor {

class LatencyWindow {
 public:
  // capacity >= 1 samples are kept for the percentiles.
  explicit LatencyWindow(size_t capacity = 4096);

  void add(uint64_t micros);

  uint64_t count() const { return count_; }  // all samples ever added
  uint64_t sum_us() const { return sum_; }   // their sum
  size_t window_size() const { return ring_.size(); }
  // The q-quantile (0 <= q <= 1, nearest rank) of the samples in the window; 0 when empty.
  uint64_t percentile(double q) const;

 private:
  size_t capacity_;
  std::vector<uint64_t> ring_;
  size_t next_ = 0;
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
};

}  // namespace ps::reactor
