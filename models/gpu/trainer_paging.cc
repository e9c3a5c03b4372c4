// GpuTrainer's paging (trainer.h: page_out / page_in): the state that survives a step boundary
// leaves the pool for pinned host memory and comes back, perhaps elsewhere in the pool.
//
// What moves: the params region (float32 weights and BatchNorm running statistics, constants)
// and the momentum and patterns regions, which are contiguous in the block. What does not:
// the weight gradients (each step's backward writes them before its update reads them) and the
// step arena (nothing in it outlives a step). For ResNet152 at batch 64 that is 230 + 230 +
// 11.5 MiB of a 16.6 GiB block: predicted ~10 ms each way at PCIe Gen5's ~48 GB/s pinned,
// measured 8.95 ms out and 9.08 in (55 GB/s; BERT-base's 830 MiB: 16.1 and 16.6 ms; H100,
// `psbench train --page-cycles`), where paging the whole block mid-step would take ~350 ms
// each way (hence: at a step boundary). The host buffer is pinned at create() (trainer_impl.h).
#include "cuda/copy.h"
#include "cuda/stream.h"
#include "models/gpu/trainer_impl.h"

namespace ps::models::gpu {

Status GpuTrainer::page_out(const cuda::Stream& stream) {
  Impl& t = *impl_;
  if (t.paged) return Status::OK();
  if (mid_step()) return invalid_argument("GpuTrainer::page_out: a step is in progress");
  const uint64_t params = t.layout.params_bytes;
  const uint64_t rest = t.layout.arena_offset - t.layout.momentum_offset;
  auto* host = static_cast<uint8_t*>(t.paged_state.data());
  PS_TRY(cuda::copy_to_host_async(host, t.addr(0), params, stream));
  if (rest > 0) {
    PS_TRY(cuda::copy_to_host_async(host + params, t.addr(t.layout.momentum_offset), rest, stream));
  }
  PS_TRY(stream.synchronize());
  PS_TRY(t.pool->free(t.block));
  t.block = {};
  t.base = 0;
  t.workspace = 0;
  t.paged = true;
  return Status::OK();
}

Status GpuTrainer::page_in(const cuda::Stream& stream) {
  Impl& t = *impl_;
  if (!t.paged) return Status::OK();
  PS_TRY(t.take_range());  // OUT_OF_MEMORY: still paged out, nothing changed
  t.bind_addresses();
  const uint64_t params = t.layout.params_bytes;
  const uint64_t rest = t.layout.arena_offset - t.layout.momentum_offset;
  const auto* host = static_cast<const uint8_t*>(t.paged_state.data());
  Status copied = cuda::copy_to_device_async(t.addr(0), host, params, stream);
  if (copied.ok() && rest > 0) {
    copied = cuda::copy_to_device_async(t.addr(t.layout.momentum_offset), host + params, rest,
                                        stream);
  }
  if (copied.ok()) copied = stream.synchronize();
  if (!copied.ok()) {
    (void)t.pool->free(t.block);
    t.block = {};
    t.base = 0;
    t.workspace = 0;
    return copied.with_context("GpuTrainer::page_in");
  }
  t.paged = false;
  return Status::OK();
}

bool GpuTrainer::paged_out() const { return impl_->paged; }

uint64_t GpuTrainer::paged_bytes() const { return impl_->survivor_bytes(); }

bool GpuTrainer::can_page_in() const {
  const Impl& t = *impl_;
  if (!t.paged) return true;
  const uint64_t needed = t.layout.block_bytes + t.workspace_bytes;
  return t.pool->stats().allocator.largest_free_block >= needed + kTrainAlign;
}

}  // namespace ps::models::gpu
