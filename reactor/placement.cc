#include "reactor/placement.h"

#include <algorithm>

namespace ps::reactor {
namespace {

bool contains(const std::vector<std::string>& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

bool has_room(const DeviceState& d) { return d.in_flight < std::max<uint32_t>(d.capacity, 1); }

// The least loaded device among those `keep` accepts (ties: lowest index), or nullopt.
template <typename Keep>
std::optional<size_t> least_loaded(std::span<const DeviceState> devices, Keep keep) {
  std::optional<size_t> best;
  for (size_t i = 0; i < devices.size(); ++i) {
    if (!keep(devices[i])) continue;
    if (!best || less_loaded(devices[i], devices[*best])) best = i;
  }
  return best;
}

std::string names_of(std::span<const DeviceState> devices) {
  std::string out;
  for (const DeviceState& d : devices) out += str_cat(out.empty() ? "" : ", ", d.name);
  return out;
}

}  // namespace

bool less_loaded(const DeviceState& a, const DeviceState& b) {
  // in_flight / capacity compared without division: a.in / a.cap < b.in / b.cap.
  const uint64_t lhs = uint64_t{a.in_flight} * std::max<uint32_t>(b.capacity, 1);
  const uint64_t rhs = uint64_t{b.in_flight} * std::max<uint32_t>(a.capacity, 1);
  if (lhs != rhs) return lhs < rhs;
  if (a.pending_switch_bytes != b.pending_switch_bytes) {
    return a.pending_switch_bytes < b.pending_switch_bytes;
  }
  return a.training_jobs < b.training_jobs;
}

std::optional<size_t> place_inference(std::span<const DeviceState> devices, std::string_view model,
                                      const PlacementRules& rules) {
  auto holds = [&](const DeviceState& d) {
    return contains(d.resident, model) ||
           (rules.in_flight_holds && contains(d.in_flight_models, model));
  };
  if (auto d = least_loaded(
          devices, [&](const DeviceState& s) { return s.healthy && holds(s) && has_room(s); })) {
    return d;
  }
  if (auto d =
          least_loaded(devices, [](const DeviceState& s) { return s.healthy && has_room(s); })) {
    return d;
  }
  if (auto d = least_loaded(devices, [&](const DeviceState& s) { return s.healthy && holds(s); })) {
    return d;
  }
  return least_loaded(devices, [](const DeviceState& s) { return s.healthy; });
}

Result<size_t> place_training(std::span<const DeviceState> devices, std::string_view requested) {
  if (!requested.empty()) {
    for (size_t i = 0; i < devices.size(); ++i) {
      if (devices[i].name != requested) continue;
      if (!devices[i].healthy) {
        return unavailable("device ", requested, " is out of service after a device error");
      }
      return i;
    }
    return invalid_argument("no device '", requested, "' (this server drives ", names_of(devices),
                            ")");
  }
  if (auto d = least_loaded(
          devices, [](const DeviceState& s) { return s.healthy && s.training_jobs == 0; })) {
    return *d;
  }
  std::optional<size_t> best;
  for (size_t i = 0; i < devices.size(); ++i) {
    const DeviceState& d = devices[i];
    if (!d.healthy) continue;
    if (!best || d.training_jobs < devices[*best].training_jobs ||
        (d.training_jobs == devices[*best].training_jobs && less_loaded(d, devices[*best]))) {
      best = i;
    }
  }
  if (!best) return unavailable("no device is in service (every one had a device error)");
  return *best;
}

}  // namespace ps::reactor
