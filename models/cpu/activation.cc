// Unary elementwise operators: activations (Relu, LeakyRelu, Gelu, Sigmoid, Tanh), math
// (Erf, Sqrt, Exp, Log, Reciprocal, Sin, Cos, Floor, Ceil), sign (Neg, Abs), Clip, and the
// predicates Not, IsNaN, IsInf. Float math is done in double and rounded once.
#include <cmath>
#include <limits>
#include <numbers>

#include "models/cpu/dispatch.h"
#include "models/cpu/kernels.h"

namespace ps::models::cpu {

namespace {

// y[i] = f(x[i]) computed in double for floating T.
template <typename T, typename F>
void map_float(const T* x, T* y, int64_t n, F f) {
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<T>(f(static_cast<double>(x[i])));
}

double gelu_erf(double x) { return 0.5 * x * (1.0 + std::erf(x / std::numbers::sqrt2)); }
double gelu_tanh(double x) {
  const double k = std::sqrt(2.0 / std::numbers::pi);
  return 0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x)));
}

// The float-only math ops as double -> double; nullptr when `op` is not one of them.
using MathFn = double (*)(double);
MathFn float_math(std::string_view op) {
  if (op == "Sqrt") return [](double x) { return std::sqrt(x); };
  if (op == "Exp") return [](double x) { return std::exp(x); };
  if (op == "Log") return [](double x) { return std::log(x); };
  if (op == "Erf") return [](double x) { return std::erf(x); };
  if (op == "Tanh") return [](double x) { return std::tanh(x); };
  if (op == "Sigmoid") return [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
  if (op == "Reciprocal") return [](double x) { return 1.0 / x; };
  if (op == "Sin") return [](double x) { return std::sin(x); };
  if (op == "Cos") return [](double x) { return std::cos(x); };
  if (op == "Floor") return [](double x) { return std::floor(x); };
  if (op == "Ceil") return [](double x) { return std::ceil(x); };
  return nullptr;
}

// Negation and absolute value that wrap instead of overflowing on the most negative integer.
template <typename T>
T negate(T x) {
  if constexpr (kIsFloat<T>) {
    return -x;
  } else {
    using U = std::make_unsigned_t<T>;
    return static_cast<T>(static_cast<U>(U{0} - static_cast<U>(x)));
  }
}

template <typename T>
Status run_sign_op(std::string_view op, const T* x, T* y, int64_t n) {
  if (op == "Neg") {
    for (int64_t i = 0; i < n; ++i) y[i] = negate(x[i]);
  } else if (op == "Abs") {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] < T{0} ? negate(x[i]) : x[i];
  } else {  // Relu; NaN stays NaN
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] < T{0} ? T{0} : x[i];
  }
  return Status::OK();
}

Status run_clip(const OpContext& ctx, const Tensor& x, Tensor& y) {
  PS_TRY(ctx.check_attrs({"min", "max"}));
  const Tensor* lo_t = ctx.input(1);
  const Tensor* hi_t = ctx.input(2);
  for (const Tensor* b : {lo_t, hi_t}) {
    if (b != nullptr && (b->dtype() != x.dtype() || b->numel() != 1)) {
      return invalid_argument("min/max must be one-element tensors of the input's dtype, got ",
                              b->description(), " for input ", x.description());
    }
  }
  PS_ASSIGN_OR_RETURN(const float lo_attr, ctx.attr_float("min", -INFINITY));
  PS_ASSIGN_OR_RETURN(const float hi_attr, ctx.attr_float("max", INFINITY));
  return dispatch(NumericTypes{}, x.dtype(), "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T lo = std::numeric_limits<T>::lowest();
    T hi = std::numeric_limits<T>::max();
    if constexpr (kIsFloat<T>) {
      lo = static_cast<T>(lo_attr);
      hi = static_cast<T>(hi_attr);
    }
    if (lo_t != nullptr) lo = lo_t->data<T>()[0];
    if (hi_t != nullptr) hi = hi_t->data<T>()[0];
    const T* in = x.data<T>();
    T* out = y.mutable_data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      T v = in[i];
      if (v < lo) v = lo;
      if (v > hi) v = hi;
      out[i] = v;
    }
    return Status::OK();
  });
}

Status run_predicate(const OpContext& ctx, const Tensor& x, Tensor& y) {
  const std::string& op = ctx.op();
  bool* out = y.mutable_data<bool>();
  const int64_t n = x.numel();
  if (op == "Not") {
    if (x.dtype() != DType::kBool) {
      return unsupported("input dtype ", dtype_name(x.dtype()), " is not supported (bool only)");
    }
    const bool* in = x.data<bool>();
    for (int64_t i = 0; i < n; ++i) out[i] = !in[i];
    return Status::OK();
  }
  PS_ASSIGN_OR_RETURN(const int64_t detect_negative, ctx.attr_int("detect_negative", 1));
  PS_ASSIGN_OR_RETURN(const int64_t detect_positive, ctx.attr_int("detect_positive", 1));
  return dispatch(FloatTypes{}, x.dtype(), "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* in = x.data<T>();
    if (op == "IsNaN") {
      for (int64_t i = 0; i < n; ++i) out[i] = std::isnan(in[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) {
        out[i] = std::isinf(in[i]) && (in[i] > 0 ? detect_positive != 0 : detect_negative != 0);
      }
    }
    return Status::OK();
  });
}

}  // namespace

Status run_unary(const OpContext& ctx) {
  const std::string& op = ctx.op();
  const bool is_clip = op == "Clip";
  PS_TRY(ctx.check_arity(1, is_clip ? 3 : 1, 1, 1));
  const Tensor& x = *ctx.input(0);

  if (op == "Not" || op == "IsNaN" || op == "IsInf") {
    PS_TRY(op == "IsInf" ? ctx.check_attrs({"detect_negative", "detect_positive"})
                         : ctx.check_attrs({}));
    PS_ASSIGN_OR_RETURN(Tensor * y, ctx.output_checked(0, DType::kBool, x.shape()));
    return run_predicate(ctx, x, *y);
  }
  PS_ASSIGN_OR_RETURN(Tensor * y, ctx.output_checked(0, x.dtype(), x.shape()));
  if (is_clip) return run_clip(ctx, x, *y);
  const int64_t n = x.numel();

  if (op == "LeakyRelu") {
    PS_TRY(ctx.check_attrs({"alpha"}));
    PS_ASSIGN_OR_RETURN(const float alpha, ctx.attr_float("alpha", 0.01f));
    return dispatch(FloatTypes{}, x.dtype(), "input", [&](auto tag) {
      using T = typename decltype(tag)::type;
      const double a = alpha;
      map_float(x.data<T>(), y->mutable_data<T>(), n, [a](double v) { return v < 0 ? a * v : v; });
      return Status::OK();
    });
  }
  if (op == "Gelu") {
    PS_TRY(ctx.check_attrs({"approximate"}));
    PS_ASSIGN_OR_RETURN(const std::string approximate, ctx.attr_string("approximate", "none"));
    if (approximate != "none" && approximate != "tanh") {
      return unsupported("approximate='", approximate, "' (expected 'none' or 'tanh')");
    }
    const MathFn f = approximate == "none" ? gelu_erf : gelu_tanh;
    return dispatch(FloatTypes{}, x.dtype(), "input", [&](auto tag) {
      using T = typename decltype(tag)::type;
      map_float(x.data<T>(), y->mutable_data<T>(), n, f);
      return Status::OK();
    });
  }
  PS_TRY(ctx.check_attrs({}));
  if (const MathFn f = float_math(op)) {
    return dispatch(FloatTypes{}, x.dtype(), "input", [&](auto tag) {
      using T = typename decltype(tag)::type;
      map_float(x.data<T>(), y->mutable_data<T>(), n, f);
      return Status::OK();
    });
  }
  if (op == "Neg" || op == "Abs" || op == "Relu") {
    return dispatch(SignedTypes{}, x.dtype(), "input", [&](auto tag) {
      using T = typename decltype(tag)::type;
      return run_sign_op<T>(op, x.data<T>(), y->mutable_data<T>(), n);
    });
  }
  return internal_error("no unary implementation");
}

}  // namespace ps::models::cpu
