// Switching policies (DESIGN.md "Policies"): what the GPU backend does to make a model resident
// for a request and what it does with the model afterwards. A policy is a small value the
// backend consults, not a fork of the code; pure, tested on the CPU.
//
//   pipeswitch      pinned weights, pool slot, pipelined groups; the model leaves after its task
//                   (its weights stay in the switch region until another model's switch
//                   overwrites them, and a request for it until then needs no switch:
//                   BackendOptions::reuse_region)
//   cache           as pipeswitch, but models stay resident while the pool has room, least
//                   recently used out first (a repeated request costs ready-model latency)
//   ready           every model resident from registration (the lower bound)
//   stop-and-start  whole-model copy, then compute (the paper's "one process"); leaves after
//   kill-restart    a fresh process per request that initialises CUDA, reads the package,
//                   copies and computes (the paper's "two processes")
//   no-pool         as pipeswitch, but the weights' device memory is allocated from and freed
//                   to the driver on every switch
//   pageable        as pipeswitch, but copied from ordinary (pageable) host memory
//   managed         weights in CUDA managed memory, faulted in by the kernels; pushed back to
//                   the host after each task
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/status.h"

namespace ps::reactor {

enum class WeightHome : uint8_t { kPinned, kPageable, kManaged };
enum class DeviceMemory : uint8_t { kPool, kDriver };
enum class Residency : uint8_t { kEvictAfterTask, kLru, kAlways };

struct SwitchPolicy {
  std::string name;
  WeightHome home = WeightHome::kPinned;
  DeviceMemory memory = DeviceMemory::kPool;
  Residency residency = Residency::kEvictAfterTask;
  bool whole_model_copy = false;  // one copy of the whole blob before compute
  bool fresh_process = false;     // kill-restart
};

// The policy called `name` (backend_factory.h's kPolicies). INVALID_ARGUMENT otherwise.
Result<SwitchPolicy> policy_named(std::string_view name);

// Which models are on the GPU, in least-recently-used order, and which may be evicted. Knows
// nothing of memory: the backend tries an allocation and asks for a victim when it fails.
class ResidentSet {
 public:
  // `model` is now resident; `pinned` ones are never offered as victims (the ready policy).
  void add(const std::string& model, bool pinned);
  void remove(const std::string& model);
  bool contains(const std::string& model) const;
  // Marks a use (moves `model` to the most recently used end). No-op when not resident.
  void touch(const std::string& model);
  // The least recently used resident model other than `keep` that is not pinned, if any.
  std::optional<std::string> victim(const std::string& keep) const;
  size_t size() const { return entries_.size(); }

  // Makes room for `model` the cache way: calls `try_place` until it succeeds; after each
  // failure evicts victim(model) (`evict` frees its memory; the set forgets it). Returns OK, or
  // try_place's last error when no victim is left. `model` itself is not added.
  Status place_evicting(const std::string& model, const std::function<Status()>& try_place,
                        const std::function<void(const std::string&)>& evict);

 private:
  struct Entry {
    uint64_t last_use = 0;
    bool pinned = false;
  };
  std::unordered_map<std::string, Entry> entries_;
  uint64_t clock_ = 0;
};

}  // namespace ps::reactor
