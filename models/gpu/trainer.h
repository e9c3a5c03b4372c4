// The GPU trainer (issue 7): SGD steps of a training-mode model (`psimport --mode training`)
// on the GPU, with the CPU trainer's semantics (models/cpu/trainer.h: the same data (images
// made on the device, token ids made on the host and copied), loss,
// BatchNorm running statistics and SGD rule) in float32 (convolutions and matrix products in
// the Precision asked for). Built once; a step allocates nothing and never synchronises.
//
// A step can be enqueued in CHUNKS (preemption, issue 7 "Driving and preemption"): the layers
// are cut into pieces whose profiled GPU time is about `chunk_budget_ms`, so the backend's
// device thread keeps at most about that much training work queued on its low-priority stream
// and inference on a high-priority stream waits at most about one chunk. Between chunks the
// trainer's whole state stays on the device (weights, gradients, momentum, the activations the
// rest of the step needs); nothing is copied or lost.
//
// Memory: everything (float32 weights and running statistics, gradients, momentum buffers, the
// activation arena that keeps what the backward reads, the gradient arena, BatchNorm's saved
// statistics, the batch, the workspace) comes from the DevicePool given to create(), in one or
// a few ranges returned by the destructor.
//
// Threads: like every GPU object here, only the thread whose context is current uses it.
// docs/training.md, "The GPU trainer", describes the layout and the checks.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "cuda/device_pool.h"
#include "cuda/stream.h"
#include "models/cpu/sgd.h"
#include "models/cpu/synthetic_data.h"
#include "models/cpu/trainer.h"
#include "models/gpu/op.h"
#include "models/gpu/runtime.h"
#include "onnx_loader/psm.pb.h"

namespace ps::models::gpu {

struct GpuTrainerOptions {
  cpu::SgdOptions sgd;
  cpu::SyntheticDataOptions data;
  Precision precision = Precision::kTf32;
  double chunk_budget_ms = 1.0;  // profiled GPU time per chunk of a step (at least one layer)
};

// One item of a step with its profiled GPU time (GpuTrainer::item_profile).
struct TrainItemTime {
  std::string kind;   // "data", "forward", "loss", "backward", "sgd"
  std::string op;     // the layer's operator ("Conv"), or the kind for the others
  std::string label;  // "backward of layer 12 (Conv 'conv1')"
  double ms = 0;
};

class GpuTrainer {
 public:
  // Builds the forward (BatchNormalization in training mode), loss, backward and update plans,
  // carves the memory from `pool`, uploads the weights (converted to float32 where the package
  // holds another float type), profiles the layers and cuts the chunks. Requirements as the
  // CPU trainer's (one float32 input [N, ...] or integer token inputs, one float32 output
  // [N, K], a backward for every layer with a float output: gpu_has_backward; trainer_plan.h),
  // each refused with an error naming what is wrong; OUT_OF_MEMORY
  // names the bytes needed and the pool's free bytes. `runtime` and `pool` outlive the trainer.
  static Result<std::unique_ptr<GpuTrainer>> create(GpuRuntime& runtime, cuda::DevicePool& pool,
                                                    const pipeswitch::psm::Manifest& manifest,
                                                    std::span<const uint8_t> weights,
                                                    const GpuTrainerOptions& options);
  // Returns the memory to the pool. Precondition: nothing of the trainer is still queued.
  ~GpuTrainer();
  GpuTrainer(const GpuTrainer&) = delete;
  GpuTrainer& operator=(const GpuTrainer&) = delete;

  // Enqueues the next chunk of the current step on `stream` (the first chunk of a step also
  // makes the step's batch on the device; the last ends with the SGD update and the loss's
  // copy to pinned host memory). Returns true when the chunk enqueued was the step's last.
  // Synchronises nothing; successive chunks must go to the same stream or be ordered.
  // `interrupted`, asked between two items (at least one item is always enqueued): when it
  // says true the call returns false with the chunk's rest left for the next call, so that a
  // waiting inference request is not held up by the host time of enqueueing a whole chunk
  // (tens of microseconds per cuDNN call, ~1 ms for a chunk of ResNet's).
  Result<bool> enqueue_next_chunk(const cuda::Stream& stream,
                                  const std::function<bool()>& interrupted = {});
  // Precondition: the stream has finished the step's last chunk. Advances the step counter
  // and the data position and returns the step's loss (computed before the update).
  double complete_step();
  // The whole step: every chunk enqueued on `stream`, then waited for. Tests and benchmarks.
  Result<double> step(const cuda::Stream& stream);
  // The whole step item by item, synchronised and every output scanned for NaN/Inf after each
  // (trainer_debug.cc): the first non-finite output is an INTERNAL error naming the item, the
  // output and its inputs' state; `trace`, when given, gets one line per output with its
  // largest finite magnitude. A step that passes counts like step()'s. Slow: for diagnosis.
  Result<double> debug_step(const cuda::Stream& stream,
                            const std::function<void(const std::string&)>& trace = {});
  // Some chunks of the current step are enqueued and the step is not complete.
  bool mid_step() const;

  size_t chunks_per_step() const;
  // Each chunk's profiled GPU time (ms), measured at create(); sums to about a step.
  std::span<const double> chunk_ms() const;
  // Each item's profiled GPU time, in step order, labelled (psbench train --profile-top).
  std::vector<TrainItemTime> item_profile() const;
  uint64_t step_count() const;
  uint64_t data_position() const;
  // Pool bytes the trainer holds (0 while paged out).
  uint64_t device_bytes() const;

  // Paging (issue 7: the job's state leaves the pool when inference needs the memory;
  // trainer_paging.cc). page_out() copies what survives a step boundary (the weights and
  // running statistics, the momentum buffers, the data patterns: paged_bytes()) to pinned host
  // memory (pinned at create(), kept), waits for it, and returns the whole pool
  // range. page_in() takes a range again (anywhere in the pool: every operand is bound anew),
  // copies the state back and waits; OUT_OF_MEMORY leaves it paged out and unchanged. The
  // trajectory is unchanged by a page-out and page-in. Both are no-ops in the state they lead
  // to. Precondition: not mid_step() and nothing of the trainer queued. While paged out,
  // export_state() reads the host copy; enqueue_next_chunk(), step(), import_state() and
  // export_gradients() refuse.
  Status page_out(const cuda::Stream& stream);
  Status page_in(const cuda::Stream& stream);
  bool paged_out() const;
  uint64_t paged_bytes() const;
  // The pool has a free block large enough for page_in() (true when not paged out).
  bool can_page_in() const;
  const pipeswitch::psm::Manifest& manifest() const;

  // The state as the CPU trainer keeps it (float64 copies by manifest tensor index; the
  // checkpoint format of models/cpu/checkpoint.h), and back. Both copy through the device and
  // block until done. Precondition: not mid_step() and nothing queued. import_state refuses a
  // state whose tensors or shapes are not this model's (INVALID_ARGUMENT), leaving it unchanged.
  Result<cpu::TrainingState> export_state() const;
  Status import_state(const cpu::TrainingState& state);
  // The weight gradients of the last completed step (what its SGD update read), float64 by
  // manifest tensor index: every trainable weight the backward reaches. For the checks against
  // the CPU trainer. Same preconditions as export_state().
  Result<std::map<uint32_t, cpu::Tensor>> export_gradients() const;

 private:
  struct Impl;
  explicit GpuTrainer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ps::models::gpu
