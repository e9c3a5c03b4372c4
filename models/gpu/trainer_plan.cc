#include "models/gpu/trainer_plan.h"

#include <algorithm>
#include <map>
#include <numeric>

#include "models/cpu/token_range.h"
#include "onnx_loader/psm_dtype.h"

namespace ps::models::gpu {
namespace {

using pipeswitch::psm::Layer;
using pipeswitch::psm::Manifest;
using TensorProto = pipeswitch::psm::Tensor;

uint64_t align_up(uint64_t n, uint64_t alignment) {
  return (n + alignment - 1) / alignment * alignment;
}

std::string layer_label(const Manifest& m, int l) {
  return str_cat("layer ", l, " (", m.layers(l).op(), " '", m.layers(l).name(), "')");
}

Shape shape_of(const TensorProto& t) { return Shape(t.shape().begin(), t.shape().end()); }

bool is_integer(const TensorProto& t) {
  return t.dtype() == pipeswitch::psm::DT_INT64 || t.dtype() == pipeswitch::psm::DT_INT32;
}

bool overlap_in_time(const ArenaBuffer& a, const ArenaBuffer& b) {
  return a.first <= b.last && b.first <= a.last;
}

// The positions of the step's items on the lifetime axis (L layers): the batch at 0, forward
// layer l at 1 + l, the loss at L + 1, layer l's backward at 2L + 1 - l, the update at 2L + 2.
struct Timeline {
  int layers = 0;
  int data() const { return 0; }
  int forward(int l) const { return 1 + l; }
  int loss() const { return layers + 1; }
  int backward(int l) const { return 2 * layers + 1 - l; }
  int update() const { return 2 * layers + 2; }
};

}  // namespace

std::string_view train_item_kind_name(TrainItemKind kind) {
  switch (kind) {
    case TrainItemKind::kData:
      return "data";
    case TrainItemKind::kForward:
      return "forward";
    case TrainItemKind::kLoss:
      return "loss";
    case TrainItemKind::kBackward:
      return "backward";
    case TrainItemKind::kSgd:
      return "sgd";
  }
  return "?";
}

bool backward_reads_input(std::string_view op, size_t input) {
  // What each backward builder (grad_*.cc) dereferences among the forward's inputs.
  if (op == "Conv" || op == "Gemm" || op == "BatchNormalization") return input < 2;
  if (op == "Relu" || op == "MaxPool") return input == 0;
  if (op == "Gather") return input == 1;  // the indices; the table only for its shape
  // Softmax, AddSoftmax: they read their output Y (backward_reads_output).
  if (op == "Softmax" || op == "AddSoftmax") return false;
  if (op == "Add" || op == "AveragePool" || op == "GlobalAveragePool" || op == "Flatten" ||
      op == "Reshape" || op == "Identity" || op == "Concat" || op == "Transpose" ||
      op == "Squeeze" || op == "Unsqueeze" || op == "ReduceMean" || op == "HeadSlice") {
    return false;
  }
  return true;
}

namespace {

int64_t layer_attr_int(const Layer& layer, std::string_view name, int64_t fallback) {
  for (const auto& a : layer.attributes()) {
    if (a.name() == name && a.value_case() == pipeswitch::psm::Attribute::kI) return a.i();
  }
  return fallback;
}

// A Concat of whole weights along axis 0 (fuse_head_projections' joined query, key and value
// weights and biases): placed side by side in the params region (and their gradients in the
// grads region), its output IS their bytes and its gradient theirs, so neither the forward
// nor the backward copies anything (the copy ops skip a copy onto itself). Each member: a float
// weight read by this layer alone, its bytes a multiple of kTrainAlign (no padding between).
struct WeightConcat {
  int layer = -1;
  uint32_t output = 0;
  std::vector<uint32_t> members;  // tensors, in the Concat's order
};

std::vector<WeightConcat> find_weight_concats(const Manifest& m, const TrainLayout& t) {
  std::vector<int> readers(static_cast<size_t>(m.tensors_size()), 0);
  for (const Layer& layer : m.layers()) {
    for (uint32_t in : layer.inputs()) readers[in] += 1;
  }
  std::vector<WeightConcat> found;
  for (int l = 0; l < m.layers_size(); ++l) {
    const Layer& layer = m.layers(l);
    if (layer.op() != "Concat" || layer.outputs_size() != 1 || layer.inputs_size() < 1) continue;
    const auto& out = m.tensors(static_cast<int>(layer.outputs(0)));
    const int64_t axis = layer_attr_int(layer, "axis", -1);
    if (out.dtype() != pipeswitch::psm::DT_FLOAT32 || out.shape_size() < 1 ||
        !(axis == 0 || axis == -out.shape_size())) {
      continue;
    }
    WeightConcat c{l, layer.outputs(0), {}};
    for (uint32_t in : layer.inputs()) {
      const int32_t w = t.weight_index[in];
      if (w < 0 || readers[in] != 1) break;
      const TrainWeight& weight = t.weights[static_cast<size_t>(w)];
      if (!weight.is_float || weight.bytes == 0 || weight.bytes % kTrainAlign != 0) break;
      c.members.push_back(in);
    }
    if (c.members.size() == static_cast<size_t>(layer.inputs_size())) found.push_back(std::move(c));
  }
  return found;
}

// Offsets for `order` (indices into t.weights) of `bytes_of(weight)` each, kTrainAlign apart,
// the members of each group in `groups` (by weight index: the group's position) side by side
// from where its first member comes. Returns the bytes used.
template <typename BytesOf, typename Set>
uint64_t place_weights(const std::vector<size_t>& order, const std::vector<int>& group_of,
                       const std::vector<std::vector<size_t>>& groups, BytesOf bytes_of, Set set) {
  uint64_t cursor = 0;
  std::vector<bool> placed(group_of.size(), false);
  auto place = [&](size_t w) {
    placed[w] = true;
    set(w, cursor);
    cursor += align_up(std::max<uint64_t>(bytes_of(w), 1), kTrainAlign);
  };
  for (size_t w : order) {
    if (placed[w]) continue;
    if (group_of[w] < 0) {
      place(w);
      continue;
    }
    for (size_t member : groups[static_cast<size_t>(group_of[w])]) place(member);
  }
  return cursor;
}

// The packed input of a layer whose backward writes only some columns of that input's
// gradient (HeadSlice, AttentionScores: input 0; AttentionContext: input 1), with those
// columns' ranges [start, end) appended to `ranges`; -1 for any other layer.
int column_reader(const Layer& layer, std::vector<std::pair<int64_t, int64_t>>& ranges) {
  const std::string& op = layer.op();
  const int64_t size = layer_attr_int(layer, "size", 0);
  const auto add = [&](const char* start_attr) {
    const int64_t start = layer_attr_int(layer, start_attr, -1);
    ranges.emplace_back(start, start + size);
  };
  if (op == "HeadSlice") {
    add("start");
    return 0;
  }
  if (op == "AttentionScores") {
    add("q_start");
    add("k_start");
    return 0;
  }
  if (op == "AttentionContext") {
    add("v_start");
    return 1;
  }
  return -1;
}

// GradSpec::partial for the column readers (column_reader) that write a tensor's whole
// gradient between them (see the header): every backward that writes it reads it as its
// packed input (and through no other input), and their ranges tile its last dimension.
void mark_covering_head_slices(const Manifest& m, TrainLayout& t) {
  std::map<uint32_t, std::vector<size_t>> writers;  // tensor -> backward steps writing its gradient
  for (size_t s = 0; s < t.backward.size(); ++s) {
    const Layer& layer = m.layers(static_cast<int>(t.backward[s].layer));
    for (int i = 0; i < layer.inputs_size() && i < 32; ++i) {
      if ((t.backward[s].wanted >> i & 1u) != 0) writers[layer.inputs(i)].push_back(s);
    }
  }
  for (const auto& [tensor, steps] : writers) {
    std::vector<std::pair<int64_t, int64_t>> ranges;  // [start, end)
    std::vector<int> packed;                          // each step's packed input
    for (size_t s : steps) {
      const Layer& layer = m.layers(static_cast<int>(t.backward[s].layer));
      const int input = column_reader(layer, ranges);
      if (input < 0 || layer.inputs(input) != tensor) break;
      bool elsewhere = false;  // the tensor's gradient also wanted through another input
      for (int i = 0; i < layer.inputs_size() && i < 32; ++i) {
        elsewhere = elsewhere || (i != input && layer.inputs(i) == tensor &&
                                  (t.backward[s].wanted >> i & 1u) != 0);
      }
      if (elsewhere) break;
      packed.push_back(input);
    }
    const auto& shape = m.tensors(static_cast<int>(tensor)).shape();
    if (packed.size() != steps.size() || steps.size() < 2 || shape.empty()) continue;
    std::sort(ranges.begin(), ranges.end());
    int64_t next = 0;
    for (const auto& [start, end] : ranges) {
      if (start != next || end <= start) break;
      next = end;
    }
    if (next != shape[shape.size() - 1]) continue;
    for (size_t i = 0; i < steps.size(); ++i) {
      t.backward[steps[i]].partial = true;
      t.backward[steps[i]].accumulate &= ~(1u << packed[i]);
    }
  }
}

}  // namespace

bool backward_reads_output(std::string_view op) { return op == "Softmax" || op == "AddSoftmax"; }

bool forward_aliases_input(std::string_view op) {
  return op == "Flatten" || op == "Reshape" || op == "Identity" || op == "Squeeze" ||
         op == "Unsqueeze";
}

bool backward_passes_through(std::string_view op) {
  // The ops whose backward is PassGradOp (grad_kernel_ops.cc: build_add_grad,
  // build_reshape_grad), which skips the copy when dX is dY's buffer: Add and the views.
  return op == "Add" || forward_aliases_input(op);
}

uint64_t arena_live_peak(std::span<const ArenaBuffer> buffers, uint64_t alignment) {
  int steps = 0;
  for (const ArenaBuffer& b : buffers) steps = std::max(steps, b.last + 1);
  std::vector<int64_t> delta(static_cast<size_t>(steps) + 1, 0);
  for (const ArenaBuffer& b : buffers) {
    const auto bytes = static_cast<int64_t>(align_up(b.bytes, alignment));
    delta[static_cast<size_t>(b.first)] += bytes;
    delta[static_cast<size_t>(b.last) + 1] -= bytes;
  }
  int64_t live = 0, peak = 0;
  for (int64_t d : delta) {
    live += d;
    peak = std::max(peak, live);
  }
  return static_cast<uint64_t>(peak);
}

uint64_t place_arena(std::span<ArenaBuffer> buffers, uint64_t alignment) {
  std::vector<size_t> order(buffers.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (buffers[a].bytes != buffers[b].bytes) return buffers[a].bytes > buffers[b].bytes;
    return buffers[a].first < buffers[b].first;
  });
  uint64_t arena = 0;
  std::vector<size_t> placed;  // sorted by offset
  std::vector<size_t> neighbours;
  for (size_t index : order) {
    ArenaBuffer& request = buffers[index];
    request.offset = 0;
    if (request.bytes == 0) continue;
    const uint64_t bytes = align_up(request.bytes, alignment);
    neighbours.clear();
    for (size_t other : placed) {
      if (overlap_in_time(request, buffers[other])) neighbours.push_back(other);
    }
    uint64_t best_offset = 0, best_gap = UINT64_MAX, cursor = 0;
    for (size_t other : neighbours) {
      const uint64_t start = buffers[other].offset;
      if (start >= cursor && start - cursor >= bytes && start - cursor < best_gap) {
        best_gap = start - cursor;
        best_offset = cursor;
      }
      cursor = std::max(cursor, start + align_up(buffers[other].bytes, alignment));
    }
    request.offset = best_gap == UINT64_MAX ? cursor : best_offset;
    arena = std::max(arena, request.offset + bytes);
    const auto at =
        std::upper_bound(placed.begin(), placed.end(), request.offset,
                         [&](uint64_t off, size_t o) { return off < buffers[o].offset; });
    placed.insert(at, index);
  }
  return arena;
}

std::vector<TrainChunk> cut_chunks(std::span<const double> item_ms, double budget_ms) {
  std::vector<TrainChunk> chunks;
  for (size_t i = 0; i < item_ms.size(); ++i) {
    const double ms = std::max(0.0, item_ms[i]);
    if (chunks.empty() || chunks.back().count == 0 || chunks.back().ms + ms > budget_ms) {
      if (chunks.empty() || chunks.back().count > 0) chunks.push_back(TrainChunk{});
      chunks.back().first = static_cast<uint32_t>(i);
    }
    chunks.back().count += 1;
    chunks.back().ms += ms;
  }
  return chunks;
}

Result<TrainLayout> plan_training(const Manifest& m, const TrainLayoutOptions& options,
                                  bool (*has_backward)(std::string_view op)) {
  const int tensor_count = m.tensors_size();
  const int layer_count = m.layers_size();
  if (layer_count == 0)
    return invalid_argument("GpuTrainer: model '", m.model_name(), "' has no layers");
  TrainLayout t;

  // The inputs and the output.
  t.output_tensor = m.outputs_size() == 1 ? m.outputs(0) : 0;
  if (m.outputs_size() != 1) {
    return invalid_argument("GpuTrainer: the model must have one output, the logits (it has ",
                            m.outputs_size(), ")");
  }
  if (t.output_tensor >= static_cast<uint32_t>(tensor_count)) {
    return corrupt("GpuTrainer: output tensor index ", t.output_tensor, " is out of range");
  }
  const TensorProto& out = m.tensors(static_cast<int>(t.output_tensor));
  if (out.dtype() != pipeswitch::psm::DT_FLOAT32 || out.shape_size() != 2 || out.shape(0) < 1) {
    return invalid_argument("GpuTrainer: output '", out.name(), "' must be float32 [N, K]");
  }
  t.batch = out.shape(0);
  t.outputs_k = out.shape(1);
  int floats = 0;
  for (int i = 0; i < tensor_count; ++i) {
    const TensorProto& in = m.tensors(i);
    if (in.kind() != TensorProto::INPUT) continue;
    if (in.shape_size() < 2 || in.shape(0) != t.batch) {
      return invalid_argument("GpuTrainer: input '", in.name(),
                              "' must be [N, ...] with the output's N = ", t.batch);
    }
    if (in.dtype() == pipeswitch::psm::DT_FLOAT32) {
      ++floats;
      t.input_tensor = static_cast<uint32_t>(i);
    } else if (is_integer(in)) {
      if (in.dtype() != pipeswitch::psm::DT_INT64) {
        // The token batches are SyntheticTokens' int64 ids (trainer_tokens.h), as exported.
        return invalid_argument("GpuTrainer: token input '", in.name(),
                                "' is int32; the GPU trainer feeds int64 token ids");
      }
      const int64_t vocab = cpu::token_range(m, static_cast<uint32_t>(i));
      if (vocab < 1) {
        return invalid_argument("GpuTrainer: integer input '", in.name(),
                                "' is not the indices of an embedding Gather (axis 0), so the "
                                "trainer cannot tell which token ids it takes");
      }
      t.token_tensors.push_back(static_cast<uint32_t>(i));
      t.token_inputs.push_back(
          cpu::TokenInput{Shape(in.shape().begin() + 1, in.shape().end()), vocab});
    } else {
      return invalid_argument("GpuTrainer: input '", in.name(), "' is neither float32 nor integer");
    }
  }
  if (!((floats == 1 && t.token_tensors.empty()) || (floats == 0 && !t.token_tensors.empty()))) {
    return invalid_argument("GpuTrainer: the model's inputs must be one float32 tensor (images) or "
                            "integer token ids only (it has ", floats, " float and ",
                            t.token_tensors.size(), " integer inputs)");
  }
  if (options.classes < 1 || options.classes > t.outputs_k) {
    return invalid_argument("GpuTrainer: ", options.classes, " classes, the model outputs ",
                            t.outputs_k);
  }
  if (t.token_tensors.empty()) {
    const TensorProto& in = m.tensors(static_cast<int>(t.input_tensor));
    t.sample_shape.assign(in.shape().begin() + 1, in.shape().end());
    t.sample_size = element_count(t.sample_shape);
  } else {
    t.input_tensor = t.token_tensors[0];
  }

  // Every layer: one output, a backward, indices in range.
  std::string missing;
  int missing_count = 0;
  std::vector<int> producer(static_cast<size_t>(tensor_count), -1);
  for (int l = 0; l < layer_count; ++l) {
    const Layer& layer = m.layers(l);
    if (layer.outputs_size() != 1) {
      return unsupported("GpuTrainer: ", layer_label(m, l), " has ", layer.outputs_size(),
                         " outputs (training takes one)");
    }
    for (uint32_t i : layer.inputs()) {
      if (i >= static_cast<uint32_t>(tensor_count)) {
        return corrupt("GpuTrainer: ", layer_label(m, l), " reads tensor ", i, " of ",
                       tensor_count);
      }
    }
    const uint32_t o = layer.outputs(0);
    if (o >= static_cast<uint32_t>(tensor_count) ||
        m.tensors(static_cast<int>(o)).kind() == TensorProto::WEIGHT ||
        m.tensors(static_cast<int>(o)).kind() == TensorProto::INPUT || producer[o] >= 0) {
      return corrupt("GpuTrainer: ", layer_label(m, l), " writes tensor ", o,
                     ", which is out of range, a weight, the input or written twice");
    }
    producer[o] = l;
    // A layer with an integer output (shape arithmetic) carries no gradient: forward only.
    const bool carries_gradient =
        m.tensors(static_cast<int>(o)).dtype() == pipeswitch::psm::DT_FLOAT32;
    if (carries_gradient && !has_backward(layer.op())) {
      missing += str_cat(missing.empty() ? "" : "; ", layer_label(m, l));
      ++missing_count;
    }
  }
  if (missing_count > 0) {
    return unsupported("GpuTrainer: ", missing_count, " of ", layer_count,
                       " layers have no GPU backward operator: ", missing);
  }
  if (producer[t.output_tensor] < 0) {
    return corrupt("GpuTrainer: no layer produces the output '", out.name(), "'");
  }

  // Weights: the params region, tensor order (but see WeightConcat).
  t.weight_index.assign(static_cast<size_t>(tensor_count), -1);
  for (int i = 0; i < tensor_count; ++i) {
    const TensorProto& spec = m.tensors(i);
    if (spec.kind() != TensorProto::WEIGHT) continue;
    PS_ASSIGN_OR_RETURN(const DType dtype, onnx_loader::dtype_from_psm(spec.dtype()));
    TrainWeight w;
    w.tensor = static_cast<uint32_t>(i);
    w.dtype = dtype;
    w.is_float = is_floating(dtype);
    w.trainable = spec.trainable();
    w.shape = shape_of(spec);
    w.count = element_count(w.shape);
    w.bytes = static_cast<uint64_t>(w.count) * (w.is_float ? 4 : dtype_size(dtype));
    t.weight_index[static_cast<size_t>(i)] = static_cast<int32_t>(t.weights.size());
    t.weights.push_back(std::move(w));
  }
  // Tensor order, but for the members of a Concat of weights, side by side (WeightConcat).
  const std::vector<WeightConcat> weight_concats = find_weight_concats(m, t);
  std::vector<int> concat_of(t.weights.size(), -1);  // by weight index
  std::vector<std::vector<size_t>> concat_members;
  for (const WeightConcat& c : weight_concats) {
    concat_members.emplace_back();
    for (uint32_t tensor : c.members) {
      const auto w = static_cast<size_t>(t.weight_index[tensor]);
      concat_of[w] = static_cast<int>(concat_members.size() - 1);
      concat_members.back().push_back(w);
    }
  }
  std::vector<size_t> all_weights(t.weights.size());
  std::iota(all_weights.begin(), all_weights.end(), 0);
  t.params_bytes = place_weights(
      all_weights, concat_of, concat_members, [&](size_t w) { return t.weights[w].bytes; },
      [&](size_t w, uint64_t offset) { t.weights[w].offset = offset; });
  auto weight_of = [&](uint32_t tensor) -> TrainWeight* {
    const int32_t w = t.weight_index[tensor];
    return w < 0 ? nullptr : &t.weights[static_cast<size_t>(w)];
  };
  auto kind_of = [&](uint32_t tensor) { return m.tensors(static_cast<int>(tensor)).kind(); };
  auto numel_of = [&](uint32_t tensor) {
    return element_count(shape_of(m.tensors(static_cast<int>(tensor))));
  };
  auto act_bytes = [&](uint32_t tensor) -> Result<uint64_t> {
    PS_ASSIGN_OR_RETURN(const DType d,
                        onnx_loader::dtype_from_psm(m.tensors(static_cast<int>(tensor)).dtype()));
    return static_cast<uint64_t>(numel_of(tensor)) * dtype_size(d);
  };
  auto trainable = [&](uint32_t tensor) {
    return kind_of(tensor) == TensorProto::WEIGHT && weight_of(tensor)->is_float &&
           weight_of(tensor)->trainable;
  };
  // The tensors computed from a trainable weight (the layers run in order). Only those carry a
  // gradient somewhere: one computed from the input and constants alone (an attention mask, a
  // normalisation of the images inside the graph) has a gradient that reaches no weight, so
  // the backward does not compute it.
  std::vector<bool> from_weight(static_cast<size_t>(tensor_count), false);
  for (int l = 0; l < layer_count; ++l) {
    const Layer& layer = m.layers(l);
    bool any = false;
    for (uint32_t in : layer.inputs()) any = any || trainable(in) || from_weight[in];
    if (!any) continue;
    for (uint32_t o : layer.outputs()) from_weight[o] = true;
  }
  auto wants_grad = [&](uint32_t tensor) {
    const auto kind = kind_of(tensor);
    if (kind == TensorProto::WEIGHT) return trainable(tensor);
    // Token ids and shapes get no gradient.
    if (m.tensors(static_cast<int>(tensor)).dtype() != pipeswitch::psm::DT_FLOAT32) return false;
    return (kind == TensorProto::ACTIVATION || kind == TensorProto::OUTPUT) && from_weight[tensor];
  };

  // The backward, in enqueue order: which gradients each computes, writes or accumulates.
  const Timeline time{layer_count};
  std::vector<bool> has_grad(static_cast<size_t>(tensor_count), false);
  std::vector<int> grad_first(static_cast<size_t>(tensor_count), -1);
  has_grad[t.output_tensor] = true;
  grad_first[t.output_tensor] = time.loss();
  std::vector<int> backward_of(static_cast<size_t>(layer_count), -1);
  struct Scratch {
    size_t step, slot;
  };
  std::vector<Scratch> scratch;
  for (int l = layer_count - 1; l >= 0; --l) {
    const Layer& layer = m.layers(l);
    if (!has_grad[layer.outputs(0)]) continue;  // its output does not reach the loss
    const bool bn = layer.op() == "BatchNormalization";
    BackwardStep b;
    b.layer = static_cast<uint32_t>(l);
    bool any = false;
    std::vector<bool> forced(static_cast<size_t>(layer.inputs_size()), false);
    for (int i = 0; i < layer.inputs_size() && i < 32; ++i) {
      const uint32_t tensor = layer.inputs(i);
      const uint32_t bit = 1u << i;
      if (wants_grad(tensor)) {
        any = true;
        b.wanted |= bit;
        if (has_grad[tensor]) {
          b.accumulate |= bit;
        } else {
          has_grad[tensor] = true;
          grad_first[tensor] = time.backward(l);
        }
      } else if (bn && i < 3) {  // cuDNN writes dX, dscale and dB in one call
        b.wanted |= bit;
        forced[static_cast<size_t>(i)] = true;
      }
    }
    if (!any) continue;
    for (size_t i = 0; i < forced.size(); ++i) {
      if (forced[i]) scratch.push_back(Scratch{t.backward.size(), i});
    }
    backward_of[static_cast<size_t>(l)] = static_cast<int>(t.backward.size());
    t.backward.push_back(std::move(b));
  }

  mark_covering_head_slices(m, t);

  // Persistent gradient and momentum buffers of the weights that get a gradient; a Concat of
  // weights whose members all get one has them side by side too (its gradient is theirs).
  std::vector<size_t> with_grad;
  for (size_t w = 0; w < t.weights.size(); ++w) {
    if (wants_grad(t.weights[w].tensor) && has_grad[t.weights[w].tensor]) with_grad.push_back(w);
  }
  std::vector<bool> grad_view(concat_members.size(), true);
  for (size_t g = 0; g < concat_members.size(); ++g) {
    for (size_t w : concat_members[g]) {
      grad_view[g] =
          grad_view[g] && std::find(with_grad.begin(), with_grad.end(), w) != with_grad.end();
    }
  }
  std::vector<int> grad_concat_of = concat_of;
  for (int& g : grad_concat_of) {
    if (g >= 0 && !grad_view[static_cast<size_t>(g)]) g = -1;
  }
  auto bytes_of = [&](size_t w) { return t.weights[w].bytes; };
  const uint64_t grads = place_weights(with_grad, grad_concat_of, concat_members, bytes_of,
                                       [&](size_t w, uint64_t at) { t.weights[w].grad = at; });
  uint64_t momentum = 0;
  if (options.momentum) {
    momentum = place_weights(with_grad, grad_concat_of, concat_members, bytes_of,
                             [&](size_t w, uint64_t at) { t.weights[w].momentum = at; });
  }
  for (size_t w : with_grad) t.sgd.push_back(static_cast<uint32_t>(w));
  t.grads_offset = t.params_bytes;
  t.grads_bytes = grads;
  t.momentum_offset = t.grads_offset + grads;
  t.momentum_bytes = momentum;
  for (TrainWeight& w : t.weights) {
    if (w.grad != kNoBuffer) w.grad += t.grads_offset;
    if (w.momentum != kNoBuffer) w.momentum += t.momentum_offset;
  }
  // The Concats of weights: their outputs' block offsets (and their gradients').
  std::vector<uint64_t> weight_view(static_cast<size_t>(tensor_count), kNoBuffer);
  std::vector<uint64_t> grad_view_at(static_cast<size_t>(tensor_count), kNoBuffer);
  for (size_t g = 0; g < weight_concats.size(); ++g) {
    const TrainWeight& first = t.weights[concat_members[g][0]];
    weight_view[weight_concats[g].output] = first.offset;
    if (grad_view[g] && first.grad != kNoBuffer)
      grad_view_at[weight_concats[g].output] = first.grad;
  }
  t.patterns_offset = t.momentum_offset + momentum;
  t.patterns_bytes =
      align_up(static_cast<uint64_t>(std::max<int64_t>(options.patterns, 1) * t.sample_size) * 8,
               kTrainAlign);
  t.patterns = t.patterns_offset;
  t.arena_offset = t.patterns_offset + t.patterns_bytes;

  // The arena's buffers and their lifetimes.
  std::vector<int> act_buffer(static_cast<size_t>(tensor_count), -1);
  std::vector<int> grad_buffer(static_cast<size_t>(tensor_count), -1);
  auto add = [&](ArenaBuffer::Kind kind, uint32_t tensor, uint64_t bytes, int first, int last) {
    t.arena.push_back(ArenaBuffer{kind, tensor, bytes, first, last, 0});
    return static_cast<int>(t.arena.size() - 1);
  };
  // A view layer's output (forward_aliases_input: Reshape and friends) IS its input's bytes: it
  // shares the buffer of its root (the first tensor of a chain of views; layers run in order),
  // whose lifetime then covers the view's readers too, and the forward copies nothing (the view
  // op is a no-op in place). Activations are written once, by their producer, so sharing is
  // always safe. BERT-base: 4 Reshapes of [8, 251, 768] a layer.
  std::vector<int64_t> view_of(static_cast<size_t>(tensor_count), -1);
  for (int l = 0; l < layer_count; ++l) {
    const Layer& layer = m.layers(l);
    if (!forward_aliases_input(layer.op()) || layer.inputs_size() < 1 || layer.outputs_size() != 1)
      continue;
    const uint32_t in = layer.inputs(0), out = layer.outputs(0);
    if (kind_of(in) != TensorProto::INPUT && producer[in] < 0) continue;  // a weight, a constant
    if (weight_view[in] != kNoBuffer) continue;                           // weights' bytes
    PS_ASSIGN_OR_RETURN(const uint64_t in_bytes, act_bytes(in));
    PS_ASSIGN_OR_RETURN(const uint64_t out_bytes, act_bytes(out));
    if (in_bytes == out_bytes) view_of[out] = view_of[in] >= 0 ? view_of[in] : in;  // the root
  }
  for (int i = 0; i < tensor_count; ++i) {
    const auto tensor = static_cast<uint32_t>(i);
    const bool is_input = kind_of(tensor) == TensorProto::INPUT;
    if ((!is_input && producer[tensor] < 0) || view_of[tensor] >= 0 ||
        weight_view[tensor] != kNoBuffer) {
      continue;
    }
    PS_ASSIGN_OR_RETURN(const uint64_t bytes, act_bytes(tensor));
    const int first = is_input ? time.data() : time.forward(producer[tensor]);
    act_buffer[tensor] = add(ArenaBuffer::Kind::kActivation, tensor, bytes, first, first);
  }
  for (int i = 0; i < tensor_count; ++i) {
    if (view_of[i] >= 0) act_buffer[i] = act_buffer[static_cast<size_t>(view_of[i])];
  }
  for (int l = 0; l < layer_count; ++l) {
    const Layer& layer = m.layers(l);
    for (int i = 0; i < layer.inputs_size(); ++i) {
      const uint32_t tensor = layer.inputs(i);
      if (kind_of(tensor) == TensorProto::WEIGHT || weight_view[tensor] != kNoBuffer) continue;
      if (act_buffer[tensor] < 0) {
        return corrupt("GpuTrainer: ", layer_label(m, l), " reads tensor ", tensor, " '",
                       m.tensors(static_cast<int>(tensor)).name(),
                       "', which is neither the input, a weight nor produced by a layer");
      }
      ArenaBuffer& b = t.arena[static_cast<size_t>(act_buffer[tensor])];
      b.last = std::max(b.last, time.forward(l));
      if (backward_of[static_cast<size_t>(l)] >= 0 &&
          backward_reads_input(layer.op(), static_cast<size_t>(i))) {
        b.last = std::max(b.last, time.backward(l));
      }
    }
  }
  for (int l = 0; l < layer_count; ++l) {
    if (backward_of[static_cast<size_t>(l)] < 0 || !backward_reads_output(m.layers(l).op())) continue;
    ArenaBuffer& y = t.arena[static_cast<size_t>(act_buffer[m.layers(l).outputs(0)])];
    y.last = std::max(y.last, time.backward(l));
  }
  {
    ArenaBuffer& logits = t.arena[static_cast<size_t>(act_buffer[t.output_tensor])];
    logits.last = std::max(logits.last, time.loss());
  }
  std::vector<std::pair<int, int>> saved(static_cast<size_t>(layer_count), {-1, -1});
  for (int l = 0; l < layer_count; ++l) {
    const Layer& layer = m.layers(l);
    if (layer.op() != "BatchNormalization") continue;
    if (layer.inputs_size() < 2)
      return invalid_argument("GpuTrainer: ", layer_label(m, l), " needs 5 inputs");
    const uint64_t bytes = static_cast<uint64_t>(numel_of(layer.inputs(1))) * 4;
    const int last = backward_of[static_cast<size_t>(l)] >= 0 ? time.backward(l) : time.forward(l);
    saved[static_cast<size_t>(l)] = {
        add(ArenaBuffer::Kind::kSavedStats, static_cast<uint32_t>(l), bytes, time.forward(l), last),
        add(ArenaBuffer::Kind::kSavedStats, static_cast<uint32_t>(l), bytes, time.forward(l),
            last)};
  }
  // A pass-through backward (backward_passes_through: Add without broadcast, a view op) that
  // WRITES input i's gradient gives it dY's buffer instead of a copy of dY: the backward of dY's
  // producer is dY's last reader, so the buffer is free for the input's gradient from there
  // on, and the input's later backwards accumulate into it. One input per backward (an Add's
  // other input still gets its copy). shares[tensor]: the tensor whose gradient buffer it takes.
  std::vector<int64_t> shares(static_cast<size_t>(tensor_count), -1);
  for (const BackwardStep& b : t.backward) {
    const Layer& layer = m.layers(static_cast<int>(b.layer));
    if (!backward_passes_through(layer.op())) continue;
    for (int i = 0; i < layer.inputs_size() && i < 32; ++i) {
      const uint32_t tensor = layer.inputs(i);
      const uint32_t bit = 1u << i;
      if ((b.wanted & bit) == 0 || (b.accumulate & bit) != 0 ||
          kind_of(tensor) == TensorProto::WEIGHT || grad_view_at[tensor] != kNoBuffer ||
          numel_of(tensor) != numel_of(layer.outputs(0))) {
        continue;
      }
      shares[tensor] = layer.outputs(0);
      break;
    }
  }
  auto grad_last = [&](uint32_t tensor) {
    const int p = producer[tensor];
    return p >= 0 && backward_of[static_cast<size_t>(p)] >= 0 ? time.backward(p)
                                                              : grad_first[tensor];
  };
  for (int i = 0; i < tensor_count; ++i) {
    const auto tensor = static_cast<uint32_t>(i);
    if (!has_grad[tensor] || kind_of(tensor) == TensorProto::WEIGHT || shares[tensor] >= 0 ||
        grad_view_at[tensor] != kNoBuffer) {
      continue;
    }
    grad_buffer[tensor] =
        add(ArenaBuffer::Kind::kGradient, tensor, static_cast<uint64_t>(numel_of(tensor)) * 4,
            grad_first[tensor], grad_last(tensor));
  }
  for (int i = 0; i < tensor_count; ++i) {
    const auto tensor = static_cast<uint32_t>(i);
    if (!has_grad[tensor] || shares[tensor] < 0) continue;
    int64_t root = shares[tensor];
    while (shares[static_cast<size_t>(root)] >= 0) root = shares[static_cast<size_t>(root)];
    grad_buffer[tensor] = grad_buffer[static_cast<size_t>(root)];
    ArenaBuffer& b = t.arena[static_cast<size_t>(grad_buffer[tensor])];
    b.last = std::max(b.last, grad_last(tensor));
  }
  std::vector<int> scratch_buffer;
  for (const Scratch& s : scratch) {
    const BackwardStep& b = t.backward[s.step];
    const uint32_t tensor = m.layers(static_cast<int>(b.layer)).inputs(static_cast<int>(s.slot));
    const int at = time.backward(static_cast<int>(b.layer));
    scratch_buffer.push_back(add(ArenaBuffer::Kind::kScratch, tensor,
                                 static_cast<uint64_t>(numel_of(tensor)) * 4, at, at));
  }
  const int labels = add(ArenaBuffer::Kind::kLabels, t.input_tensor,
                         static_cast<uint64_t>(t.batch) * 8, time.data(), time.loss());
  const int loss = add(ArenaBuffer::Kind::kLoss, t.output_tensor, 8, time.loss(), time.update());

  t.arena_lower_bound = arena_live_peak(t.arena);
  for (const ArenaBuffer& b : t.arena) t.arena_no_reuse += align_up(b.bytes, kTrainAlign);
  t.arena_bytes = place_arena(t.arena);
  t.block_bytes = t.arena_offset + align_up(t.arena_bytes, kTrainAlign);
  auto arena_at = [&](int buffer) {
    return t.arena_offset + t.arena[static_cast<size_t>(buffer)].offset;
  };

  // Operand offsets.
  auto value_offset = [&](uint32_t tensor) -> uint64_t {
    if (const TrainWeight* w = weight_of(tensor)) return w->offset;
    if (weight_view[tensor] != kNoBuffer) return weight_view[tensor];
    return arena_at(act_buffer[tensor]);
  };
  auto grad_offset = [&](uint32_t tensor) -> uint64_t {
    if (grad_view_at[tensor] != kNoBuffer) return grad_view_at[tensor];
    return arena_at(grad_buffer[tensor]);
  };
  t.forward.resize(static_cast<size_t>(layer_count));
  for (int l = 0; l < layer_count; ++l) {
    const Layer& layer = m.layers(l);
    ForwardStep& f = t.forward[static_cast<size_t>(l)];
    for (uint32_t tensor : layer.inputs()) f.inputs.push_back(value_offset(tensor));
    f.outputs.push_back(value_offset(layer.outputs(0)));
    if (saved[static_cast<size_t>(l)].first >= 0) {
      f.outputs.push_back(arena_at(saved[static_cast<size_t>(l)].first));
      f.outputs.push_back(arena_at(saved[static_cast<size_t>(l)].second));
    }
  }
  size_t next_scratch = 0;
  for (size_t s = 0; s < t.backward.size(); ++s) {
    BackwardStep& b = t.backward[s];
    const Layer& layer = m.layers(static_cast<int>(b.layer));
    b.inputs = t.forward[b.layer].inputs;
    b.inputs.push_back(grad_offset(layer.outputs(0)));
    if (saved[b.layer].first >= 0) {
      b.inputs.push_back(arena_at(saved[b.layer].first));
      b.inputs.push_back(arena_at(saved[b.layer].second));
    }
    if (backward_reads_output(layer.op())) b.inputs.push_back(value_offset(layer.outputs(0)));
    b.outputs.assign(static_cast<size_t>(layer.inputs_size()), kNoBuffer);
    for (int i = 0; i < layer.inputs_size() && i < 32; ++i) {
      if (((b.wanted >> i) & 1u) == 0) continue;
      const uint32_t tensor = layer.inputs(i);
      if (next_scratch < scratch.size() && scratch[next_scratch].step == s &&
          scratch[next_scratch].slot == static_cast<size_t>(i)) {
        b.outputs[static_cast<size_t>(i)] = arena_at(scratch_buffer[next_scratch++]);
      } else if (const TrainWeight* w = weight_of(tensor)) {
        b.outputs[static_cast<size_t>(i)] = w->grad;
      } else {
        b.outputs[static_cast<size_t>(i)] = grad_offset(tensor);
      }
    }
  }
  if (t.token_tensors.empty()) {
    t.images = arena_at(act_buffer[t.input_tensor]);
  } else {
    for (uint32_t tensor : t.token_tensors) t.tokens.push_back(arena_at(act_buffer[tensor]));
  }
  t.labels = arena_at(labels);
  t.logits = arena_at(act_buffer[t.output_tensor]);
  t.dlogits = arena_at(grad_buffer[t.output_tensor]);
  t.loss = arena_at(loss);

  // The step's items.
  t.items.push_back(TrainItem{TrainItemKind::kData, 0, time.data()});
  for (int l = 0; l < layer_count; ++l) {
    t.items.push_back(
        TrainItem{TrainItemKind::kForward, static_cast<uint32_t>(l), time.forward(l)});
  }
  t.items.push_back(TrainItem{TrainItemKind::kLoss, 0, time.loss()});
  for (size_t s = 0; s < t.backward.size(); ++s) {
    t.items.push_back(TrainItem{TrainItemKind::kBackward, static_cast<uint32_t>(s),
                                time.backward(static_cast<int>(t.backward[s].layer))});
  }
  std::vector<int64_t> sgd_counts;
  for (uint32_t w : t.sgd) sgd_counts.push_back(t.weights[w].count);
  t.sgd_groups = partition_sgd_groups(sgd_counts);
  for (size_t g = 0; g < t.sgd_groups.size(); ++g) {
    t.items.push_back(TrainItem{TrainItemKind::kSgd, static_cast<uint32_t>(g), time.update()});
  }
  return t;
}

}  // namespace ps::models::gpu
