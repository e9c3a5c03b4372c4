// Plan-time arithmetic of the training kernels (cuda/kernels/train.cu): pure functions of
// shapes and options, no GPU, so CI tests them (and runs the kernels on them under the host
// emulation, tests/models/gpu_train_kernel_emulation_test.cc).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/shape.h"
#include "common/status.h"
#include "cuda/kernels/dnn_pool_params.h"
#include "cuda/kernels/pool_band.h"
#include "cuda/kernels/train_params.h"
#include "models/cpu/sgd.h"
#include "models/gpu/index_plan.h"
#include "models/gpu/window_plan.h"

namespace ps::models::gpu {

// The gradient of an input of shape `input` that was numpy-broadcast to `dy`: dY summed over
// the broadcast dimensions, as a reduction plan for ps_reduce_f32 (kReduceSum; the output is
// contiguous with `input`'s element order). Errors: `input` does not broadcast to `dy`.
Result<ReducePlan> plan_broadcast_backward(const Shape& input, const Shape& dy);

// Softmax cross-entropy over logits [N, K] (mean over the batch). Errors: not 2-D, N = 0.
Result<train_kernels::SoftmaxXentParams> plan_softmax_xent(const Shape& logits);

// One SGD step of the tensors of `counts` elements in one ps_sgd_group_f32 launch: the rule
// from `options`, each tensor's elements and its range of blocks of kSgdTile elements. The
// launcher fills the addresses and first-step bits. Errors: a negative learning rate,
// momentum or weight decay (as cpu::sgd_update), no tensors or more than kSgdGroupMax, a
// negative count, more than 2^31 blocks.
inline constexpr uint32_t kSgdTile = 4096;  // elements per block: 16 per thread of 256
Result<train_kernels::SgdGroupParams> plan_sgd_group(const cpu::SgdOptions& options,
                                                     std::span<const int64_t> counts);

// Consecutive tensors of `counts` in groups for plan_sgd_group: [first, first + count) each, in
// order, at most kSgdGroupMax tensors and at most `max_elements` elements a group (a larger
// tensor alone), so one launch stays short next to the 1 ms chunks a training step is cut into.
struct SgdGroupRange {
  uint32_t first = 0;
  uint32_t count = 0;
  bool operator==(const SgdGroupRange&) const = default;
};
inline constexpr int64_t kSgdGroupElements = int64_t{16} << 20;  // ~0.1 ms of HBM traffic
std::vector<SgdGroupRange> partition_sgd_groups(std::span<const int64_t> counts,
                                                int64_t max_elements = kSgdGroupElements);

// The banded pooling backward (cuda/kernels/pool_band.h) for the pooling `p`: `rows` of the
// flattened [planes * H] input rows a block gathers, about `target_inputs` elements (tests
// pass a few to make bands cross planes), fewer where a band's outputs would not fit the
// block's kOutputs. rows = 0 where the banded kernel does not apply and the element-wise
// kernels serve: 3-D pooling, rows wider than kMaxWidth, 2^30 elements or more, no outputs,
// or not even one row's outputs fitting.
pool_band::PoolBandParams plan_pool_band(const dnn_kernels::PoolParams& p,
                                         int64_t target_inputs = pool_band::kTargetInputs);

// The blocks of ps_pool_backward_band_f32 for `bp` (rows > 0): one per band.
int64_t pool_band_blocks(const pool_band::PoolBandParams& bp);

// The most outputs any band of `bp` stages (planner and tests: at most kOutputs).
int64_t pool_band_max_staged(const pool_band::PoolBandParams& bp);

}  // namespace ps::models::gpu
