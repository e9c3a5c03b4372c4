#include "models/gpu/grad_kernel_plan.h"

#include <algorithm>
#include <optional>

#include "common/shape.h"

namespace ps::models::gpu {

Result<ReducePlan> plan_broadcast_backward(const Shape& input, const Shape& dy) {
  const std::optional<Shape> joint = broadcast_shapes(input, dy);
  if (!joint || *joint != dy) {
    return invalid_argument("broadcast backward: ", shape_string(input),
                            " does not broadcast to dY ", shape_string(dy));
  }
  // dY's dimension d is reduced where the input (aligned to the right) lacks it or has 1.
  const size_t lead = dy.size() - input.size();
  std::vector<bool> reduced(dy.size(), false);
  for (size_t d = 0; d < dy.size(); ++d) {
    const int64_t in_dim = d < lead ? 1 : input[d - lead];
    reduced[d] = in_dim == 1 && dy[d] != 1;
  }
  ReducePlan plan;
  PS_ASSIGN_OR_RETURN(plan, plan_reduce(dy, reduced));
  plan.params.op = kernels::kReduceSum;
  return plan;
}

Result<train_kernels::SoftmaxXentParams> plan_softmax_xent(const Shape& logits) {
  if (logits.size() != 2 || logits[0] <= 0) {
    return invalid_argument("softmax cross-entropy: logits ", shape_string(logits),
                            " must be [N, K] with N > 0");
  }
  train_kernels::SoftmaxXentParams p;
  p.rows = logits[0];
  p.classes = logits[1];
  p.grad_scale = static_cast<float>(1.0 / static_cast<double>(logits[0]));
  return p;
}

Result<train_kernels::SgdGroupParams> plan_sgd_group(const cpu::SgdOptions& options,
                                                     std::span<const int64_t> counts) {
  if (options.learning_rate < 0 || options.momentum < 0 || options.weight_decay < 0) {
    return invalid_argument("SGD: learning rate ", options.learning_rate, ", momentum ",
                            options.momentum, ", weight decay ", options.weight_decay,
                            " must not be negative");
  }
  if (counts.empty() || counts.size() > static_cast<size_t>(train_kernels::kSgdGroupMax)) {
    return invalid_argument("SGD group of ", counts.size(), " tensors (1 to ",
                            train_kernels::kSgdGroupMax, ")");
  }
  train_kernels::SgdGroupParams p;
  p.learning_rate = static_cast<float>(options.learning_rate);
  p.momentum = static_cast<float>(options.momentum);
  p.weight_decay = static_cast<float>(options.weight_decay);
  p.count = static_cast<int32_t>(counts.size());
  p.tile = kSgdTile;
  uint64_t blocks = 0;
  for (size_t t = 0; t < counts.size(); ++t) {
    if (counts[t] < 0) {
      return invalid_argument("SGD group: tensor ", t, " has ", counts[t], " elements");
    }
    p.n[t] = counts[t];
    p.block_start[t] = static_cast<uint32_t>(blocks);
    blocks += (static_cast<uint64_t>(counts[t]) + kSgdTile - 1) / kSgdTile;
    if (blocks > (uint64_t{1} << 31)) return invalid_argument("SGD group: ", blocks, " blocks");
  }
  p.block_start[counts.size()] = static_cast<uint32_t>(blocks);
  return p;
}

std::vector<SgdGroupRange> partition_sgd_groups(std::span<const int64_t> counts,
                                                int64_t max_elements) {
  std::vector<SgdGroupRange> groups;
  int64_t elements = 0;
  for (size_t t = 0; t < counts.size(); ++t) {
    const bool full = !groups.empty() &&
                      (groups.back().count == static_cast<uint32_t>(train_kernels::kSgdGroupMax) ||
                       elements + counts[t] > max_elements);
    if (groups.empty() || full) {
      groups.push_back({static_cast<uint32_t>(t), 0});
      elements = 0;
    }
    ++groups.back().count;
    elements += counts[t];
  }
  return groups;
}

pool_band::PoolBandParams plan_pool_band(const dnn_kernels::PoolParams& p, int64_t target_inputs) {
  using namespace pool_band;
  PoolBandParams bp;
  bp.p = p;
  const bool two_d = p.in[0] == 1 && p.out[0] == 1 && p.kernel[0] == 1 && p.pad_begin[0] == 0;
  // The gather adds every window whose span covers an input: a tap unless dilated, and a
  // dilated MaxPool's non-taps are never its first maximum; AveragePool has no dilation.
  const bool dilated = p.dilation[1] != 1 || p.dilation[2] != 1;
  const int64_t h = p.in[1], w = p.in[2], oh = p.out[1], ow = p.out[2];
  if (!two_d || (dilated && p.kind != dnn_kernels::kPoolMax) || p.planes <= 0 || h <= 0 || w <= 0 ||
      oh <= 0 || ow <= 0 || w > kMaxWidth || ow > kMaxWidth) {
    return bp;
  }
  constexpr int64_t kLimit = int64_t{1} << 30;
  if (p.planes * h * w >= kLimit || p.planes * oh * ow >= kLimit) return bp;
  int64_t rows = std::clamp<int64_t>(target_inputs / w, 1, kMaxRows);
  rows = std::min(rows, p.planes * h);
  for (; rows > 0; rows -= std::max<int64_t>(1, rows / 8)) {
    bp.rows = static_cast<int32_t>(rows);
    if (pool_band_max_staged(bp) <= kOutputs) return bp;
  }
  bp.rows = 0;
  return bp;
}

int64_t pool_band_blocks(const pool_band::PoolBandParams& bp) {
  const int64_t total = bp.p.planes * bp.p.in[1];
  return (total + bp.rows - 1) / bp.rows;
}

int64_t pool_band_max_staged(const pool_band::PoolBandParams& bp) {
  // A band's outputs depend on where it starts inside a plane (r0 mod H) and on its length;
  // starts b * rows for b < H take every position a start can have, and the last, shorter
  // band needs no more than a full one starting where it does.
  const int64_t total = bp.p.planes * bp.p.in[1];
  const int64_t bands = std::min(pool_band_blocks(bp), bp.p.in[1]);
  int64_t most = 0;
  for (int64_t b = 0; b < bands; ++b) {
    const int64_t r0 = b * bp.rows;
    const pool_band::Range r = pool_band::band_outputs(bp.p, r0, std::min(r0 + bp.rows, total));
    most = std::max(most, (r.last - r.first) * bp.p.out[2]);
  }
  return most;
}

}  // namespace ps::models::gpu
