// Parallel transmission (issue 10; docs/multi-gpu.md): a model's copy groups reach the target
// GPU through several GPUs' host links at once, as DeepPlan (EuroSys'23) did over PipeSwitch.
// The target copies some groups over its own PCIe link; each idle peer GPU copies others over
// its PCIe link into a staging buffer of its own and forwards them over NVLink into the
// target's switch region. The target's layers wait for their group's arrival as before.
//
// This file is the plan and its timeline, pure (no GPU, no clock), so it is tested anywhere;
// the driver code that executes a plan needs a machine with several GPUs and is not written
// yet (docs/multi-gpu.md says what it will do).
//
// Timeline model (extending models/optimal_grouping.h's, which is links = 1):
//   - a group larger than max_piece_bytes is cut into pieces of at most that size (a group is
//     one contiguous byte range, so any piece is one copy);
//   - pieces are routed in order, each to the link where it would arrive first (ties: the
//     lowest link; link 0 is the target's own, so it wins ties and needs no hop);
//   - on link l, host copies run back to back: a piece's copy ends at
//       H = H_prev(l) + copy_fixed_us + bytes / host_bytes_per_us
//   - on a peer link (l > 0) the piece is then forwarded over NVLink, one hop at a time per
//     peer, overlapping that peer's next host copy:
//       A = max(H, hop_free(l)) + hop_fixed_us + bytes / nvlink_bytes_per_us
//     on link 0, A = H;
//   - a group has arrived when its last piece has (A_g = max over its pieces);
//   - the target's layers: C_g = max(C_{g-1}, A_g) + compute_g.
// Assumed: the peers' links are as fast as the target's, each peer has its own NVLink path
// to the target (NVSwitch), and the host's memory bandwidth serves k links at once.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "common/status.h"
#include "models/optimal_grouping.h"

namespace ps::models {

struct LinkSet {
  uint32_t links = 1;              // the target's host link plus idle peers' links, >= 1
  TransferModel host;              // each host link (measured: ~50 GB/s, ~3 us per copy)
  double nvlink_bytes_per_us = 0;  // peer-to-target forwarding (H200 NVLink: ~350 GB/s)
  double hop_fixed_us = 0;         // per forwarded piece: the peer copy's launch and event
  uint64_t max_piece_bytes = 0;    // 0: groups are never cut
  uint64_t piece_align = 256;      // pieces start at multiples of this from the group's start
};

struct PieceRoute {
  uint32_t group = 0;   // index into the groups
  uint64_t offset = 0;  // from the group's start
  uint64_t bytes = 0;
  uint32_t link = 0;        // 0: the target's own link; l > 0: peer l forwards it
  double host_done_us = 0;  // its host-to-device copy ends (on the target or the peer)
  double arrival_us = 0;    // it is in the target's switch region
};

struct ParallelPlan {
  std::vector<PieceRoute> pieces;        // in routing order (group order, then offset)
  std::vector<double> group_arrival_us;  // per group
  std::vector<uint64_t> bytes_per_link;  // per link: the bytes it copies
  double transfer_us = 0;                // the last arrival
};

// How many of a piece's bytes are really copied: the switching engine leaves the weights it
// reads from host memory out (models/gpu/host_read.h). Empty: all of them.
using CopiedBytes = std::function<uint64_t(uint32_t group, uint64_t offset, uint64_t bytes)>;

// Routes `group_bytes` (a model's copy groups, in order) over `links`. A piece is timed by the
// bytes `copied` says it copies; one that copies nothing stays on link 0 and arrives at 0.
// Errors: no link, a non-positive bandwidth (host always; NVLink when links > 1), a negative
// fixed cost, a zero alignment. No groups: an empty plan. A group of 0 bytes arrives at 0.
Result<ParallelPlan> plan_parallel_transfer(std::span<const uint64_t> group_bytes,
                                            const LinkSet& links, const CopiedBytes& copied = {});

// The target's finish time for `plan` with each group's compute time (same length as the
// groups): the C_g recurrence above. Also fills transfer_us and stall_us as predict_grouping.
Result<GroupingPrediction> predict_parallel(const ParallelPlan& plan,
                                            std::span<const double> group_compute_us);

// The floor no plan beats: the busiest link carries at least a 1/links share, so
// copy_fixed_us + total_bytes / (links * host bandwidth). (A plan that uses peers also pays
// the last piece's NVLink hop on top; docs/multi-gpu.md's target adds it.)
double parallel_transfer_floor_us(uint64_t total_bytes, const LinkSet& links);

}  // namespace ps::models
