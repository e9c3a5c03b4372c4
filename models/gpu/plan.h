// Plan: a lowered model made ready to run on one GPU, built once per (model, precision).
//
// Build time (Plan::build, at registration): one GpuOp per layer from the manifest's dtypes,
// shapes and attributes (build_op: descriptors, algorithm choices, kernels), the address table
// of every operand as an offset into the weight blob's device copy or the activation arena
// (plan_layout.h), the workspace size (the largest any op needs), and a warm-up run so lazily
// loaded kernels and the libraries' internals are ready before the first request. A model the
// GPU cannot run fails with ONE error listing every layer that cannot run.
//
// Request time (enqueue): binds the runtime's cuDNN/cuBLAS handles to the stream and the
// workspace, then queues the layers in order, adding the two base addresses to the offsets.
// It allocates nothing, builds no string on success and never synchronises. A hook before
// each weight group lets the switching engine make the stream wait for that group's copy.
//
// Single-threaded like GpuRuntime: one thread builds and enqueues. A Plan borrows the runtime
// (which must outlive it) and keeps nothing of the manifest or the host weights after build.
#pragma once

#include <cuda.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "models/gpu/graph.h"
#include "models/gpu/op.h"
#include "models/gpu/plan_layout.h"
#include "onnx_loader/psm.pb.h"

namespace ps::cuda {
class Stream;
}

namespace ps::models::gpu {

class GpuRuntime;

// The device memory one run uses. The caller owns all of it and keeps it alive until the
// queued work has finished.
struct Bindings {
  CUdeviceptr weights = 0;    // the weight blob's device copy: Plan::weights_bytes() bytes
  CUdeviceptr arena = 0;      // Plan::arena_bytes() bytes, 256-byte aligned
  CUdeviceptr workspace = 0;  // Plan::workspace_bytes() bytes, 256-byte aligned (0 when none)
  size_t workspace_bytes = 0;
  // The device address of the weight blob's pinned HOST copy (cuda::PinnedBuffer::
  // device_address), or 0. When given, the host-readable weights (host_readable()) are read
  // from there and need not be in `weights` (a switch skips their copy: pipelined_run.h).
  CUdeviceptr host_weights = 0;
};

// Where an operand lives under `b`: the arena, the device weights, or (a host-readable weight
// when b.host_weights is given) the host copy.
inline CUdeviceptr operand_address(const OperandPlace& p, const Bindings& b) {
  if (p.region == Region::kArena) return b.arena + p.offset;
  return (p.host_readable && b.host_weights != 0 ? b.host_weights : b.weights) + p.offset;
}

// Builds the op of one layer; `layer` is its index. The default is build_op (the registry);
// tests substitute ops that fail or write NaN to prove the debug mode names them.
using OpFactory = std::function<Result<std::unique_ptr<GpuOp>>(const OpSpec& spec,
                                                               const OpEnv& env, uint32_t layer)>;

struct PlanOptions {
  Precision precision = Precision::kTf32;
  // Embedding tables of at least this many bytes may be read from the host (host_read.h).
  uint64_t host_read_min_bytes = kHostReadMinBytes;
  // One full run at the end of build. On `warm_up_with` when given (real weights: no NaN in
  // the warm-up), else on zeroed GpuRuntime::plan_scratch memory.
  bool warm_up = true;
  const Bindings* warm_up_with = nullptr;
  OpFactory op_factory;  // empty: build_op
};

// Called before the first layer of manifest group `group` is enqueued, with the stream the
// layers go to (e.g. to make it wait for that group's weights event). An error stops the
// enqueue and is returned.
using GroupHook = std::function<Status(uint32_t group, const cuda::Stream& stream)>;

// What a caller may want to know about one layer (profiles, errors).
struct LayerInfo {
  std::string op;
  std::string name;
  std::string block;             // the source block ("layer1.0"), may be empty
  std::vector<int32_t> onnx_nodes;
  std::string implementation;    // GpuOp::describe()
  size_t workspace_bytes = 0;
};

class Plan {
 public:
  // Builds the plan of `manifest` (validated: Package::open or the importer made it) for
  // `runtime`'s device. `host_weights` is the weight blob on the host (the ops read static
  // inputs such as Reshape shapes or Slice bounds from it); it may be empty only if no op needs
  // such values. Neither argument is kept. Errors: kUnsupported (or the builders' code) listing
  // EVERY layer that cannot run ("3 of 412 layers cannot run on the GPU: layer 7 (Foo 'x'): no
  // GPU operator; ..."); kCorrupt for a manifest whose offsets leave the blob or the arena;
  // kInvalidArgument when host_weights is non-empty but shorter than the blob; kDevice /
  // kOutOfMemory from the libraries or the warm-up (naming the layer).
  static Result<Plan> build(const pipeswitch::psm::Manifest& manifest,
                            std::span<const uint8_t> host_weights, GpuRuntime& runtime,
                            const PlanOptions& options = {});

  Plan(Plan&&) noexcept = default;
  Plan& operator=(Plan&&) noexcept = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan();

  // Queues the whole forward pass on `stream`: inputs must already be in the arena at
  // inputs()[i].arena_offset; outputs appear at outputs()[i].arena_offset once the stream has
  // passed the work. `before_group` (may be empty) runs before each group's first layer.
  // Errors: kInvalidArgument for bindings too small or missing; an op's launch error naming the
  // layer. Nothing is rolled back: after an error the stream may hold part of the pass.
  Status enqueue(const cuda::Stream& stream, const Bindings& bindings,
                 const GroupHook& before_group = {}) const;

  // Queues layers [first, first + count) only (for preemptible work that yields between
  // slices). `before_group` runs for each group whose FIRST layer is in the range. Errors:
  // kOutOfRange for a range outside the plan, else as enqueue().
  Status enqueue_layers(uint32_t first, uint32_t count, const cuda::Stream& stream,
                        const Bindings& bindings, const GroupHook& before_group = {}) const;

  // Runs the pass layer by layer, synchronising after each, and checks that every launch
  // succeeded and every floating-point output (and first the model's floating inputs) is
  // finite. Blocks the calling thread: for debugging and tests, never on the event loop.
  // Errors name the first layer that failed (index, op, name, ONNX nodes), the output tensor,
  // how many values are NaN/Inf and which of the layer's inputs were already non-finite.
  Status run_debug(const cuda::Stream& stream, const Bindings& bindings) const;

  // Runs the pass with a timing event between consecutive layers and returns each layer's GPU
  // time in milliseconds (blocks until done). The pass is captured as a CUDA graph and replayed
  // (twice; the second is timed), so the times are the GPU's alone, not the host's enqueue
  // pace. For profiles and grouping.
  Result<std::vector<double>> profile_layers(const cuda::Stream& stream,
                                             const Bindings& bindings) const;

  // Captures enqueue(stream, bindings) as a CUDA graph (see graph.h for what the caller must
  // keep in place while the graph lives).
  Result<CudaGraph> capture_graph(const cuda::Stream& stream, const Bindings& bindings,
                                  CaptureMode mode = CaptureMode::kThreadLocal) const;

  Precision precision() const { return precision_; }
  size_t layer_count() const { return steps_.size(); }
  size_t group_count() const { return layout_.group_first_layer.size(); }
  uint64_t arena_bytes() const { return layout_.arena_bytes; }
  uint64_t weights_bytes() const { return layout_.weights_bytes; }
  // The weights a layer reads from Bindings::host_weights when given (host_read.h), sorted.
  std::span<const WeightRange> host_readable() const { return layout_.host_readable; }
  size_t workspace_bytes() const { return workspace_bytes_; }
  std::span<const IoSpec> inputs() const { return layout_.inputs; }
  std::span<const IoSpec> outputs() const { return layout_.outputs; }
  const LayerInfo& layer(size_t index) const { return steps_[index].info; }
  // First layer of each manifest group, ascending.
  std::span<const uint32_t> group_first_layers() const { return layout_.group_first_layer; }

  // The most operands (inputs + outputs) a layer may have; enqueue resolves addresses into a
  // fixed array of this size.
  static constexpr size_t kMaxOperands = 64;

 private:
  struct Step {
    std::unique_ptr<GpuOp> op;
    LayerInfo info;
  };

  Plan() = default;
  Status check_bindings(const Bindings& bindings) const;
  std::string layer_label(size_t index) const;
  Status warm_up(const PlanOptions& options);

  GpuRuntime* runtime_ = nullptr;
  Precision precision_ = Precision::kTf32;
  PlanLayout layout_;
  std::vector<Step> steps_;
  std::vector<std::string> tensor_names_;  // by manifest tensor index, for debug messages
  size_t workspace_bytes_ = 0;
};

}  // namespace ps::models::gpu
