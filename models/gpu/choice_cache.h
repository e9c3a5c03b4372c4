// A process-wide cache of plan-time choices: what an op found by timing candidates once per
// problem (cuDNN's convolution algorithms and modes, cuBLASLt's matmul algorithms), keyed by a
// string naming the device, precision and problem. Several executors may plan at once, so
// every access takes the cache's lock; two planners of the same new problem may both time it,
// and the later store replaces the earlier (either is a valid choice). One static instance per
// choice type, in the op's .cc.
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace ps::models::gpu {

template <typename T>
class ChoiceCache {
 public:
  std::optional<T> find(const std::string& key) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = map_.find(key);
    if (it == map_.end()) return std::nullopt;
    return it->second;
  }
  void store(const std::string& key, const T& choice) {
    std::lock_guard<std::mutex> lock(mutex_);
    map_.insert_or_assign(key, choice);
  }
  size_t size() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return map_.size();
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, T> map_;
};

}  // namespace ps::models::gpu
