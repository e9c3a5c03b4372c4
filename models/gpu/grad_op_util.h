// Checks and small ops the backward ops on our kernels share (grad_kernel_ops.cc,
// grad_bert_ops.cc, head_slice_op.cc).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "models/gpu/op.h"

namespace ps::models::gpu {

// kUnsupported unless `t` is float32 (training is float32 only); `what` names the operand.
Status require_f32(const TensorSpec& t, std::string_view what);
// The argument check every backward enqueue makes: at least `inputs` and `outputs` addresses
// bound (kInvalidArgument naming the op `what` and the counts).
Status check_bound(const LaunchArgs& args, size_t inputs, size_t outputs, std::string_view what);
// The forward's output Y (one, float32) of a layer spec.
Result<const TensorSpec*> forward_output(const OpSpec& f);
// The backward of a layer none of whose input gradients is wanted: enqueues nothing;
// describe() says so, naming `op`.
std::unique_ptr<GpuOp> no_grad_op(std::string op);

}  // namespace ps::models::gpu
