// Type dispatch and the strided loop the CPU operators share. Internal to models/cpu.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <type_traits>
#include <vector>

#include "common/status.h"
#include "models/cpu/dtype.h"
#include "models/cpu/tensor.h"

namespace ps::models::cpu {

template <typename... Ts>
struct Types {};

using FloatTypes = Types<float, double>;
using NumericTypes = Types<float, double, int64_t, int32_t, int8_t, uint8_t>;
using SignedTypes = Types<float, double, int64_t, int32_t, int8_t>;
using IntegerTypes = Types<int64_t, int32_t, int8_t, uint8_t>;
using ComparableTypes = Types<float, double, int64_t, int32_t, int8_t, uint8_t, bool>;
using AllTypes = Types<float, double, int64_t, int32_t, int8_t, uint8_t, bool, Float16, BFloat16>;

// Calls f(std::type_identity<T>{}) for the T of `dtype` among Ts and returns its Status; an
// Unsupported error "<role> dtype <name> is not supported" when `dtype` is not among them.
template <typename... Ts, typename F>
Status dispatch(Types<Ts...>, DType dtype, std::string_view role, F&& f) {
  Status result;
  const bool found =
      ((dtype == dtype_of<Ts>() ? (result = f(std::type_identity<Ts>{}), true) : false) || ...);
  if (!found) return unsupported(role, " dtype ", dtype_name(dtype), " is not supported");
  return result;
}

// For operators that only move elements: calls f(std::type_identity<U>{}) with the unsigned
// integer type U as wide as one element of `dtype`.
template <typename F>
void dispatch_by_size(DType dtype, F&& f) {
  switch (dtype_size(dtype)) {
    case 1:
      f(std::type_identity<uint8_t>{});
      return;
    case 2:
      f(std::type_identity<uint16_t>{});
      return;
    case 4:
      f(std::type_identity<uint32_t>{});
      return;
    case 8:
      f(std::type_identity<uint64_t>{});
      return;
    default:
      PS_CHECK(false && "element size");
  }
}

template <typename T>
constexpr bool kIsFloat = std::is_floating_point_v<T>;

// Walks `shape` in row-major order one run of the innermost dimension at a time. For operand k,
// strides[k] gives its element stride per dimension of `shape` (0 to broadcast) and base[k] its
// starting offset. fn(offsets, run_strides, count) is called with each operand's offset at the
// start of the run, its stride along the run and the run's length. Adjacent dimensions that are
// contiguous for every operand are merged first, so runs are as long as possible.
template <size_t N, typename F>
void for_each_run(const Shape& shape, const std::array<std::vector<int64_t>, N>& strides,
                  const std::array<int64_t, N>& base, F&& fn) {
  for (int64_t d : shape) {
    if (d == 0) return;
  }
  // Merge dimensions, dropping those of size 1.
  Shape dims;
  std::array<std::vector<int64_t>, N> st;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !dims.empty();
    for (size_t k = 0; k < N && merge; ++k) {
      merge = st[k].back() == strides[k][d] * shape[d];
    }
    if (merge) {
      dims.back() *= shape[d];
      for (size_t k = 0; k < N; ++k) st[k].back() = strides[k][d];
    } else {
      dims.push_back(shape[d]);
      for (size_t k = 0; k < N; ++k) st[k].push_back(strides[k][d]);
    }
  }
  std::array<int64_t, N> off = base;
  if (dims.empty()) {
    fn(off, std::array<int64_t, N>{}, int64_t{1});
    return;
  }
  const size_t rank = dims.size();
  std::array<int64_t, N> run{};
  for (size_t k = 0; k < N; ++k) run[k] = st[k][rank - 1];
  std::vector<int64_t> index(rank - 1, 0);
  for (;;) {
    fn(off, run, dims[rank - 1]);
    size_t d = rank - 1;
    for (;;) {
      if (d == 0) return;
      --d;
      if (++index[d] < dims[d]) {
        for (size_t k = 0; k < N; ++k) off[k] += st[k][d];
        break;
      }
      index[d] = 0;
      for (size_t k = 0; k < N; ++k) off[k] -= st[k][d] * (dims[d] - 1);
    }
  }
}

// Copies `in` (broadcast to `out_shape` through `in_strides`, starting at element `in_base`)
// into the contiguous `out`. Any dtype; `out` has out_shape's element count.
void strided_copy(const Tensor& in, const std::vector<int64_t>& in_strides, int64_t in_base,
                  const Shape& out_shape, Tensor& out);

}  // namespace ps::models::cpu
