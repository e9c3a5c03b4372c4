// The backward of one layer of a training-mode manifest: dispatches the layer's op to its
// backward reference operator (models/cpu/grad.h). The CPU trainer (trainer.h) calls it for
// each layer in reverse order.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

#include "common/status.h"
#include "models/cpu/grad.h"
#include "models/cpu/tensor.h"
#include "onnx_loader/psm.pb.h"

namespace ps::models::cpu {

struct LayerValues {
  std::vector<const Tensor*> inputs;  // the forward's inputs, in order
  const Tensor* output = nullptr;     // the forward's output (Softmax and AddSoftmax read it)
  const BatchNormSaved* batch_norm = nullptr;  // BatchNormalization's batch statistics
};

// The gradients of `layer`'s inputs given dy, the gradient of its output: pairs of (input
// slot, gradient). A slot may be missing (no gradient to indices, shapes or axes) or
// present but unwanted (the caller keeps what it wants). Errors: an op with no backward here
// (kUnsupported), and the backward operators' errors.
Result<std::vector<std::pair<size_t, Tensor>>> layer_backward(
    const pipeswitch::psm::Layer& layer, const LayerValues& values, const Tensor& dy);

}  // namespace ps::models::cpu
