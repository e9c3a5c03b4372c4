// The invariants of a package manifest, checked by the writer before it writes and by the reader
// after it parses (one function, so both agree). docs/psm-format.md lists them; in short:
//   - format_version is this major version, mode is known, weights_bytes is the blob's size,
//     weight_alignment a power of two in [256, 1 MiB], memory_plan.alignment a power of two;
//   - every tensor: kind and dtype known, rank <= 16, dims positive, element count <= 2^40
//     (computed without overflow); WEIGHT: byte_size == elements * dtype size, offset aligned
//     to weight_alignment, [offset, offset + byte_size) inside the blob, weights do not overlap;
//     ACTIVATION/INPUT/OUTPUT: arena_offset aligned and [arena_offset, +bytes) inside
//     memory_plan.arena_bytes (byte_size, when set, equals elements * dtype size);
//   - at least one layer; each layer has an op and outputs, attributes have a name and a value,
//     every index is in range; a layer reads weights, inputs and tensors produced by earlier
//     layers, and writes only ACTIVATION/OUTPUT tensors; each of those is produced exactly once;
//     every weight is read by some layer;
//   - inputs/outputs: non-empty, exactly the INPUT/OUTPUT tensors, each once, named uniquely;
//   - groups: cover all layers in order, without gaps or overlaps, each at least one layer; a
//     group's [blob_offset, blob_offset + byte_size) is exactly the span of the weights first
//     read by its layers (byte_size 0 when there are none), and the spans of successive groups
//     increase (weights are packed in execution order, so each group is one copy);
//   - dims: names non-empty, values positive.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "common/status.h"
#include "onnx_loader/psm.pb.h"

namespace ps::onnx_loader {

inline constexpr int kMaxRank = 16;
inline constexpr uint64_t kMaxElements = 1ull << 40;
inline constexpr uint64_t kMaxArenaBytes = 1ull << 44;
inline constexpr uint32_t kMaxArenaAlignment = 1u << 20;

// Number of elements of `tensor`'s shape (1 for a scalar), or nullopt when a dimension is not
// positive, the rank is above kMaxRank or the count exceeds kMaxElements (no overflow happens).
std::optional<uint64_t> checked_element_count(const pipeswitch::psm::Tensor& tensor);

// Checks `manifest` against a weight blob of `blob_bytes` bytes. Returns OK, or kCorrupt with a
// message that starts with `label` (the file name) and names the tensor, layer or group and what
// is wrong with it. Reads only `manifest`.
Status validate_manifest(const pipeswitch::psm::Manifest& manifest, uint64_t blob_bytes,
                         std::string_view label);

}  // namespace ps::onnx_loader
