#include "models/gpu/cuda_lanes.h"

#include "cuda/context.h"
#include "cuda/copy.h"

namespace ps::models::gpu {

Result<std::vector<cuda::Event>> create_link_events(CUcontext context, uint32_t count) {
  cuda::ScopedContext in_context(context);
  std::vector<cuda::Event> events;
  events.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    PS_ASSIGN_OR_RETURN(cuda::Event e, cuda::Event::create());
    events.push_back(std::move(e));
  }
  return events;
}

Result<CudaLanes> CudaLanes::create(std::span<const LinkStreams> links, CUcontext target_context,
                                    const cuda::Stream& compute) {
  if (links.empty()) return invalid_argument("CudaLanes: no link");
  if (links[0].slots != 0) return invalid_argument("CudaLanes: link 0 has staging slots");
  for (size_t l = 0; l < links.size(); ++l) {
    const LinkStreams& k = links[l];
    if (k.context == nullptr || k.in == nullptr || k.events.empty()) {
      return invalid_argument("CudaLanes: link ", l, " has no context, in-lane stream or events");
    }
    if (k.slots > 0 && (k.hop == nullptr || k.staging == 0 || k.slot_bytes == 0)) {
      return invalid_argument("CudaLanes: peer link ", l, " lacks a hop stream or staging");
    }
  }
  CudaLanes lanes;
  lanes.links_ = links;
  lanes.target_context_ = target_context;
  lanes.compute_ = &compute;
  return lanes;
}

Status CudaLanes::hold_forwards(const cuda::Event& event) {
  for (const LinkStreams& k : links_) {
    if (k.slots == 0) continue;
    cuda::ScopedContext in_context(k.context);
    PS_TRY(k.hop->wait(event));
  }
  return Status::OK();
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
  return links_[event.link].events[event.index].record(stream(event.link, lane));
}

Status CudaLanes::lane_wait(uint32_t link, Lane lane, LaneEvent event) {
  if (lane == Lane::kHop && links_[link].hop == nullptr) {
    return invalid_argument("CudaLanes: link ", link, " has no hop lane");
  }
  cuda::ScopedContext in_context(links_[link].context);
  return stream(link, lane).wait(links_[event.link].events[event.index]);
}

Status CudaLanes::compute_wait(LaneEvent event) {
  return compute_->wait(links_[event.link].events[event.index]);
}

}  // namespace ps::models::gpu
