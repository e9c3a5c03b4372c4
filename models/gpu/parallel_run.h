// Parallel transmission, enqueued (issue 10; docs/multi-gpu.md): a switch whose copy groups
// reach the target GPU through several links at once, following a routing plan of
// models/parallel_transfer.h. This is enqueue_pipelined (pipelined_run.h) generalised from one
// copy stream to many:
//   - a direct link (link 0, the target's own PCIe link) copies its pieces from the pinned host
//     weights straight into the target's weights, on its in-lane;
//   - a peer link copies a piece from the host into one of its staging slots (the peer's own
//     memory) on its in-lane, then forwards it into the target's weights on its hop lane (over
//     NVLink between two GPUs); the hop of one piece overlaps the host copy of the next;
//   - the target's compute stream waits, before a group's layers, for the last piece of that
//     group on each link (a lane runs its work in order, so the last one implies the others).
//
// The ordering rules, each an event: a forward waits until its piece has landed in the slot;
// a host copy into a slot waits until the slot's previous forward has read it (also across
// switches: the slot events belong to the lanes and outlive a call); compute waits for the
// arrivals. Everything is enqueued from the calling thread in one pass, as enqueue_pipelined,
// pieces running a byte window ahead of the layers. At the end link 0's in-lane waits for the
// last arrival on every other link (the join), so work queued on it afterwards (an event that
// times the transfer, the compute stream's rejoin) follows the whole transfer, as after
// enqueue_pipelined's copy stream.
//
// The GPU operations are behind TransferLanes, so the ordering is tested anywhere: the CI test
// runs this code against a simulation of streams and events (tests/models/parallel_run_test.cc)
// under random interleavings; CudaLanes (cuda_lanes.h) is the driver's implementation.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"
#include "models/gpu/copy_groups.h"
#include "models/gpu/host_read.h"
#include "models/gpu/pipelined_run.h"
#include "models/parallel_transfer.h"

namespace ps::models::gpu {

// A link's two streams: host-to-device copies, and a peer link's forwards to the target.
enum class Lane : uint8_t { kIn, kHop };

// The events of one link live in that link's context (an event is recorded on a stream of its
// own context; any stream may wait on it). Indices [0, staging_slots) are the slots' "read by
// its forward" events; the rest are handed out per piece.
struct LaneEvent {
  uint32_t link = 0;
  uint32_t index = 0;
};

// What a parallel switch asks of the GPU. Each call queues work and returns.
class TransferLanes {
 public:
  virtual ~TransferLanes() = default;

  // Link 0 is the target's own. A link with staging slots is a peer link (its pieces are
  // forwarded); one without copies straight into the target (link 0 always does).
  virtual uint32_t link_count() const = 0;
  virtual uint32_t staging_slots(uint32_t link) const = 0;
  virtual uint64_t slot_bytes(uint32_t link) const = 0;
  virtual uint32_t events_per_link(uint32_t link) const = 0;

  // On `link`'s in-lane: host weights [blob_offset, +bytes) to the target's weights at the same
  // offset (slot < 0), or to staging slot `slot` at `slot_offset`.
  virtual Status copy_in(uint32_t link, int32_t slot, uint64_t slot_offset,
                         uint64_t blob_offset, uint64_t bytes) = 0;
  // On `link`'s hop lane: staging slot `slot` at `slot_offset` to the target's weights at
  // `blob_offset`.
  virtual Status forward(uint32_t link, uint32_t slot, uint64_t slot_offset,
                         uint64_t blob_offset, uint64_t bytes) = 0;
  // Records `event` (of link event.link) on `event.link`'s `lane`.
  virtual Status record(LaneEvent event, Lane lane) = 0;
  // `link`'s `lane` waits for `event` (its most recent record).
  virtual Status lane_wait(uint32_t link, Lane lane, LaneEvent event) = 0;
  // The target's compute stream waits for `event`.
  virtual Status compute_wait(LaneEvent event) = 0;
};

// How many events link `link` needs for `plan`: its slots' plus two per piece it carries.
uint32_t lane_events_needed(const ParallelPlan& plan, uint32_t link, uint32_t staging_slots);

// A model's routes over 2, 3, ..., max_links links (result[k - 2] for k links), each
// plan_parallel_transfer(group_bytes, links with links.links = k, copied), as the switching engine
// computes them at registration: a switch that holds k - 1 borrowed links takes route k. Stops
// before the first k whose route needs more than `events_per_link` events on some link (peer
// links having `staging_slots` slots): a model too large for the links' events uses fewer.
// Errors: plan_parallel_transfer's.
Result<std::vector<ParallelPlan>> plan_routes(std::span<const uint64_t> group_bytes,
                                              const LinkSet& links, uint32_t max_links,
                                              uint32_t staging_slots, uint32_t events_per_link,
                                              const CopiedBytes& copied = {});

// Enqueues the switch-in of the weights in `groups` (a model's copy groups, in layer order, as
// enqueue_pipelined takes them) along `plan` (plan_parallel_transfer over the same groups'
// bytes: pieces in group order, each group's pieces tiling it in order), and each group's
// layers through `run_group` (on the compute stream, after the group's waits). Bytes inside
// `skip` (host-read weights, sorted and disjoint) are neither copied nor forwarded.
// Errors (kInvalidArgument, before anything is queued): a plan for other groups, a piece on a
// link that does not exist, larger than its link's slot, or out of order; too few events on a
// link. Errors of the lanes or of run_group are returned as they are (work queued before
// stays queued). Nothing allocates.
Status enqueue_parallel(std::span<const CopyGroup> groups, const ParallelPlan& plan,
                        std::span<const WeightRange> skip, TransferLanes& lanes,
                        const GroupRunner& run_group);

}  // namespace ps::models::gpu
