// The GPU trainer's device-free half, on the CPU: the step plan and memory layout
// (models/gpu/trainer_plan.h) on the training-mode tiny zoo models, chunk cutting, and the
// synthetic-data kernels (cuda/kernels/synthetic_data.cu) under the host emulation against the
// CPU dataset (models/cpu/synthetic_data.h).
#include "tests/models/kernel_emulation.h"

// The emulation runs the kernels with the host's libm and without contraction, so the batch
// must equal the CPU's bit for bit here (the device may differ by an ulp: trainer_data.h).
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>

#include "cuda/kernels/synthetic_data.cu"
#include "models/cpu/synthetic_data.h"
#include "models/gpu/grad_op.h"
#include "models/gpu/plan_layout.h"
#include "models/gpu/trainer_data.h"
#include "models/gpu/trainer_plan.h"
#include "tests/models/zoo_lowering.h"

namespace ps::models::gpu {
namespace {

using pipeswitch::psm::Manifest;
using TensorProto = pipeswitch::psm::Tensor;

Manifest lower_training(const std::string& model, int64_t batch) {
  testing::ZooLowering what;
  what.model = model;
  what.batch = batch;
  what.mode = onnx_loader::Mode::kTraining;
  Result<onnx_loader::LoweredModel> lowered = testing::lower_zoo_model(what);
  INFO(lowered.status().to_string());
  REQUIRE(lowered.ok());
  return lowered->manifest;
}

TrainLayout plan(const Manifest& m, TrainLayoutOptions options = {}) {
  Result<TrainLayout> t = plan_training(m, options, &gpu_has_backward);
  INFO(t.status().to_string());
  REQUIRE(t.ok());
  return std::move(t).value();
}

// Every structural property the trainer relies on, for any model. Returns how many gradients
// share dY's buffer (pass-through backwards).
int check_layout(const Manifest& m, const TrainLayout& t) {
  const int layers = m.layers_size();
  // Items: data, forward in order, loss, backward, SGD (one item a group of updated tensors).
  REQUIRE(t.items.size() ==
          2 + static_cast<size_t>(layers) + t.backward.size() + t.sgd_groups.size());
  // The SGD groups cover `sgd` in order, each within the kernel's limits.
  uint32_t next = 0;
  for (size_t g = 0; g < t.sgd_groups.size(); ++g) {
    const SgdGroupRange& r = t.sgd_groups[g];
    CHECK(r.first == next);
    CHECK(r.count >= 1);
    CHECK(r.count <= static_cast<uint32_t>(train_kernels::kSgdGroupMax));
    next += r.count;
    const TrainItem& item = t.items[t.items.size() - t.sgd_groups.size() + g];
    CHECK(item.kind == TrainItemKind::kSgd);
    CHECK(item.index == g);
  }
  CHECK(next == t.sgd.size());
  CHECK(t.items[0].kind == TrainItemKind::kData);
  for (int l = 0; l < layers; ++l) {
    CHECK(t.items[static_cast<size_t>(1 + l)].kind == TrainItemKind::kForward);
    CHECK(t.items[static_cast<size_t>(1 + l)].index == static_cast<uint32_t>(l));
  }
  CHECK(t.items[static_cast<size_t>(1 + layers)].kind == TrainItemKind::kLoss);
  for (size_t i = 1; i < t.items.size(); ++i) CHECK(t.items[i - 1].time <= t.items[i].time);
  for (size_t s = 1; s < t.backward.size(); ++s)
    CHECK(t.backward[s - 1].layer > t.backward[s].layer);

  // Gradient write/accumulate: for each tensor, the first backward (enqueue order) that
  // computes its gradient writes, every later one (or a later slot of the same layer)
  // accumulates; and every (layer, slot) reading a tensor that wants a gradient computes one.
  // Activations want one when a trainable weight feeds them (through any layers before).
  std::set<uint32_t> fed;
  auto trainable = [&](uint32_t in) {
    const TensorProto& spec = m.tensors(static_cast<int>(in));
    return spec.kind() == TensorProto::WEIGHT && spec.trainable() &&
           spec.dtype() == pipeswitch::psm::DT_FLOAT32;
  };
  for (int l = 0; l < layers; ++l) {
    for (uint32_t in : m.layers(l).inputs()) {
      if (trainable(in) || fed.count(in) != 0) {
        for (uint32_t out : m.layers(l).outputs()) fed.insert(out);
      }
    }
  }
  std::map<uint32_t, int> writes, accumulates, readers;
  for (int l = 0; l < layers; ++l) {
    for (uint32_t in : m.layers(l).inputs()) {
      const TensorProto& spec = m.tensors(static_cast<int>(in));
      const bool wanted =
          spec.kind() == TensorProto::WEIGHT
              ? spec.trainable()
              : (spec.kind() == TensorProto::ACTIVATION || spec.kind() == TensorProto::OUTPUT) &&
                    spec.dtype() == pipeswitch::psm::DT_FLOAT32 &&  // no gradient to integers
                    fed.count(in) != 0;
      if (wanted) readers[in] += 1;
    }
  }
  // Partial writers (readers of columns covering their input: HeadSlice, AttentionScores input
  // 0, AttentionContext input 1) each write their part: no accumulation.
  const auto packed_input = [](const std::string& op) {
    return op == "HeadSlice" || op == "AttentionScores" ? 0 : op == "AttentionContext" ? 1 : -1;
  };
  std::map<uint32_t, int> partial_writes;
  std::set<uint32_t> seen;
  for (const BackwardStep& b : t.backward) {
    const auto& layer = m.layers(static_cast<int>(b.layer));
    REQUIRE(b.outputs.size() == static_cast<size_t>(layer.inputs_size()));
    for (int i = 0; i < layer.inputs_size(); ++i) {
      const uint32_t in = layer.inputs(i);
      if (readers.count(in) == 0) continue;  // not wanted: no gradient, or cuDNN scratch
      REQUIRE(((b.wanted >> i) & 1u) == 1u);
      const bool acc = ((b.accumulate >> i) & 1u) != 0;
      if (b.partial) CHECK(packed_input(layer.op()) >= 0);
      if (b.partial && i == packed_input(layer.op())) {
        CHECK_FALSE(acc);
        partial_writes[in] += 1;
        continue;
      }
      CHECK(acc == (seen.count(in) != 0));
      (acc ? accumulates : writes)[in] += 1;
      seen.insert(in);
    }
  }
  int shared = 0;
  for (const auto& [tensor, n] : readers) {
    INFO("tensor " << tensor << " '" << m.tensors(static_cast<int>(tensor)).name() << "'");
    if (partial_writes.count(tensor) != 0) {
      CHECK(partial_writes[tensor] == n);  // every reader writes its part, nobody else
      CHECK(writes[tensor] + accumulates[tensor] == 0);
      continue;
    }
    CHECK(writes[tensor] == 1);
    CHECK(accumulates[tensor] == n - 1);
    if (n > 1) ++shared;
  }
  CHECK((shared > 0 || !partial_writes.empty()));  // accumulation or partial writes exercised

  // A pass-through backward (Add without broadcast, view ops) gives dY's buffer to the first
  // input whose gradient it writes (not a weight's, dY's size); no other gradient is dY's
  // buffer, and no other backward writes into its dY.
  auto numel = [&](uint32_t tensor) {
    int64_t n = 1;
    for (int64_t d : m.tensors(static_cast<int>(tensor)).shape()) n *= d;
    return n;
  };
  int shares = 0;
  for (const BackwardStep& b : t.backward) {
    const auto& layer = m.layers(static_cast<int>(b.layer));
    const uint64_t dy = b.inputs[static_cast<size_t>(layer.inputs_size())];
    bool taken = false;
    for (int i = 0; i < layer.inputs_size(); ++i) {
      if (b.outputs[static_cast<size_t>(i)] == kNoBuffer) continue;
      const uint32_t in = layer.inputs(i);
      const bool eligible = backward_passes_through(layer.op()) && !taken &&
                            ((b.accumulate >> i) & 1u) == 0 &&
                            m.tensors(static_cast<int>(in)).kind() != TensorProto::WEIGHT &&
                            numel(in) == numel(layer.outputs(0));
      INFO(layer.op() << " layer " << b.layer << " input " << i);
      // A Concat of weights side by side: its gradient IS its first member's (in place).
      const bool weight_concat = layer.op() == "Concat" && i == 0 &&
                                 m.tensors(static_cast<int>(in)).kind() == TensorProto::WEIGHT;
      if (weight_concat && b.outputs[0] == dy) continue;
      CHECK((b.outputs[static_cast<size_t>(i)] == dy) == eligible);
      if (eligible) {
        taken = true;
        ++shares;
      }
    }
  }

  // Weights: every trainable float weight is updated, in tensor order, with its own gradient
  // and momentum buffers inside their regions; nothing else is.
  std::vector<uint32_t> expected_sgd;
  for (size_t w = 0; w < t.weights.size(); ++w) {
    const TrainWeight& weight = t.weights[w];
    CHECK(weight.offset % kTrainAlign == 0);
    CHECK(weight.offset + weight.bytes <= t.params_bytes);
    if (weight.trainable && weight.is_float) {
      expected_sgd.push_back(static_cast<uint32_t>(w));
      CHECK(weight.grad >= t.grads_offset);
      CHECK(weight.grad + weight.bytes <= t.grads_offset + t.grads_bytes);
      CHECK(weight.momentum >= t.momentum_offset);
      CHECK(weight.momentum + weight.bytes <= t.momentum_offset + t.momentum_bytes);
    } else {
      CHECK(weight.grad == kNoBuffer);
      CHECK(weight.momentum == kNoBuffer);
    }
  }
  CHECK(t.sgd == expected_sgd);

  // The arena: buffers alive at the same time never share bytes; the placement is at least
  // the live peak and beats no reuse.
  for (size_t a = 0; a < t.arena.size(); ++a) {
    const ArenaBuffer& x = t.arena[a];
    CHECK(x.first <= x.last);
    CHECK(x.offset % kTrainAlign == 0);
    CHECK(x.offset + x.bytes <= t.arena_bytes);
    for (size_t b = a + 1; b < t.arena.size(); ++b) {
      const ArenaBuffer& y = t.arena[b];
      if (x.first > y.last || y.first > x.last || x.bytes == 0 || y.bytes == 0) continue;
      const bool disjoint = x.offset + x.bytes <= y.offset || y.offset + y.bytes <= x.offset;
      if (!disjoint) FAIL("arena buffers " << a << " and " << b << " overlap in time and bytes");
    }
  }
  CHECK(t.arena_bytes >= t.arena_lower_bound);
  CHECK(t.arena_bytes < t.arena_no_reuse);
  CHECK(t.block_bytes >= t.arena_offset + t.arena_bytes);

  // Every arena operand of every item is a buffer alive at that item (so the data it reads is
  // what its producer wrote: nothing alive at the same time shares its bytes).
  auto alive_at = [&](uint64_t block_offset, int time) {
    if (block_offset == kNoBuffer || block_offset < t.arena_offset) return true;  // persistent
    const uint64_t off = block_offset - t.arena_offset;
    for (const ArenaBuffer& b : t.arena) {
      if (b.offset == off && b.first <= time && time <= b.last) return true;
    }
    return false;
  };
  for (const TrainItem& item : t.items) {
    std::vector<uint64_t> operands;
    if (item.kind == TrainItemKind::kData) {
      operands = t.token_tensors.empty() ? std::vector<uint64_t>{t.images} : t.tokens;
      operands.push_back(t.labels);
    }
    if (item.kind == TrainItemKind::kLoss) operands = {t.logits, t.labels, t.dlogits, t.loss};
    if (item.kind == TrainItemKind::kForward) {
      operands = t.forward[item.index].inputs;
      operands.insert(operands.end(), t.forward[item.index].outputs.begin(),
                      t.forward[item.index].outputs.end());
    }
    if (item.kind == TrainItemKind::kBackward) {
      const BackwardStep& b = t.backward[item.index];
      const std::string& op = m.layers(static_cast<int>(b.layer)).op();
      for (size_t i = 0; i < b.inputs.size(); ++i) {
        // Forward inputs the backward never reads may be dead (their bytes reused) by now.
        const bool forward_input = i < b.outputs.size();
        if (!forward_input || backward_reads_input(op, i)) operands.push_back(b.inputs[i]);
      }
      operands.insert(operands.end(), b.outputs.begin(), b.outputs.end());
    }
    if (item.kind == TrainItemKind::kSgd) operands = {t.loss};  // alive until the update
    for (uint64_t o : operands) {
      INFO(train_item_kind_name(item.kind)
           << " " << item.index << " at time " << item.time << ": operand at block offset " << o);
      CHECK(alive_at(o, item.time));
    }
  }
  return shares;
}

TEST_CASE("trainer plan: resnet_tiny's step, gradient table and arena", "[gpu_trainer_plan]") {
  const Manifest m = lower_training("resnet_tiny", 2);
  const TrainLayout t = plan(m);
  // Every residual Add gives one input dY's buffer (the other gets a copy).
  int adds = 0;
  for (int l = 0; l < m.layers_size(); ++l) adds += m.layers(l).op() == "Add" ? 1 : 0;
  CHECK(adds > 0);
  CHECK(check_layout(m, t) >= adds);
  CHECK(t.batch == 2);
  CHECK(t.outputs_k == 1000);
  CHECK(t.sample_shape == Shape{3, 32, 32});
  CHECK(t.backward.size() == static_cast<size_t>(m.layers_size()));  // every layer reaches the loss
  CHECK(build_layout(m).ok());  // the GPU op specs come from the inference layout
  // BatchNormalization: Y plus saved mean and inverse std; the backward reads them.
  for (int l = 0; l < m.layers_size(); ++l) {
    if (m.layers(l).op() != "BatchNormalization") continue;
    CHECK(t.forward[static_cast<size_t>(l)].outputs.size() == 3);
  }
  for (const BackwardStep& b : t.backward) {
    const size_t forward_inputs =
        static_cast<size_t>(m.layers(static_cast<int>(b.layer)).inputs_size());
    const bool bn = m.layers(static_cast<int>(b.layer)).op() == "BatchNormalization";
    CHECK(b.inputs.size() == forward_inputs + (bn ? 3 : 1));
  }
  // The first convolution reads the model input: no backward-data.
  const BackwardStep& first = t.backward.back();
  CHECK(first.layer == 0);
  CHECK((first.wanted & 1u) == 0);
  CHECK(first.outputs[0] == kNoBuffer);
  std::printf(
      "resnet_tiny batch 2: %zu items, params %llu B, grads %llu B, arena %llu B "
      "(live peak %llu, no reuse %llu)\n",
      t.items.size(), static_cast<unsigned long long>(t.params_bytes),
      static_cast<unsigned long long>(t.grads_bytes),
      static_cast<unsigned long long>(t.arena_bytes),
      static_cast<unsigned long long>(t.arena_lower_bound),
      static_cast<unsigned long long>(t.arena_no_reuse));
}

// A layer on the input alone (a normalisation inside the graph, or BERT's attention mask made
// from constants) computes a tensor no weight feeds: no gradient is computed for it, so the
// first convolution has no backward-data and the layer no backward at all.
TEST_CASE("trainer plan: no gradient for a tensor no trainable weight feeds",
          "[gpu_trainer_plan]") {
  Manifest m = lower_training("resnet_tiny", 2);
  const TrainLayout before = plan(m);
  const uint32_t image = before.input_tensor;
  REQUIRE(m.layers(0).op() == "Conv");
  REQUIRE(m.layers(0).inputs(0) == image);
  // Relu(image) -> pre, read by the first convolution, as the model's first layer.
  TensorProto* pre = m.add_tensors();
  *pre = m.tensors(static_cast<int>(image));
  pre->set_name("preprocessed");
  pre->set_kind(TensorProto::ACTIVATION);
  const auto pre_index = static_cast<uint32_t>(m.tensors_size() - 1);
  pipeswitch::psm::Layer* relu = m.add_layers();
  relu->set_op("Relu");
  relu->set_name("preprocess");
  relu->add_inputs(image);
  relu->add_outputs(pre_index);
  for (int l = m.layers_size() - 1; l > 0; --l) m.mutable_layers()->SwapElements(l, l - 1);
  m.mutable_layers(1)->set_inputs(0, pre_index);
  Result<TrainLayout> planned = plan_training(m, {}, &gpu_has_backward);
  INFO(planned.status().to_string());
  REQUIRE(planned.ok());
  const TrainLayout& t = *planned;
  check_layout(m, t);
  CHECK(t.backward.size() == before.backward.size());  // none for the Relu
  const BackwardStep& first = t.backward.back();
  CHECK(first.layer == 1);          // the first convolution
  CHECK((first.wanted & 1u) == 0);  // no dX: it would reach no weight
  CHECK(first.outputs[0] == kNoBuffer);
  CHECK((first.wanted & 2u) != 0);  // its weight's gradient, as before
}

TEST_CASE("trainer plan: inception_tiny (Concat branches) and momentum 0", "[gpu_trainer_plan]") {
  const Manifest m = lower_training("inception_tiny", 2);
  TrainLayoutOptions options;
  options.momentum = false;
  options.patterns = 1;
  const TrainLayout t = plan(m, options);
  check_layout(m, t);
  CHECK(build_layout(m).ok());
  CHECK(t.momentum_bytes == 0);
  CHECK(t.patterns_bytes >= static_cast<uint64_t>(t.sample_size) * 8);
}

// BERT's training graph (its classifier) with two token inputs. Planned with every op given a
// backward (the plan is independent of which GPU backward operators exist yet).
TEST_CASE("trainer plan: bert_tiny's token inputs, integer tensors and Softmax's output",
          "[gpu_trainer_plan]") {
  const Manifest m = lower_training("bert_tiny", 2);
  auto every_op = [](std::string_view) { return true; };
  TrainLayoutOptions options;
  options.classes = 2;
  Result<TrainLayout> planned = plan_training(m, options, every_op);
  INFO(planned.status().to_string());
  REQUIRE(planned.ok());
  const TrainLayout& t = *planned;
  check_layout(m, t);
  REQUIRE(t.token_tensors.size() == 2);
  CHECK(m.tensors(static_cast<int>(t.token_tensors[0])).name() == "input_ids");
  CHECK(m.tensors(static_cast<int>(t.token_tensors[1])).name() == "token_type_ids");
  REQUIRE(t.token_inputs.size() == 2);
  CHECK(t.token_inputs[0].vocab == 100);
  CHECK(t.token_inputs[1].vocab == 2);
  CHECK(t.token_inputs[0].sample_shape == Shape{8});
  CHECK(t.tokens.size() == 2);
  CHECK(t.tokens[0] != t.tokens[1]);
  CHECK(t.sample_size == 0);
  CHECK(t.patterns_bytes == 0);
  CHECK(t.batch == 2);
  CHECK(t.outputs_k == 2);
  int softmax = 0, embeddings = 0;
  for (const BackwardStep& b : t.backward) {
    const auto& layer = m.layers(static_cast<int>(b.layer));
    for (int i = 0; i < layer.inputs_size(); ++i) {
      const TensorProto& in = m.tensors(static_cast<int>(layer.inputs(i)));
      if (in.dtype() != pipeswitch::psm::DT_FLOAT32) {
        INFO(layer.name() << " input " << i);
        CHECK(((b.wanted >> i) & 1u) == 0u);  // no gradient to token ids or shapes
      }
    }
    if (layer.op() == "Gather" && m.tensors(static_cast<int>(layer.inputs(0))).kind() ==
                                      TensorProto::WEIGHT) {
      ++embeddings;
      CHECK(b.wanted == 1u);  // the table only
    }
    if (layer.op() == "Softmax") {
      ++softmax;
      // X, dY, then Y: the forward's output, kept alive until here (check_layout checks it).
      REQUIRE(b.inputs.size() == 3);
      CHECK(b.inputs[2] == t.forward[b.layer].outputs[0]);
    }
  }
  CHECK(softmax == 2);
  CHECK(embeddings == 3);
  // Views share their input's buffer (forward_aliases_input): the attention's Reshapes of
  // activations copy nothing; a Reshape of a weight would keep its own.
  int views = 0;
  for (int l = 0; l < m.layers_size(); ++l) {
    const auto& layer = m.layers(l);
    if (layer.op() != "Reshape") continue;
    INFO(layer.name());
    const bool of_weight =
        m.tensors(static_cast<int>(layer.inputs(0))).kind() == TensorProto::WEIGHT;
    CHECK((t.forward[static_cast<size_t>(l)].outputs[0] ==
           t.forward[static_cast<size_t>(l)].inputs[0]) == !of_weight);
    views += of_weight ? 0 : 1;
  }
  CHECK(views == 8);
  // The embedding tables get gradients and SGD updates; the folded position ids do not.
  int tables = 0;
  for (const TrainWeight& w : t.weights) {
    const std::string& name = m.tensors(static_cast<int>(w.tensor)).name();
    if (name.find("embeddings.") != std::string::npos && name.find("LayerNorm") == std::string::npos) {
      INFO(name);
      CHECK(w.grad != kNoBuffer);
      ++tables;
    }
    if (!w.is_float) CHECK(w.grad == kNoBuffer);
  }
  CHECK(tables == 3);
  // Refusals: an op without a backward is named; too many classes for the classifier.
  auto no_softmax = [](std::string_view op) { return op != "Softmax"; };
  Result<TrainLayout> refused = plan_training(m, options, no_softmax);
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(refused.status().message(), Catch::Contains("2 of "));
  CHECK_THAT(refused.status().message(), Catch::Contains("(Softmax"));
  options.classes = 10;
  refused = plan_training(m, options, every_op);
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(refused.status().message(), Catch::Contains("10 classes, the model outputs 2"));
}

// The readers of the fused query/key/value product's columns write its gradient between
// them: with fuse_attention, AttentionScores (q and k columns) and AttentionContext (v); without
// it, fuse_head_projections' three HeadSlices. Each writes its own columns (partial), none
// accumulates or zeroes the others'. With a gap between the columns, nothing is partial.
TEST_CASE("trainer plan: column readers covering their input write their columns alone",
          "[gpu_trainer_plan]") {
  TrainLayoutOptions options;
  options.classes = 16;
  {
    INFO("without fuse_attention: three HeadSlices");
    Result<onnx_loader::LoweredModel> slices = testing::lower_onnx_model(
        testing::attention_classifier_model(), onnx_loader::Mode::kTraining, {"fuse_attention"});
    REQUIRE(slices.ok());
    const TrainLayout t = plan(slices->manifest, options);
    check_layout(slices->manifest, t);
    int partial = 0;
    for (const BackwardStep& b : t.backward) {
      const auto& layer = slices->manifest.layers(static_cast<int>(b.layer));
      INFO(layer.name());
      CHECK(b.partial == (layer.op() == "HeadSlice"));
      if (layer.op() == "HeadSlice") {
        CHECK(b.accumulate == 0u);
        ++partial;
      }
    }
    CHECK(partial == 3);
  }
  Result<onnx_loader::LoweredModel> fused = testing::lower_onnx_model(
      testing::attention_classifier_model(), onnx_loader::Mode::kTraining);
  INFO(fused.status().to_string());
  REQUIRE(fused.ok());
  const Manifest& m = fused->manifest;
  const TrainLayout t = plan(m, options);
  check_layout(m, t);
  int partial = 0;
  for (const BackwardStep& b : t.backward) {
    const auto& layer = m.layers(static_cast<int>(b.layer));
    INFO(layer.name());
    CHECK(layer.op() != "HeadSlice");
    const bool reader = layer.op() == "AttentionScores" || layer.op() == "AttentionContext";
    CHECK(b.partial == reader);
    if (layer.op() == "AttentionScores") CHECK(b.accumulate == 0u);
    if (layer.op() == "AttentionContext") CHECK((b.accumulate & 2u) == 0u);
    partial += reader ? 1 : 0;
  }
  CHECK(partial == 2);

  // The Concat of the query/key/value weights: members side by side in the params and grads
  // regions, the output and its gradient theirs (no arena buffer), so the product reads the
  // weights and writes their gradients in place. The biases' (16 floats, 64 bytes: not whole
  // 256-byte units) stays a copy into the arena.
  int views = 0;
  for (int l = 0; l < m.layers_size(); ++l) {
    const auto& layer = m.layers(l);
    if (layer.op() != "Concat") continue;
    INFO(layer.name());
    if (t.weights[static_cast<size_t>(t.weight_index[layer.inputs(0)])].bytes % kTrainAlign != 0) {
      CHECK(t.forward[static_cast<size_t>(l)].outputs[0] >= t.arena_offset);
      continue;
    }
    const TrainWeight* prev = nullptr;
    for (uint32_t in : layer.inputs()) {
      const TrainWeight& w = t.weights[static_cast<size_t>(t.weight_index[in])];
      if (prev != nullptr) {
        CHECK(w.offset == prev->offset + prev->bytes);
        CHECK(w.grad == prev->grad + prev->bytes);
      }
      prev = &w;
    }
    const TrainWeight& first = t.weights[static_cast<size_t>(t.weight_index[layer.inputs(0)])];
    CHECK(t.forward[static_cast<size_t>(l)].outputs[0] == first.offset);
    for (const ArenaBuffer& a : t.arena) CHECK(a.tensor != layer.outputs(0));
    for (const BackwardStep& b : t.backward) {
      const auto& reader = m.layers(static_cast<int>(b.layer));
      if (static_cast<int>(b.layer) == l) {
        CHECK(b.inputs[static_cast<size_t>(layer.inputs_size())] == first.grad);  // dY
        CHECK(b.outputs[0] == first.grad);
      }
      for (int i = 0; i < reader.inputs_size(); ++i) {
        if (reader.inputs(i) == layer.outputs(0))
          CHECK(b.outputs[static_cast<size_t>(i)] == first.grad);
      }
    }
    ++views;
  }
  CHECK(views == 1);

  // Narrow the values' range: the columns no longer tile the product, so they accumulate again.
  Manifest gap = m;
  for (auto& layer : *gap.mutable_layers()) {
    if (layer.op() != "AttentionContext") continue;
    for (auto& a : *layer.mutable_attributes()) {
      if (a.name() == "size") a.set_i(a.i() - 8);
    }
    break;
  }
  Result<TrainLayout> g = plan_training(gap, options, &gpu_has_backward);
  REQUIRE(g.ok());
  int accumulating = 0;
  for (const BackwardStep& b : g->backward) {
    CHECK_FALSE(b.partial);
    // The context's backward comes first and writes dX whole; the scores' adds.
    const std::string& op = gap.layers(static_cast<int>(b.layer)).op();
    if (op == "AttentionContext") CHECK((b.accumulate & 2u) == 0u);
    if (op == "AttentionScores") CHECK(b.accumulate == 1u);
    accumulating += op == "AttentionScores" && b.accumulate == 1u ? 1 : 0;
  }
  CHECK(accumulating == 1);
}

TEST_CASE("trainer plan: refusals name the cause", "[gpu_trainer_plan]") {
  const Manifest m = lower_training("resnet_tiny", 2);
  SECTION("an op without a backward: every such layer listed") {
    Result<TrainLayout> t =
        plan_training(m, {}, [](std::string_view op) { return op != "Relu" && op != "MaxPool"; });
    REQUIRE_FALSE(t.ok());
    CHECK(t.status().code() == Code::kUnsupported);
    CHECK_THAT(t.status().message(), Catch::Contains("12 of") && Catch::Contains("MaxPool"));
  }
  SECTION("two image inputs") {
    Manifest two = m;
    TensorProto* extra = two.add_tensors();
    *extra = two.tensors(static_cast<int>(plan(m).input_tensor));
    extra->set_name("second_input");
    Result<TrainLayout> t = plan_training(two, {}, &gpu_has_backward);
    REQUIRE_FALSE(t.ok());
    CHECK(t.status().code() == Code::kInvalidArgument);
    CHECK_THAT(t.status().message(),
               Catch::Contains("one float32 tensor (images) or integer token ids only (it has 2 "
                               "float and 0 integer inputs)"));
  }
  SECTION("more classes than outputs") {
    TrainLayoutOptions options;
    options.classes = 1001;
    Result<TrainLayout> t = plan_training(m, options, &gpu_has_backward);
    REQUIRE_FALSE(t.ok());
    CHECK_THAT(t.status().message(), Catch::Contains("1001 classes, the model outputs 1000"));
  }
}

TEST_CASE("chunks: greedy cuts of about the budget, at least one item each", "[gpu_trainer_plan]") {
  const std::vector<double> ms = {0.2, 0.3, 0.4, 1.5, 0.1, 0.1, 0.9, 0.05};
  auto covers = [&](const std::vector<TrainChunk>& chunks) {
    uint32_t next = 0;
    double total = 0;
    for (const TrainChunk& c : chunks) {
      CHECK(c.first == next);
      CHECK(c.count >= 1);
      next += c.count;
      total += c.ms;
    }
    CHECK(next == ms.size());
    CHECK(total == Approx(3.55));
  };
  const std::vector<TrainChunk> one_ms = cut_chunks(ms, 1.0);
  covers(one_ms);
  REQUIRE(one_ms.size() == 4);  // {0.2 0.3 0.4} {1.5} {0.1 0.1} {0.9 0.05}
  CHECK(one_ms[0].count == 3);
  CHECK(one_ms[1].count == 1);
  CHECK(one_ms[1].ms == 1.5);
  CHECK(one_ms[2].count == 2);
  CHECK(one_ms[3].count == 2);
  for (const TrainChunk& c : one_ms) CHECK((c.ms <= 1.0 || c.count == 1));
  const std::vector<TrainChunk> each = cut_chunks(ms, 0.0);
  covers(each);
  CHECK(each.size() == ms.size());
  const std::vector<TrainChunk> whole = cut_chunks(ms, 1e9);
  covers(whole);
  CHECK(whole.size() == 1);
  CHECK(cut_chunks({}, 1.0).empty());
}

// Runs the pattern and batch kernels under the emulation and compares with SyntheticData.
void check_emulated_batches(const cpu::SyntheticDataOptions& options, const Shape& sample,
                            int64_t batch, std::initializer_list<uint64_t> indices) {
  Result<cpu::SyntheticData> data = cpu::SyntheticData::create(options, sample);
  REQUIRE(data.ok());
  const int64_t size = element_count(sample);
  const data_kernels::SyntheticParams pp = synthetic_pattern_params(options, size);
  std::vector<double> patterns(static_cast<size_t>(pp.samples * size));
  emu_launch(
      EmuDim{2}, EmuDim{64}, [&] { ps_synthetic_patterns_f64(patterns.data(), pp); },
      /*cooperative=*/false);
  for (uint64_t index : indices) {
    const data_kernels::SyntheticParams bp = synthetic_batch_params(options, size, index, batch);
    std::vector<float> images(static_cast<size_t>(batch * size), -1.0f);
    std::vector<int64_t> labels(static_cast<size_t>(batch), -1);
    emu_launch(
        EmuDim{3}, EmuDim{64},
        [&] { ps_synthetic_batch_f32(patterns.data(), images.data(), labels.data(), bp); },
        /*cooperative=*/false);
    cpu::Tensor expected;
    std::vector<int64_t> expected_labels;
    REQUIRE(data->batch(index, batch, &expected, &expected_labels).ok());
    CHECK(labels == expected_labels);
    int64_t mismatches = 0;
    for (int64_t i = 0; i < batch * size; ++i) {
      if (images[static_cast<size_t>(i)] != static_cast<float>(expected.data<double>()[i]))
        ++mismatches;
    }
    INFO("batch " << index);
    CHECK(mismatches == 0);
  }
}

TEST_CASE("emulated synthetic data kernels reproduce SyntheticData's batches",
          "[gpu_trainer_plan][gpu_train_emulation]") {
  cpu::SyntheticDataOptions options;
  options.seed = 7;
  options.classes = 3;
  options.noise = 0.5;
  check_emulated_batches(options, {3, 4, 5}, 4, {0, 1, 9});
  options.single_image = true;
  check_emulated_batches(options, {2, 3, 3}, 3, {0, 5});
  CHECK(synthetic_pattern_count(options) == 1);
}

// The memory plan of the paper's training model, for the docs (hidden: lowers ResNet152,
// ~1 minute of CPU). Run: test_gpu_trainer_plan "[.resnet152]".
TEST_CASE("trainer plan: ResNet152 at batch 64 (memory report)", "[.resnet152]") {
  const Manifest m = lower_training("resnet152", 64);
  const TrainLayout t = plan(m);
  auto mib = [](uint64_t b) { return static_cast<double>(b) / (1 << 20); };
  std::printf(
      "resnet152 batch 64: %d layers, %zu items (%zu backward, %zu SGD)\n"
      "  weights %.1f MiB, gradients %.1f MiB, momentum %.1f MiB, patterns %.1f MiB\n"
      "  step arena %.1f MiB (live peak %.1f MiB, without reuse %.1f MiB)\n"
      "  block %.1f MiB + workspace\n",
      m.layers_size(), t.items.size(), t.backward.size(), t.sgd.size(), mib(t.params_bytes),
      mib(t.grads_bytes), mib(t.momentum_bytes), mib(t.patterns_bytes), mib(t.arena_bytes),
      mib(t.arena_lower_bound), mib(t.arena_no_reuse), mib(t.block_bytes));
  check_layout(m, t);
}

}  // namespace
}  // namespace ps::models::gpu

namespace ps::models::gpu {
namespace {

// What generating ResNet152's batch on the host would cost (docs/training.md, "Data": why the
// trainer makes it on the device). Hidden: run test_gpu_trainer_plan "[.host_data_cost]".
TEST_CASE("host cost of SyntheticData at ResNet152's batch (64 x 3 x 224 x 224)",
          "[.host_data_cost]") {
  cpu::SyntheticDataOptions options;
  Result<cpu::SyntheticData> data = cpu::SyntheticData::create(options, {3, 224, 224});
  REQUIRE(data.ok());
  cpu::Tensor images;
  std::vector<int64_t> labels;
  for (uint64_t b = 0; b < 3; ++b) {
    const auto start = std::chrono::steady_clock::now();
    REQUIRE(data->batch(b, 64, &images, &labels).ok());
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::printf("SyntheticData::batch(%llu, 64) at 3x224x224: %.1f ms\n",
                static_cast<unsigned long long>(b), ms);
  }
}

}  // namespace
}  // namespace ps::models::gpu
