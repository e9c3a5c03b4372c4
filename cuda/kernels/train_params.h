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
struct SgdParams {
  int64_t count = 0;
  float learning_rate = 0.01f;
  float momentum = 0.0f;
  float weight_decay = 0.0f;
  int32_t first_step = 1;  // 1: buf = d_p (the buffer's old contents are never read)
};

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
