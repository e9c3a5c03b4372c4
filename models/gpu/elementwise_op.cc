// Element-wise ops on our kernels (cuda/kernels/elementwise.cu): unary math and activations,
// Clip, the predicates IsNaN/IsInf/Not, binary arithmetic/comparison/logic with broadcasting,
// the variadic Max/Min/Sum/Mean, Where and Cast.
//
// Dtypes: float math is float32 only; Neg/Abs/Relu/Clip also int64/int32/int8; arithmetic,
// comparisons and Max/Min float32/int64/int32 (Equal also bool); Sum/Mean float32; logic bool;
// Where and Cast every dtype. Anything else is refused at plan time naming the dtype.
#include <cmath>
#include <limits>
#include <map>
#include <optional>

#include "cuda/stream.h"
#include "models/gpu/index_plan.h"
#include "models/gpu/kernel_op_util.h"

namespace ps::models::gpu {
namespace {

using kernels::BroadcastParams;
using kernels::UnaryParams;

static_assert(static_cast<int>(DType::kBool) == kernels::kKBool &&
              static_cast<int>(DType::kFloat32) == kernels::kKFloat32 &&
              static_cast<int>(DType::kUInt8) == kernels::kKUInt8);

const char* short_name(DType d) {
  switch (d) {
    case DType::kFloat32: return "f32";
    case DType::kFloat64: return "f64";
    case DType::kFloat16: return "f16";
    case DType::kBFloat16: return "bf16";
    case DType::kInt64: return "i64";
    case DType::kInt32: return "i32";
    case DType::kInt8: return "i8";
    case DType::kUInt8: return "u8";
    case DType::kBool: return "bool";
    default: return "undefined";
  }
}

// ---- unary ----------------------------------------------------------------------------------

class UnaryOp final : public GpuOp {
 public:
  UnaryOp(cuda::Kernel kernel, UnaryParams params, size_t element_size, std::string what)
      : kernel_(kernel), params_(params), element_size_(element_size), what_(std::move(what)) {}

  Status enqueue(const LaunchArgs& args) const override {
    if (params_.count == 0) return Status::OK();
    UnaryParams p = params_;
    const CUdeviceptr x = args.inputs[0], y = args.outputs[0];
    p.vectorize = aligned({x, y}, 4 * element_size_) ? 1 : 0;
    return kernel_.launch(args.stream, grid_for(p.vectorize ? p.count / 4 + 1 : p.count), kBlock,
                          0, x, y, p);
  }
  std::string describe() const override { return what_; }

 private:
  cuda::Kernel kernel_;
  UnaryParams params_;
  size_t element_size_;
  std::string what_;
};

const std::map<std::string_view, int32_t>& unary_codes() {
  static const std::map<std::string_view, int32_t> codes = {
      {"Abs", kernels::kUnaryAbs},         {"Ceil", kernels::kUnaryCeil},
      {"Clip", kernels::kUnaryClip},       {"Cos", kernels::kUnaryCos},
      {"Erf", kernels::kUnaryErf},         {"Exp", kernels::kUnaryExp},
      {"Floor", kernels::kUnaryFloor},     {"Gelu", kernels::kUnaryGelu},
      {"LeakyRelu", kernels::kUnaryLeakyRelu}, {"Log", kernels::kUnaryLog},
      {"Neg", kernels::kUnaryNeg},         {"Reciprocal", kernels::kUnaryReciprocal},
      {"Relu", kernels::kUnaryRelu},       {"Sigmoid", kernels::kUnarySigmoid},
      {"Sin", kernels::kUnarySin},         {"Sqrt", kernels::kUnarySqrt},
      {"Tanh", kernels::kUnaryTanh},
  };
  return codes;
}

// Clip's bounds: inputs 1 and 2 (static), or the `min`/`max` attributes of opset < 11.
Status clip_bounds(const OpSpec& spec, const AttrReader& attrs, DType dtype, UnaryParams* p) {
  PS_TRY(attrs->check_attrs({"min", "max"}));
  PS_ASSIGN_OR_RETURN(const float lo_attr, attrs->attr_float("min", -INFINITY));
  PS_ASSIGN_OR_RETURN(const float hi_attr, attrs->attr_float("max", INFINITY));
  p->alpha = lo_attr;
  p->beta = hi_attr;
  if (dtype == DType::kInt64) {
    p->ilo = std::numeric_limits<int64_t>::lowest();
    p->ihi = std::numeric_limits<int64_t>::max();
  } else if (dtype == DType::kInt32) {
    p->ilo = std::numeric_limits<int32_t>::lowest();
    p->ihi = std::numeric_limits<int32_t>::max();
  } else {
    p->ilo = std::numeric_limits<int8_t>::lowest();
    p->ihi = std::numeric_limits<int8_t>::max();
  }
  for (size_t k = 1; k <= 2; ++k) {
    const TensorSpec* b = optional_input(spec, k);
    if (b == nullptr) continue;
    if (b->dtype != dtype || b->numel() != 1) {
      return invalid_argument(k == 1 ? "min" : "max", " must be a one-element tensor of the "
                              "input's dtype, got ", dtype_name(b->dtype), shape_string(b->shape));
    }
    if (dtype == DType::kFloat32) {
      PS_ASSIGN_OR_RETURN(const double v, static_scalar(*b, k == 1 ? "min" : "max"));
      (k == 1 ? p->alpha : p->beta) = static_cast<float>(v);
    } else {
      PS_ASSIGN_OR_RETURN(const int64_t v, static_int_scalar(*b, k == 1 ? "min" : "max"));
      (k == 1 ? p->ilo : p->ihi) = v;
    }
  }
  return Status::OK();
}

// ---- predicates -----------------------------------------------------------------------------

class PredicateOp final : public GpuOp {
 public:
  PredicateOp(cuda::Kernel kernel, int64_t count, int32_t mode, bool has_mode, std::string what)
      : kernel_(kernel), count_(count), mode_(mode), has_mode_(has_mode), what_(std::move(what)) {}
  Status enqueue(const LaunchArgs& args) const override {
    if (count_ == 0) return Status::OK();
    if (has_mode_) {
      return kernel_.launch(args.stream, grid_for(count_), kBlock, 0, args.inputs[0],
                            args.outputs[0], count_, mode_);
    }
    return kernel_.launch(args.stream, grid_for(count_), kBlock, 0, args.inputs[0],
                          args.outputs[0], count_);
  }
  std::string describe() const override { return what_; }

 private:
  cuda::Kernel kernel_;
  int64_t count_;
  int32_t mode_;
  bool has_mode_;
  std::string what_;
};

// ---- binary ---------------------------------------------------------------------------------

// One launch of a binary kernel: out = op(a, b). Operand indices < 0 read the output itself
// (the variadic chain's accumulator).
struct BinaryStep {
  cuda::Kernel kernel;
  BroadcastParams params;
  int32_t op = 0;
  bool has_op_arg = true;
  int a = 0, b = 1;
};

// Variadic Mean's final scaling, in place on the output.
struct ScaleStep {
  cuda::Kernel kernel;
  UnaryParams params;
};

class BinaryOp final : public GpuOp {
 public:
  BinaryOp(std::vector<BinaryStep> steps, std::optional<ScaleStep> scale, size_t in_size,
           size_t out_size, std::string what)
      : steps_(std::move(steps)),
        scale_(std::move(scale)),
        in_size_(in_size),
        out_size_(out_size),
        what_(std::move(what)) {}

  Status enqueue(const LaunchArgs& args) const override {
    const CUdeviceptr y = args.outputs[0];
    for (const BinaryStep& s : steps_) {
      if (s.params.count == 0) continue;
      const CUdeviceptr a = s.a < 0 ? y : args.inputs[s.a];
      const CUdeviceptr b = s.b < 0 ? y : args.inputs[s.b];
      BroadcastParams p = s.params;
      const bool row_ok = (p.mode != kernels::kBroadcastRowA && p.mode != kernels::kBroadcastRowB) ||
                          p.inner % 4 == 0;
      p.vectorize = p.mode != kernels::kBroadcastGeneral && row_ok &&
                    aligned({a, b}, 4 * in_size_) && aligned({y}, 4 * out_size_);
      const unsigned grid = grid_for(p.vectorize ? p.count / 4 + 1 : p.count);
      Status st = s.has_op_arg ? s.kernel.launch(args.stream, grid, kBlock, 0, a, b, y, s.op, p)
                               : s.kernel.launch(args.stream, grid, kBlock, 0, a, b, y, p);
      PS_TRY(st);
    }
    if (scale_ && scale_->params.count > 0) {
      UnaryParams p = scale_->params;
      p.vectorize = aligned({y}, 16);
      PS_TRY(scale_->kernel.launch(args.stream, grid_for(p.vectorize ? p.count / 4 + 1 : p.count),
                                   kBlock, 0, y, y, p));
    }
    return Status::OK();
  }
  std::string describe() const override { return what_; }

 private:
  std::vector<BinaryStep> steps_;
  std::optional<ScaleStep> scale_;
  size_t in_size_, out_size_;
  std::string what_;
};

struct BinaryInfo {
  int32_t code;
  bool compare;  // writes bool
  bool logic;    // bool operands only
};

const std::map<std::string_view, BinaryInfo>& binary_infos() {
  static const std::map<std::string_view, BinaryInfo> infos = {
      {"Add", {kernels::kBinaryAdd, false, false}},
      {"And", {kernels::kBinaryAnd, true, true}},
      {"Div", {kernels::kBinaryDiv, false, false}},
      {"Equal", {kernels::kBinaryEqual, true, false}},
      {"Greater", {kernels::kBinaryGreater, true, false}},
      {"GreaterOrEqual", {kernels::kBinaryGreaterOrEqual, true, false}},
      {"Less", {kernels::kBinaryLess, true, false}},
      {"LessOrEqual", {kernels::kBinaryLessOrEqual, true, false}},
      {"Max", {kernels::kBinaryMax, false, false}},
      {"Min", {kernels::kBinaryMin, false, false}},
      {"Mul", {kernels::kBinaryMul, false, false}},
      {"Or", {kernels::kBinaryOr, true, true}},
      {"Pow", {kernels::kBinaryPow, false, false}},
      {"Sub", {kernels::kBinarySub, false, false}},
      {"Sum", {kernels::kBinaryAdd, false, false}},
      {"Mean", {kernels::kBinaryAdd, false, false}},
      {"Xor", {kernels::kBinaryXor, true, true}},
  };
  return infos;
}

bool arithmetic_dtype(DType d) {
  return d == DType::kFloat32 || d == DType::kInt64 || d == DType::kInt32;
}

// The kernel name (and whether it takes an op argument) for binary `info` on dtypes a, b.
Result<std::pair<std::string, bool>> binary_kernel(std::string_view op, const BinaryInfo& info,
                                                   DType a, DType b) {
  if (info.logic || (info.code == kernels::kBinaryEqual && a == DType::kBool)) {
    if (a != DType::kBool || b != DType::kBool) {
      return unsupported("operands ", dtype_name(a), " and ", dtype_name(b), " (", op,
                         " takes bool operands)");
    }
    return std::pair<std::string, bool>{"ps_binary_bool", true};
  }
  if (info.code == kernels::kBinaryPow && a == DType::kFloat32 &&
      (b == DType::kInt64 || b == DType::kInt32)) {
    return std::pair<std::string, bool>{str_cat("ps_pow_f32_", short_name(b)), false};
  }
  if (a != b && info.code == kernels::kBinaryPow) {
    return unsupported("Pow with a ", dtype_name(a), " base and a ", dtype_name(b),
                       " exponent (the GPU Pow takes a float32 base with a float32, int64 or "
                       "int32 exponent, or equal integer types)");
  }
  if (a != b) {
    return invalid_argument("operand dtypes differ: ", dtype_name(a), " and ", dtype_name(b));
  }
  if (!arithmetic_dtype(a)) {
    return unsupported("dtype ", dtype_name(a), " (the GPU ", op,
                       " supports float32, int64 and int32)");
  }
  return std::pair<std::string, bool>{str_cat("ps_binary_", short_name(a)), true};
}

// ---- Where, Cast ----------------------------------------------------------------------------

class WhereOp final : public GpuOp {
 public:
  WhereOp(cuda::Kernel kernel, BroadcastParams params, std::string what)
      : kernel_(kernel), params_(params), what_(std::move(what)) {}
  Status enqueue(const LaunchArgs& args) const override {
    if (params_.count == 0) return Status::OK();
    return kernel_.launch(args.stream, grid_for(params_.count), kBlock, 0, args.inputs[0],
                          args.inputs[1], args.inputs[2], args.outputs[0], params_);
  }
  std::string describe() const override { return what_; }

 private:
  cuda::Kernel kernel_;
  BroadcastParams params_;
  std::string what_;
};

class CastOp final : public GpuOp {
 public:
  CastOp(cuda::Kernel kernel, int64_t count, int32_t dst, std::string what)
      : kernel_(kernel), count_(count), dst_(dst), what_(std::move(what)) {}
  Status enqueue(const LaunchArgs& args) const override {
    if (count_ == 0) return Status::OK();
    return kernel_.launch(args.stream, grid_for(count_), kBlock, 0, args.inputs[0],
                          args.outputs[0], count_, dst_);
  }
  std::string describe() const override { return what_; }

 private:
  cuda::Kernel kernel_;
  int64_t count_;
  int32_t dst_;
  std::string what_;
};

}  // namespace

BuildResult build_unary(const OpSpec& spec, const OpEnv& env) {
  const bool is_clip = spec.op == "Clip";
  PS_TRY(check_arity(spec, 1, is_clip ? 3 : 1, 1, 1));
  const TensorSpec& x = spec.inputs[0];
  PS_TRY(check_output(spec, 0, x.dtype, x.shape));
  const auto it = unary_codes().find(spec.op);
  if (it == unary_codes().end()) return internal_error("no unary code for ", spec.op);
  AttrReader attrs(spec);
  UnaryParams p;
  p.op = it->second;
  p.count = x.numel();
  if (spec.op == "LeakyRelu") {
    PS_TRY(attrs->check_attrs({"alpha"}));
    PS_ASSIGN_OR_RETURN(p.alpha, attrs->attr_float("alpha", 0.01f));
  } else if (spec.op == "Gelu") {
    PS_TRY(attrs->check_attrs({"approximate"}));
    PS_ASSIGN_OR_RETURN(const std::string approximate, attrs->attr_string("approximate", "none"));
    if (approximate == "tanh") {
      p.op = kernels::kUnaryGeluTanh;
    } else if (approximate != "none") {
      return unsupported("approximate='", approximate, "' (expected 'none' or 'tanh')");
    }
  } else if (is_clip) {
    PS_TRY(clip_bounds(spec, attrs, x.dtype, &p));
  } else {
    PS_TRY(attrs->check_attrs({}));
  }
  const bool integer_ok = p.op == kernels::kUnaryNeg || p.op == kernels::kUnaryAbs ||
                          p.op == kernels::kUnaryRelu || p.op == kernels::kUnaryClip;
  const bool integer = x.dtype == DType::kInt64 || x.dtype == DType::kInt32 || x.dtype == DType::kInt8;
  if (x.dtype != DType::kFloat32 && !(integer_ok && integer)) {
    return unsupported("input dtype ", dtype_name(x.dtype), " (the GPU ", spec.op, " supports ",
                       integer_ok ? "float32, int64, int32 and int8" : "float32", ")");
  }
  const std::string name = str_cat("ps_unary_", short_name(x.dtype));
  PS_ASSIGN_OR_RETURN(cuda::Kernel k, find_kernel(env, name));
  return std::unique_ptr<GpuOp>(new UnaryOp(k, p, dtype_size(x.dtype),
                                            str_cat("kernel ", name, " (", spec.op, ", ",
                                                    p.count, " elements)")));
}

BuildResult build_predicate(const OpSpec& spec, const OpEnv& env) {
  PS_TRY(check_arity(spec, 1, 1, 1, 1));
  const TensorSpec& x = spec.inputs[0];
  PS_TRY(check_output(spec, 0, DType::kBool, x.shape));
  AttrReader attrs(spec);
  std::string name;
  int32_t mode = 0;
  bool has_mode = true;
  if (spec.op == "Not") {
    PS_TRY(attrs->check_attrs({}));
    if (x.dtype != DType::kBool) return unsupported("input dtype ", dtype_name(x.dtype), " (bool only)");
    name = "ps_not_bool";
    has_mode = false;
  } else {
    if (x.dtype != DType::kFloat32) {
      return unsupported("input dtype ", dtype_name(x.dtype), " (the GPU ", spec.op,
                         " supports float32)");
    }
    name = "ps_float_class_f32";
    if (spec.op == "IsInf") {
      PS_TRY(attrs->check_attrs({"detect_negative", "detect_positive"}));
      PS_ASSIGN_OR_RETURN(const int64_t neg, attrs->attr_int("detect_negative", 1));
      PS_ASSIGN_OR_RETURN(const int64_t pos, attrs->attr_int("detect_positive", 1));
      mode = 4 | (neg != 0 ? 1 : 0) | (pos != 0 ? 2 : 0);
    } else {
      PS_TRY(attrs->check_attrs({}));
    }
  }
  PS_ASSIGN_OR_RETURN(cuda::Kernel k, find_kernel(env, name));
  return std::unique_ptr<GpuOp>(
      new PredicateOp(k, x.numel(), mode, has_mode, str_cat("kernel ", name, " (", spec.op, ")")));
}

BuildResult build_binary(const OpSpec& spec, const OpEnv& env) {
  PS_TRY(check_arity(spec, 2, 2, 1, 1));
  AttrReader attrs(spec);
  PS_TRY(attrs->check_attrs({}));
  const TensorSpec& a = spec.inputs[0];
  const TensorSpec& b = spec.inputs[1];
  const BinaryInfo& info = binary_infos().at(spec.op);
  const std::optional<Shape> out = broadcast_shapes(a.shape, b.shape);
  if (!out) {
    return invalid_argument("shapes ", shape_string(a.shape), " and ", shape_string(b.shape),
                            " do not broadcast");
  }
  PS_TRY(check_output(spec, 0, info.compare ? DType::kBool : a.dtype, *out));
  PS_ASSIGN_OR_RETURN(auto kernel_name, binary_kernel(spec.op, info, a.dtype, b.dtype));
  PS_ASSIGN_OR_RETURN(cuda::Kernel k, find_kernel(env, kernel_name.first));
  const Shape operands[] = {a.shape, b.shape};
  PS_ASSIGN_OR_RETURN(BroadcastParams p, plan_broadcast(operands, *out));
  // The vectorised path reads 4 elements of each operand: mixed Pow reads different sizes, so
  // it uses the narrower alignment requirement of the wider operand.
  const size_t in_size = std::max(dtype_size(a.dtype), dtype_size(b.dtype));
  const size_t out_size = info.compare ? 1 : dtype_size(a.dtype);
  std::vector<BinaryStep> steps{BinaryStep{k, p, info.code, kernel_name.second, 0, 1}};
  return std::unique_ptr<GpuOp>(new BinaryOp(
      std::move(steps), std::nullopt, in_size, out_size,
      str_cat("kernel ", kernel_name.first, " (", spec.op, ", broadcast mode ", p.mode, ", rank ",
              p.rank, ")")));
}

BuildResult build_variadic(const OpSpec& spec, const OpEnv& env) {
  if (spec.inputs.empty()) return invalid_argument("at least one input is required");
  PS_TRY(check_arity(spec, spec.inputs.size(), spec.inputs.size(), 1, 1));
  AttrReader attrs(spec);
  PS_TRY(attrs->check_attrs({}));
  const DType dtype = spec.inputs[0].dtype;
  Shape out = spec.inputs[0].shape;
  for (size_t k = 1; k < spec.inputs.size(); ++k) {
    if (spec.inputs[k].dtype != dtype) {
      return invalid_argument("input ", k, " is ", dtype_name(spec.inputs[k].dtype), ", input 0 is ",
                              dtype_name(dtype));
    }
    const std::optional<Shape> b = broadcast_shapes(out, spec.inputs[k].shape);
    if (!b) return invalid_argument("input ", k, " ", shape_string(spec.inputs[k].shape), " does not broadcast");
    out = *b;
  }
  PS_TRY(check_output(spec, 0, dtype, out));
  const bool is_sum = spec.op == "Sum" || spec.op == "Mean";
  if (is_sum ? dtype != DType::kFloat32 : !arithmetic_dtype(dtype)) {
    return unsupported("dtype ", dtype_name(dtype), " (the GPU ", spec.op, " supports ",
                       is_sum ? "float32" : "float32, int64 and int32", ")");
  }
  const BinaryInfo& info = binary_infos().at(spec.op);
  const std::string name = str_cat("ps_binary_", short_name(dtype));
  PS_ASSIGN_OR_RETURN(cuda::Kernel k, find_kernel(env, name));
  std::vector<BinaryStep> steps;
  if (spec.inputs.size() == 1) {
    // One input: out = max(x, x) / min(x, x) / x + 0 is not exact for Sum; use Max for every
    // op (max(x, x) == x, NaN kept), then Mean's scale by 1 is a no-op.
    const Shape operands[] = {out, out};
    PS_ASSIGN_OR_RETURN(BroadcastParams p, plan_broadcast(operands, out));
    steps.push_back(BinaryStep{k, p, kernels::kBinaryMax, true, 0, 0});
  } else {
    const Shape first[] = {spec.inputs[0].shape, spec.inputs[1].shape};
    PS_ASSIGN_OR_RETURN(BroadcastParams p0, plan_broadcast(first, out));
    steps.push_back(BinaryStep{k, p0, info.code, true, 0, 1});
    for (size_t i = 2; i < spec.inputs.size(); ++i) {
      // The accumulator (the output, operand -1) is read at the same index it is written.
      const Shape next[] = {out, spec.inputs[i].shape};
      PS_ASSIGN_OR_RETURN(BroadcastParams p, plan_broadcast(next, out));
      steps.push_back(BinaryStep{k, p, info.code, true, -1, static_cast<int>(i)});
    }
  }
  std::optional<ScaleStep> scale;
  if (spec.op == "Mean" && spec.inputs.size() > 1) {
    PS_ASSIGN_OR_RETURN(cuda::Kernel sk, find_kernel(env, "ps_unary_f32"));
    UnaryParams up;
    up.op = kernels::kUnaryScale;
    up.count = element_count(out);
    up.alpha = static_cast<float>(1.0 / static_cast<double>(spec.inputs.size()));
    scale = ScaleStep{sk, up};
  }
  const size_t esize = dtype_size(dtype);
  return std::unique_ptr<GpuOp>(new BinaryOp(
      std::move(steps), scale, esize, esize,
      str_cat("kernel ", name, " x", spec.inputs.size() == 1 ? 1 : spec.inputs.size() - 1, " (",
              spec.op, " of ", spec.inputs.size(), ")")));
}

BuildResult build_where(const OpSpec& spec, const OpEnv& env) {
  PS_TRY(check_arity(spec, 3, 3, 1, 1));
  AttrReader attrs(spec);
  PS_TRY(attrs->check_attrs({}));
  const TensorSpec& c = spec.inputs[0];
  const TensorSpec& x = spec.inputs[1];
  const TensorSpec& y = spec.inputs[2];
  if (c.dtype != DType::kBool) return invalid_argument("condition must be bool, got ", dtype_name(c.dtype));
  if (x.dtype != y.dtype) {
    return invalid_argument("X and Y dtypes differ: ", dtype_name(x.dtype), " and ", dtype_name(y.dtype));
  }
  std::optional<Shape> out = broadcast_shapes(c.shape, x.shape);
  if (out) out = broadcast_shapes(*out, y.shape);
  if (!out) return invalid_argument("condition, X and Y do not broadcast together");
  PS_TRY(check_output(spec, 0, x.dtype, *out));
  const Shape operands[] = {c.shape, x.shape, y.shape};
  PS_ASSIGN_OR_RETURN(BroadcastParams p, plan_broadcast(operands, *out));
  const std::string name = str_cat("ps_where_", unit_suffix(dtype_size(x.dtype)));
  PS_ASSIGN_OR_RETURN(cuda::Kernel k, find_kernel(env, name));
  return std::unique_ptr<GpuOp>(
      new WhereOp(k, p, str_cat("kernel ", name, " (broadcast mode ", p.mode, ")")));
}

BuildResult build_cast(const OpSpec& spec, const OpEnv& env) {
  PS_TRY(check_arity(spec, 1, 1, 1, 1));
  AttrReader attrs(spec);
  PS_TRY(attrs->check_attrs({"to", "saturate"}));
  PS_TRY(attrs->require_attrs({"to"}));
  PS_ASSIGN_OR_RETURN(const int64_t to, attrs->attr_int("to", 0));
  PS_ASSIGN_OR_RETURN(const DType target, dtype_from_onnx(to));
  const TensorSpec& x = spec.inputs[0];
  PS_TRY(check_output(spec, 0, target, x.shape));
  if (x.dtype == DType::kUndefined) return invalid_argument("input dtype is undefined");
  const std::string name = str_cat("ps_cast_from_", short_name(x.dtype));
  PS_ASSIGN_OR_RETURN(cuda::Kernel k, find_kernel(env, name));
  return std::unique_ptr<GpuOp>(new CastOp(
      k, x.numel(), kernel_dtype(target),
      str_cat("kernel ", name, " (", dtype_name(x.dtype), " -> ", dtype_name(target), ")")));
}

}  // namespace ps::models::gpu
