// CudaLanes: the driver's TransferLanes (parallel_run.h). Each link is a pair of streams in its
// own context (the target GPU's for link 0, a peer GPU's for the others), the peer's staging
// slots in that GPU's memory, and the link's events, created in its context.
//
// A host copy goes from the model's pinned host weights (allocated portable, so any context may
// copy from them at full speed) to the target's weights or a staging slot; a forward is a peer
// copy (cuMemcpyPeerAsync) from a slot into the target's weights, over NVLink where the two
// contexts have peer access (for a target pool mapped with cuMemMap, the peer's device also
// needs cuMemSetAccess on the mapping; DevicePool does not grant it yet: docs/multi-gpu.md).
// A link whose context is the target's own (a second link on the same GPU) works unchanged:
// the forward is then a device-to-device copy. The tests use that to run the whole path on one
// GPU.
//
// Threading: the lanes are driven from one thread at a time (the target's device thread); each
// call makes the link's context current for its duration.
#pragma once

#include <cuda.h>

#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"
#include "cuda/event.h"
#include "cuda/stream.h"
#include "models/gpu/parallel_run.h"

namespace ps::models::gpu {

struct LinkStreams {
  CUcontext context = nullptr;        // the context of the streams, the staging and the events
  const cuda::Stream* in = nullptr;   // host-to-device copies
  const cuda::Stream* hop = nullptr;  // forwards to the target (peer links only)
  CUdeviceptr staging = 0;            // slots * slot_bytes bytes of the link's device memory
  uint32_t slots = 0;                 // 0: a direct link (link 0 always)
  uint64_t slot_bytes = 0;
  std::span<cuda::Event> events;      // the link's events, made in `context` (see below)
};

// `count` events (no timing) in `context`, for a link's LinkStreams::events: a plan needs
// lane_events_needed of them on each link.
Result<std::vector<cuda::Event>> create_link_events(CUcontext context, uint32_t count);

class CudaLanes final : public TransferLanes {
 public:
  // A view of `links` (kept alive and unchanged by the caller while the lanes are used):
  // `links[0]` is the target's own link (no staging); `compute` is the target's compute stream
  // in `target_context`. Allocates nothing. Errors: no link, a link without a context, an
  // in-lane stream or events, a peer link without a hop stream or staging, link 0 with staging.
  static Result<CudaLanes> create(std::span<const LinkStreams> links, CUcontext target_context,
                                  const cuda::Stream& compute);

  // The switch's source and destination: set before each enqueue_parallel. Both stay valid
  // until the compute stream has passed the switch.
  void bind(const void* host_weights, CUdeviceptr target_weights) {
    host_ = static_cast<const uint8_t*>(host_weights);
    target_ = target_weights;
  }

  // Every peer link's hop lane waits for `event` (of the target) before its next forward: the
  // forwards write into the target's weights, which earlier work on the target may still read.
  // (Link 0's in-lane is the caller's to order; the peers' host copies only touch staging.)
  Status hold_forwards(const cuda::Event& event);

  uint32_t link_count() const override { return static_cast<uint32_t>(links_.size()); }
  uint32_t staging_slots(uint32_t link) const override { return links_[link].slots; }
  uint64_t slot_bytes(uint32_t link) const override { return links_[link].slot_bytes; }
  uint32_t events_per_link(uint32_t link) const override {
    return static_cast<uint32_t>(links_[link].events.size());
  }

  Status copy_in(uint32_t link, int32_t slot, uint64_t slot_offset, uint64_t blob_offset,
                 uint64_t bytes) override;
  Status forward(uint32_t link, uint32_t slot, uint64_t slot_offset, uint64_t blob_offset,
                 uint64_t bytes) override;
  Status record(LaneEvent event, Lane lane) override;
  Status lane_wait(uint32_t link, Lane lane, LaneEvent event) override;
  Status compute_wait(LaneEvent event) override;

 private:
  CudaLanes() = default;
  const cuda::Stream& stream(uint32_t link, Lane lane) const {
    return lane == Lane::kIn ? *links_[link].in : *links_[link].hop;
  }
  CUdeviceptr slot_address(uint32_t link, uint32_t slot, uint64_t slot_offset) const {
    return links_[link].staging + slot * links_[link].slot_bytes + slot_offset;
  }

  std::span<const LinkStreams> links_;
  CUcontext target_context_ = nullptr;
  const cuda::Stream* compute_ = nullptr;
  const uint8_t* host_ = nullptr;
  CUdeviceptr target_ = 0;
};

}  // namespace ps::models::gpu
