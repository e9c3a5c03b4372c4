// GpuTrainer's private state, shared by its source files (trainer.cc: build and step;
// trainer_profile.cc: profile and chunks; trainer_state.cc: export and import). Not a public
// header: include trainer.h.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cuda/host_memory.h"
#include "models/gpu/grad_op.h"
#include "models/gpu/trainer.h"
#include "models/gpu/trainer_data.h"
#include "models/gpu/trainer_plan.h"
#include "models/gpu/trainer_tokens.h"

namespace ps::models::gpu {

struct GpuTrainer::Impl {
  GpuRuntime* runtime = nullptr;
  cuda::DevicePool* pool = nullptr;
  pipeswitch::psm::Manifest manifest;
  GpuTrainerOptions options;
  TrainLayout layout;

  // Built once.
  std::vector<std::unique_ptr<GpuOp>> forward;   // per layer
  std::vector<std::unique_ptr<GpuOp>> backward;  // per layout.backward entry
  std::unique_ptr<GpuOp> loss_op;
  TrainKernels kernels;
  DeviceSyntheticData data;     // an image model's batches
  std::unique_ptr<HostTokenData> tokens;  // a token model's (layout.token_tensors not empty)
  // Per layout.sgd_groups entry: the launch's rule and tiles (addresses bound at enqueue).
  std::vector<train_kernels::SgdGroupParams> sgd_groups;

  // Memory: one pool range; the workspace at its end.
  cuda::PoolRange block;
  CUdeviceptr base = 0, workspace = 0;
  size_t workspace_bytes = 0;
  std::vector<std::vector<CUdeviceptr>> fwd_in, fwd_out, bwd_in, bwd_out;
  std::vector<CUdeviceptr> loss_in, loss_out;
  std::vector<CUdeviceptr> token_addrs;  // layout.tokens
  cuda::PinnedBuffer loss_host;

  // Chunks (profiled at create()).
  std::vector<double> item_ms;
  std::vector<TrainChunk> chunks;
  std::vector<double> chunk_ms;
  bool profiled_in_graph = false;

  // Paging (trainer_paging.cc): while `paged`, the pool range is returned and what survives a
  // step boundary sits in `paged_state`: the params region, then the momentum and patterns
  // regions (contiguous in the block), pinned. Pinned at create(), where it first holds the
  // weights' device image (the params region: float weights converted, read by ops with static
  // inputs and uploaded from there), so the first page-out does not pay the pinning (0.19 s
  // for ResNet152's 471 MiB, 0.48 s for BERT-base's 830 MiB on an H100 host) while a request
  // waits for the memory; the uploads at create() go at pinned speed in exchange.
  bool paged = false;
  cuda::PinnedBuffer paged_state;
  uint8_t* params_image() const { return static_cast<uint8_t*>(paged_state.data()); }
  uint64_t survivor_bytes() const {
    return layout.params_bytes + (layout.arena_offset - layout.momentum_offset);
  }

  // Progress.
  size_t next_chunk = 0;   // the chunk being enqueued
  uint32_t next_item = 0;  // the next item of the step to enqueue (inside next_chunk)
  uint64_t step = 0, data_position = 0;
  std::vector<bool> has_momentum;  // per weight: its buffer holds a previous step's value

  ~Impl();
  CUdeviceptr addr(uint64_t offset) const { return offset == kNoBuffer ? 0 : base + offset; }
  std::string layer_label(uint32_t layer) const;
  // "forward layer 3 (Conv 'x')", "backward of layer 3 (...)", "loss", "SGD update of 'w'", "data".
  std::string item_label(const TrainItem& item) const;
  // The item's operator name: the layer's op ("Conv"), or its kind for the loss, data, SGD.
  std::string item_op(const TrainItem& item) const;

  Status build_ops(std::span<const uint8_t> blob);
  // The pool range (OUT_OF_MEMORY names every region) and the operands' addresses in it.
  Status take_range();
  void bind_addresses();
  Status allocate();  // take_range, bind_addresses and the host-side buffers (create() only)
  Status upload_params(const cuda::Stream& stream);
  Status enqueue_item(const TrainItem& item, const cuda::Stream& stream) const;
  Status enqueue_items(uint32_t first, uint32_t count, const cuda::Stream& stream) const;
  void finish_step();
  // Times every item of a step (graph-captured, timing events between items; direct enqueue
  // when the capture fails) into item_ms and cuts the chunks. Runs a real step.
  Status profile(const cuda::Stream& stream);
};

}  // namespace ps::models::gpu
