#include "models/gpu/parallel_run.h"

#include <array>

namespace ps::models::gpu {
namespace {

// Links one switch may use (a server's GPUs); fixed so that the request path allocates nothing.
constexpr uint32_t kMaxLinks = 16;

// A piece's two events on its link: the k-th piece a link carries in a switch has indices
// slots + 2k (landed in the slot) and slots + 2k + 1 (arrived in the target).
struct LinkState {
  uint32_t enqueued = 0;   // pieces of this link enqueued so far
  uint32_t waited = 0;     // pieces of this link the compute stream has passed in its scan
  uint32_t next_slot = 0;  // round robin over the staging slots
  int64_t last_arrival = -1;  // the scanned group's last arrival event on this link, if any
};

Status check_plan(std::span<const CopyGroup> groups, const ParallelPlan& plan,
                  const TransferLanes& lanes) {
  const uint32_t links = lanes.link_count();
  if (links < 1 || links > kMaxLinks) {
    return invalid_argument("parallel run: ", links, " links (1 to ", kMaxLinks, ")");
  }
  if (plan.group_arrival_us.size() != groups.size()) {
    return invalid_argument("parallel run: a plan for ", plan.group_arrival_us.size(),
                            " groups, the switch has ", groups.size());
  }
  // Pieces in group order, each group's tiling it from offset 0.
  size_t group = 0;
  uint64_t next_offset = 0;
  auto close_group = [&](size_t g) -> Status {
    if (next_offset != groups[g].bytes) {
      return invalid_argument("parallel run: the pieces of group ", g, " cover ", next_offset,
                              " of its ", groups[g].bytes, " bytes");
    }
    return Status::OK();
  };
  for (const PieceRoute& p : plan.pieces) {
    if (p.group >= groups.size() || p.group < group) {
      return invalid_argument("parallel run: a piece of group ", p.group, " after group ", group);
    }
    while (group < p.group) {
      PS_TRY(close_group(group));
      ++group;
      next_offset = 0;
    }
    if (p.offset != next_offset || p.bytes == 0 || p.bytes > groups[group].bytes - p.offset) {
      return invalid_argument("parallel run: piece at ", p.offset, " (", p.bytes,
                              " bytes) of group ", group, " does not follow byte ", next_offset,
                              " or leaves the group");
    }
    if (p.link >= links) {
      return invalid_argument("parallel run: a piece on link ", p.link, " of ", links);
    }
    if (lanes.staging_slots(p.link) > 0 && p.bytes > lanes.slot_bytes(p.link)) {
      return invalid_argument("parallel run: a piece of ", p.bytes, " bytes on link ", p.link,
                              " whose staging slots hold ", lanes.slot_bytes(p.link));
    }
    next_offset += p.bytes;
  }
  for (; group < groups.size(); ++group, next_offset = 0) PS_TRY(close_group(group));
  if (lanes.staging_slots(0) != 0) {
    return invalid_argument("parallel run: link 0 (the target's own) has staging slots");
  }
  for (uint32_t l = 0; l < links; ++l) {
    const uint32_t needed = lane_events_needed(plan, l, lanes.staging_slots(l));
    if (lanes.events_per_link(l) < needed) {
      return invalid_argument("parallel run: link ", l, " has ", lanes.events_per_link(l),
                              " events, the plan needs ", needed);
    }
  }
  return Status::OK();
}

}  // namespace

uint32_t lane_events_needed(const ParallelPlan& plan, uint32_t link, uint32_t staging_slots) {
  uint32_t pieces = 0;
  for (const PieceRoute& p : plan.pieces) pieces += p.link == link ? 1 : 0;
  return staging_slots + 2 * pieces;
}

Result<std::vector<ParallelPlan>> plan_routes(std::span<const uint64_t> group_bytes,
                                              const LinkSet& links, uint32_t max_links,
                                              uint32_t staging_slots, uint32_t events_per_link,
                                              const CopiedBytes& copied) {
  std::vector<ParallelPlan> routes;
  for (uint32_t k = 2; k <= max_links; ++k) {
    LinkSet set = links;
    set.links = k;
    PS_ASSIGN_OR_RETURN(ParallelPlan route, plan_parallel_transfer(group_bytes, set, copied));
    for (uint32_t l = 0; l < k; ++l) {
      if (lane_events_needed(route, l, l == 0 ? 0 : staging_slots) > events_per_link) {
        return routes;
      }
    }
    routes.push_back(std::move(route));
  }
  return routes;
}

Status enqueue_parallel(std::span<const CopyGroup> groups, const ParallelPlan& plan,
                        std::span<const WeightRange> skip, TransferLanes& lanes,
                        const GroupRunner& run_group) {
  PS_TRY(check_plan(groups, plan, lanes));
  const uint32_t links = lanes.link_count();
  std::array<LinkState, kMaxLinks> state{};

  size_t next_piece = 0;    // pieces enqueued so far
  size_t waited_piece = 0;  // pieces the compute stream's waits have scanned
  uint64_t sent_bytes = 0;  // the enqueued pieces' bytes
  uint64_t computed_bytes = 0;
  const uint64_t window = kCopyLookaheadBytes * links;

  auto enqueue_piece = [&]() -> Status {
    const PieceRoute& p = plan.pieces[next_piece];
    LinkState& s = state[p.link];
    const uint64_t start = groups[p.group].blob_offset + p.offset;
    const uint32_t slots = lanes.staging_slots(p.link);
    const LaneEvent landed{p.link, slots + 2 * s.enqueued};
    const LaneEvent arrived{p.link, slots + 2 * s.enqueued + 1};
    if (slots == 0) {  // straight into the target
      PS_TRY(for_each_range_outside(start, p.bytes, skip, [&](ByteRange r) {
        return lanes.copy_in(p.link, -1, 0, r.offset, r.bytes);
      }));
      PS_TRY(lanes.record(arrived, Lane::kIn));
    } else {  // into a slot, then forwarded
      const uint32_t slot = s.next_slot;
      s.next_slot = (s.next_slot + 1) % slots;
      const LaneEvent slot_read{p.link, slot};
      PS_TRY(lanes.lane_wait(p.link, Lane::kIn, slot_read));
      PS_TRY(for_each_range_outside(start, p.bytes, skip, [&](ByteRange r) {
        return lanes.copy_in(p.link, static_cast<int32_t>(slot), r.offset - start, r.offset,
                             r.bytes);
      }));
      PS_TRY(lanes.record(landed, Lane::kIn));
      PS_TRY(lanes.lane_wait(p.link, Lane::kHop, landed));
      PS_TRY(for_each_range_outside(start, p.bytes, skip, [&](ByteRange r) {
        return lanes.forward(p.link, slot, r.offset - start, r.offset, r.bytes);
      }));
      PS_TRY(lanes.record(arrived, Lane::kHop));
      PS_TRY(lanes.record(slot_read, Lane::kHop));
    }
    ++s.enqueued;
    sent_bytes += p.bytes;
    ++next_piece;
    return Status::OK();
  };

  for (size_t g = 0; g < groups.size(); ++g) {
    // This group's pieces, and more while the window allows.
    while (next_piece < plan.pieces.size() &&
           (plan.pieces[next_piece].group <= g || sent_bytes < computed_bytes + window)) {
      PS_TRY(enqueue_piece());
    }
    // Wait for the group's last piece on each link that carries some of it.
    for (uint32_t l = 0; l < links; ++l) state[l].last_arrival = -1;
    for (; waited_piece < plan.pieces.size() && plan.pieces[waited_piece].group == g;
         ++waited_piece) {
      const uint32_t l = plan.pieces[waited_piece].link;
      state[l].last_arrival = lanes.staging_slots(l) + 2 * state[l].waited + 1;
      ++state[l].waited;
    }
    for (uint32_t l = 0; l < links; ++l) {
      if (state[l].last_arrival >= 0) {
        PS_TRY(lanes.compute_wait({l, static_cast<uint32_t>(state[l].last_arrival)}));
      }
    }
    PS_TRY(run_group(g));
    computed_bytes += groups[g].bytes;
  }
  // The join: link 0's in-lane passes this point once every piece has arrived.
  for (uint32_t l = 1; l < links; ++l) {
    if (state[l].enqueued == 0) continue;
    const uint32_t last = lanes.staging_slots(l) + 2 * (state[l].enqueued - 1) + 1;
    PS_TRY(lanes.lane_wait(0, Lane::kIn, {l, last}));
  }
  return Status::OK();
}

}  // namespace ps::models::gpu
