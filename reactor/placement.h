// Placement: which device of a server's device set runs an inference request or a training
// job (issue 10; docs/multi-gpu.md). Pure: a snapshot of the devices in, an index out; no
// threads, no clock, no GPU, so every rule is tested on the CPU with simulated device sets.
//
// Inference (place_inference):
//   1. Only healthy devices are candidates.
//   2. A device "holds" the model when it is resident there or, with
//      PlacementRules::in_flight_holds set, a task of it is in flight there (it is being switched
//      in or has just run: sending the next request elsewhere would switch it in twice).
//   3. The least loaded holding device that has room (in_flight < capacity) wins.
//   4. Else the least loaded device with room (a switch, or a second copy of a busy model).
//   5. Else (every device full) the least loaded holding device, else the least loaded one.
// "Least loaded" compares, in order: the fraction in_flight / capacity, the bytes of weights
// being switched in (pending_switch_bytes), the training jobs pinned there (inference preempts
// training, so a device without a job answers sooner), and the lowest index.
//
// Training (place_training): the requested device when one is named (it must exist and be
// healthy), else the least loaded healthy device without a job, else the healthy device with
// the fewest jobs (then least loaded, then lowest index).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace ps::reactor {

// One device as placement sees it: a snapshot the caller (reactor/multi_backend.h) builds.
struct DeviceState {
  std::string name;                   // "0", "1" (GPU ordinals) or "cpu0", ... (simulated devices)
  bool healthy = true;                // false: never chosen (a device error made it unusable)
  uint32_t capacity = 1;              // tasks it takes at once (its backend's max_in_flight), >= 1
  uint32_t in_flight = 0;             // inference tasks handed to it and not yet completed
  uint64_t pending_switch_bytes = 0;  // weights of in-flight tasks that switch their model in
  uint32_t training_jobs = 0;         // running jobs pinned to it
  // Models resident now, and the one still in the device's switch region (--reuse-region:
  // its next request needs no switch either); any order.
  std::vector<std::string> resident;
  std::vector<std::string> in_flight_models;  // models with a task in flight (any order)
};

struct PlacementRules {
  // A model with a task in flight on a device counts as held there (rule 2). True for policies
  // that keep models resident after a task (cache, ready); for the ones that evict after every
  // task (pipeswitch) it only queues requests behind each other, so the caller turns it off.
  bool in_flight_holds = true;
};

// The device for an inference of `model`, or nullopt when no device is healthy.
std::optional<size_t> place_inference(std::span<const DeviceState> devices, std::string_view model,
                                      const PlacementRules& rules = {});

// The device for a training job. `requested` (a device name; empty: any) must name a healthy
// device of the set: INVALID_ARGUMENT listing the names otherwise, UNAVAILABLE for an unhealthy
// one. UNAVAILABLE when no device is healthy.
Result<size_t> place_training(std::span<const DeviceState> devices, std::string_view requested);

// True when `a` is less loaded than `b` by the order above (index excluded).
bool less_loaded(const DeviceState& a, const DeviceState& b);

}  // namespace ps::reactor
