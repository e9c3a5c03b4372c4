// Helpers shared by the backward operators (grad_*.cc). Internal to models/cpu.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

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

// The offset, with `strides`, of the element at row-major position `flat` of `shape` (strides
// from broadcast_strides or a permutation of contiguous_strides). O(rank) per call.
inline int64_t strided_offset(int64_t flat, const Shape& shape,
                              const std::vector<int64_t>& strides) {
  int64_t offset = 0;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    const int64_t n = shape[static_cast<size_t>(d)];
    offset += (flat % n) * strides[static_cast<size_t>(d)];
    flat /= n;
  }
  return offset;
}

}  // namespace ps::models::cpu
