// The GPU trainer's operators (issue 7): the backward of each forward layer, BatchNormalization's
// training forward, softmax cross-entropy, SGD and gradient accumulation. Semantics are the CPU
// references' (models/cpu/grad.h, sgd.h; docs/training.md), in float32 (convolutions and matrix
// products in the OpEnv's Precision).
//
// A backward op is a GpuOp built ONCE from the forward layer's OpSpec (the spec the forward op
// was built from), like every op: descriptors, cuDNN algorithms (searched and cached), cuBLAS
// configuration and kernels at build time; enqueue() only binds addresses. Its LaunchArgs:
//   inputs  = the forward's inputs in order (0 for an absent optional one), then dY;
//             BatchNormalization adds saved_mean and saved_inv_std (from its training forward);
//             Softmax adds its forward output Y (inputs {X, dY, Y}: its backward reads Y)
//   outputs = one gradient per forward input, in order; the address of a gradient that is not
//             wanted (GradSpec::wanted) is ignored and may be 0
// Every gradient is written (overwriting the buffer) unless its bit in GradSpec::accumulate is
// set: then it is added to what the buffer holds (a tensor read by several layers; the trainer
// writes with the first backward that reaches it and accumulates with the others).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "common/status.h"
#include "cuda/kernels/train_params.h"
#include "cuda/module.h"
#include "models/gpu/op.h"

namespace ps::models::gpu {

struct GradSpec {
  const OpSpec& forward;
  uint32_t wanted = ~0u;      // bit i: compute the gradient of forward input i
  uint32_t accumulate = 0u;   // bit i: add it to its buffer instead of overwriting
  // The packed input's gradient (HeadSlice's and AttentionScores' input 0, AttentionContext's
  // input 1): write only the columns this layer read, leaving the rest to other backwards that
  // write them (readers of columns covering their input between them; trainer_plan.h). Only
  // those ops' backwards take it; never with that input's accumulate bit.
  bool partial = false;
  bool wants(size_t i) const { return i < 32 && ((wanted >> i) & 1u) != 0; }
  bool accumulates(size_t i) const { return i < 32 && ((accumulate >> i) & 1u) != 0; }
};

using GradBuilder = Result<std::unique_ptr<GpuOp>> (*)(const GradSpec& spec, const OpEnv& env);
struct GradEntry {
  std::string_view op;  // the forward op
  GradBuilder build;
};

// The backward builders, sorted by forward op name (grad_ops.cc): Add, AveragePool,
// BatchNormalization, Concat, Conv, Flatten, Gemm, GlobalAveragePool, Identity, MaxPool, Relu,
// Reshape: every op of the training-mode ResNet and Inception manifests; and for BERT's
// (opsets 13 and 17) Div, Erf, Exp, Gather, Gelu, LayerNormalization, MatMul, Mul, Neg, Pow,
// ReduceMean, Softmax, Sqrt, Squeeze, Sub, Tanh, Transpose, Unsqueeze (docs/training.md), and
// the fused MatMulScale, MatMulTransB and AddSoftmax, and HeadSlice (fuse_head_projections).
std::span<const GradEntry> grad_op_table();
// Builds the backward of spec.forward. Errors: kUnsupported when no backward exists (naming
// the op), else the builder's error prefixed with the op and layer name.
Result<std::unique_ptr<GpuOp>> build_grad_op(const GradSpec& spec, const OpEnv& env);
bool gpu_has_backward(std::string_view op);

// BatchNormalization's training forward (grad_batch_norm.cc): Y with the batch's statistics
// (biased variance), running statistics updated in place with the ONNX momentum m:
// running = m * running + (1 - m) * batch, unbiased variance for running_var (PyTorch's
// train() mode; cuDNN's exponentialAverageFactor is 1 - m). LaunchArgs: inputs {X, scale, B,
// running_mean, running_var} (the last two read and written), outputs {Y, saved_mean [C],
// saved_inv_std [C]} (float32; what the backward reads). Errors: fewer than 2 values per
// channel, non-float32, epsilon below cuDNN's minimum.
Result<std::unique_ptr<GpuOp>> build_batch_norm_training(const OpSpec& forward, const OpEnv& env);

// Softmax cross-entropy, mean over the batch (grad_kernel_ops.cc). LaunchArgs: inputs {logits
// float32 [N, K], labels int64 [N]}, outputs {dlogits float32 [N, K], loss: ONE float64}. One
// block: deterministic. A label outside [0, K) makes the loss NaN.
Result<std::unique_ptr<GpuOp>> build_softmax_cross_entropy(const Shape& logits, const OpEnv& env);

// The kernels of the update, looked up once (grad_kernel_ops.cc). Enqueueing allocates
// nothing; the SGD group's tiles come from the plan (grad_kernel_plan.h's plan_sgd_group).
class TrainKernels {
 public:
  static Result<TrainKernels> load(const OpEnv& env);
  // One SGD step of a group of tensors: p from plan_sgd_group with every tensor's addresses
  // and first-step bit filled in (param, grad and, when momentum != 0, buf: float32 [n[t]]).
  // Errors: a tensor with elements and a null address.
  Status sgd_group(const cuda::Stream& stream, const train_kernels::SgdGroupParams& p) const;
  // dst += src over `count` float32 elements.
  Status accumulate(const cuda::Stream& stream, CUdeviceptr dst, CUdeviceptr src,
                    int64_t count) const;

 private:
  cuda::Kernel sgd_group_, accumulate_;
};

}  // namespace ps::models::gpu
