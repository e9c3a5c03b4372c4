// The CPU trainer: trains a lowered training-mode model (manifest + weight blob, as
// `psimport --mode training` writes it) on a synthetic dataset, one SGD step at a time, on
// the CPU reference operators. Its whole state is float64; it is the reference for the GPU
// trainer of issue 7 and lets CI train the tiny zoo models: the CNNs on images, BERT (its
// training graph, BertForSequenceClassification) on token sequences.
//
// A step: the next batch; the forward pass in layer order keeping every activation (Batch-
// Normalization uses the batch's statistics and updates its running statistics as PyTorch's
// train() mode does); softmax cross-entropy of the model's output against the labels (mean
// over the batch); the backward pass in reverse layer order (models/cpu/grad.h), summing the
// gradients of tensors read by several layers; then sgd_update on every trainable weight that
// received a gradient. Single-threaded and deterministic: the same manifest, weights and
// options give bit-identical losses.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "models/cpu/sgd.h"
#include "models/cpu/synthetic_data.h"
#include "models/cpu/synthetic_tokens.h"
#include "models/cpu/tensor.h"
#include "onnx_loader/psm.pb.h"

namespace ps::models::cpu {

struct TrainerOptions {
  SgdOptions sgd;
  SyntheticDataOptions data;
};

// Everything a checkpoint holds: the float weights (trainable parameters and BatchNorm running
// statistics) by manifest tensor index, the momentum buffers of the parameters that have one,
// the number of steps done and the index of the next batch.
struct TrainingState {
  std::map<uint32_t, Tensor> weights;
  std::map<uint32_t, Tensor> momentum;
  uint64_t step = 0;
  uint64_t data_position = 0;
};

class Trainer {
 public:
  // Builds a trainer; copies what it needs from `manifest` and `weights` (no borrowing).
  // Requirements, each an error naming what is wrong:
  // - inputs: one float32 INPUT [N, ...] (images: SyntheticData), or only integer INPUTs
  //   [N, ...] each read as indices by an embedding Gather (token ids in [0, its table's rows):
  //   SyntheticTokens; BERT's input_ids and token_type_ids);
  // - one float32 OUTPUT [N, K] (the logits), and data.classes <= K;
  // - every layer's op has a backward here, with one output: Conv, BatchNormalization, Relu,
  //   MaxPool, AveragePool, GlobalAveragePool, Add, Sub, Mul, Div, Pow, Flatten, Reshape,
  //   Identity, Squeeze, Unsqueeze, Expand, Transpose, Concat, Gemm, MatMul, MatMulTransB,
  //   Softmax, LayerNormalization, Gather, ReduceMean, Erf, Tanh, Sqrt, Gelu, Neg, Exp, Cast;
  // - the weight blob holds every WEIGHT tensor.
  static Result<std::unique_ptr<Trainer>> create(const pipeswitch::psm::Manifest& manifest,
                                                 std::span<const uint8_t> weights,
                                                 const TrainerOptions& options);

  // Runs one step and returns its loss (computed before the update). On an error the state
  // may be partly updated; the error names the layer.
  Result<double> step();

  // The forward and backward of a step on batch `batch_index` without the update: returns the
  // loss and sets *weight_grads to the gradient of every trainable weight that has one. The
  // running statistics are updated only when asked (a step does; a gradient check does not).
  // The step counter and data position do not move.
  Result<double> loss_and_gradients(uint64_t batch_index, bool update_running_stats,
                                    std::map<uint32_t, Tensor>* weight_grads);

  // A function called between layers: before each layer of the forward and of the backward
  // pass and before the update. It may block (a training job parks there while inference
  // runs: docs/training.md, "Preemption"); it must not touch the trainer. Empty: none.
  void set_layer_hook(std::function<void()> hook) { layer_hook_ = std::move(hook); }

  const TrainingState& state() const { return state_; }
  // For restoring a checkpoint (models/cpu/checkpoint.h), which checks names and shapes.
  TrainingState& mutable_state() { return state_; }
  const pipeswitch::psm::Manifest& manifest() const { return manifest_; }
  int64_t batch_size() const { return batch_size_; }
  // The labels' range of the data (options.data.classes).
  int64_t classes() const { return options_.data.classes; }

 private:
  Trainer(const pipeswitch::psm::Manifest& manifest, const TrainerOptions& options)
      : manifest_(manifest), options_(options) {}

  pipeswitch::psm::Manifest manifest_;
  TrainerOptions options_;
  std::vector<uint8_t> blob_;  // for the non-float weights (shapes), read as they are
  // Batch `index`: the value of every input (float64 images or int64 tokens) and the labels.
  Status make_batch(uint64_t index, std::map<uint32_t, Tensor>* inputs,
                    std::vector<int64_t>* labels) const;

  std::unique_ptr<SyntheticData> images_;   // a model with one float input
  std::unique_ptr<SyntheticTokens> tokens_; // a model with token inputs
  TrainingState state_;
  std::function<void()> layer_hook_;
  std::vector<uint32_t> inputs_;  // the INPUT tensors, in manifest order
  uint32_t output_ = 0;
  int64_t batch_size_ = 0;
};

}  // namespace ps::models::cpu
