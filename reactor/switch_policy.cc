#include "reactor/switch_policy.h"

namespace ps::reactor {

Result<SwitchPolicy> policy_named(std::string_view name) {
  SwitchPolicy p;
  p.name = std::string(name);
  if (name == "pipeswitch") return p;
  if (name == "cache") {
    p.residency = Residency::kLru;
    return p;
  }
  if (name == "ready") {
    p.residency = Residency::kAlways;
    return p;
  }
  if (name == "stop-and-start") {
    p.whole_model_copy = true;
    return p;
  }
  if (name == "kill-restart") {
    p.whole_model_copy = true;
    p.fresh_process = true;
    return p;
  }
  if (name == "no-pool") {
    p.memory = DeviceMemory::kDriver;
    return p;
  }
  if (name == "pageable") {
    p.home = WeightHome::kPageable;
    return p;
  }
  if (name == "managed") {
    p.home = WeightHome::kManaged;
    return p;
  }
  return invalid_argument("policy '", name,
                          "': expected pipeswitch, cache, ready, stop-and-start, kill-restart, "
                          "no-pool, pageable or managed");
}

void ResidentSet::add(const std::string& model, bool pinned) {
  entries_[model] = Entry{++clock_, pinned};
}

void ResidentSet::remove(const std::string& model) { entries_.erase(model); }

bool ResidentSet::contains(const std::string& model) const { return entries_.count(model) > 0; }

void ResidentSet::touch(const std::string& model) {
  auto it = entries_.find(model);
  if (it != entries_.end()) it->second.last_use = ++clock_;
}

std::optional<std::string> ResidentSet::victim(const std::string& keep) const {
  const std::string* best = nullptr;
  uint64_t best_use = 0;
  for (const auto& [name, entry] : entries_) {
    if (entry.pinned || name == keep) continue;
    if (best == nullptr || entry.last_use < best_use) {
      best = &name;
      best_use = entry.last_use;
    }
  }
  if (best == nullptr) return std::nullopt;
  return *best;
}

Status ResidentSet::place_evicting(const std::string& model,
                                   const std::function<Status()>& try_place,
                                   const std::function<void(const std::string&)>& evict) {
  for (;;) {
    Status placed = try_place();
    if (placed.ok()) return placed;
    std::optional<std::string> v = victim(model);
    if (!v) return placed;
    evict(*v);
    remove(*v);
  }
}

}  // namespace ps::reactor
