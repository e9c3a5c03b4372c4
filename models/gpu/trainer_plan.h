// The device-free half of the GPU trainer (trainer.h): what a step does, in enqueue order, and
// where every buffer lives. Pure functions of the manifest and the options, so CI tests them.
//
// The step is a list of ITEMS: the batch (images: the synthetic data kernel; token ids: made on
// the host and copied), each forward layer (Batch-
// Normalization: the training forward), the loss, the backward of each layer whose output
// reaches the loss (reverse order), then one SGD update per trainable weight that received a
// gradient (tensor order). Time, for lifetimes, is the item's position in that order.
//
// Memory is ONE block (one pool range), in regions, every buffer 256-byte aligned:
//   params    every WEIGHT tensor (float ones as float32; others as they are) - persistent
//   grads     one float32 gradient per trainable weight that receives one     - persistent
//   momentum  one float32 buffer per such weight (momentum != 0)              - persistent
//   patterns  the synthetic classes' patterns, float64                        - persistent
//   arena     what one step needs between items, placed by lifetime: activations (from their
//             forward to the last forward or backward that reads them; a view op's output
//             shares its input's buffer: forward_aliases_input), BatchNorm's saved
//             statistics (forward to backward), activation gradients (first backward that
//             writes them to the backward of their producer), the labels, dlogits, the loss,
//             and scratch for gradients cuDNN writes that nobody wants
//   workspace appended by the trainer once the ops are built (the largest any op asks for)
// A tensor read by several layers gets its gradient WRITTEN by the first backward in enqueue
// order and ACCUMULATED by the others (GradSpec::accumulate): a static table, the CPU
// trainer's running sum made explicit. Where that first backward passes dY through (Add, view
// ops: backward_passes_through), the gradient shares dY's buffer instead of being a copy.
// Where every backward that writes a tensor's gradient reads columns of it (HeadSlice,
// AttentionScores, AttentionContext: column_reader in trainer_plan.cc) and their column
// ranges cover its last dimension without overlap (fuse_head_projections' query, key and
// value), each WRITES its own columns and nothing else (GradSpec::partial): no accumulation,
// no zeros.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "common/dtype.h"
#include "common/shape.h"
#include "common/status.h"
#include "models/cpu/synthetic_tokens.h"
#include "models/gpu/grad_kernel_plan.h"
#include "onnx_loader/psm.pb.h"

namespace ps::models::gpu {

inline constexpr uint64_t kNoBuffer = UINT64_MAX;  // an operand bound as address 0
inline constexpr uint64_t kTrainAlign = 256;

enum class TrainItemKind : uint8_t { kData, kForward, kLoss, kBackward, kSgd };
struct TrainItem {
  TrainItemKind kind = TrainItemKind::kData;
  uint32_t index = 0;  // kForward: layer; kBackward: index into TrainLayout::backward;
                       // kSgd: index into TrainLayout::sgd_groups
  int time = 0;        // its position on the lifetime axis (ArenaBuffer::first/last)
};
std::string_view train_item_kind_name(TrainItemKind kind);  // "data", "forward", ...

struct TrainWeight {
  uint32_t tensor = 0;
  DType dtype = DType::kUndefined;  // in the package
  bool is_float = false;            // float of any width: float32 on the device
  bool trainable = false;
  Shape shape;
  int64_t count = 0;
  uint64_t bytes = 0;         // on the device
  uint64_t offset = 0;        // in the block (params region)
  uint64_t grad = kNoBuffer;  // its gradient (trainable and reached by the backward)
  uint64_t momentum = kNoBuffer;
};

struct ForwardStep {
  std::vector<uint64_t> inputs;   // block offsets, the layer's inputs in order
  std::vector<uint64_t> outputs;  // Y; BatchNormalization adds saved_mean, saved_inv_std
};

struct BackwardStep {
  uint32_t layer = 0;
  uint32_t wanted = 0;            // GradSpec::wanted
  uint32_t accumulate = 0;        // GradSpec::accumulate
  bool partial = false;           // GradSpec::partial (column readers covering their input)
  // Forward inputs, dY, then BatchNormalization's saved statistics, or the forward's output Y
  // for an op whose backward reads it (backward_reads_output: Softmax, AddSoftmax).
  std::vector<uint64_t> inputs;
  std::vector<uint64_t> outputs;  // one per forward input; kNoBuffer where not computed
};

// One buffer of the arena, for tests and the memory report.
struct ArenaBuffer {
  enum class Kind : uint8_t { kActivation, kSavedStats, kGradient, kScratch, kLabels, kLoss };
  Kind kind = Kind::kActivation;
  uint32_t tensor = 0;  // the manifest tensor (kSavedStats: the layer)
  uint64_t bytes = 0;
  int first = 0, last = 0;  // TrainItem::time of its first and last use, inclusive
  uint64_t offset = 0;      // in the arena
};

struct TrainLayoutOptions {
  bool momentum = true;   // SGD momentum != 0: momentum buffers
  int64_t patterns = 10;  // synthetic patterns kept on the device (classes; 1 single_image)
  int64_t classes = 10;   // labels in [0, classes): must fit the output's K
};

struct TrainLayout {
  // input_tensor: the images; with token inputs, the first of token_tensors.
  uint32_t input_tensor = 0, output_tensor = 0;
  int64_t batch = 0, outputs_k = 0;
  Shape sample_shape;      // images; empty with token inputs
  int64_t sample_size = 0; // images; 0 with token inputs (no patterns on the device)
  // Token inputs (BERT's input_ids, token_type_ids), in manifest order: their tensors and the
  // ids each takes (cpu::SyntheticTokens' inputs). Empty for an image model.
  std::vector<uint32_t> token_tensors;
  std::vector<cpu::TokenInput> token_inputs;

  std::vector<TrainWeight> weights;    // every WEIGHT tensor, tensor order
  std::vector<int32_t> weight_index;   // by manifest tensor: index in weights, or -1
  std::vector<ForwardStep> forward;    // one per layer
  std::vector<BackwardStep> backward;  // enqueue order (reverse layers, skipped ones absent)
  std::vector<uint32_t> sgd;           // indices into weights, tensor order
  // The update's launches: consecutive runs of `sgd` (partition_sgd_groups over the weights'
  // element counts), one kSgd item each.
  std::vector<SgdGroupRange> sgd_groups;
  std::vector<TrainItem> items;        // the step
  std::vector<ArenaBuffer> arena;

  // Block offsets of the step's fixed operands (tokens: one per token input).
  uint64_t images = 0, labels = 0, logits = 0, dlogits = 0, loss = 0, patterns = 0;
  std::vector<uint64_t> tokens;

  // Regions (block offsets and sizes).
  uint64_t params_bytes = 0, grads_offset = 0, grads_bytes = 0, momentum_offset = 0,
           momentum_bytes = 0, patterns_offset = 0, patterns_bytes = 0, arena_offset = 0,
           arena_bytes = 0;
  uint64_t arena_lower_bound = 0;  // the most bytes alive at one item: the placement's floor
  uint64_t arena_no_reuse = 0;     // every arena buffer side by side (what reuse saves)
  uint64_t block_bytes = 0;        // everything but the workspace
};

// The weights (indices into t.weights) that SGD group g (t.sgd_groups[g]) updates, in order.
inline std::span<const uint32_t> sgd_group_weights(const TrainLayout& t, size_t g) {
  return std::span<const uint32_t>(t.sgd).subspan(t.sgd_groups[g].first, t.sgd_groups[g].count);
}

// Plans the training step of `manifest` (a training-mode lowering). Requirements, each an error
// naming what is wrong: one OUTPUT float32 [N, K] and as inputs either one float32 [N, ...]
// (images) or only int64 [N, ...] tensors each read as indices by an embedding Gather
// (token ids; the CPU trainer's rule, which also takes int32) (kInvalidArgument); every layer has one output, and a
// backward (`has_backward`, normally gpu_has_backward) when that output is float: layers with
// integer outputs run forward only (kUnsupported listing every layer without one);
// options.classes <= K; tensor indices in range (kCorrupt). Integer tensors get no gradient.
Result<TrainLayout> plan_training(const pipeswitch::psm::Manifest& manifest,
                                  const TrainLayoutOptions& options,
                                  bool (*has_backward)(std::string_view op));

// Whether the backward of `op` reads forward input `input` (so an activation there must live
// until that backward). Conservative (true) for ops it does not know.
bool backward_reads_input(std::string_view op, size_t input);
// Whether the backward of `op` reads the forward's output (Softmax's dX is computed from Y): the
// output then lives until that backward and is bound after dY.
bool backward_reads_output(std::string_view op);
// Whether the backward of `op` gives each input dY itself, unchanged but for its shape (Add
// without broadcast, the view ops): an input whose gradient it writes then takes dY's buffer
// (one input per layer), and the backward copies nothing for it.
bool backward_passes_through(std::string_view op);
// Whether `op`'s output is its input's bytes under another shape (Reshape, Flatten, Squeeze,
// Unsqueeze, Identity): the forward then shares the input's activation buffer (no copy).
bool forward_aliases_input(std::string_view op);

// Greedy placement in one arena: largest first, best fit among the buffers alive at the same
// time (the importer's planner, onnx_loader/memory_plan.h). Sets each buffer's offset (aligned)
// and returns the arena's size.
uint64_t place_arena(std::span<ArenaBuffer> buffers, uint64_t alignment = kTrainAlign);
// The most bytes alive at once (aligned sizes): a lower bound of any placement.
uint64_t arena_live_peak(std::span<const ArenaBuffer> buffers, uint64_t alignment = kTrainAlign);

// A chunk of a step: items [first, first + count), about `ms` of profiled GPU time.
struct TrainChunk {
  uint32_t first = 0, count = 0;
  double ms = 0;
};
// Cuts `item_ms` (one profiled time per item, in order) into consecutive chunks of at most
// `budget_ms` each, except that a chunk always holds at least one item (an item longer than
// the budget is a chunk of its own). Greedy: a chunk takes items while they fit. budget <= 0:
// one item per chunk.
std::vector<TrainChunk> cut_chunks(std::span<const double> item_ms, double budget_ms);

}  // namespace ps::models::gpu
