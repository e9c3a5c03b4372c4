#include "reactor/latency_window.h"

#include <algorithm>
#include <cmath>

namespace ps::reactor {

LatencyWindow::LatencyWindow(size_t capacity) : capacity_(capacity < 1 ? 1 : capacity) {}

void LatencyWindow::add(uint64_t micros) {
  if (ring_.size() < capacity_) {
    ring_.push_back(micros);
  } else {
    ring_[next_] = micros;
    next_ = (next_ + 1) % capacity_;
  }
  ++count_;
  sum_ += micros;
}

uint64_t LatencyWindow::percentile(double q) const {
  if (ring_.empty()) return 0;
  std::vector<uint64_t> sorted = ring_;
  q = std::clamp(q, 0.0, 1.0);
  // Nearest rank: the smallest value with at least q of the samples at or below it.
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  std::nth_element(sorted.begin(), sorted.begin() + static_cast<long>(rank - 1), sorted.end());
  return sorted[rank - 1];
}

}  // namespace ps::reactor
