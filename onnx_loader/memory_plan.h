// The static memory plan of a model's activations: every tensor that is not a weight gets an
// offset in one arena, so that tensors alive at the same time never share bytes.
//
// Time is the position of a layer in the execution order (live nodes in graph order). A tensor
// lives from the step that produces it to the last step that reads it, both included: a layer
// never writes its output over its own inputs. Model inputs live from step 0, model outputs
// until the last step. Offsets are chosen greedily by size with best fit over the tensors
// whose lifetimes overlap (the "greedy by size" planner of TFLite and ONNX Runtime).
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "onnx_loader/graph.h"

namespace ps::onnx_loader {

// One buffer to place: `bytes` (already a multiple of the alignment, or 0) alive over the
// steps [first, last].
struct BufferRequest {
  uint64_t bytes = 0;
  int first = 0;
  int last = 0;
};

struct BufferLayout {
  std::vector<uint64_t> offsets;  // one per request, each a multiple of the alignment
  uint64_t arena_bytes = 0;       // max over buffers of offset + bytes
  uint64_t lower_bound = 0;       // max over steps of the bytes alive at that step
};

// Places `requests` in one arena. Preconditions: alignment is a power of two; every request
// has 0 <= first <= last and bytes a multiple of alignment. Zero-byte requests get offset 0.
// Guarantees: requests with overlapping [first, last] get disjoint byte ranges;
// arena_bytes >= lower_bound.
BufferLayout place_buffers(std::span<const BufferRequest> requests, uint64_t alignment);

struct MemoryPlanOptions {
  uint64_t alignment = 256;
  // Let Reshape / Flatten / Squeeze / Unsqueeze outputs share their input's bytes when that
  // input is an activation read for the last time there and is not a model output.
  bool alias_views = true;
};

// Where one activation (input, output or intermediate value) lives.
struct PlannedTensor {
  int value = -1;       // value index in the graph
  uint64_t bytes = 0;   // element_count * dtype_size (not rounded)
  uint64_t offset = 0;  // in the arena; a multiple of the alignment
  int first = 0;        // first and last step it is alive (inclusive)
  int last = 0;
  int alias_of = -1;  // value whose bytes it shares (the buffer owner), or -1
};

struct MemoryPlan {
  uint64_t alignment = 0;
  uint64_t arena_bytes = 0;        // achieved peak
  uint64_t lower_bound_bytes = 0;  // max over steps of the (aligned) bytes alive then
  int steps = 0;                   // live nodes in the execution order
  std::vector<PlannedTensor> tensors;
  std::unordered_map<int, size_t> by_value;  // value index -> index in `tensors`

  // The plan of `value`, or nullptr when it is not an activation.
  const PlannedTensor* find(int value) const;
};

// Plans every activation of `graph`: values produced by live nodes, model inputs and model
// outputs that are not constants. Preconditions: graph.validate() holds. Errors: an
// activation without a known dtype or static shape (names the value and its producer), a bad
// alignment. The graph is only read.
Result<MemoryPlan> plan_memory(const Graph& graph, const MemoryPlanOptions& options = {});

// Checks a plan on its own terms: offsets aligned, every tensor inside the arena, and any two
// tensors alive at a common step that do not share a buffer occupy disjoint bytes; aliases
// have their owner's offset. Returns the first violation.
Status check_memory_plan(const MemoryPlan& plan);

}  // namespace ps::onnx_loader
