// Test support: a tiny zoo model built, imported and lowered in process (as psimport does),
// and seeded inputs for it. Shared by the GPU executor's tests and the plan layout tests.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "models/cpu/tensor.h"
#include "onnx_loader/lower.h"
#include "onnx_loader/pipeline.h"

namespace ps::models::testing {

struct ZooLowering {
  std::string model;  // zoo name: resnet_tiny, inception_tiny, bert_tiny
  int opset = 17;
  int64_t batch = 2;
  int64_t seq = 8;
  onnx_loader::Mode mode = onnx_loader::Mode::kInference;
  onnx_loader::GroupingMode grouping = onnx_loader::GroupingMode::kPerLayer;
};

// Builds and lowers the model. Errors name the stage (build, import, passes, lower).
Result<onnx_loader::LoweredModel> lower_zoo_model(const ZooLowering& what);

// A one-layer self-attention classifier as PyTorch's exporter writes it in training mode:
// x [batch, seq, 16] float32, query/key/value nn.Linear(16, 16) (MatMul(x, Transpose(W)) +
// b), 2 heads of 8 (Reshape, Transpose; the key's [0, 2, 3, 1]), scores / sqrt(8), Softmax,
// context, heads merged, mean over seq: logits [batch, 16]. Weights seeded; what
// fuse_head_projections fuses.
onnx::ModelProto attention_classifier_model();
// Imports and lowers `model` as psimport does for `mode`, skipping the fusion passes `skip`,
// with dims batch and seq. Errors name the stage.
Result<onnx_loader::LoweredModel> lower_onnx_model(const onnx::ModelProto& model,
                                                   onnx_loader::Mode mode,
                                                   const std::vector<std::string>& skip = {},
                                                   int64_t batch = 2, int64_t seq = 8);

// Seeded inputs for every INPUT tensor of `manifest`, by name: float32 ~N(0,1); int64 token
// type ids 0/1, attention masks 1, other int64 inputs uniform in [0, vocab).
Result<std::map<std::string, cpu::Tensor>> make_model_inputs(
    const pipeswitch::psm::Manifest& manifest, uint64_t seed, int64_t vocab = 100);

}  // namespace ps::models::testing
