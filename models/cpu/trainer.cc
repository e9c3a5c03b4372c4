#include "models/cpu/trainer.h"

#include <algorithm>
#include <cstring>
#include <set>
#include <utility>

#include "models/cpu/grad.h"
#include "models/cpu/layer_backward.h"
#include "models/cpu/ops.h"
#include "models/cpu/token_range.h"

namespace ps::models::cpu {

namespace {

using pipeswitch::psm::Layer;
using pipeswitch::psm::Manifest;
using TensorProto = pipeswitch::psm::Tensor;

const std::set<std::string>& ops_with_backward() {
  // clang-format off
  static const std::set<std::string> ops = {
      "Add",       "AddSoftmax",  "AttentionContext",   "AttentionScores",
      "AveragePool",              "BatchNormalization", "Cast",         "Concat",
      "Conv",      "Div",         "Erf",                "Exp",          "Expand",
      "Flatten",   "Gather",      "Gelu",               "Gemm",         "GlobalAveragePool",
      "HeadSlice",
      "Identity",  "LayerNormalization", "MatMul",      "MatMulScale",  "MatMulTransB",
      "MaxPool",   "Mul",         "Neg",                "Pow",          "ReduceMean",   "Relu",
      "Reshape",   "Softmax",     "Sqrt",               "Squeeze",      "Sub",
      "Tanh",      "Transpose",   "Unsqueeze"};
  // clang-format on
  return ops;
}

bool is_float(const TensorProto& t) { return t.dtype() == pipeswitch::psm::DT_FLOAT32; }
bool is_integer(const TensorProto& t) {
  return t.dtype() == pipeswitch::psm::DT_INT64 || t.dtype() == pipeswitch::psm::DT_INT32;
}

Shape shape_of(const TensorProto& t) { return Shape(t.shape().begin(), t.shape().end()); }

std::string where(int l, const Layer& layer) {
  return str_cat("layer ", l, " (", layer.op(), " '", layer.name(), "')");
}

// Adds `g` into grads[index] (moves it in when there is none yet).
Status accumulate(std::map<uint32_t, Tensor>& grads, uint32_t index, Tensor g) {
  auto it = grads.find(index);
  if (it == grads.end()) {
    grads.emplace(index, std::move(g));
    return Status::OK();
  }
  if (it->second.shape() != g.shape()) {
    return internal_error("gradient of tensor ", index, ": ", it->second.description(), " + ",
                          g.description());
  }
  double* dst = it->second.mutable_data<double>();
  const double* src = g.data<double>();
  for (int64_t i = 0; i < g.numel(); ++i) dst[i] += src[i];
  return Status::OK();
}

Result<float> attr_float(const Layer& layer, const std::string& name, float fallback) {
  for (const auto& a : layer.attributes()) {
    if (a.name() != name) continue;
    if (a.value_case() != pipeswitch::psm::Attribute::kF) {
      return invalid_argument("attribute ", name, " is not a float");
    }
    return a.f();
  }
  return fallback;
}

}  // namespace

Result<std::unique_ptr<Trainer>> Trainer::create(const Manifest& manifest,
                                                 std::span<const uint8_t> weights,
                                                 const TrainerOptions& options) {
  std::unique_ptr<Trainer> t(new Trainer(manifest, options));
  t->blob_.assign(weights.begin(), weights.end());
  for (int i = 0; i < manifest.tensors_size(); ++i) {
    const TensorProto& spec = manifest.tensors(i);
    if (spec.kind() == TensorProto::INPUT) t->inputs_.push_back(static_cast<uint32_t>(i));
    if (spec.kind() != TensorProto::WEIGHT) continue;
    PS_ASSIGN_OR_RETURN(const DType dtype, dtype_from_psm(spec.dtype()));
    const Shape shape = shape_of(spec);
    const uint64_t bytes = static_cast<uint64_t>(element_count(shape)) * dtype_size(dtype);
    if (bytes != spec.byte_size() || spec.weight_offset() > weights.size() ||
        bytes > weights.size() - spec.weight_offset()) {
      return corrupt("Trainer: weight tensor ", i, " '", spec.name(), "' does not fit the ",
                     weights.size(), "-byte weight blob");
    }
    if (dtype != DType::kFloat32) continue;  // shapes and other constants stay in the blob
    PS_ASSIGN_OR_RETURN(Tensor w, Tensor::allocate(DType::kFloat64, shape));
    std::vector<float> values(static_cast<size_t>(element_count(shape)));
    std::memcpy(values.data(), weights.data() + spec.weight_offset(), bytes);
    double* dst = w.mutable_data<double>();
    for (size_t k = 0; k < values.size(); ++k) dst[k] = static_cast<double>(values[k]);
    t->state_.weights.emplace(static_cast<uint32_t>(i), std::move(w));
  }
  if (manifest.outputs_size() != 1) {
    return invalid_argument("Trainer: the model must have one output, the logits (it has ",
                            manifest.outputs_size(), ")");
  }
  t->output_ = manifest.outputs(0);
  const TensorProto& out = manifest.tensors(static_cast<int>(t->output_));
  if (!is_float(out) || out.shape_size() != 2) {
    return invalid_argument("Trainer: output '", out.name(), "' must be float32 [N, K]");
  }
  t->batch_size_ = out.shape(0);
  if (options.data.classes > out.shape(1)) {
    return invalid_argument("Trainer: ", options.data.classes, " classes, the model outputs ",
                            out.shape(1));
  }
  int floats = 0, integers = 0;
  std::vector<TokenInput> token_inputs;
  Shape image_sample;  // the (last) float input's sample shape
  for (uint32_t index : t->inputs_) {
    const TensorProto& in = manifest.tensors(static_cast<int>(index));
    if (in.shape_size() < 2 || in.shape(0) != t->batch_size_) {
      return invalid_argument("Trainer: input '", in.name(), "' must be [N, ...] with the output's N = ",
                              t->batch_size_);
    }
    const Shape sample(in.shape().begin() + 1, in.shape().end());
    if (is_float(in)) {
      ++floats;
      image_sample = sample;
    } else if (is_integer(in)) {
      ++integers;
      const int64_t vocab = token_range(manifest, index);
      if (vocab < 1) {
        return invalid_argument("Trainer: integer input '", in.name(),
                                "' is not the indices of an embedding Gather (axis 0), so the "
                                "trainer cannot tell which token ids it takes");
      }
      token_inputs.push_back(TokenInput{sample, vocab});
    } else {
      return invalid_argument("Trainer: input '", in.name(), "' is neither float32 nor integer");
    }
  }
  if (floats == 1 && integers == 0) {
    PS_ASSIGN_OR_RETURN(SyntheticData data, SyntheticData::create(options.data, image_sample));
    t->images_ = std::make_unique<SyntheticData>(std::move(data));
  } else if (floats == 0 && integers >= 1) {
    PS_ASSIGN_OR_RETURN(SyntheticTokens data,
                        SyntheticTokens::create(options.data, std::move(token_inputs)));
    t->tokens_ = std::make_unique<SyntheticTokens>(std::move(data));
  } else {
    return invalid_argument("Trainer: the model's inputs must be one float32 tensor (images) or "
                            "integer token ids only (it has ", floats, " float and ", integers,
                            " integer inputs)");
  }
  for (int l = 0; l < manifest.layers_size(); ++l) {
    const Layer& layer = manifest.layers(l);
    if (layer.outputs_size() != 1) {
      return unsupported("Trainer: ", where(l, layer), " has ", layer.outputs_size(), " outputs");
    }
    // A layer with an integer output (shape arithmetic) carries no gradient: forward only.
    const bool carries_gradient = is_float(manifest.tensors(static_cast<int>(layer.outputs(0))));
    if (carries_gradient && ops_with_backward().count(layer.op()) == 0) {
      return unsupported("Trainer: ", where(l, layer), " has no backward operator");
    }
  }
  return t;
}

Status Trainer::make_batch(uint64_t index, std::map<uint32_t, Tensor>* inputs,
                           std::vector<int64_t>* labels) const {
  inputs->clear();
  if (images_) {
    Tensor images;
    PS_TRY(images_->batch(index, batch_size_, &images, labels));
    inputs->emplace(inputs_[0], std::move(images));
    return Status::OK();
  }
  std::vector<Tensor> tokens;
  PS_TRY(tokens_->batch(index, batch_size_, &tokens, labels));
  for (size_t k = 0; k < tokens.size(); ++k) inputs->emplace(inputs_[k], std::move(tokens[k]));
  return Status::OK();
}

Result<double> Trainer::step() {
  std::map<uint32_t, Tensor> grads;
  PS_ASSIGN_OR_RETURN(const double loss, loss_and_gradients(state_.data_position,
                                                            /*update_running_stats=*/true, &grads));
  if (layer_hook_) layer_hook_();
  // The update: every trainable weight with a gradient, in tensor order.
  for (auto& [index, w] : state_.weights) {
    if (!manifest_.tensors(static_cast<int>(index)).trainable()) continue;
    auto g = grads.find(index);
    if (g == grads.end()) continue;  // as PyTorch: a parameter without a gradient is skipped
    Tensor no_buffer;                // momentum 0 keeps no buffer
    Tensor& buffer = options_.sgd.momentum != 0 ? state_.momentum[index] : no_buffer;
    Status s = sgd_update(options_.sgd, w, g->second, buffer);
    if (!s.ok()) {
      return s.with_context(
          str_cat("tensor '", manifest_.tensors(static_cast<int>(index)).name(), "'"));
    }
  }
  ++state_.step;
  ++state_.data_position;
  return loss;
}

Result<double> Trainer::loss_and_gradients(uint64_t batch_index, bool update_running_stats,
                                           std::map<uint32_t, Tensor>* weight_grads) {
  // Forward, keeping every activation and each BatchNorm's batch statistics.
  std::map<uint32_t, Tensor> acts;
  std::vector<int64_t> labels;
  PS_TRY(make_batch(batch_index, &acts, &labels));
  std::map<int, BatchNormSaved> bn_saved;
  auto value_of = [&](uint32_t index) -> const Tensor* {
    if (auto it = acts.find(index); it != acts.end()) return &it->second;
    if (auto it = state_.weights.find(index); it != state_.weights.end()) return &it->second;
    return nullptr;
  };
  std::map<uint32_t, Tensor> blob_views;  // non-float weights, borrowed from blob_
  for (int i = 0; i < manifest_.tensors_size(); ++i) {
    const TensorProto& spec = manifest_.tensors(i);
    const auto index = static_cast<uint32_t>(i);
    if (spec.kind() != TensorProto::WEIGHT || state_.weights.count(index) != 0) continue;
    PS_ASSIGN_OR_RETURN(const DType dtype, dtype_from_psm(spec.dtype()));
    blob_views.emplace(
        index, Tensor::borrow(dtype, shape_of(spec),
                              static_cast<const void*>(blob_.data() + spec.weight_offset())));
  }
  for (int l = 0; l < manifest_.layers_size(); ++l) {
    if (layer_hook_) layer_hook_();
    const Layer& layer = manifest_.layers(l);
    std::vector<const Tensor*> args;
    for (uint32_t in : layer.inputs()) {
      const Tensor* v = value_of(in);
      if (v == nullptr) {
        auto it = blob_views.find(in);
        if (it == blob_views.end()) {
          return internal_error(where(l, layer), ": input tensor ", in, " has no value");
        }
        v = &it->second;
      }
      args.push_back(v);
    }
    if (layer.op() == "BatchNormalization") {
      if (args.size() != 5) return invalid_argument(where(l, layer), ": needs 5 inputs");
      PS_ASSIGN_OR_RETURN(const float epsilon, attr_float(layer, "epsilon", 1e-5f));
      PS_ASSIGN_OR_RETURN(const float momentum, attr_float(layer, "momentum", 0.9f));
      BatchNormSaved& saved = bn_saved[l];
      Result<Tensor> y = batch_norm_train_forward(*args[0], *args[1], *args[2], epsilon, &saved);
      if (!y.ok()) return y.status().with_context(where(l, layer));
      auto rm = state_.weights.find(layer.inputs(3));
      auto rv = state_.weights.find(layer.inputs(4));
      if (rm == state_.weights.end() || rv == state_.weights.end()) {
        return invalid_argument(where(l, layer), ": running statistics are not float weights");
      }
      if (update_running_stats) {
        PS_TRY(batch_norm_update_running(saved, momentum, rm->second, rv->second));
      }
      acts.insert_or_assign(layer.outputs(0), std::move(y).value());
      continue;
    }
    Result<std::vector<Tensor>> outs = run_op_allocating(layer.op(), layer.attributes(), args, 1);
    if (!outs.ok()) return outs.status().with_context(where(l, layer));
    acts.insert_or_assign(layer.outputs(0), std::move((*outs)[0]));
  }

  Tensor dlogits;
  const Tensor* logits = value_of(output_);
  if (logits == nullptr) return internal_error("Trainer: the output was never produced");
  PS_ASSIGN_OR_RETURN(const double loss, softmax_cross_entropy(*logits, labels, &dlogits));

  // Backward in reverse layer order. Gradients go to activations and trainable weights only.
  std::map<uint32_t, Tensor> grads;
  grads.emplace(output_, std::move(dlogits));
  auto wants_grad = [&](uint32_t index) {
    const TensorProto& spec = manifest_.tensors(static_cast<int>(index));
    if (!is_float(spec)) return false;  // token ids, shapes: no gradient
    if (spec.kind() == TensorProto::WEIGHT) return spec.trainable();
    return spec.kind() == TensorProto::ACTIVATION || spec.kind() == TensorProto::OUTPUT;
  };
  for (int l = manifest_.layers_size() - 1; l >= 0; --l) {
    if (layer_hook_) layer_hook_();
    const Layer& layer = manifest_.layers(l);
    auto git = grads.find(layer.outputs(0));
    if (git == grads.end()) continue;  // the output does not reach the loss
    const Tensor dy = std::move(git->second);
    grads.erase(git);
    std::vector<const Tensor*> args;
    for (uint32_t in : layer.inputs()) {
      const Tensor* v = value_of(in);
      if (v == nullptr) v = &blob_views.at(in);
      args.push_back(v);
    }
    LayerValues values{args, value_of(layer.outputs(0)),
                       layer.op() == "BatchNormalization" ? &bn_saved[l] : nullptr};
    Result<std::vector<std::pair<size_t, Tensor>>> results = layer_backward(layer, values, dy);
    if (!results.ok()) return results.status().with_context(where(l, layer));
    for (auto& [slot, g] : *results) {
      const uint32_t index = layer.inputs(static_cast<int>(slot));
      if (wants_grad(index)) PS_TRY(accumulate(grads, index, std::move(g)));
    }
  }

  weight_grads->clear();
  for (auto& [index, g] : grads) {
    if (manifest_.tensors(static_cast<int>(index)).kind() == TensorProto::WEIGHT) {
      weight_grads->emplace(index, std::move(g));
    }
  }
  return loss;
}

}  // namespace ps::models::cpu
