// BatchNormalization, inference form (running statistics): cuDNN's spatial batch norm,
// Y = (X - mean) * scale / sqrt(var + epsilon) + B per channel, over X [N, C, ...] viewed as
// [N, C, inner, 1].
#include "cuda/dnn.h"
#include "models/cpu/op_context.h"
#include "models/gpu/dnn_builders.h"
#include "models/gpu/dnn_descriptors.h"
#include "models/gpu/runtime.h"

namespace ps::models::gpu {
namespace {

class BatchNormOp final : public GpuOp {
 public:
  BatchNormOp(cudnnHandle_t dnn, double epsilon, bool empty, TensorDesc x, TensorDesc bn)
      : dnn_(dnn),
        epsilon_(epsilon),
        empty_(empty),
        x_desc_(std::move(x)),
        bn_desc_(std::move(bn)) {}

  Status enqueue(const LaunchArgs& args) const override {
    if (args.inputs.size() < 5 || args.outputs.empty()) {
      return invalid_argument("BatchNormalization enqueue: ", args.inputs.size(), " inputs bound");
    }
    if (empty_) return Status::OK();
    const float one = 1.0f;
    const float zero = 0.0f;
    auto p = [&](size_t i) { return reinterpret_cast<const void*>(args.inputs[i]); };
    CUDNN_TRY(cudnnBatchNormalizationForwardInference(
        dnn_, CUDNN_BATCHNORM_SPATIAL, &one, &zero, x_desc_.get(), p(0), x_desc_.get(),
        reinterpret_cast<void*>(args.outputs[0]), bn_desc_.get(), p(1), p(2), p(3), p(4),
        epsilon_));
    return Status::OK();
  }
  std::string describe() const override {
    return str_cat("cudnn batch norm inference (spatial), epsilon ", epsilon_);
  }

 private:
  cudnnHandle_t dnn_;
  double epsilon_;
  bool empty_;
  TensorDesc x_desc_, bn_desc_;
};

std::string spec_string(const TensorSpec& t) {
  return str_cat(dtype_name(t.dtype), shape_string(t.shape));
}

}  // namespace

Result<std::unique_ptr<GpuOp>> build_batch_norm(const OpSpec& spec, const OpEnv& env) {
  const std::string op(spec.op);
  const cpu::OpContext ctx(op, spec.attrs, {}, {});
  PS_TRY(ctx.check_attrs({"epsilon", "momentum", "training_mode", "spatial"}));
  PS_ASSIGN_OR_RETURN(const float epsilon, ctx.attr_float("epsilon", 1e-5f));
  PS_ASSIGN_OR_RETURN(const int64_t training_mode, ctx.attr_int("training_mode", 0));
  PS_ASSIGN_OR_RETURN(const int64_t spatial, ctx.attr_int("spatial", 1));
  if (training_mode != 0) return unsupported("training_mode=1 (inference only)");
  if (spatial != 1) return unsupported("spatial=", spatial);
  if (!(epsilon >= CUDNN_BN_MIN_EPSILON)) {
    return invalid_argument("epsilon=", epsilon, " (cuDNN needs >= ", CUDNN_BN_MIN_EPSILON, ")");
  }
  if (spec.inputs.size() != 5) {
    return invalid_argument("needs 5 inputs (X, scale, B, mean, var), got ", spec.inputs.size());
  }
  for (size_t i = 1; i < spec.outputs.size(); ++i) {
    if (spec.outputs[i].present()) {
      return invalid_argument("running_mean/running_var outputs exist only in training mode");
    }
  }
  const TensorSpec& x = spec.inputs[0];
  if (x.dtype != DType::kFloat32) return unsupported("X is ", spec_string(x), ": only float32");
  if (x.shape.size() < 2) return invalid_argument("X ", spec_string(x), " must be [N, C, ...]");
  const int64_t channels = x.shape[1];
  const char* names[] = {"scale", "B", "input_mean", "input_var"};
  for (size_t k = 1; k < 5; ++k) {
    const TensorSpec& p = spec.inputs[k];
    if (p.dtype != DType::kFloat32 || p.shape != Shape{channels}) {
      return invalid_argument(names[k - 1], " ", spec_string(p), " must be float32[", channels,
                              "]");
    }
  }
  if (spec.outputs.empty() || spec.outputs[0].dtype != DType::kFloat32 ||
      spec.outputs[0].shape != x.shape) {
    return invalid_argument("output Y must be ", spec_string(x));
  }
  const int64_t inner = element_count(Shape(x.shape.begin() + 2, x.shape.end()));
  const bool empty = element_count(x.shape) == 0;
  TensorDesc x_desc, bn_desc;
  if (!empty) {
    const std::vector<int64_t> dims{x.shape[0], channels, inner, 1};
    PS_ASSIGN_OR_RETURN(x_desc, make_tensor_desc(dims));
    PS_ASSIGN_OR_RETURN(bn_desc, make_tensor_desc(std::vector<int64_t>{1, channels, 1, 1}));
  }
  return std::unique_ptr<GpuOp>(
      std::make_unique<BatchNormOp>(env.runtime.dnn(), static_cast<double>(epsilon), empty,
                                    std::move(x_desc), std::move(bn_desc)));
}

}  // namespace ps::models::gpu
