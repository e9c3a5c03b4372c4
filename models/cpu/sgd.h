// SGD with momentum and weight decay, exactly as torch.optim.SGD (dampening 0, no Nesterov):
//   d_p = g + weight_decay * p
//   buf = d_p on a parameter's first step, else momentum * buf + d_p   (no buffer: momentum 0)
//   p   = p - lr * buf   (lr * d_p when momentum is 0)
// computed in double in that order.
#pragma once

#include "common/status.h"
#include "models/cpu/tensor.h"

namespace ps::models::cpu {

struct SgdOptions {
  double learning_rate = 0.01;
  double momentum = 0.9;
  double weight_decay = 0.0;
};

// Updates `param` in place from `grad` (same shape, float64). `momentum_buffer` is the
// parameter's buffer: an empty Tensor (undefined dtype) before its first step, when this call
// allocates it holding d_p; afterwards updated in place. Untouched when momentum is 0.
// Errors: dtype or shape mismatch, a negative learning rate, momentum or weight decay.
Status sgd_update(const SgdOptions& options, Tensor& param, const Tensor& grad,
                  Tensor& momentum_buffer);

}  // namespace ps::models::cpu
