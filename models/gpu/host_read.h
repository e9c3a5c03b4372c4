// Direct host access for embedding tables (DeepPlan, EuroSys'23, over PipeSwitch): a weight
// that only Gather layers index along axis 0 (BERT's word embeddings: 89 MB, of which a request
// of 8 x 251 tokens reads at most 2008 rows, 6 MB) need not be copied to the GPU before a
// switched-in model can run. The Gather kernel reads the rows it needs straight from the
// pinned host copy over PCIe (pinned memory is mapped into the device's address space), while
// the copy stream carries every other weight. The link then moves the rows used instead of the
// whole table, and the first layer no longer waits for the table's copy.
//
// Pure: which weights qualify, and what a group's copy becomes without them. The plan marks
// the qualifying operands (plan_layout.h: OperandPlace::host_readable) and resolves them to
// Bindings::host_weights when the caller gives one; enqueue_pipelined skips their bytes then.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"
#include "onnx_loader/psm.pb.h"

namespace ps::models::gpu {

// Tables smaller than this are copied as usual (BERT's position embeddings, 1.5 MB, are read
// whole by every request: a copy moves them faster than row reads over PCIe would).
inline constexpr uint64_t kHostReadMinBytes = uint64_t{4} << 20;

struct WeightRange {
  uint64_t offset = 0;  // in the weight blob
  uint64_t bytes = 0;
  uint32_t tensor = 0;  // index into Manifest.tensors
};

// The WEIGHT tensors of at least `min_bytes` whose every use is input 0 (data) of a Gather
// with axis 0, sorted by offset. The manifest's tensors and layers are assumed well formed
// (build_layout checks them); an out-of-range index is ignored here.
std::vector<WeightRange> host_readable_weights(const pipeswitch::psm::Manifest& manifest,
                                               uint64_t min_bytes = kHostReadMinBytes);

struct ByteRange {
  uint64_t offset = 0;
  uint64_t bytes = 0;
};

// Calls fn(ByteRange) -> Status for each part of [offset, offset + bytes) outside every range
// of `skip` (sorted by offset, disjoint), in order, leaving empty parts out; stops at the first
// error and returns it. Allocates nothing: a switch's copies are enqueued with it on the
// request path.
template <typename Fn>
Status for_each_range_outside(uint64_t offset, uint64_t bytes, std::span<const WeightRange> skip,
                              const Fn& fn) {
  const uint64_t end = offset + bytes;
  uint64_t at = offset;
  for (const WeightRange& s : skip) {
    const uint64_t s_end = s.offset + s.bytes;
    if (s_end <= at) continue;
    if (s.offset >= end) break;
    if (s.offset > at) PS_TRY(fn(ByteRange{at, s.offset - at}));
    at = std::max(at, s_end);
    if (at >= end) break;
  }
  if (at < end) PS_TRY(fn(ByteRange{at, end - at}));
  return Status::OK();
}

// How many bytes of [offset, offset + bytes) lie inside `skip` (sorted, disjoint).
uint64_t bytes_inside(uint64_t offset, uint64_t bytes, std::span<const WeightRange> skip);

}  // namespace ps::models::gpu
