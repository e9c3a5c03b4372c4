// Softmax / LogSoftmax (opset 13: along one axis), AddSoftmax and LayerNormalization on our kernels
// (cuda/kernels/norm_softmax.cu); float32 only.
#include "cuda/stream.h"
#include "models/gpu/index_plan.h"
#include "models/gpu/kernel_op_util.h"

namespace ps::models::gpu {
namespace {

class SoftmaxOp final : public GpuOp {
 public:
  // mode 0: a warp per row (kernel ps_softmax_warpN_f32); 1: a block per row; 2: a thread per
  // column (both ps_softmax_f32).
  // AddSoftmax (mask): inputs {X, M}, M added as a row is read (params' mask terms).
  SoftmaxOp(cuda::Kernel kernel, kernels::SoftmaxParams p, int32_t mode, int32_t per_lane,
            bool mask)
      : kernel_(kernel), params_(p), mode_(mode), per_lane_(per_lane), mask_(mask) {}
  Status enqueue(const LaunchArgs& args) const override {
    if (params_.outer == 0 || params_.n == 0 || params_.inner == 0) return Status::OK();
    const CUdeviceptr mask = mask_ ? args.inputs[1] : 0;
    if (mode_ == 0) {  // a warp per row
      return kernel_.launch(args.stream, grid_for(params_.outer * 32), kBlock, 0, args.inputs[0],
                            mask, args.outputs[0], params_);
    }
    const unsigned grid = mode_ == 1
                              ? static_cast<unsigned>(std::min<int64_t>(params_.outer, 65535))
                              : grid_for(params_.outer * params_.inner);
    return kernel_.launch(args.stream, grid, kBlock, 0, args.inputs[0], mask, args.outputs[0],
                          params_, mode_);
  }
  std::string describe() const override {
    const char* how = mode_ == 0 ? "warp per row" : mode_ == 1 ? "block per row" : "thread per column";
    return str_cat("kernel ps_softmax_", mode_ == 0 ? str_cat("warp", per_lane_, "_") : "", "f32 (",
                   params_.log ? "log, " : "",
                   mask_ ? str_cat("of X + mask, ", params_.mask_terms, " mask terms, ") : "", how,
                   ", n ", params_.n, ")");
  }

 private:
  cuda::Kernel kernel_;
  kernels::SoftmaxParams params_;
  int32_t mode_ = 0;
  int32_t per_lane_ = 0;
  bool mask_ = false;
};

class LayerNormOp final : public GpuOp {
 public:
  // per_lane > 0: a warp per row (ps_layer_norm_warpN_f32); 0: a block per row. add: the
  // inputs are [A, B, Scale, B?] (AddLayerNormalization), else [X, Scale, B?].
  LayerNormOp(cuda::Kernel kernel, kernels::LayerNormParams p, int32_t per_lane, bool add)
      : kernel_(kernel), params_(p), per_lane_(per_lane), add_(add) {}
  Status enqueue(const LaunchArgs& args) const override {
    if (params_.rows == 0 || params_.inner == 0) return Status::OK();
    const size_t first = add_ ? 1 : 0;
    const CUdeviceptr residual = add_ ? args.inputs[1] : 0;
    const CUdeviceptr bias = args.inputs.size() > 2 + first ? args.inputs[2 + first] : 0;
    const CUdeviceptr mean = args.outputs.size() > 1 ? args.outputs[1] : 0;
    const CUdeviceptr inv_std = args.outputs.size() > 2 ? args.outputs[2] : 0;
    const unsigned grid = per_lane_ > 0
                              ? grid_for(params_.rows * 32)
                              : static_cast<unsigned>(std::min<int64_t>(params_.rows, 65535));
    return kernel_.launch(args.stream, grid, kBlock, 0, args.inputs[0], residual,
                          args.inputs[1 + first], bias, args.outputs[0], mean, inv_std, params_);
  }
  std::string describe() const override {
    return str_cat("kernel ps_layer_norm_", per_lane_ > 0 ? str_cat("warp", per_lane_, "_") : "",
                   "f32 (", add_ ? "of A + B, " : "", per_lane_ > 0 ? "warp" : "block",
                   " per row of ", params_.inner, ")");
  }

 private:
  cuda::Kernel kernel_;
  kernels::LayerNormParams params_;
  int32_t per_lane_ = 0;
  bool add_ = false;
};

// The length after which `t` (unidirectionally broadcast to norm_shape) repeats along a row,
// when its shape without leading 1s is a suffix of norm_shape; an error otherwise.
Result<int64_t> repeat_length(const TensorSpec& t, const Shape& norm_shape, const char* what) {
  size_t first = 0;
  while (first < t.shape.size() && t.shape[first] == 1) ++first;
  const size_t m = t.shape.size() - first;
  if (m > norm_shape.size() || !std::equal(t.shape.begin() + first, t.shape.end(), norm_shape.end() - m)) {
    return unsupported(what, " ", shape_string(t.shape), " does not repeat over the normalised shape ",
                       shape_string(norm_shape), " (the GPU LayerNormalization takes trailing-dimension "
                       "broadcasts only)");
  }
  return std::max<int64_t>(t.numel(), 1);
}

}  // namespace

BuildResult build_softmax(const OpSpec& spec, const OpEnv& env) {
  // AddSoftmax: inputs [X, M], the softmax of X + M (M broadcast to X).
  const bool add = spec.op == "AddSoftmax";
  PS_TRY(add ? check_arity(spec, 2, 2, 1, 1) : check_arity(spec, 1, 1, 1, 1));
  AttrReader attrs(spec);
  PS_TRY(attrs->check_attrs({"axis"}));
  const TensorSpec& x = spec.inputs[0];
  for (const TensorSpec& in : spec.inputs) {
    if (in.dtype != DType::kFloat32)
      return unsupported("input dtype ", dtype_name(in.dtype), " (float32 only)");
  }
  PS_TRY(check_output(spec, 0, x.dtype, x.shape));
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  PS_ASSIGN_OR_RETURN(int64_t axis, attrs->attr_int("axis", -1));
  if (axis < -rank || axis >= rank) return invalid_argument("axis ", axis, " is out of range for rank ", rank);
  if (axis < 0) axis += rank;
  if (add && axis != rank - 1) {
    return unsupported("axis ", axis, " of rank ", rank,
                       " (the GPU AddSoftmax takes the last axis only)");
  }
  kernels::SoftmaxParams p;
  p.outer = element_count(Shape(x.shape.begin(), x.shape.begin() + axis));
  p.n = x.shape[axis];
  p.inner = element_count(Shape(x.shape.begin() + axis + 1, x.shape.end()));
  p.log = spec.op == "LogSoftmax";
  if (add) PS_TRY(plan_softmax_mask(spec.inputs[1].shape, x.shape, &p));
  const int32_t per_lane = p.inner == 1 ? warp_row_share(p.n) : 0;
  const int32_t mode = p.inner != 1 ? 2 : per_lane > 0 ? 0 : 1;
  PS_ASSIGN_OR_RETURN(cuda::Kernel k,
                      warp_row_kernel(env, "ps_softmax", per_lane, "ps_softmax_f32"));
  return std::unique_ptr<GpuOp>(new SoftmaxOp(k, p, mode, per_lane, add));
}

BuildResult build_layer_norm(const OpSpec& spec, const OpEnv& env) {
  // AddLayerNormalization: inputs [A, B, Scale, B?], the LayerNorm of A + B; one output.
  const bool add = spec.op == "AddLayerNormalization";
  const size_t first = add ? 1 : 0;
  PS_TRY(add ? check_arity(spec, 3, 4, 1, 1) : check_arity(spec, 2, 3, 1, 3));
  AttrReader attrs(spec);
  PS_TRY(attrs->check_attrs({"axis", "epsilon", "stash_type"}));
  const TensorSpec& x = spec.inputs[0];
  if (add && (spec.inputs[1].dtype != x.dtype || spec.inputs[1].shape != x.shape)) {
    return unsupported("addends ", dtype_name(x.dtype), shape_string(x.shape), " and ",
                       dtype_name(spec.inputs[1].dtype), shape_string(spec.inputs[1].shape),
                       " (the GPU AddLayerNormalization adds equal shapes only)");
  }
  const TensorSpec& scale = spec.inputs[1 + first];
  const TensorSpec* bias = optional_input(spec, 2 + first);
  if (x.dtype != DType::kFloat32 || scale.dtype != DType::kFloat32 ||
      (bias != nullptr && bias->dtype != DType::kFloat32)) {
    return unsupported("dtypes X ", dtype_name(x.dtype), ", Scale ", dtype_name(scale.dtype),
                       " (the GPU LayerNormalization is float32 only)");
  }
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  PS_ASSIGN_OR_RETURN(int64_t axis, attrs->attr_int("axis", -1));
  PS_ASSIGN_OR_RETURN(const float epsilon, attrs->attr_float("epsilon", 1e-5f));
  PS_ASSIGN_OR_RETURN(const int64_t stash_type, attrs->attr_int("stash_type", 1));
  if (stash_type != 1) return unsupported("stash_type=", stash_type, " (only 1, float32)");
  if (axis < -rank || axis >= rank) return invalid_argument("axis ", axis, " is out of range for rank ", rank);
  if (axis < 0) axis += rank;
  PS_TRY(check_output(spec, 0, x.dtype, x.shape));
  Shape stat_shape(x.shape.begin(), x.shape.begin() + axis);
  stat_shape.resize(x.shape.size(), 1);
  for (size_t i = 1; i < spec.outputs.size(); ++i) PS_TRY(check_output(spec, i, DType::kFloat32, stat_shape));
  const Shape norm_shape(x.shape.begin() + axis, x.shape.end());
  kernels::LayerNormParams p;
  p.inner = element_count(norm_shape);
  p.rows = p.inner == 0 ? 0 : x.numel() / p.inner;
  p.epsilon = epsilon;
  PS_ASSIGN_OR_RETURN(p.scale_len, repeat_length(scale, norm_shape, "Scale"));
  if (bias != nullptr) {
    PS_ASSIGN_OR_RETURN(p.bias_len, repeat_length(*bias, norm_shape, "B"));
  }
  const int32_t per_lane = warp_row_share(p.inner);
  PS_ASSIGN_OR_RETURN(cuda::Kernel k,
                      warp_row_kernel(env, "ps_layer_norm", per_lane, "ps_layer_norm_f32"));
  return std::unique_ptr<GpuOp>(new LayerNormOp(k, p, per_lane, add));
}

}  // namespace ps::models::gpu
