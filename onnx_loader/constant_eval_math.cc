// The constant evaluator's arithmetic: elementwise ops, comparisons, Cast, Clip, Range and
// reductions. Values are widened to double (floating-point inputs) or int64 (integers and
// bool), computed, and narrowed to the output dtype. Float32 +-*/ through double and back
// round exactly like float32 arithmetic.
#include <cmath>
#include <limits>
#include <map>

#include "onnx_loader/constant_eval_internal.h"
#include "onnx_loader/tensor_data.h"

namespace ps::onnx_loader::eval {
namespace {

// Float to integer without undefined behaviour: NaN gives 0, out-of-range values saturate.
template <typename T>
T saturate(double v) {
  if (std::isnan(v)) return 0;
  if (v <= static_cast<double>(std::numeric_limits<T>::lowest())) {
    return std::numeric_limits<T>::lowest();
  }
  if (v >= static_cast<double>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
  return static_cast<T>(v);
}

template <typename T, typename U>
void widen(const TensorData& t, std::vector<U>& out) {
  auto in = t.as<T>();
  out.assign(in.begin(), in.end());
}

// Integer and bool elements widened to U (bool as 0/1); false, and nothing added, for the
// floating dtypes.
template <typename U>
bool widen_integral(const TensorData& t, std::vector<U>& out) {
  switch (t.dtype) {
    case DType::kInt64:
      widen<int64_t>(t, out);
      return true;
    case DType::kInt32:
      widen<int32_t>(t, out);
      return true;
    case DType::kInt8:
      widen<int8_t>(t, out);
      return true;
    case DType::kUInt8:
      widen<uint8_t>(t, out);
      return true;
    case DType::kBool:
      for (uint8_t b : t.as<uint8_t>()) out.push_back(b != 0);
      return true;
    default:
      return false;
  }
}

std::vector<double> to_f64(const TensorData& t) {
  std::vector<double> out;
  if (widen_integral(t, out)) return out;
  switch (t.dtype) {
    case DType::kFloat32:
      widen<float>(t, out);
      break;
    case DType::kFloat64:
      widen<double>(t, out);
      break;
    case DType::kFloat16:
      for (uint16_t h : t.as<uint16_t>()) out.push_back(float16_to_float(h));
      break;
    case DType::kBFloat16:
      for (uint16_t h : t.as<uint16_t>()) out.push_back(bfloat16_to_float(h));
      break;
    default:
      break;
  }
  return out;
}

// Precondition: an integer or bool tensor.
std::vector<int64_t> to_i64(const TensorData& t) {
  std::vector<int64_t> out;
  widen_integral(t, out);
  return out;
}

template <typename T, typename U>
void narrow_to(const std::vector<U>& in, TensorData& out) {
  auto dst = out.as_mutable<T>();
  for (size_t i = 0; i < in.size(); ++i) {
    if constexpr (std::is_integral_v<T> && std::is_floating_point_v<U>) {
      dst[i] = saturate<T>(in[i]);
    } else {
      dst[i] = static_cast<T>(in[i]);  // integers wrap (two's complement)
    }
  }
}

// Writes `in` into `out` (already sized) converting to out.dtype.
template <typename U>
void narrow(const std::vector<U>& in, TensorData& out) {
  switch (out.dtype) {
    case DType::kFloat32:
      narrow_to<float>(in, out);
      break;
    case DType::kFloat64:
      narrow_to<double>(in, out);
      break;
    case DType::kInt64:
      narrow_to<int64_t>(in, out);
      break;
    case DType::kInt32:
      narrow_to<int32_t>(in, out);
      break;
    case DType::kInt8:
      narrow_to<int8_t>(in, out);
      break;
    case DType::kUInt8:
      narrow_to<uint8_t>(in, out);
      break;
    case DType::kBool: {
      auto dst = out.as_mutable<uint8_t>();
      for (size_t i = 0; i < in.size(); ++i) dst[i] = in[i] != 0;
      break;
    }
    case DType::kFloat16: {
      auto dst = out.as_mutable<uint16_t>();
      for (size_t i = 0; i < in.size(); ++i) dst[i] = float_to_float16(static_cast<float>(in[i]));
      break;
    }
    case DType::kBFloat16: {
      auto dst = out.as_mutable<uint16_t>();
      for (size_t i = 0; i < in.size(); ++i) dst[i] = float_to_bfloat16(static_cast<float>(in[i]));
      break;
    }
    case DType::kUndefined:
      break;
  }
}

bool integral(DType dtype) { return is_integer_dtype(dtype) || dtype == DType::kBool; }

// --- Unary ------------------------------------------------------------------------------------

double unary_f64(std::string_view op, double x, const Node& node) {
  if (op == "Abs") return std::fabs(x);
  if (op == "Neg") return -x;
  if (op == "Relu") return x > 0 ? x : 0.0;
  if (op == "Sigmoid") return 1.0 / (1.0 + std::exp(-x));
  if (op == "Tanh") return std::tanh(x);
  if (op == "Erf") return std::erf(x);
  if (op == "Sqrt") return std::sqrt(x);
  if (op == "Exp") return std::exp(x);
  if (op == "Log") return std::log(x);
  if (op == "Reciprocal") return 1.0 / x;
  if (op == "Floor") return std::floor(x);
  if (op == "Ceil") return std::ceil(x);
  if (op == "IsNaN") return std::isnan(x);
  if (op == "IsInf") {
    return std::isinf(x) && ((x > 0 && node.attr_int("detect_positive", 1) != 0) ||
                             (x < 0 && node.attr_int("detect_negative", 1) != 0));
  }
  return x;  // Not on a bool input is handled by unary_i64
}

int64_t unary_i64(std::string_view op, int64_t x) {
  const uint64_t u = static_cast<uint64_t>(x);
  if (op == "Abs") return x < 0 ? static_cast<int64_t>(0 - u) : x;
  if (op == "Neg") return static_cast<int64_t>(0 - u);
  if (op == "Relu") return x > 0 ? x : 0;
  if (op == "Not") return x == 0;
  return x;
}

Result<Outputs> unary(const OpContext& ctx, std::span<const OutputType> types) {
  const TensorData& in = value(ctx, 0);
  TensorData out = make_output(types[0]);
  const std::string& op = ctx.node().op;
  if (integral(in.dtype)) {
    std::vector<int64_t> v = to_i64(in);
    for (int64_t& x : v) x = unary_i64(op, x);
    narrow(v, out);
  } else {
    std::vector<double> v = to_f64(in);
    for (double& x : v) x = unary_f64(op, x, ctx.node());
    narrow(v, out);
  }
  return Outputs{std::move(out)};
}

// --- Binary ------------------------------------------------------------------------------------

using BinaryF64 = double (*)(double, double);

// Resolved once per node, not per element.
BinaryF64 binary_f64(std::string_view op) {
  static const std::map<std::string_view, BinaryF64> kTable = {
      {"Add", [](double a, double b) { return a + b; }},
      {"Sub", [](double a, double b) { return a - b; }},
      {"Mul", [](double a, double b) { return a * b; }},
      {"Div", [](double a, double b) { return a / b; }},
      {"Pow", [](double a, double b) { return std::pow(a, b); }},
      {"Equal", [](double a, double b) { return a == b ? 1.0 : 0.0; }},
      {"Less", [](double a, double b) { return a < b ? 1.0 : 0.0; }},
      {"Greater", [](double a, double b) { return a > b ? 1.0 : 0.0; }},
      {"LessOrEqual", [](double a, double b) { return a <= b ? 1.0 : 0.0; }},
      {"GreaterOrEqual", [](double a, double b) { return a >= b ? 1.0 : 0.0; }},
  };
  auto it = kTable.find(op);
  return it == kTable.end() ? nullptr : it->second;
}

// Integer arithmetic wraps like the hardware instead of being undefined.
Result<int64_t> binary_i64(const OpContext& ctx, int64_t a, int64_t b) {
  const std::string& op = ctx.node().op;
  const uint64_t ua = static_cast<uint64_t>(a), ub = static_cast<uint64_t>(b);
  if (op == "Add") return static_cast<int64_t>(ua + ub);
  if (op == "Sub") return static_cast<int64_t>(ua - ub);
  if (op == "Mul") return static_cast<int64_t>(ua * ub);
  if (op == "Div") {
    if (b == 0) return ctx.error("integer division by zero");
    if (b == -1) return static_cast<int64_t>(0 - ua);
    return a / b;
  }
  if (op == "Pow") {
    if (b < 0) return ctx.error("negative integer exponent ", b);
    uint64_t result = 1, base = ua;
    for (uint64_t e = ub; e != 0; e >>= 1) {
      if (e & 1) result *= base;
      base *= base;
    }
    return static_cast<int64_t>(result);
  }
  if (op == "Equal") return a == b;
  if (op == "Less") return a < b;
  if (op == "Greater") return a > b;
  if (op == "LessOrEqual") return a <= b;
  if (op == "GreaterOrEqual") return a >= b;
  if (op == "And") return (a != 0) && (b != 0);
  if (op == "Or") return (a != 0) || (b != 0);
  if (op == "Xor") return (a != 0) != (b != 0);
  return ctx.error("no integer form of ", op);
}

Result<Outputs> binary(const OpContext& ctx, std::span<const OutputType> types) {
  const TensorData& a = value(ctx, 0);
  const TensorData& b = value(ctx, 1);
  TensorData out = make_output(types[0]);
  const auto ia = broadcast_indices(a.shape, out.shape);
  const auto ib = broadcast_indices(b.shape, out.shape);
  const std::string& op = ctx.node().op;
  if (integral(a.dtype) && integral(b.dtype)) {
    const std::vector<int64_t> va = to_i64(a), vb = to_i64(b);
    std::vector<int64_t> r(ia.size());
    for (size_t i = 0; i < r.size(); ++i) {
      PS_ASSIGN_OR_RETURN(r[i], binary_i64(ctx, va[ia[i]], vb[ib[i]]));
    }
    narrow(r, out);
  } else {
    const BinaryF64 f = binary_f64(op);
    if (f == nullptr) return ctx.error(op, " needs integer or bool inputs");
    const std::vector<double> va = to_f64(a), vb = to_f64(b);
    std::vector<double> r(ia.size());
    for (size_t i = 0; i < r.size(); ++i) r[i] = f(va[ia[i]], vb[ib[i]]);
    narrow(r, out);
  }
  return Outputs{std::move(out)};
}

// --- Others ------------------------------------------------------------------------------------

Result<Outputs> cast(const OpContext& ctx, std::span<const OutputType> types) {
  const TensorData& in = value(ctx, 0);
  TensorData out = make_output(types[0]);
  if (integral(in.dtype) && integral(out.dtype)) {
    narrow(to_i64(in), out);
  } else {
    narrow(to_f64(in), out);
  }
  return Outputs{std::move(out)};
}

Result<Outputs> clip(const OpContext& ctx, std::span<const OutputType> types) {
  const TensorData& in = value(ctx, 0);
  TensorData out = make_output(types[0]);
  // Limits: inputs from opset 11, attributes before.
  double lo = ctx.node().attr_float("min", -std::numeric_limits<float>::max());
  double hi = ctx.node().attr_float("max", std::numeric_limits<float>::max());
  if (integral(in.dtype)) {
    lo = -std::numeric_limits<double>::infinity();
    hi = std::numeric_limits<double>::infinity();
  }
  if (ctx.has_input(1)) {
    PS_ASSIGN_OR_RETURN(lo, ctx.const_scalar(1, "min"));
  }
  if (ctx.has_input(2)) {
    PS_ASSIGN_OR_RETURN(hi, ctx.const_scalar(2, "max"));
  }
  if (integral(in.dtype)) {
    std::vector<int64_t> v = to_i64(in);
    for (int64_t& x : v) {
      if (static_cast<double>(x) < lo) x = static_cast<int64_t>(lo);
      if (static_cast<double>(x) > hi) x = static_cast<int64_t>(hi);
    }
    narrow(v, out);
  } else {
    std::vector<double> v = to_f64(in);
    for (double& x : v) {
      if (x < lo) x = lo;
      if (x > hi) x = hi;
    }
    narrow(v, out);
  }
  return Outputs{std::move(out)};
}

Result<Outputs> range(const OpContext& ctx, std::span<const OutputType> types) {
  TensorData out = make_output(types[0]);
  const int64_t count = out.elements();
  if (integral(out.dtype)) {
    const int64_t start = to_i64(value(ctx, 0))[0], delta = to_i64(value(ctx, 2))[0];
    std::vector<int64_t> v(count);
    for (int64_t i = 0; i < count; ++i) {  // wrapping, like the hardware
      v[i] = static_cast<int64_t>(static_cast<uint64_t>(start) +
                                  static_cast<uint64_t>(i) * static_cast<uint64_t>(delta));
    }
    narrow(v, out);
  } else {
    const double start = to_f64(value(ctx, 0))[0], delta = to_f64(value(ctx, 2))[0];
    std::vector<double> v(count);
    for (int64_t i = 0; i < count; ++i) v[i] = start + static_cast<double>(i) * delta;
    narrow(v, out);
  }
  return Outputs{std::move(out)};
}

template <typename T>
std::vector<T> reduce_values(std::string_view op, const std::vector<T>& in,
                             const std::vector<int64_t>& target, int64_t out_count) {
  T init = 0;
  if (op == "ReduceProd") init = 1;
  if (op == "ReduceMax") init = std::numeric_limits<T>::lowest();
  if (op == "ReduceMin") init = std::numeric_limits<T>::max();
  if constexpr (std::is_floating_point_v<T>) {
    if (op == "ReduceMax") init = -std::numeric_limits<T>::infinity();
    if (op == "ReduceMin") init = std::numeric_limits<T>::infinity();
  }
  // Integers wrap like the hardware instead of overflowing.
  auto add = [](T a, T b) -> T {
    if constexpr (std::is_integral_v<T>) {
      return static_cast<T>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
    } else {
      return a + b;
    }
  };
  auto mul = [](T a, T b) -> T {
    if constexpr (std::is_integral_v<T>) {
      return static_cast<T>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b));
    } else {
      return a * b;
    }
  };
  std::vector<T> out(out_count, init);
  for (size_t i = 0; i < in.size(); ++i) {
    T& acc = out[target[i]];
    if (op == "ReduceProd") {
      acc = mul(acc, in[i]);
    } else if (op == "ReduceMax") {
      acc = std::max(acc, in[i]);
    } else if (op == "ReduceMin") {
      acc = std::min(acc, in[i]);
    } else {
      acc = add(acc, in[i]);
    }
  }
  if (op == "ReduceMean" && out_count > 0 && !in.empty()) {
    const T n = static_cast<T>(static_cast<int64_t>(in.size()) / out_count);
    for (T& v : out) v /= n;
  }
  return out;
}

Result<Outputs> reduce(const OpContext& ctx, std::span<const OutputType> types) {
  PS_ASSIGN_OR_RETURN(ReduceParams p, reduce_params(ctx));
  const TensorData& in = value(ctx, 0);
  TensorData out = make_output(types[0]);
  // Each input element adds into the output element with its reduced coordinates zeroed.
  const Shape& shape = in.shape;
  Shape kept;
  for (size_t d = 0; d < shape.size(); ++d) kept.push_back(p.reduced[d] ? 1 : shape[d]);
  const std::vector<int64_t> kept_strides = row_strides(kept);
  std::vector<int64_t> strides(shape.size());
  for (size_t d = 0; d < shape.size(); ++d) strides[d] = p.reduced[d] ? 0 : kept_strides[d];
  const std::vector<int64_t> target = strided_indices(shape, strides, 0);
  const std::string& op = ctx.node().op;
  if (integral(in.dtype)) {
    narrow(reduce_values<int64_t>(op, to_i64(in), target, out.elements()), out);
  } else {
    narrow(reduce_values<double>(op, to_f64(in), target, out.elements()), out);
  }
  return Outputs{std::move(out)};
}

}  // namespace

EvalFunction find_math_function(std::string_view op_type) {
  static const std::map<std::string_view, EvalFunction> kTable = {
      {"Abs", unary},
      {"Add", binary},
      {"And", binary},
      {"Cast", cast},
      {"Ceil", unary},
      {"Clip", clip},
      {"Div", binary},
      {"Equal", binary},
      {"Erf", unary},
      {"Exp", unary},
      {"Floor", unary},
      {"Greater", binary},
      {"GreaterOrEqual", binary},
      {"IsInf", unary},
      {"IsNaN", unary},
      {"Less", binary},
      {"LessOrEqual", binary},
      {"Log", unary},
      {"Mul", binary},
      {"Neg", unary},
      {"Not", unary},
      {"Or", binary},
      {"Pow", binary},
      {"Range", range},
      {"Reciprocal", unary},
      {"ReduceMax", reduce},
      {"ReduceMean", reduce},
      {"ReduceMin", reduce},
      {"ReduceProd", reduce},
      {"ReduceSum", reduce},
      {"Relu", unary},
      {"Sigmoid", unary},
      {"Sqrt", unary},
      {"Sub", binary},
      {"Tanh", unary},
      {"Xor", binary},
  };
  auto it = kTable.find(op_type);
  return it == kTable.end() ? nullptr : it->second;
}

}  // namespace ps::onnx_loader::eval
