// Shared by the GPU training tests (emulated kernels and [gpu] cases): float32 <-> float64
// tensor conversion (the CPU backward references work in double) and the comparison of a
// float32 result with a float64 reference.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "models/cpu/tensor.h"

namespace ps::models::gpu::grad_test {

using cpu::Tensor;

inline Tensor to_f64(const Tensor& t) {
  Result<Tensor> r = Tensor::allocate(DType::kFloat64, t.shape());
  REQUIRE(r.ok());
  Tensor out = std::move(r).value();
  REQUIRE(t.dtype() == DType::kFloat32);
  for (int64_t i = 0; i < t.numel(); ++i) {
    out.mutable_data<double>()[i] = static_cast<double>(t.data<float>()[i]);
  }
  return out;
}

inline Tensor to_f32(const Tensor& t) {
  Result<Tensor> r = Tensor::allocate(DType::kFloat32, t.shape());
  REQUIRE(r.ok());
  Tensor out = std::move(r).value();
  REQUIRE(t.dtype() == DType::kFloat64);
  for (int64_t i = 0; i < t.numel(); ++i) {
    out.mutable_data<float>()[i] = static_cast<float>(t.data<double>()[i]);
  }
  return out;
}

inline Tensor zeros_f32(const Shape& shape) {
  Result<Tensor> r = Tensor::allocate(DType::kFloat32, shape);
  REQUIRE(r.ok());
  Tensor out = std::move(r).value();
  if (out.byte_size() > 0) std::memset(out.mutable_raw(), 0, out.byte_size());
  return out;
}

// max |actual - expected| / max(max |expected|, tiny): the error relative to the tensor's
// scale (a single gradient element near zero does not blow it up). A NaN anywhere in
// `actual` that `expected` lacks gives infinity; shapes must match.
struct GradError {
  double max_rel = 0;
  int64_t worst = -1;
};
inline GradError grad_error(const Tensor& expected_f64, const Tensor& actual_f32) {
  REQUIRE(expected_f64.shape() == actual_f32.shape());
  double scale = 0;
  for (int64_t i = 0; i < expected_f64.numel(); ++i) {
    scale = std::max(scale, std::abs(expected_f64.data<double>()[i]));
  }
  if (scale == 0) scale = 1;
  GradError e;
  for (int64_t i = 0; i < expected_f64.numel(); ++i) {
    const double x = expected_f64.data<double>()[i];
    const double a = static_cast<double>(actual_f32.data<float>()[i]);
    const double d = std::isnan(a) != std::isnan(x) ? INFINITY
                     : std::isnan(a)                ? 0.0
                                                    : std::abs(a - x) / scale;
    if (!(d <= e.max_rel)) {
      e.max_rel = d;
      e.worst = i;
    }
  }
  return e;
}

}  // namespace ps::models::gpu::grad_test
