// BatchNormalization in training mode on cuDNN's spatial batch norm (X viewed as
// [N, C, inner, 1], as the inference op does):
//  - forward: cudnnBatchNormalizationForwardTraining normalises with the batch mean and BIASED
//    variance, updates running_mean/var in place with exponentialAverageFactor = 1 - m (ONNX
//    momentum m; cuDNN: running = factor * batch + (1 - factor) * running) and, like PyTorch,
//    the UNBIASED batch variance for running_var; it saves the batch mean and 1/sqrt(var + eps)
//    (documented as "inverse variance", it is the inverse standard deviation), which the
//    backward reads. The [gpu] test checks all three against the CPU reference.
//  - backward: cudnnBatchNormalizationBackward from the saved statistics: dX, dscale, dB,
//    dX and the parameter gradients each written or accumulated (its beta).
#include "cuda/dnn.h"
#include "models/cpu/op_context.h"
#include "models/gpu/dnn_descriptors.h"
#include "models/gpu/grad_builders.h"
#include "models/gpu/runtime.h"

namespace ps::models::gpu {
namespace {

struct BatchNormShape {
  int64_t batch = 0, channels = 0, inner = 0;
  double epsilon = 1e-5;
  double momentum = 0.9;
  TensorDesc x_desc, bn_desc;
};

// Validates X [N, C, ...] float32 with at least 2 values per channel, the [C] parameters, the
// attributes, and makes the descriptors.
Result<BatchNormShape> plan_batch_norm(const OpSpec& f) {
  const std::string op(f.op);
  const cpu::OpContext ctx(op, f.attrs, {}, {});
  PS_TRY(ctx.check_attrs({"epsilon", "momentum", "training_mode", "spatial"}));
  BatchNormShape s;
  PS_ASSIGN_OR_RETURN(const float epsilon, ctx.attr_float("epsilon", 1e-5f));
  PS_ASSIGN_OR_RETURN(const float momentum, ctx.attr_float("momentum", 0.9f));
  PS_ASSIGN_OR_RETURN(const int64_t spatial, ctx.attr_int("spatial", 1));
  if (spatial != 1) return unsupported("spatial=", spatial);
  if (!(epsilon >= CUDNN_BN_MIN_EPSILON)) {
    return invalid_argument("epsilon=", epsilon, " (cuDNN needs >= ", CUDNN_BN_MIN_EPSILON, ")");
  }
  if (!(momentum >= 0.0f && momentum <= 1.0f)) return invalid_argument("momentum=", momentum);
  s.epsilon = epsilon;
  s.momentum = momentum;
  if (f.inputs.size() != 5) {
    return invalid_argument("needs 5 inputs (X, scale, B, mean, var), got ", f.inputs.size());
  }
  const TensorSpec& x = f.inputs[0];
  if (x.dtype != DType::kFloat32 || x.shape.size() < 2) {
    return unsupported("X is ", dtype_name(x.dtype), shape_string(x.shape),
                       ": float32 [N, C, ...] only");
  }
  s.batch = x.shape[0];
  s.channels = x.shape[1];
  s.inner = element_count(Shape(x.shape.begin() + 2, x.shape.end()));
  if (s.batch * s.inner < 2) {
    return invalid_argument("X ", shape_string(x.shape),
                            " has fewer than 2 values per channel (training needs a variance)");
  }
  for (size_t k = 1; k < 5; ++k) {
    const TensorSpec& p = f.inputs[k];
    if (p.dtype != DType::kFloat32 || p.shape != Shape{s.channels}) {
      return invalid_argument("input ", k, " ", dtype_name(p.dtype), shape_string(p.shape),
                              " must be float32[", s.channels, "]");
    }
  }
  PS_ASSIGN_OR_RETURN(s.x_desc,
                      make_tensor_desc(std::vector<int64_t>{s.batch, s.channels, s.inner, 1}));
  PS_ASSIGN_OR_RETURN(s.bn_desc, make_tensor_desc(std::vector<int64_t>{1, s.channels, 1, 1}));
  return s;
}

class BatchNormTrainingOp final : public GpuOp {
 public:
  BatchNormTrainingOp(cudnnHandle_t dnn, BatchNormShape s) : dnn_(dnn), s_(std::move(s)) {}
  Status enqueue(const LaunchArgs& args) const override {
    if (args.inputs.size() < 5 || args.outputs.size() < 3) {
      return invalid_argument("BatchNormalization training enqueue: needs 5 inputs and 3 outputs");
    }
    const float one = 1.0f, zero = 0.0f;
    auto p = [](CUdeviceptr a) { return reinterpret_cast<void*>(a); };
    CUDNN_TRY(cudnnBatchNormalizationForwardTraining(
        dnn_, CUDNN_BATCHNORM_SPATIAL, &one, &zero, s_.x_desc.get(), p(args.inputs[0]),
        s_.x_desc.get(), p(args.outputs[0]), s_.bn_desc.get(), p(args.inputs[1]),
        p(args.inputs[2]), 1.0 - s_.momentum, p(args.inputs[3]), p(args.inputs[4]), s_.epsilon,
        p(args.outputs[1]), p(args.outputs[2])));
    return Status::OK();
  }
  std::string describe() const override {
    return str_cat("cudnn batch norm forward training (spatial), epsilon ", s_.epsilon,
                   ", exponential average factor ", 1.0 - s_.momentum);
  }

 private:
  cudnnHandle_t dnn_;
  BatchNormShape s_;
};

class BatchNormGradOp final : public GpuOp {
 public:
  BatchNormGradOp(cudnnHandle_t dnn, BatchNormShape s, const GradSpec& spec)
      : dnn_(dnn), s_(std::move(s)) {
    acc_dx_ = spec.accumulates(0);
    acc_params_ = spec.accumulates(1);
  }
  Status enqueue(const LaunchArgs& args) const override {
    // inputs {X, scale, B, mean, var, dY, saved_mean, saved_inv_std}; outputs {dX, dscale, dB}.
    if (args.inputs.size() < 8 || args.outputs.size() < 3) {
      return invalid_argument("BatchNormalization backward enqueue: needs 8 inputs and 3 outputs");
    }
    const float one = 1.0f, zero = 0.0f;
    auto p = [](CUdeviceptr a) { return reinterpret_cast<void*>(a); };
    CUDNN_TRY(cudnnBatchNormalizationBackward(
        dnn_, CUDNN_BATCHNORM_SPATIAL, &one, acc_dx_ ? &one : &zero, &one,
        acc_params_ ? &one : &zero, s_.x_desc.get(), p(args.inputs[0]), s_.x_desc.get(),
        p(args.inputs[5]), s_.x_desc.get(), p(args.outputs[0]), s_.bn_desc.get(),
        p(args.inputs[1]), p(args.outputs[1]), p(args.outputs[2]), s_.epsilon, p(args.inputs[6]),
        p(args.inputs[7])));
    return Status::OK();
  }
  std::string describe() const override {
    return str_cat("cudnn batch norm backward (spatial)", acc_dx_ ? ", dX accumulated" : "",
                   acc_params_ ? ", dscale/dB accumulated" : "");
  }

 private:
  cudnnHandle_t dnn_;
  BatchNormShape s_;
  bool acc_dx_ = false, acc_params_ = false;
};

}  // namespace

Result<std::unique_ptr<GpuOp>> build_batch_norm_training(const OpSpec& forward, const OpEnv& env) {
  PS_ASSIGN_OR_RETURN(BatchNormShape s, plan_batch_norm(forward));
  return std::unique_ptr<GpuOp>(new BatchNormTrainingOp(env.runtime.dnn(), std::move(s)));
}

Result<std::unique_ptr<GpuOp>> build_batch_norm_grad(const GradSpec& spec, const OpEnv& env) {
  PS_ASSIGN_OR_RETURN(BatchNormShape s, plan_batch_norm(spec.forward));
  // cuDNN computes dX, dscale and dB in one call: the scale and bias gradients are always
  // written (their buffers must be bound), and accumulate together or not at all.
  if (spec.accumulates(1) != spec.accumulates(2)) {
    return unsupported("accumulating one of dscale and dB but not the other");
  }
  if (!spec.wants(1) || !spec.wants(2)) {
    return unsupported("a BatchNormalization backward without dscale or dB (cuDNN writes both)");
  }
  return std::unique_ptr<GpuOp>(new BatchNormGradOp(env.runtime.dnn(), std::move(s), spec));
}

}  // namespace ps::models::gpu
