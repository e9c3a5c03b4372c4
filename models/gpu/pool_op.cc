// MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool: cuDNN pooling where it computes the
// exact windows (symmetric pads, no dilation, floor-mode sizes; the global pools as one window
// over the flattened spatial dims), else our kernel ps_dnn_pool_f32 (asymmetric pads, ceil
// mode's extra window, dilated max pooling), which follows the CPU reference rule for rule.
#include <array>

#include "cuda/dnn.h"
#include "cuda/kernels/dnn_pool_params.h"
#include "cuda/module.h"
#include "models/gpu/dnn_builders.h"
#include "models/gpu/dnn_descriptors.h"
#include "models/gpu/runtime.h"
#include "models/gpu/window_plan.h"

namespace ps::models::gpu {
namespace {

const char* mode_name(PoolMode mode) {
  switch (mode) {
    case PoolMode::kMax:
      return "max";
    case PoolMode::kAverageExcludePad:
      return "average (pads not counted)";
    case PoolMode::kAverageIncludePad:
      return "average (pads counted)";
  }
  return "?";
}

class PoolOp final : public GpuOp {
 public:
  explicit PoolOp(cudnnHandle_t dnn) : dnn_(dnn) {}

  Status init(const PoolPlan& plan, GpuRuntime& runtime);

  Status enqueue(const LaunchArgs& args) const override;
  std::string describe() const override { return description_; }

 private:
  // cuDNN descriptors for `plan`, or a reason cuDNN does not fit after all.
  Result<bool> try_cudnn(const PoolPlan& plan, std::string* why_not);

  cudnnHandle_t dnn_;
  bool empty_ = false;
  bool use_cudnn_ = false;
  TensorDesc x_desc_, y_desc_;
  PoolDesc pool_desc_;
  cuda::Kernel kernel_;
  dnn_kernels::PoolParams params_{};
  uint64_t total_ = 0;
  std::string description_;
};

Result<bool> PoolOp::try_cudnn(const PoolPlan& plan, std::string* why_not) {
  std::vector<cpu::SpatialWindow> windows = plan.windows;
  if (windows.size() == 1) windows.insert(windows.begin(), cpu::SpatialWindow{});
  std::vector<int64_t> x_dims{plan.batch, plan.channels}, y_dims{plan.batch, plan.channels};
  std::vector<int64_t> window, pads, strides;
  for (const cpu::SpatialWindow& w : windows) {
    x_dims.push_back(w.in);
    y_dims.push_back(w.out);
    window.push_back(w.kernel);
    pads.push_back(w.pad_begin);
    strides.push_back(w.stride);
  }
  const cudnnPoolingMode_t mode = plan.mode == PoolMode::kMax ? CUDNN_POOLING_MAX
                                  : plan.mode == PoolMode::kAverageIncludePad
                                      ? CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING
                                      : CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING;
  Result<TensorDesc> x = make_tensor_desc(x_dims);
  Result<TensorDesc> y = make_tensor_desc(y_dims);
  if (!x.ok() || !y.ok()) {
    *why_not = (!x.ok() ? x.status() : y.status()).message();
    return false;
  }
  Result<PoolDesc> pool = make_pool_desc(mode, window, pads, strides);
  if (!pool.ok()) {
    *why_not = pool.status().message();
    return false;
  }
  std::array<int, 5> out{};
  const cudnnStatus_t st = cudnnGetPoolingNdForwardOutputDim(
      pool->get(), x->get(), static_cast<int>(x_dims.size()), out.data());
  if (st != CUDNN_STATUS_SUCCESS) {
    *why_not = str_cat("cudnnGetPoolingNdForwardOutputDim: ", cudnnGetErrorString(st));
    return false;
  }
  for (size_t i = 0; i < y_dims.size(); ++i) {
    if (out[i] != y_dims[i]) {
      *why_not = str_cat("cuDNN computes output dim ", i, " = ", out[i], ", ONNX ", y_dims[i]);
      return false;
    }
  }
  x_desc_ = std::move(x).value();
  y_desc_ = std::move(y).value();
  pool_desc_ = std::move(pool).value();
  return true;
}

Status PoolOp::init(const PoolPlan& plan, GpuRuntime& runtime) {
  total_ = static_cast<uint64_t>(element_count(plan.out_shape));
  if (total_ == 0) {
    empty_ = true;
    description_ = "pool with an empty output (nothing to do)";
    return Status::OK();
  }
  std::string why_not = plan.why_not_cudnn;
  if (plan.cudnn_exact) {
    PS_ASSIGN_OR_RETURN(use_cudnn_, try_cudnn(plan, &why_not));
  }
  if (use_cudnn_) {
    description_ = str_cat("cudnn pooling, ", mode_name(plan.mode));
    return Status::OK();
  }
  params_ = pool_kernel_params(plan);
  PS_ASSIGN_OR_RETURN(kernel_, runtime.kernel("ps_dnn_pool_f32"));
  description_ =
      str_cat("kernel ps_dnn_pool_f32, ", mode_name(plan.mode), " (not cuDNN: ", why_not, ")");
  return Status::OK();
}

Status PoolOp::enqueue(const LaunchArgs& args) const {
  if (args.inputs.empty() || args.outputs.empty()) {
    return invalid_argument("pool enqueue: no input or output bound");
  }
  if (empty_) return Status::OK();
  if (use_cudnn_) {
    const float one = 1.0f;
    const float zero = 0.0f;
    CUDNN_TRY(cudnnPoolingForward(dnn_, pool_desc_.get(), &one, x_desc_.get(),
                                  reinterpret_cast<const void*>(args.inputs[0]), &zero,
                                  y_desc_.get(), reinterpret_cast<void*>(args.outputs[0])));
    return Status::OK();
  }
  return kernel_.launch(args.stream, cuda::blocks_for(total_, 256), 256, 0, args.inputs[0],
                        args.outputs[0], params_);
}

}  // namespace

Result<std::unique_ptr<GpuOp>> build_pool(const OpSpec& spec, const OpEnv& env) {
  PS_ASSIGN_OR_RETURN(const PoolPlan plan, plan_pool(spec));
  auto op = std::make_unique<PoolOp>(env.runtime.dnn());
  PS_TRY(op->init(plan, env.runtime));
  return std::unique_ptr<GpuOp>(std::move(op));
}

}  // namespace ps::models::gpu
