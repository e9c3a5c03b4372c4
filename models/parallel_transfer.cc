#include "models/parallel_transfer.h"

#include <algorithm>

namespace ps::models {

Result<ParallelPlan> plan_parallel_transfer(std::span<const uint64_t> group_bytes,
                                            const LinkSet& links, const CopiedBytes& copied) {
  if (links.links < 1) return invalid_argument("parallel transfer needs at least one link");
  if (!(links.host.bytes_per_us > 0)) return invalid_argument("host link bandwidth must be > 0");
  if (links.links > 1 && !(links.nvlink_bytes_per_us > 0)) {
    return invalid_argument("NVLink bandwidth must be > 0 with more than one link");
  }
  if (links.host.copy_fixed_us < 0 || links.hop_fixed_us < 0) {
    return invalid_argument("fixed costs must not be negative");
  }
  if (links.piece_align == 0) return invalid_argument("piece alignment must be > 0");

  ParallelPlan plan;
  plan.group_arrival_us.assign(group_bytes.size(), 0.0);
  plan.bytes_per_link.assign(links.links, 0);
  std::vector<double> host_free(links.links, 0.0);  // when each link's next copy can start
  std::vector<double> hop_free(links.links, 0.0);   // when each peer's next hop can start

  // Pieces of at most max_piece_bytes, cut at multiples of the alignment (the last takes the
  // rest); 0 or a maximum below the alignment: one alignment unit per piece at least.
  uint64_t piece = links.max_piece_bytes;
  if (piece != 0)
    piece = std::max(links.piece_align, piece / links.piece_align * links.piece_align);

  for (uint32_t g = 0; g < group_bytes.size(); ++g) {
    const uint64_t total = group_bytes[g];
    if (total == 0) continue;  // nothing to copy: arrived at 0
    double arrival = 0;
    for (uint64_t offset = 0; offset < total;) {
      const uint64_t bytes = piece == 0 ? total : std::min(piece, total - offset);
      const uint64_t moved = copied ? std::min(copied(g, offset, bytes), bytes) : bytes;
      if (moved == 0) {  // nothing to copy: arrived at once, on link 0 (no event to wait for)
        PieceRoute r;
        r.group = g;
        r.offset = offset;
        r.bytes = bytes;
        plan.pieces.push_back(r);
        offset += bytes;
        continue;
      }
      PieceRoute best;
      for (uint32_t l = 0; l < links.links; ++l) {
        PieceRoute r;
        r.group = g;
        r.offset = offset;
        r.bytes = bytes;
        r.link = l;
        r.host_done_us = host_free[l] + links.host.copy_fixed_us +
                         static_cast<double>(moved) / links.host.bytes_per_us;
        r.arrival_us = l == 0 ? r.host_done_us
                              : std::max(r.host_done_us, hop_free[l]) + links.hop_fixed_us +
                                    static_cast<double>(moved) / links.nvlink_bytes_per_us;
        if (l == 0 || r.arrival_us < best.arrival_us) best = r;
      }
      host_free[best.link] = best.host_done_us;
      if (best.link != 0) hop_free[best.link] = best.arrival_us;
      plan.bytes_per_link[best.link] += moved;
      arrival = std::max(arrival, best.arrival_us);
      plan.pieces.push_back(best);
      offset += bytes;
    }
    plan.group_arrival_us[g] = arrival;
    plan.transfer_us = std::max(plan.transfer_us, arrival);
  }
  return plan;
}

Result<GroupingPrediction> predict_parallel(const ParallelPlan& plan,
                                            std::span<const double> group_compute_us) {
  if (group_compute_us.size() != plan.group_arrival_us.size()) {
    return invalid_argument("compute times for ", group_compute_us.size(), " groups, plan has ",
                            plan.group_arrival_us.size());
  }
  GroupingPrediction p;
  double finish = 0;
  for (size_t g = 0; g < group_compute_us.size(); ++g) {
    if (group_compute_us[g] < 0) return invalid_argument("negative compute time");
    const double start = std::max(finish, plan.group_arrival_us[g]);
    p.stall_us += start - finish;
    finish = start + group_compute_us[g];
  }
  p.finish_us = finish;
  p.transfer_us = plan.transfer_us;
  return p;
}

double parallel_transfer_floor_us(uint64_t total_bytes, const LinkSet& links) {
  if (total_bytes == 0) return 0;
  const double k = std::max<uint32_t>(links.links, 1);
  return links.host.copy_fixed_us +
         static_cast<double>(total_bytes) / (k * links.host.bytes_per_us);
}

}  // namespace ps::models
