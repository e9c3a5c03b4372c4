// Parameter blocks of the training kernels (cuda/kernels/train.cu), shared by nvcc and the
// launchers in models/gpu (grad_kernel_ops.cc). Plain trivially copyable structs passed BY
// VALUE as one kernel parameter, filled once at plan time (kernel_params.h's convention).
#pragma once

#include <cstdint>

namespace ps::train_kernels {

// SGD with momentum and weight decay, torch.optim.SGD's rule (dampening 0, no Nesterov), per
// element, in float32:
//   d_p = g + weight_decay * p
//   buf = d_p on the parameter's first step, else momentum * buf + d_p  (momentum 0: no buf)
//   p   = p - lr * buf                                                   (lr * d_p without)
// for up to kSgdGroupMax parameter tensors in ONE launch (a launch per tensor cost ~7 us each
// on an H100, most tensors being a few KiB: BatchNorm and LayerNorm scales and biases).
// Tensor t is param[t], grad[t], buf[t] (device addresses; buf 0 when momentum == 0), n[t]
// elements, its blocks [block_start[t], block_start[t + 1]) of `tile` elements each, its
// first step when bit t of first_step_bits is set (the buffer's old contents are then never
// read). Grid: exactly block_start[count] blocks. 2.3 KiB: under a kernel's 4 KiB.
inline constexpr int kSgdGroupMax = 64;
struct SgdGroupParams {
  float learning_rate = 0.01f;
  float momentum = 0.0f;
  float weight_decay = 0.0f;
  int32_t count = 0;  // tensors
  uint32_t tile = 0;  // elements per block
  uint32_t pad = 0;
  uint64_t first_step_bits = 0;
  uint64_t param[kSgdGroupMax] = {};
  uint64_t grad[kSgdGroupMax] = {};
  uint64_t buf[kSgdGroupMax] = {};
  int64_t n[kSgdGroupMax] = {};
  uint32_t block_start[kSgdGroupMax + 1] = {};
};
static_assert(sizeof(SgdGroupParams) <= 4096, "a kernel takes at most 4 KiB of parameters");

// Softmax cross-entropy over logits [rows, classes] (row-major) with int64 labels: per row
// loss = logsumexp(x) - x[label]; dlogits = (softmax(x) - onehot(label)) * grad_scale; the
// reported loss is sum(loss_row) * grad_scale (grad_scale = 1 / rows: the batch mean).
struct SoftmaxXentParams {
  int64_t rows = 0;
  int64_t classes = 0;
  float grad_scale = 1.0f;
  int32_t pad = 0;
};

// Pooling backward over [planes, in[0], in[1], in[2]] from dY [planes, out[0..2]]: the forward
// geometry of ps_dnn_pool_f32 (dnn_pool_params.h's PoolParams) is reused as is.

}  // namespace ps::train_kernels
