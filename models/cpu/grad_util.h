// Helpers shared by the backward operators (grad_*.cc). Internal to models/cpu.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"
#include "models/cpu/ops.h"
#include "models/cpu/tensor.h"

namespace ps::models::cpu {

// OK when `t` is float64; otherwise an error naming `what` and the tensor.
inline Status require_f64(const Tensor& t, std::string_view what) {
  if (t.dtype() != DType::kFloat64) {
    return invalid_argument(what, " ", t.description(), " must be float64 (gradients are double)");
  }
  return Status::OK();
}

// A zero-filled float64 tensor of `shape`.
inline Result<Tensor> zeros_f64(const Shape& shape) {
  return Tensor::allocate(DType::kFloat64, shape);
}

}  // namespace ps::models::cpu
