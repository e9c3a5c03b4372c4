#include "models/gpu/pipelined_run.h"

#include "cuda/copy.h"

namespace ps::models::gpu {

Status enqueue_pipelined(const Plan& plan, std::span<const CopyGroup> groups,
                         const WeightSource& source, const Bindings& bindings,
                         const cuda::Stream& copy, const cuda::Stream& compute,
                         std::span<cuda::Event> group_events, cuda::Event* first_layer,
                         const GroupRunner& run_group, bool pipelined) {
  if (group_events.size() < groups.size()) {
    return invalid_argument("pipelined run: ", groups.size(), " groups but ", group_events.size(),
                            " events");
  }
  uint32_t expected = 0;
  for (const CopyGroup& g : groups) {
    if (g.first_layer != expected || g.bytes > plan.weights_bytes() ||
        g.blob_offset > plan.weights_bytes() - g.bytes) {
      return invalid_argument("pipelined run: group at layer ", g.first_layer,
                              " does not follow layer ", expected, " or leaves the weight blob");
    }
    expected += g.layer_count;
  }
  if (expected != plan.layer_count()) {
    return invalid_argument("pipelined run: the groups cover ", expected, " of ",
                            plan.layer_count(), " layers");
  }
  if (plan.weights_bytes() > 0 && source.host == nullptr) {
    return invalid_argument("pipelined run: no host weights");
  }

  const auto* host = static_cast<const uint8_t*>(source.host);
  size_t copied = 0;          // groups whose copy is enqueued
  uint64_t copied_bytes = 0;  // their bytes
  uint64_t computed_bytes = 0;
  // With the host copy bound, the host-readable weights stay where they are (host_read.h).
  const std::span<const WeightRange> skip =
      bindings.host_weights != 0 ? plan.host_readable() : std::span<const WeightRange>();
  auto enqueue_copy = [&]() -> Status {
    const CopyGroup& g = groups[copied];
    // The group's whole range when nothing is skipped; else the one to three parts around the
    // host-read weights.
    PS_TRY(for_each_range_outside(g.blob_offset, g.bytes, skip, [&](ByteRange r) {
      return cuda::copy_to_device_async(bindings.weights + r.offset, host + r.offset, r.bytes,
                                        copy);
    }));
    PS_TRY(group_events[copied].record(copy));
    copied_bytes += g.bytes;
    ++copied;
    return Status::OK();
  };
  if (!pipelined) {
    while (copied < groups.size()) PS_TRY(enqueue_copy());
    if (!groups.empty()) PS_TRY(compute.wait(group_events[groups.size() - 1]));
  }
  for (size_t g = 0; g < groups.size(); ++g) {
    // Keep the copies a window ahead of the layers (and always at least this group's).
    while (copied < groups.size() &&
           (copied <= g || copied_bytes < computed_bytes + kCopyLookaheadBytes)) {
      PS_TRY(enqueue_copy());
    }
    if (pipelined) PS_TRY(compute.wait(group_events[g]));
    if (g == 0 && first_layer != nullptr) PS_TRY(first_layer->record_timestamp(compute));
    if (run_group) {
      PS_TRY(run_group(g));
    } else {
      PS_TRY(plan.enqueue_layers(groups[g].first_layer, groups[g].layer_count, compute, bindings));
    }
    computed_bytes += groups[g].bytes;
  }
  return Status::OK();
}

}  // namespace ps::models::gpu
