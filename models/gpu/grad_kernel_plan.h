// Plan-time arithmetic of the training kernels (cuda/kernels/train.cu): pure functions of
// shapes and options, no GPU, so CI tests them (and runs the kernels on them under the host
// emulation, tests/models/gpu_train_kernel_emulation_test.cc).
#pragma once

#include <cstdint>

#include "common/shape.h"
#include "common/status.h"
#include "cuda/kernels/dnn_pool_params.h"
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

// One SGD step of a tensor of `count` elements, in float32. Errors: a negative learning rate,
// momentum or weight decay (as cpu::sgd_update).
Result<train_kernels::SgdParams> plan_sgd(const cpu::SgdOptions& options, int64_t count,
                                          bool first_step);

}  // namespace ps::models::gpu
