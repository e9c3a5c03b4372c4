#include "models/cpu/tensor.h"

#include <limits>
#include <new>

namespace ps::models::cpu {

namespace {
constexpr std::align_val_t kAlignment{64};
}  // namespace

std::vector<int64_t> contiguous_strides(const Shape& shape) {
  std::vector<int64_t> strides(shape.size());
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

Result<Shape> broadcast_shapes(const Shape& a, const Shape& b) {
  BroadcastMismatch why;
  std::optional<Shape> out = ::ps::broadcast_shapes(a, b, &why);
  if (!out) {
    return invalid_argument("shapes ", shape_string(a), " and ", shape_string(b),
                            " do not broadcast (dimension ", why.dimension, ": ", why.a, " vs ",
                            why.b, ")");
  }
  return *std::move(out);
}

std::vector<int64_t> broadcast_strides(const Shape& in, const Shape& out) {
  std::vector<int64_t> strides(out.size(), 0);
  const std::vector<int64_t> in_strides = contiguous_strides(in);
  const size_t lead = out.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i) {
    strides[lead + i] = in[i] == 1 ? 0 : in_strides[i];
  }
  return strides;
}

Result<int64_t> normalize_axis(int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= rank) {
    return invalid_argument("axis ", axis, " is out of range for rank ", rank);
  }
  return axis < 0 ? axis + rank : axis;
}

void Tensor::AlignedDelete::operator()(std::byte* p) const { ::operator delete[](p, kAlignment); }

Tensor::Tensor(Tensor&& other) noexcept
    : dtype_(other.dtype_),
      shape_(std::move(other.shape_)),
      numel_(other.numel_),
      owned_(std::move(other.owned_)),
      data_(other.data_),
      read_only_(other.read_only_) {
  other.dtype_ = DType::kUndefined;
  other.shape_.clear();
  other.numel_ = 0;
  other.data_ = nullptr;
  other.read_only_ = false;
}

Tensor& Tensor::operator=(Tensor&& other) noexcept {
  if (this != &other) {
    dtype_ = other.dtype_;
    shape_ = std::move(other.shape_);
    numel_ = other.numel_;
    owned_ = std::move(other.owned_);
    data_ = other.data_;
    read_only_ = other.read_only_;
    other.dtype_ = DType::kUndefined;
    other.shape_.clear();
    other.numel_ = 0;
    other.data_ = nullptr;
    other.read_only_ = false;
  }
  return *this;
}

Result<Tensor> Tensor::allocate(DType dtype, Shape shape) {
  if (dtype_size(dtype) == 0) return invalid_argument("Tensor::allocate: undefined dtype");
  int64_t numel = 1;
  const int64_t limit = std::numeric_limits<int64_t>::max() / 8;
  for (int64_t d : shape) {
    if (d < 0) {
      return invalid_argument("Tensor::allocate: negative dimension in ", shape_string(shape));
    }
    if (d != 0 && numel > limit / d) {
      return invalid_argument("Tensor::allocate: shape ", shape_string(shape), " is too large");
    }
    numel *= d;
  }
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.numel_ = numel;
  const size_t bytes = t.byte_size();
  if (bytes > 0) {
    auto* p = static_cast<std::byte*>(::operator new[](bytes, kAlignment, std::nothrow));
    if (p == nullptr) {
      return out_of_memory("Tensor::allocate: ", bytes, " bytes for ", t.description());
    }
    std::memset(p, 0, bytes);
    t.owned_.reset(p);
    t.data_ = p;
  }
  return t;
}

Tensor Tensor::borrow(DType dtype, Shape shape, void* data) {
  PS_CHECK(dtype_size(dtype) != 0);
  for (int64_t d : shape) PS_CHECK(d >= 0);
  Tensor t;
  t.dtype_ = dtype;
  t.numel_ = element_count(shape);
  t.shape_ = std::move(shape);
  t.data_ = data;
  return t;
}

Tensor Tensor::borrow(DType dtype, Shape shape, const void* data) {
  Tensor t = borrow(dtype, std::move(shape), const_cast<void*>(data));
  t.read_only_ = true;
  return t;
}

Tensor Tensor::view() const { return borrow(dtype_, shape_, static_cast<const void*>(data_)); }

namespace {
Status check_reshape(const Tensor& t, const Shape& shape) {
  for (int64_t d : shape) {
    if (d < 0) {
      return invalid_argument("cannot reshape ", t.description(), " to ", shape_string(shape));
    }
  }
  if (element_count(shape) != t.numel()) {
    return invalid_argument("cannot reshape ", t.description(), " to ", shape_string(shape),
                            ": element counts differ");
  }
  return Status::OK();
}
}  // namespace

Result<Tensor> Tensor::reshaped(Shape shape) const {
  PS_TRY(check_reshape(*this, shape));
  return borrow(dtype_, std::move(shape), static_cast<const void*>(data_));
}

Result<Tensor> Tensor::mutable_reshaped(Shape shape) {
  PS_TRY(check_reshape(*this, shape));
  return borrow(dtype_, std::move(shape), mutable_raw());
}

Result<Tensor> Tensor::clone() const {
  PS_ASSIGN_OR_RETURN(Tensor t, allocate(dtype_, shape_));
  if (byte_size() > 0) std::memcpy(t.mutable_raw(), data_, byte_size());
  return t;
}

std::string Tensor::description() const {
  return std::string(dtype_name(dtype_)) + shape_string(shape_);
}

}  // namespace ps::models::cpu
