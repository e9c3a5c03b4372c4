// The tensor of the CPU executor: a dtype, a static shape and contiguous row-major data that
// the tensor either owns or borrows. Plus the shape helpers the operators share (strides,
// numpy broadcasting).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/shape.h"
#include "models/cpu/dtype.h"

namespace ps::models::cpu {

// Shapes and their helpers (common/shape.h).
using ::ps::element_count;
using ::ps::Shape;
using ::ps::shape_string;

// Row-major strides in elements.
std::vector<int64_t> contiguous_strides(const Shape& shape);
// The numpy broadcast of two shapes (dimensions aligned from the right; each pair equal or one
// of them 1). Error names both shapes.
Result<Shape> broadcast_shapes(const Shape& a, const Shape& b);
// Strides (in elements) for reading a contiguous tensor of shape `in` as if it had shape `out`:
// 0 on broadcast dimensions and on the leading dimensions `in` lacks.
// Precondition: `in` broadcasts to `out` (rank(in) <= rank(out), each dim equal or 1).
std::vector<int64_t> broadcast_strides(const Shape& in, const Shape& out);
// Normalises an axis in [-rank, rank) to [0, rank); error names the axis and the rank.
Result<int64_t> normalize_axis(int64_t axis, int64_t rank);

class Tensor {
 public:
  Tensor() = default;  // undefined dtype, no data
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;
  Tensor(Tensor&& other) noexcept;
  Tensor& operator=(Tensor&& other) noexcept;
  ~Tensor() = default;

  // A tensor that owns zero-filled memory (64-byte aligned). Errors for an undefined dtype, a
  // negative dimension or a size that overflows.
  static Result<Tensor> allocate(DType dtype, Shape shape);
  // Tensors that borrow `data`: it must hold element_count(shape) * dtype_size(dtype) bytes,
  // be aligned for the element type, and outlive the tensor. The const overload makes a
  // read-only tensor (mutable_raw() on it is a bug). Preconditions as for allocate.
  static Tensor borrow(DType dtype, Shape shape, void* data);
  static Tensor borrow(DType dtype, Shape shape, const void* data);
  // An owned tensor holding `values` (row-major). Error when the count does not match.
  template <typename T>
  static Result<Tensor> from_values(Shape shape, std::span<const T> values);
  template <typename T>
  static Result<Tensor> from_values(Shape shape, std::initializer_list<T> values) {
    return from_values<T>(std::move(shape), std::span<const T>(values.begin(), values.size()));
  }

  // A read-only borrowed view of the same bytes; valid while this tensor's data lives.
  Tensor view() const;
  // Borrowed views of the same bytes with another shape of the same element count; the
  // first is read-only, the second writable (precondition: this tensor is not read-only).
  Result<Tensor> reshaped(Shape shape) const;
  Result<Tensor> mutable_reshaped(Shape shape);
  // An owned deep copy.
  Result<Tensor> clone() const;

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t rank() const { return static_cast<int64_t>(shape_.size()); }
  int64_t dim(int64_t i) const { return shape_[static_cast<size_t>(i)]; }
  int64_t numel() const { return numel_; }
  size_t byte_size() const { return static_cast<size_t>(numel_) * dtype_size(dtype_); }
  bool owns_data() const { return owned_ != nullptr; }
  bool read_only() const { return read_only_; }

  const void* raw() const { return data_; }
  void* mutable_raw() {
    PS_CHECK(!read_only_);
    return data_;
  }
  // Typed access. Precondition: T is the C++ type of dtype() (checked).
  template <typename T>
  const T* data() const {
    PS_CHECK(dtype_of<T>() == dtype_);
    return static_cast<const T*>(data_);
  }
  template <typename T>
  T* mutable_data() {
    PS_CHECK(dtype_of<T>() == dtype_);
    return static_cast<T*>(mutable_raw());
  }

  // "float32[2,3]"
  std::string description() const;

 private:
  struct AlignedDelete {
    void operator()(std::byte* p) const;
  };

  DType dtype_ = DType::kUndefined;
  Shape shape_;
  int64_t numel_ = 0;
  std::unique_ptr<std::byte[], AlignedDelete> owned_;
  void* data_ = nullptr;
  bool read_only_ = false;
};

template <typename T>
Result<Tensor> Tensor::from_values(Shape shape, std::span<const T> values) {
  static_assert(dtype_of<T>() != DType::kUndefined, "not an element type");
  PS_ASSIGN_OR_RETURN(Tensor t, allocate(dtype_of<T>(), std::move(shape)));
  if (static_cast<int64_t>(values.size()) != t.numel()) {
    return invalid_argument("Tensor::from_values: ", values.size(), " values for shape ",
                            shape_string(t.shape()));
  }
  if (!values.empty()) std::memcpy(t.mutable_raw(), values.data(), t.byte_size());
  return t;
}

}  // namespace ps::models::cpu
