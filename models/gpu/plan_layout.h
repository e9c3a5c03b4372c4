// The device-free half of a GPU plan: where every operand of every layer lives.
//
// From a validated manifest it derives, once, per layer: the TensorSpec of each input and
// output (what an op builder sees) and the operand's place as an offset into one of two
// regions, the weight blob's device copy or the activation arena. At request time the plan
// adds the two base addresses and nothing else. Also: which layers the GPU cannot run (every
// one of them, for a single error), the model's inputs and outputs, and the first layer of each
// weight group (for the pipelining hook). Needs no GPU, so it is tested on the CPU.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "models/gpu/host_read.h"
#include "models/gpu/op.h"
#include "onnx_loader/psm.pb.h"

namespace ps::models::gpu {

// Which base address an operand's offset is relative to.
enum class Region : uint8_t { kWeights, kArena };

// One operand of a layer: base(region) + offset, `bytes` long.
struct OperandPlace {
  Region region = Region::kArena;
  uint64_t offset = 0;
  uint64_t bytes = 0;
  uint32_t tensor = 0;  // index into Manifest.tensors
  // A weight the GPU may read from the host's pinned copy (host_read.h): resolved to
  // Bindings::host_weights + offset when the caller gives one, else like any weight.
  bool host_readable = false;
};

struct LayerLayout {
  std::vector<TensorSpec> input_specs;  // host_data unset here (see Plan::build)
  std::vector<TensorSpec> output_specs;
  std::vector<OperandPlace> inputs;
  std::vector<OperandPlace> outputs;
};

// A model input or output: what the caller writes into (reads from) the arena.
struct IoSpec {
  std::string name;
  DType dtype = DType::kUndefined;
  Shape shape;
  uint64_t arena_offset = 0;
  uint64_t bytes = 0;
  uint32_t tensor = 0;
};

struct PlanLayout {
  std::vector<LayerLayout> layers;  // one per manifest layer, in order
  std::vector<IoSpec> inputs;       // Manifest.inputs order
  std::vector<IoSpec> outputs;      // Manifest.outputs order
  // group_first_layer[g] = first layer of manifest group g (ascending). Empty when the
  // manifest has no groups.
  std::vector<uint32_t> group_first_layer;
  uint64_t arena_bytes = 0;    // Manifest.memory_plan.arena_bytes
  uint64_t weights_bytes = 0;  // Manifest.weights_bytes
  size_t max_operands = 0;     // the most inputs + outputs of any layer
  // The weights read from the host when Bindings::host_weights is given (host_read.h), sorted.
  std::vector<WeightRange> host_readable;
};

// Derives the layout of `manifest` (read only; need not outlive the result).
// Precondition: none beyond a well-formed message; every index, offset and size is checked
// here as well, so a manifest that did not pass Package::open cannot make the plan address
// memory outside the weight blob or the arena. Errors: kCorrupt naming the layer and tensor
// (a tensor index out of range, a WEIGHT tensor outside the blob, an activation outside the
// arena, a layer reading a tensor of undefined dtype, groups that do not cover the layers in
// order); kInvalidArgument for a manifest with no layers.
// Weights of at least `host_read_min_bytes` that only Gather layers index are marked host
// readable (host_read.h).
Result<PlanLayout> build_layout(const pipeswitch::psm::Manifest& manifest,
                                uint64_t host_read_min_bytes = kHostReadMinBytes);

// A layer the GPU cannot run.
struct UnsupportedLayer {
  uint32_t index = 0;
  std::string op;
  std::string name;
  std::string reason;  // the builder's error, or "no GPU operator"
};

// "layer 3 (Foo 'a/b'): no GPU operator; layer 9 (...): ..." for all of them, in order.
std::string describe_unsupported(std::span<const UnsupportedLayer> layers);

// The layers of `manifest` whose op `supported` returns false for (gpu_supports in a real
// plan), in order, with reason "no GPU operator".
std::vector<UnsupportedLayer> find_unsupported_layers(
    const pipeswitch::psm::Manifest& manifest,
    const std::function<bool(std::string_view op)>& supported);

// The workspace one plan needs: the largest of its ops' requests rounded up to `alignment`
// (a power of two), so one buffer serves every layer in turn.
size_t plan_workspace_bytes(std::span<const size_t> per_op, size_t alignment = 256);

}  // namespace ps::models::gpu
