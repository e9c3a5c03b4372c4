// Ops whose output is known at plan time from shapes, attributes and static inputs: Shape,
// Size, ConstantOfShape, Range. Import normally folds them away; when one reaches a plan, its
// values are computed here at build time and written by one small kernel (ps_fill_pattern,
// cuda/kernels/layout.cu) whose parameters carry them, so enqueue needs no host buffer.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "cuda/stream.h"
#include "models/gpu/kernel_op_util.h"

namespace ps::models::gpu {
namespace {

class FillOp final : public GpuOp {
 public:
  FillOp(cuda::Kernel kernel, kernels::FillParams params, int32_t mode, std::string what)
      : kernel_(kernel), params_(params), mode_(mode), what_(std::move(what)) {}
  Status enqueue(const LaunchArgs& args) const override {
    if (params_.count == 0) return Status::OK();
    return kernel_.launch(args.stream, grid_for(params_.count), kBlock, 0, args.outputs[0],
                          params_, mode_);
  }
  std::string describe() const override { return what_; }

 private:
  cuda::Kernel kernel_;
  kernels::FillParams params_;
  int32_t mode_;
  std::string what_;
};

// The bytes of `value` converted to `dtype` (as the CPU reference's ConstantOfShape).
Result<uint64_t> element_bits(DType dtype, bool is_int, int64_t ivalue, float fvalue) {
  const double v = is_int ? static_cast<double>(ivalue) : static_cast<double>(fvalue);
  uint64_t bits = 0;
  switch (dtype) {
    case DType::kFloat32: { const float f = is_int ? static_cast<float>(ivalue) : fvalue; std::memcpy(&bits, &f, 4); break; }
    case DType::kFloat64: { std::memcpy(&bits, &v, 8); break; }
    case DType::kFloat16: bits = float_to_float16(is_int ? static_cast<float>(ivalue) : fvalue); break;
    case DType::kBFloat16: bits = float_to_bfloat16(is_int ? static_cast<float>(ivalue) : fvalue); break;
    case DType::kInt64: { const int64_t x = is_int ? ivalue : static_cast<int64_t>(fvalue); std::memcpy(&bits, &x, 8); break; }
    case DType::kInt32: bits = static_cast<uint32_t>(static_cast<int32_t>(is_int ? ivalue : static_cast<int64_t>(fvalue))); break;
    case DType::kInt8:
    case DType::kUInt8: bits = static_cast<uint8_t>(is_int ? ivalue : static_cast<int64_t>(fvalue)); break;
    case DType::kBool: bits = v != 0 ? 1 : 0; break;
    default: return invalid_argument("output dtype ", dtype_name(dtype));
  }
  return bits;
}

}  // namespace

BuildResult build_shape(const OpSpec& spec, const OpEnv& env) {
  PS_TRY(check_arity(spec, 1, 1, 1, 1));
  AttrReader attrs(spec);
  const Shape& x = spec.inputs[0].shape;
  kernels::FillParams p;
  p.dtype = kernels::kKInt64;
  if (spec.op == "Size") {
    PS_TRY(attrs->check_attrs({}));
    PS_TRY(check_output(spec, 0, DType::kInt64, Shape{}));
    p.count = 1;
    p.values[0] = element_count(x);
  } else {
    PS_TRY(attrs->check_attrs({"start", "end"}));
    const int64_t r = static_cast<int64_t>(x.size());
    PS_ASSIGN_OR_RETURN(int64_t start, attrs->attr_int("start", 0));
    PS_ASSIGN_OR_RETURN(int64_t end, attrs->attr_int("end", r));
    if (start < 0) start += r;
    if (end < 0) end += r;
    start = std::clamp<int64_t>(start, 0, r);
    end = std::clamp<int64_t>(end, 0, r);
    const int64_t n = std::max<int64_t>(end - start, 0);
    PS_TRY(check_output(spec, 0, DType::kInt64, Shape{n}));
    if (n > kernels::kMaxRank) return unsupported("Shape of a rank-", n, " tensor (at most ", kernels::kMaxRank, ")");
    p.count = n;
    for (int64_t i = 0; i < n; ++i) p.values[i] = x[start + i];
  }
  PS_ASSIGN_OR_RETURN(cuda::Kernel k, find_kernel(env, "ps_fill_pattern"));
  return std::unique_ptr<GpuOp>(new FillOp(k, p, 0, str_cat("kernel ps_fill_pattern (", spec.op, ")")));
}

BuildResult build_constant_of_shape(const OpSpec& spec, const OpEnv& env) {
  PS_TRY(check_arity(spec, 1, 1, 1, 1));
  AttrReader attrs(spec);
  PS_TRY(attrs->check_attrs({"value"}));
  if (!spec.outputs[0].present()) return invalid_argument("output 0 is missing");
  const DType dtype = spec.outputs[0].dtype;
  const Shape& out = spec.outputs[0].shape;
  if (spec.inputs[0].host_data != nullptr) {
    PS_ASSIGN_OR_RETURN(const std::vector<int64_t> shape, static_ints(spec.inputs[0], "shape"));
    if (shape != out) {
      return invalid_argument("shape input ", shape_string(shape), " but the output is ", shape_string(out));
    }
  } else if (spec.inputs[0].shape != Shape{static_cast<int64_t>(out.size())}) {
    return invalid_argument("shape input ", shape_string(spec.inputs[0].shape), " does not describe output ",
                            shape_string(out));
  }
  const bool has_value = attrs->has_attr("value");
  const Result<int64_t> int_value = attrs->attr_int("value", 0);
  const bool is_int = has_value && int_value.ok();
  float fvalue = 0;
  if (has_value && !is_int) {
    PS_ASSIGN_OR_RETURN(fvalue, attrs->attr_float("value", 0.0f));
  }
  if (!has_value && dtype != DType::kFloat32) {
    return invalid_argument("without a value the output must be float32, got ", dtype_name(dtype));
  }
  if (has_value && is_floating(dtype) == is_int) {
    return invalid_argument("value is ", is_int ? "an int" : "a float", " but the output is ", dtype_name(dtype));
  }
  kernels::FillParams p;
  p.count = element_count(out);
  p.dtype = kernel_dtype(dtype);
  PS_ASSIGN_OR_RETURN(p.value_bits, element_bits(dtype, is_int, is_int ? *int_value : 0, fvalue));
  PS_ASSIGN_OR_RETURN(cuda::Kernel k, find_kernel(env, "ps_fill_pattern"));
  return std::unique_ptr<GpuOp>(new FillOp(k, p, 1, "kernel ps_fill_pattern (ConstantOfShape)"));
}

BuildResult build_range(const OpSpec& spec, const OpEnv& env) {
  PS_TRY(check_arity(spec, 3, 3, 1, 1));
  AttrReader attrs(spec);
  PS_TRY(attrs->check_attrs({}));
  const DType dtype = spec.inputs[0].dtype;
  for (size_t k = 1; k < 3; ++k) {
    if (spec.inputs[k].dtype != dtype) return invalid_argument("start, limit and delta must have one dtype");
  }
  if (dtype != DType::kFloat32 && dtype != DType::kFloat64 && dtype != DType::kInt64 &&
      dtype != DType::kInt32) {
    return unsupported("dtype ", dtype_name(dtype), " (float32, float64, int64, int32)");
  }
  PS_ASSIGN_OR_RETURN(const double start, static_scalar(spec.inputs[0], "start"));
  PS_ASSIGN_OR_RETURN(const double limit, static_scalar(spec.inputs[1], "limit"));
  PS_ASSIGN_OR_RETURN(const double delta, static_scalar(spec.inputs[2], "delta"));
  if (delta == 0) return invalid_argument("delta is 0");
  const double count = std::ceil((limit - start) / delta);
  if (!(count < 1e12)) return invalid_argument("range of ", count, " elements is too long");
  const int64_t n = std::max<int64_t>(static_cast<int64_t>(count), 0);
  PS_TRY(check_output(spec, 0, dtype, Shape{n}));
  kernels::FillParams p;
  p.count = n;
  p.dtype = kernel_dtype(dtype);
  p.start = start;
  p.delta = delta;
  if (!is_floating(dtype)) {
    PS_ASSIGN_OR_RETURN(p.istart, static_int_scalar(spec.inputs[0], "start"));
    PS_ASSIGN_OR_RETURN(p.idelta, static_int_scalar(spec.inputs[2], "delta"));
  }
  PS_ASSIGN_OR_RETURN(cuda::Kernel k, find_kernel(env, "ps_fill_pattern"));
  return std::unique_ptr<GpuOp>(new FillOp(k, p, 2, "kernel ps_fill_pattern (Range)"));
}

}  // namespace ps::models::gpu
