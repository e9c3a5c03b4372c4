// Elementwise operators with numpy broadcasting: arithmetic (Add, Sub, Mul, Div, Pow),
// comparisons (Equal, Less, LessOrEqual, Greater, GreaterOrEqual), logic (And, Or, Xor),
// Where, and the variadic Max, Min, Sum, Mean.
//
// Integer arithmetic wraps around (as numpy does) instead of overflowing; integer Div truncates
// toward zero (as C and ONNX Runtime do) and refuses division by zero.
#include <cmath>
#include <type_traits>

#include "models/cpu/dispatch.h"
#include "models/cpu/kernels.h"

namespace ps::models::cpu {

namespace {

// Calls y[j] = f(a[..], b[..]) over the broadcast of a and b to out_shape (y contiguous).
template <typename A, typename B, typename Y, typename F>
void binary_loop(const Shape& out_shape, const Tensor& a, const Tensor& b, Y* y, F f) {
  const A* pa0 = a.data<A>();
  const B* pb0 = b.data<B>();
  for_each_run<3>(
      out_shape,
      {broadcast_strides(a.shape(), out_shape), broadcast_strides(b.shape(), out_shape),
       contiguous_strides(out_shape)},
      {0, 0, 0},
      [&](const std::array<int64_t, 3>& off, const std::array<int64_t, 3>& run, int64_t count) {
        const A* pa = pa0 + off[0];
        const B* pb = pb0 + off[1];
        Y* py = y + off[2];
        if (run[0] == 1 && run[1] == 1) {
          for (int64_t i = 0; i < count; ++i) py[i] = f(pa[i], pb[i]);
        } else if (run[0] == 1 && run[1] == 0) {
          const B vb = *pb;
          for (int64_t i = 0; i < count; ++i) py[i] = f(pa[i], vb);
        } else if (run[0] == 0 && run[1] == 1) {
          const A va = *pa;
          for (int64_t i = 0; i < count; ++i) py[i] = f(va, pb[i]);
        } else {
          for (int64_t i = 0; i < count; ++i) py[i] = f(pa[i * run[0]], pb[i * run[1]]);
        }
      });
}

template <typename T>
using Wide = std::conditional_t<std::is_signed_v<T>, std::make_unsigned_t<T>, T>;

// Wrapping integer arithmetic (modular, like numpy); plain arithmetic for floats.
template <typename T>
T add(T a, T b) {
  if constexpr (kIsFloat<T>)
    return a + b;
  else
    return static_cast<T>(static_cast<Wide<T>>(a) + static_cast<Wide<T>>(b));
}
template <typename T>
T sub(T a, T b) {
  if constexpr (kIsFloat<T>)
    return a - b;
  else
    return static_cast<T>(static_cast<Wide<T>>(a) - static_cast<Wide<T>>(b));
}
template <typename T>
T mul(T a, T b) {
  if constexpr (kIsFloat<T>) {
    return a * b;
  } else {
    // uint8/int8 promote to int; multiply in the unsigned type of at least int's width.
    using U = std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned, Wide<T>>;
    return static_cast<T>(static_cast<U>(static_cast<U>(a) * static_cast<U>(b)));
  }
}
template <typename T>
T div(T a, T b) {
  if constexpr (kIsFloat<T>) {
    return a / b;
  } else {
    if constexpr (std::is_signed_v<T>) {
      if (b == T{-1}) return sub(T{0}, a);  // avoids INT_MIN / -1
    }
    return static_cast<T>(a / b);
  }
}

// Pow with the base's type. Integer base and non-negative integer exponent: exact (wrapping)
// repeated squaring; otherwise computed in double.
template <typename T, typename E>
T power(T base, E exponent) {
  if constexpr (!kIsFloat<T> && !kIsFloat<E>) {
    if (exponent >= 0) {
      T result = 1;
      T b = base;
      for (auto e = static_cast<uint64_t>(exponent); e != 0; e >>= 1) {
        if (e & 1) result = mul(result, b);
        b = mul(b, b);
      }
      return result;
    }
  }
  const double r = std::pow(static_cast<double>(base), static_cast<double>(exponent));
  if constexpr (kIsFloat<T>) {
    return static_cast<T>(r);
  } else {
    // Truncate toward zero, saturating (a negative exponent gives |r| <= 1 or inf for 0).
    if (std::isnan(r)) return T{0};
    if (r <= static_cast<double>(std::numeric_limits<T>::lowest()))
      return std::numeric_limits<T>::lowest();
    if (r >= static_cast<double>(std::numeric_limits<T>::max()))
      return std::numeric_limits<T>::max();
    return static_cast<T>(r);
  }
}

Status run_arithmetic(const OpContext& ctx, const Tensor& a, const Tensor& b,
                      const Shape& out_shape) {
  const std::string& op = ctx.op();
  if (a.dtype() != b.dtype()) {
    return invalid_argument("input dtypes differ: ", a.description(), " and ", b.description());
  }
  PS_ASSIGN_OR_RETURN(Tensor * y, ctx.output_checked(0, a.dtype(), out_shape));
  return dispatch(NumericTypes{}, a.dtype(), "input", [&](auto tag) -> Status {
    using T = typename decltype(tag)::type;
    T* out = y->mutable_data<T>();
    if (op == "Add") {
      binary_loop<T, T>(out_shape, a, b, out, add<T>);
    } else if (op == "Sub") {
      binary_loop<T, T>(out_shape, a, b, out, sub<T>);
    } else if (op == "Mul") {
      binary_loop<T, T>(out_shape, a, b, out, mul<T>);
    } else {
      if constexpr (!kIsFloat<T>) {
        const T* pb = b.data<T>();
        for (int64_t i = 0; i < b.numel(); ++i) {
          if (pb[i] == T{0}) return invalid_argument("integer division by zero");
        }
      }
      binary_loop<T, T>(out_shape, a, b, out, div<T>);
    }
    return Status::OK();
  });
}

Status run_pow(const OpContext& ctx, const Tensor& a, const Tensor& b, const Shape& out_shape) {
  PS_ASSIGN_OR_RETURN(Tensor * y, ctx.output_checked(0, a.dtype(), out_shape));
  return dispatch(Types<float, double, int64_t, int32_t>{}, a.dtype(), "base", [&](auto ta) {
    using T = typename decltype(ta)::type;
    return dispatch(NumericTypes{}, b.dtype(), "exponent", [&](auto tb) {
      using E = typename decltype(tb)::type;
      binary_loop<T, E>(out_shape, a, b, y->mutable_data<T>(), power<T, E>);
      return Status::OK();
    });
  });
}

Status run_compare(const OpContext& ctx, const Tensor& a, const Tensor& b, const Shape& out_shape) {
  const std::string& op = ctx.op();
  if (a.dtype() != b.dtype()) {
    return invalid_argument("input dtypes differ: ", a.description(), " and ", b.description());
  }
  PS_ASSIGN_OR_RETURN(Tensor * y, ctx.output_checked(0, DType::kBool, out_shape));
  bool* out = y->mutable_data<bool>();
  if (op == "And" || op == "Or" || op == "Xor") {
    if (a.dtype() != DType::kBool) {
      return unsupported("input dtype ", dtype_name(a.dtype()), " is not supported (bool only)");
    }
    if (op == "And")
      binary_loop<bool, bool>(out_shape, a, b, out, [](bool p, bool q) { return p && q; });
    if (op == "Or")
      binary_loop<bool, bool>(out_shape, a, b, out, [](bool p, bool q) { return p || q; });
    if (op == "Xor")
      binary_loop<bool, bool>(out_shape, a, b, out, [](bool p, bool q) { return p != q; });
    return Status::OK();
  }
  return dispatch(ComparableTypes{}, a.dtype(), "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (op == "Equal") binary_loop<T, T>(out_shape, a, b, out, [](T p, T q) { return p == q; });
    if (op == "Less") binary_loop<T, T>(out_shape, a, b, out, [](T p, T q) { return p < q; });
    if (op == "LessOrEqual")
      binary_loop<T, T>(out_shape, a, b, out, [](T p, T q) { return p <= q; });
    if (op == "Greater") binary_loop<T, T>(out_shape, a, b, out, [](T p, T q) { return p > q; });
    if (op == "GreaterOrEqual")
      binary_loop<T, T>(out_shape, a, b, out, [](T p, T q) { return p >= q; });
    return Status::OK();
  });
}

}  // namespace

Status run_binary(const OpContext& ctx) {
  PS_TRY(ctx.check_arity(2, 2, 1, 1));
  PS_TRY(ctx.check_attrs({}));
  const Tensor& a = *ctx.input(0);
  const Tensor& b = *ctx.input(1);
  PS_ASSIGN_OR_RETURN(const Shape out_shape, broadcast_shapes(a.shape(), b.shape()));
  const std::string& op = ctx.op();
  if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") {
    return run_arithmetic(ctx, a, b, out_shape);
  }
  if (op == "Pow") return run_pow(ctx, a, b, out_shape);
  return run_compare(ctx, a, b, out_shape);
}

Status run_where(const OpContext& ctx) {
  PS_TRY(ctx.check_arity(3, 3, 1, 1));
  PS_TRY(ctx.check_attrs({}));
  const Tensor& cond = *ctx.input(0);
  const Tensor& x = *ctx.input(1);
  const Tensor& yv = *ctx.input(2);
  if (cond.dtype() != DType::kBool) {
    return invalid_argument("condition must be bool, got ", cond.description());
  }
  if (x.dtype() != yv.dtype()) {
    return invalid_argument("X and Y dtypes differ: ", x.description(), " and ", yv.description());
  }
  PS_ASSIGN_OR_RETURN(const Shape xy, broadcast_shapes(x.shape(), yv.shape()));
  PS_ASSIGN_OR_RETURN(const Shape out_shape, broadcast_shapes(cond.shape(), xy));
  PS_ASSIGN_OR_RETURN(Tensor * out, ctx.output_checked(0, x.dtype(), out_shape));
  dispatch_by_size(x.dtype(), [&](auto tag) {
    using U = typename decltype(tag)::type;
    const bool* pc0 = cond.data<bool>();
    const U* px0 = static_cast<const U*>(x.raw());
    const U* py0 = static_cast<const U*>(yv.raw());
    U* po = static_cast<U*>(out->mutable_raw());
    for_each_run<4>(
        out_shape,
        {broadcast_strides(cond.shape(), out_shape), broadcast_strides(x.shape(), out_shape),
         broadcast_strides(yv.shape(), out_shape), contiguous_strides(out_shape)},
        {0, 0, 0, 0},
        [&](const std::array<int64_t, 4>& off, const std::array<int64_t, 4>& run, int64_t count) {
          for (int64_t i = 0; i < count; ++i) {
            po[off[3] + i] =
                pc0[off[0] + i * run[0]] ? px0[off[1] + i * run[1]] : py0[off[2] + i * run[2]];
          }
        });
  });
  return Status::OK();
}

Status run_variadic(const OpContext& ctx) {
  const std::string& op = ctx.op();
  PS_TRY(ctx.check_attrs({}));
  if (ctx.num_inputs() == 0) return invalid_argument("at least one input is required");
  PS_TRY(ctx.check_arity(ctx.num_inputs(), ctx.num_inputs(), 1, 1));
  const Tensor& first = *ctx.input(0);
  Shape out_shape = first.shape();
  for (size_t k = 1; k < ctx.num_inputs(); ++k) {
    if (ctx.input(k)->dtype() != first.dtype()) {
      return invalid_argument("input ", k, " is ", ctx.input(k)->description(), ", input 0 is ",
                              first.description());
    }
    PS_ASSIGN_OR_RETURN(out_shape, broadcast_shapes(out_shape, ctx.input(k)->shape()));
  }
  PS_ASSIGN_OR_RETURN(Tensor * y, ctx.output_checked(0, first.dtype(), out_shape));
  const std::vector<int64_t> out_strides = contiguous_strides(out_shape);
  const bool is_sum = op == "Sum" || op == "Mean";
  const bool is_max = op == "Max";

  return dispatch(NumericTypes{}, first.dtype(), "input", [&](auto tag) -> Status {
    using T = typename decltype(tag)::type;
    if (is_sum && !kIsFloat<T>) {
      return unsupported("input dtype ", dtype_name(first.dtype()),
                         " is not supported (float only)");
    }
    // Sum and Mean accumulate in double; Max and Min fold in T (NaN propagates).
    std::vector<double> acc(is_sum ? static_cast<size_t>(y->numel()) : 0, 0.0);
    T* out = y->mutable_data<T>();
    for (size_t k = 0; k < ctx.num_inputs(); ++k) {
      const Tensor& in = *ctx.input(k);
      const T* p = in.data<T>();
      for_each_run<2>(
          out_shape, {broadcast_strides(in.shape(), out_shape), out_strides}, {0, 0},
          [&](const std::array<int64_t, 2>& off, const std::array<int64_t, 2>& run, int64_t count) {
            for (int64_t i = 0; i < count; ++i) {
              const T v = p[off[0] + i * run[0]];
              const int64_t j = off[1] + i;
              if (is_sum) {
                acc[j] += static_cast<double>(v);
              } else if (k == 0) {
                out[j] = v;
              } else if constexpr (kIsFloat<T>) {
                if (std::isnan(v) || std::isnan(out[j])) {
                  out[j] = std::numeric_limits<T>::quiet_NaN();
                } else {
                  out[j] = is_max ? std::max(out[j], v) : std::min(out[j], v);
                }
              } else {
                out[j] = is_max ? std::max(out[j], v) : std::min(out[j], v);
              }
            }
          });
    }
    if (is_sum) {
      const double divisor = op == "Mean" ? static_cast<double>(ctx.num_inputs()) : 1.0;
      for (size_t j = 0; j < acc.size(); ++j) out[j] = static_cast<T>(acc[j] / divisor);
    }
    return Status::OK();
  });
}

}  // namespace ps::models::cpu
