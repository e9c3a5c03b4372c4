// Optimal grouping of a model's layers for pipelined transmission (PipeSwitch §4.2), and the
// timeline model it optimises.
//
// Units are the finest groups of a package (per-layer packages: one unit per layer), in
// execution order, each with its weight bytes and its measured compute time. A grouping merges
// consecutive units into groups; each group is one host-to-device copy. The timeline:
//   - copies run back to back on one copy stream: copy g ends at
//       T_g = T_{g-1} + copy_fixed_us + bytes_g / bytes_per_us        (T_0 = 0)
//   - group g's layers start when its copy has ended and group g-1's layers have finished:
//       C_g = max(C_{g-1}, T_g) + compute_g                          (C_0 = 0)
// The predicted finish time of a grouping is C of its last group. optimal_grouping() finds
// the grouping with the smallest predicted finish, exactly: after j units in g groups, T is
// fixed (g * copy_fixed_us + prefix bytes / bandwidth), so the best C for (j, g) is the only
// state a later choice needs, and a dynamic programme over (j, g) is exact in O(n^3) time
// (n = 300 units: a few milliseconds). Pure: no GPU, no clock.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"

namespace ps::models {

struct GroupingUnit {
  uint64_t bytes = 0;       // weight bytes copied for this unit
  double compute_us = 0;    // measured GPU time of its layers
};

struct TransferModel {
  double copy_fixed_us = 0;   // per-copy cost: enqueue, event, DMA start (measured)
  double bytes_per_us = 0;    // pinned host-to-device bandwidth (e.g. 50 GB/s = 50000 B/us)
};

// A grouping: the index of the first unit of each group, ascending, starting with 0.
using GroupStarts = std::vector<uint32_t>;

struct GroupingPrediction {
  double finish_us = 0;     // when the last layer ends
  double transfer_us = 0;   // when the last copy ends
  double stall_us = 0;      // total time the compute stream waited for copies
};

// The timeline of `groups` over `units` (see above). Errors when `groups` is not a valid
// grouping of units.size() units (empty for no units; else starts at 0, strictly ascending,
// every start < units.size()) or the model has a non-positive bandwidth.
Result<GroupingPrediction> predict_grouping(std::span<const GroupingUnit> units,
                                            const TransferModel& model,
                                            const GroupStarts& groups);

// The grouping with the smallest predicted finish time (ties: fewer groups). Errors for a
// non-positive bandwidth, a negative cost or time. No units: no groups.
Result<GroupStarts> optimal_grouping(std::span<const GroupingUnit> units,
                                     const TransferModel& model);

}  // namespace ps::models
