#include "models/gpu/cuda_lanes.h"

#include "cuda/context.h"
#include "cuda/copy.h"

namespace ps::models::gpu {

Result<CudaLanes> CudaLanes::create(std::vector<LinkStreams> links, CUcontext target_context,
                                    const cuda::Stream& compute, uint32_t events_per_link) {
  if (links.empty()) return invalid_argument("CudaLanes: no link");
  if (links[0].slots != 0) return invalid_argument("CudaLanes: link 0 has staging slots");
  for (size_t l = 0; l < links.size(); ++l) {
    const LinkStreams& k = links[l];
    if (k.context == nullptr || k.in == nullptr) {
      return invalid_argument("CudaLanes: link ", l, " has no context or in-lane stream");
    }
    if (k.slots > 0 && (k.hop == nullptr || k.staging == 0 || k.slot_bytes == 0)) {
      return invalid_argument("CudaLanes: peer link ", l, " lacks a hop stream or staging");
    }
  }
  CudaLanes lanes;
  lanes.events_.resize(links.size());
  for (size_t l = 0; l < links.size(); ++l) {
    cuda::ScopedContext in_context(links[l].context);
    lanes.events_[l].reserve(events_per_link);
    for (uint32_t i = 0; i < events_per_link; ++i) {
      PS_ASSIGN_OR_RETURN(cuda::Event e, cuda::Event::create());
      lanes.events_[l].push_back(std::move(e));
    }
  }
  lanes.links_ = std::move(links);
  lanes.target_context_ = target_context;
  lanes.compute_ = &compute;
  return lanes;
}

Status CudaLanes::copy_in(uint32_t link, int32_t slot, uint64_t slot_offset, uint64_t blob_offset,
                          uint64_t bytes) {
  const LinkStreams& k = links_[link];
  CUdeviceptr dst = target_ + blob_offset;
  if (slot >= 0) {
    if (static_cast<uint32_t>(slot) >= k.slots || slot_offset > k.slot_bytes ||
        bytes > k.slot_bytes - slot_offset) {
      return invalid_argument("CudaLanes: ", bytes, " bytes at ", slot_offset, " of slot ", slot,
                              " on link ", link, " (", k.slots, " slots of ", k.slot_bytes, ")");
    }
    dst = slot_address(link, static_cast<uint32_t>(slot), slot_offset);
  }
  cuda::ScopedContext in_context(k.context);
  return cuda::copy_to_device_async(dst, host_ + blob_offset, bytes, *k.in);
}

Status CudaLanes::forward(uint32_t link, uint32_t slot, uint64_t slot_offset,
                          uint64_t blob_offset, uint64_t bytes) {
  const LinkStreams& k = links_[link];
  if (slot >= k.slots || slot_offset > k.slot_bytes || bytes > k.slot_bytes - slot_offset) {
    return invalid_argument("CudaLanes: forward of ", bytes, " bytes at ", slot_offset,
                            " of slot ", slot, " on link ", link);
  }
  cuda::ScopedContext in_context(k.context);
  return cuda::copy_peer_async(target_ + blob_offset, target_context_,
                               slot_address(link, slot, slot_offset), k.context, bytes, *k.hop);
}

Status CudaLanes::record(LaneEvent event, Lane lane) {
  if (lane == Lane::kHop && links_[event.link].hop == nullptr) {
    return invalid_argument("CudaLanes: link ", event.link, " has no hop lane");
  }
  cuda::ScopedContext in_context(links_[event.link].context);
  return events_[event.link][event.index].record(stream(event.link, lane));
}

Status CudaLanes::lane_wait(uint32_t link, Lane lane, LaneEvent event) {
  if (lane == Lane::kHop && links_[link].hop == nullptr) {
    return invalid_argument("CudaLanes: link ", link, " has no hop lane");
  }
  cuda::ScopedContext in_context(links_[link].context);
  return stream(link, lane).wait(events_[event.link][event.index]);
}

Status CudaLanes::compute_wait(LaneEvent event) {
  return compute_->wait(events_[event.link][event.index]);
}

}  // namespace ps::models::gpu
