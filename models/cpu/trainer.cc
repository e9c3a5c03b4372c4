#include "models/cpu/trainer.h"

#include <algorithm>
#include <cstring>
#include <set>
#include <utility>

#include "models/cpu/grad.h"
#include "models/cpu/ops.h"

namespace ps::models::cpu {

namespace {

using pipeswitch::psm::Layer;
using pipeswitch::psm::Manifest;
using TensorProto = pipeswitch::psm::Tensor;

const std::set<std::string>& ops_with_backward() {
  static const std::set<std::string> ops = {
      "Add",  "AveragePool",       "BatchNormalization", "Concat",  "Conv", "Flatten",
      "Gemm", "GlobalAveragePool", "Identity",           "MaxPool", "Relu", "Reshape"};
  return ops;
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
  int inputs = 0;
  for (int i = 0; i < manifest.tensors_size(); ++i) {
    const TensorProto& spec = manifest.tensors(i);
    if (spec.kind() == TensorProto::INPUT) {
      ++inputs;
      t->input_ = static_cast<uint32_t>(i);
    }
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
  if (inputs != 1 || manifest.outputs_size() != 1) {
    return invalid_argument("Trainer: the model must have one input and one output (it has ",
                            inputs, " and ", manifest.outputs_size(), ")");
  }
  t->output_ = manifest.outputs(0);
  const TensorProto& in = manifest.tensors(static_cast<int>(t->input_));
  const TensorProto& out = manifest.tensors(static_cast<int>(t->output_));
  if (in.dtype() != pipeswitch::psm::DT_FLOAT32 || in.shape_size() < 2 ||
      out.dtype() != pipeswitch::psm::DT_FLOAT32 || out.shape_size() != 2 ||
      out.shape(0) != in.shape(0)) {
    return invalid_argument("Trainer: input '", in.name(),
                            "' must be float32 [N, ...] and output '", out.name(),
                            "' float32 [N, K]");
  }
  t->batch_size_ = in.shape(0);
  if (options.data.classes > out.shape(1)) {
    return invalid_argument("Trainer: ", options.data.classes, " classes, the model outputs ",
                            out.shape(1));
  }
  for (int l = 0; l < manifest.layers_size(); ++l) {
    const Layer& layer = manifest.layers(l);
    if (ops_with_backward().count(layer.op()) == 0) {
      return unsupported("Trainer: ", where(l, layer), " has no backward operator");
    }
    if (layer.outputs_size() != 1) {
      return unsupported("Trainer: ", where(l, layer), " has ", layer.outputs_size(), " outputs");
    }
  }
  const Shape sample(in.shape().begin() + 1, in.shape().end());
  PS_ASSIGN_OR_RETURN(SyntheticData data, SyntheticData::create(options.data, sample));
  t->data_ = std::make_unique<SyntheticData>(std::move(data));
  return t;
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
  Tensor images;
  std::vector<int64_t> labels;
  PS_TRY(data_->batch(batch_index, batch_size_, &images, &labels));

  // Forward, keeping every activation and each BatchNorm's batch statistics.
  std::map<uint32_t, Tensor> acts;
  std::map<int, BatchNormSaved> bn_saved;
  acts.emplace(input_, std::move(images));
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
    std::vector<std::pair<size_t, Tensor>> results;  // (input slot, gradient)
    const std::string& op = layer.op();
    Status status = Status::OK();
    if (op == "Conv") {
      Result<ConvGrads> g =
          conv_backward(layer.attributes(), *args[0], *args[1], args.size() > 2, dy);
      if (g.ok()) {
        results.emplace_back(0, std::move(g->dx));
        results.emplace_back(1, std::move(g->dw));
        if (args.size() > 2) results.emplace_back(2, std::move(g->db));
      }
      status = g.status();
    } else if (op == "BatchNormalization") {
      Result<BatchNormGrads> g = batch_norm_backward(*args[0], *args[1], bn_saved[l], dy);
      if (g.ok()) {
        results.emplace_back(0, std::move(g->dx));
        results.emplace_back(1, std::move(g->dscale));
        results.emplace_back(2, std::move(g->dbias));
      }
      status = g.status();
    } else if (op == "Relu" || op == "MaxPool" || op == "AveragePool" ||
               op == "GlobalAveragePool") {
      Result<Tensor> g = op == "Relu"      ? relu_backward(*args[0], dy)
                         : op == "MaxPool" ? max_pool_backward(layer.attributes(), *args[0], dy)
                         : op == "AveragePool"
                             ? average_pool_backward(layer.attributes(), *args[0], dy)
                             : global_average_pool_backward(*args[0], dy);
      if (g.ok()) results.emplace_back(0, std::move(g).value());
      status = g.status();
    } else if (op == "Add") {
      for (size_t k = 0; k < 2 && status.ok(); ++k) {
        Result<Tensor> g = reduce_to_shape(dy, args[k]->shape());
        if (g.ok()) results.emplace_back(k, std::move(g).value());
        status = g.status();
      }
    } else if (op == "Flatten" || op == "Reshape" || op == "Identity") {
      Result<Tensor> g = reshape_backward(args[0]->shape(), dy);
      if (g.ok()) results.emplace_back(0, std::move(g).value());
      status = g.status();
    } else if (op == "Gemm") {
      const Shape c_shape = args.size() > 2 ? args[2]->shape() : Shape{};
      Result<GemmGrads> g = gemm_backward(layer.attributes(), *args[0], *args[1],
                                          args.size() > 2 ? &c_shape : nullptr, dy);
      if (g.ok()) {
        results.emplace_back(0, std::move(g->da));
        results.emplace_back(1, std::move(g->db));
        if (args.size() > 2) results.emplace_back(2, std::move(g->dc));
      }
      status = g.status();
    } else if (op == "Concat") {
      std::vector<Shape> shapes;
      for (const Tensor* a : args) shapes.push_back(a->shape());
      Result<std::vector<Tensor>> g = concat_backward(layer.attributes(), shapes, dy);
      if (g.ok()) {
        for (size_t k = 0; k < g->size(); ++k) results.emplace_back(k, std::move((*g)[k]));
      }
      status = g.status();
    } else {
      status = unsupported("no backward operator");
    }
    if (!status.ok()) return status.with_context(where(l, layer));
    for (auto& [slot, g] : results) {
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
