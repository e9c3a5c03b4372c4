// The built-in model zoo: genuine ONNX models (ModelProto) built in C++ with seeded random
// weights, laid out as PyTorch's exporter writes torchvision's ResNet-18/50/152 and
// Inception v3 and Hugging Face's BertModel (bert-base-cased), plus tiny configurations of each
// for fast tests. Nothing is downloaded. docs/zoo.md describes every model.
//
// Knows nothing of CUDA; links libonnx only for the protobuf classes.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <onnx/onnx_pb.h>

#include "common/status.h"

namespace ps::zoo {

struct ZooOptions {
  uint64_t seed = 1;            // same (name, seed, opset) -> byte-identical model
  int opset = 17;               // default-domain opset, 13..17
  // Recorded in the metadata. The graph is the same, except for BERT models: their training
  // graph is BertForSequenceClassification (2 labels; one output `logits` [batch, 2]).
  bool training_graph = false;
};

// All zoo models: resnet18 resnet50 resnet152 inception_v3 bert_base, then the tiny
// configurations resnet_tiny inception_tiny bert_tiny.
std::vector<std::string> model_names();

// Builds the model `name` (one of model_names()). Returns the model, which the caller owns;
// NOT_FOUND for an unknown name, INVALID_ARGUMENT for an opset outside 13..17.
// Cost: generating the weights, about 1 s for bert_base.
Result<onnx::ModelProto> build_model(const std::string& name, const ZooOptions& options = {});

// Builds the model `name` and writes it, serialised, to `path` (created or truncated).
// Returns build_model's errors, or IO naming the path when it cannot be written.
Status write_model(const std::string& name, const std::string& path, const ZooOptions& options = {});

struct ZooInfo {
  std::string name;
  std::string description;
  // Graph inputs and their dims in order; a symbolic dim ("batch", "seq") is -1.
  std::vector<std::pair<std::string, std::vector<int64_t>>> inputs;
  // Trainable parameters: every weight and bias, not BatchNorm running statistics or the
  // position-id buffer. Equals torchvision's / Hugging Face's count for the same module.
  int64_t parameters = 0;
};

// Describes the model `name` without generating its weights (cheap). NOT_FOUND if unknown.
Result<ZooInfo> describe(const std::string& name);

}  // namespace ps::zoo
