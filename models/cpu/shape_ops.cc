// Operators that change only the shape (Reshape, Flatten, Squeeze, Unsqueeze, Identity,
// Dropout in inference), that describe a shape (Shape, Size), that make tensors from shapes
// (ConstantOfShape, Range), and Cast.
#include <cmath>
#include <cstring>
#include <limits>

#include "models/cpu/dispatch.h"
#include "models/cpu/kernels.h"

namespace ps::models::cpu {

namespace {

Result<Shape> reshape_target(const OpContext& ctx, const Tensor& x) {
  PS_TRY(ctx.check_arity(2, 2, 1, 1));
  PS_TRY(ctx.check_attrs({"allowzero"}));
  PS_ASSIGN_OR_RETURN(const int64_t allowzero, ctx.attr_int("allowzero", 0));
  PS_ASSIGN_OR_RETURN(Shape shape, read_int_values(*ctx.input(1), "shape"));
  int64_t infer_at = -1;
  int64_t known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 0 && allowzero == 0) {
      if (static_cast<int64_t>(i) >= x.rank()) {
        return invalid_argument("shape ", shape_string(shape), " copies dimension ", i,
                                " (0) that X ", x.description(), " lacks");
      }
      shape[i] = x.dim(static_cast<int64_t>(i));
    }
    if (shape[i] == -1) {
      if (infer_at >= 0) return invalid_argument("shape ", shape_string(shape), " has two -1");
      infer_at = static_cast<int64_t>(i);
    } else if (shape[i] < 0) {
      return invalid_argument("shape ", shape_string(shape), " has a negative dimension");
    } else {
      known *= shape[i];
    }
  }
  if (infer_at >= 0) {
    if (known == 0 || x.numel() % known != 0) {
      return invalid_argument("cannot infer the -1 of shape ", shape_string(shape), " for X ",
                              x.description());
    }
    shape[infer_at] = x.numel() / known;
  }
  if (element_count(shape) != x.numel()) {
    return invalid_argument("shape ", shape_string(shape), " does not hold the ", x.numel(),
                            " elements of X ", x.description());
  }
  return shape;
}

// Axes of Squeeze/Unsqueeze: the `axes` attribute (before opset 13) or input 1.
Result<std::vector<int64_t>> squeeze_axes(const OpContext& ctx) {
  PS_ASSIGN_OR_RETURN(std::vector<int64_t> axes, ctx.attr_ints("axes"));
  if (ctx.input(1) != nullptr) {
    if (ctx.has_attr("axes")) return invalid_argument("axes given both as attribute and input");
    PS_ASSIGN_OR_RETURN(axes, read_int_values(*ctx.input(1), "axes"));
  }
  return axes;
}

Result<Shape> squeeze_target(const OpContext& ctx, const Tensor& x) {
  PS_TRY(ctx.check_arity(1, 2, 1, 1));
  PS_TRY(ctx.check_attrs({"axes"}));
  PS_ASSIGN_OR_RETURN(const std::vector<int64_t> axes, squeeze_axes(ctx));
  std::vector<bool> drop(x.shape().size(), axes.empty());
  if (axes.empty()) {
    for (int64_t d = 0; d < x.rank(); ++d) drop[d] = x.dim(d) == 1;
  }
  for (int64_t axis : axes) {
    PS_ASSIGN_OR_RETURN(const int64_t a, normalize_axis(axis, x.rank()));
    if (x.dim(a) != 1) {
      return invalid_argument("axis ", axis, " of X ", x.description(), " is not 1");
    }
    drop[a] = true;
  }
  Shape out;
  for (int64_t d = 0; d < x.rank(); ++d) {
    if (!drop[d]) out.push_back(x.dim(d));
  }
  return out;
}

Result<Shape> unsqueeze_target(const OpContext& ctx, const Tensor& x) {
  PS_TRY(ctx.check_arity(1, 2, 1, 1));
  PS_TRY(ctx.check_attrs({"axes"}));
  PS_ASSIGN_OR_RETURN(const std::vector<int64_t> axes, squeeze_axes(ctx));
  const int64_t rank = x.rank() + static_cast<int64_t>(axes.size());
  std::vector<bool> inserted(static_cast<size_t>(rank), false);
  for (int64_t axis : axes) {
    PS_ASSIGN_OR_RETURN(const int64_t a, normalize_axis(axis, rank));
    if (inserted[a]) return invalid_argument("axis ", axis, " is repeated");
    inserted[a] = true;
  }
  Shape out;
  int64_t next = 0;
  for (int64_t d = 0; d < rank; ++d) out.push_back(inserted[d] ? 1 : x.dim(next++));
  return out;
}

Result<Shape> flatten_target(const OpContext& ctx, const Tensor& x) {
  PS_TRY(ctx.check_arity(1, 1, 1, 1));
  PS_TRY(ctx.check_attrs({"axis"}));
  PS_ASSIGN_OR_RETURN(int64_t axis, ctx.attr_int("axis", 1));
  if (axis < -x.rank() || axis > x.rank()) {
    return invalid_argument("axis ", axis, " is out of range for X ", x.description());
  }
  if (axis < 0) axis += x.rank();
  int64_t outer = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x.dim(d);
  return Shape{outer, outer == 0 ? 0 : x.numel() / outer};
}

// Dropout in inference: identity (and an all-true mask). Training with a non-zero ratio is
// random and not implemented.
Status check_dropout(const OpContext& ctx, const Tensor& x) {
  PS_TRY(ctx.check_arity(1, 3, 1, 2));
  PS_TRY(ctx.check_attrs({"seed", "ratio", "is_test"}));
  PS_ASSIGN_OR_RETURN(double ratio, ctx.attr_float("ratio", 0.5f));
  if (ctx.input(1) != nullptr) {
    PS_ASSIGN_OR_RETURN(ratio, read_scalar(*ctx.input(1), "ratio"));
  }
  bool training = false;
  if (const Tensor* t = ctx.input(2)) {
    if (t->dtype() != DType::kBool || t->numel() != 1) {
      return invalid_argument("training_mode must be a bool scalar, got ", t->description());
    }
    training = t->data<bool>()[0];
  }
  if (training && ratio != 0.0) {
    return unsupported("training mode with ratio ", ratio, " (random; inference only)");
  }
  PS_ASSIGN_OR_RETURN(Tensor * mask, ctx.optional_output_checked(1, DType::kBool, x.shape()));
  if (mask) std::fill_n(mask->mutable_data<bool>(), mask->numel(), true);
  return Status::OK();
}

// Double to float rounding toward an odd last bit when inexact, so that a second rounding
// (float to float16) gives the correctly rounded result of the double.
float to_float_round_odd(double d) {
  float f = static_cast<float>(d);
  if (!std::isfinite(d) || static_cast<double>(f) == d) return f;
  if (std::fabs(static_cast<double>(f)) > std::fabs(d)) f = std::nextafter(f, 0.0f);
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  bits |= 1u;
  std::memcpy(&f, &bits, 4);
  return f;
}

template <typename D, typename S>
D convert(S v) {
  if constexpr (std::is_same_v<S, Float16>) {
    return convert<D>(float16_to_float(v.bits));
  } else if constexpr (std::is_same_v<S, BFloat16>) {
    return convert<D>(bfloat16_to_float(v.bits));
  } else if constexpr (std::is_same_v<D, Float16>) {
    return Float16{float_to_float16(std::is_same_v<S, double> ? to_float_round_odd(v)
                                                              : static_cast<float>(v))};
  } else if constexpr (std::is_same_v<D, BFloat16>) {
    return BFloat16{float_to_bfloat16(std::is_same_v<S, double> ? to_float_round_odd(v)
                                                                : static_cast<float>(v))};
  } else if constexpr (std::is_same_v<D, bool>) {
    return v != S{0};
  } else if constexpr (std::is_integral_v<D> && kIsFloat<S>) {
    // Out of range is undefined in ONNX; we saturate (NaN becomes 0) instead of invoking UB.
    if (std::isnan(v)) return D{0};
    if (v <= static_cast<S>(std::numeric_limits<D>::lowest()))
      return std::numeric_limits<D>::lowest();
    if (v >= static_cast<S>(std::numeric_limits<D>::max())) return std::numeric_limits<D>::max();
    return static_cast<D>(v);
  } else {
    return static_cast<D>(v);  // integer narrowing wraps (C++20), widening and float exact
  }
}

Status copy_if_distinct(const Tensor& x, Tensor& y) {
  if (y.raw() != x.raw() && x.byte_size() > 0) std::memcpy(y.mutable_raw(), x.raw(), x.byte_size());
  return Status::OK();
}

}  // namespace

Status run_reshape_like(const OpContext& ctx) {
  const std::string& op = ctx.op();
  PS_ASSIGN_OR_RETURN(const Tensor* x, ctx.required_input(0, "data"));
  Shape out_shape = x->shape();
  if (op == "Reshape") {
    PS_ASSIGN_OR_RETURN(out_shape, reshape_target(ctx, *x));
  } else if (op == "Flatten") {
    PS_ASSIGN_OR_RETURN(out_shape, flatten_target(ctx, *x));
  } else if (op == "Squeeze") {
    PS_ASSIGN_OR_RETURN(out_shape, squeeze_target(ctx, *x));
  } else if (op == "Unsqueeze") {
    PS_ASSIGN_OR_RETURN(out_shape, unsqueeze_target(ctx, *x));
  } else if (op == "Dropout") {
    PS_TRY(check_dropout(ctx, *x));
  } else {  // Identity
    PS_TRY(ctx.check_arity(1, 1, 1, 1));
    PS_TRY(ctx.check_attrs({}));
  }
  PS_ASSIGN_OR_RETURN(Tensor * y, ctx.output_checked(0, x->dtype(), out_shape));
  return copy_if_distinct(*x, *y);
}

Status run_shape(const OpContext& ctx) {
  PS_TRY(ctx.check_arity(1, 1, 1, 1));
  const Tensor& x = *ctx.input(0);
  if (ctx.op() == "Size") {
    PS_TRY(ctx.check_attrs({}));
    PS_ASSIGN_OR_RETURN(Tensor * y, ctx.output_checked(0, DType::kInt64, Shape{}));
    y->mutable_data<int64_t>()[0] = x.numel();
    return Status::OK();
  }
  PS_TRY(ctx.check_attrs({"start", "end"}));
  PS_ASSIGN_OR_RETURN(int64_t start, ctx.attr_int("start", 0));
  PS_ASSIGN_OR_RETURN(int64_t end, ctx.attr_int("end", x.rank()));
  const int64_t r = x.rank();
  if (start < 0) start += r;
  if (end < 0) end += r;
  start = std::clamp<int64_t>(start, 0, r);
  end = std::clamp<int64_t>(end, 0, r);
  const int64_t n = std::max<int64_t>(end - start, 0);
  PS_ASSIGN_OR_RETURN(Tensor * y, ctx.output_checked(0, DType::kInt64, Shape{n}));
  for (int64_t i = 0; i < n; ++i) y->mutable_data<int64_t>()[i] = x.dim(start + i);
  return Status::OK();
}

Status run_constant_of_shape(const OpContext& ctx) {
  PS_TRY(ctx.check_arity(1, 1, 1, 1));
  PS_TRY(ctx.check_attrs({"value"}));
  PS_ASSIGN_OR_RETURN(const Shape shape, read_int_values(*ctx.input(0), "shape"));
  if (ctx.input(0)->rank() != 1) {
    return invalid_argument("shape must be 1-D, got ", ctx.input(0)->description());
  }
  for (int64_t d : shape) {
    if (d < 0) return invalid_argument("shape ", shape_string(shape), " has a negative dimension");
  }
  Tensor* y = ctx.output(0);
  if (y == nullptr) return invalid_argument("output 0 is missing");
  const bool has_value = ctx.has_attr("value");
  const Result<int64_t> int_value = ctx.attr_int("value", 0);
  const bool value_is_int = has_value && int_value.ok();
  DType dtype = y->dtype();
  if (ctx.allocates_outputs() && dtype == DType::kUndefined) {
    dtype = value_is_int ? DType::kInt64 : DType::kFloat32;
  }
  const int64_t ivalue = value_is_int ? *int_value : 0;
  float fvalue = 0;
  if (has_value && !value_is_int) {
    PS_ASSIGN_OR_RETURN(fvalue, ctx.attr_float("value", 0.0f));
  }
  if (!has_value && dtype != DType::kFloat32) {
    return invalid_argument("without a value the output must be float32, got ", dtype_name(dtype),
                            shape_string(y->shape()));
  }
  if (has_value && is_floating(dtype) == value_is_int) {
    return invalid_argument("value is ", value_is_int ? "an int" : "a float", " but the output is ",
                            dtype_name(dtype), shape_string(y->shape()));
  }
  PS_TRY(ctx.output_checked(0, dtype, shape).status());
  return dispatch(AllTypes{}, dtype, "output", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T v = value_is_int ? convert<T>(ivalue) : convert<T>(fvalue);
    std::fill_n(y->mutable_data<T>(), y->numel(), v);
    return Status::OK();
  });
}

Status run_range(const OpContext& ctx) {
  PS_TRY(ctx.check_arity(3, 3, 1, 1));
  PS_TRY(ctx.check_attrs({}));
  const Tensor& start_t = *ctx.input(0);
  for (size_t k = 1; k < 3; ++k) {
    if (ctx.input(k)->dtype() != start_t.dtype()) {
      return invalid_argument("start, limit and delta must have one dtype, got ",
                              start_t.description(), " and ", ctx.input(k)->description());
    }
  }
  PS_ASSIGN_OR_RETURN(const double start, read_scalar(start_t, "start"));
  PS_ASSIGN_OR_RETURN(const double limit, read_scalar(*ctx.input(1), "limit"));
  PS_ASSIGN_OR_RETURN(const double delta, read_scalar(*ctx.input(2), "delta"));
  if (delta == 0) return invalid_argument("delta is 0");
  const double count = std::ceil((limit - start) / delta);
  if (!(count < 1e12)) return invalid_argument("range of ", count, " elements is too long");
  const int64_t n = std::max<int64_t>(static_cast<int64_t>(count), 0);
  PS_ASSIGN_OR_RETURN(Tensor * y, ctx.output_checked(0, start_t.dtype(), Shape{n}));
  return dispatch(Types<float, double, int64_t, int32_t>{}, start_t.dtype(), "input",
                  [&](auto tag) {
                    using T = typename decltype(tag)::type;
                    T* out = y->mutable_data<T>();
                    if constexpr (kIsFloat<T>) {
                      for (int64_t i = 0; i < n; ++i)
                        out[i] = static_cast<T>(start + static_cast<double>(i) * delta);
                    } else {
                      const T s = start_t.data<T>()[0];
                      const T d = ctx.input(2)->data<T>()[0];
                      for (int64_t i = 0; i < n; ++i)
                        out[i] = static_cast<T>(s + static_cast<T>(i) * d);
                    }
                    return Status::OK();
                  });
}

Status run_cast(const OpContext& ctx) {
  PS_TRY(ctx.check_arity(1, 1, 1, 1));
  PS_TRY(ctx.check_attrs({"to"}));
  const Tensor& x = *ctx.input(0);
  PS_TRY(ctx.require_attrs({"to"}));
  PS_ASSIGN_OR_RETURN(const int64_t to, ctx.attr_int("to", 0));
  PS_ASSIGN_OR_RETURN(const DType target, dtype_from_onnx(to));
  PS_ASSIGN_OR_RETURN(Tensor * y, ctx.output_checked(0, target, x.shape()));
  return dispatch(AllTypes{}, x.dtype(), "input", [&](auto src_tag) {
    using S = typename decltype(src_tag)::type;
    return dispatch(AllTypes{}, target, "output", [&](auto dst_tag) {
      using D = typename decltype(dst_tag)::type;
      const S* in = x.data<S>();
      D* out = y->mutable_data<D>();
      for (int64_t i = 0; i < x.numel(); ++i) out[i] = convert<D>(in[i]);
      return Status::OK();
    });
  });
}

}  // namespace ps::models::cpu
