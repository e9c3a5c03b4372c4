// GpuTrainer::debug_step: one training step item by item, synchronised after each, every
// output scanned for NaN/Inf (models/gpu/non_finite.h). The first item whose output is not
// finite ends the step with an error naming the item, the output and which of the item's inputs
// were already not finite; `trace` gets each output's largest magnitude, so that a value
// growing towards overflow shows before it becomes Inf. For `psbench train --debug`.
#include <string>
#include <vector>

#include "cuda/copy.h"
#include "models/gpu/non_finite.h"
#include "models/gpu/plan_layout.h"
#include "models/gpu/trainer_impl.h"

namespace ps::models::gpu {
namespace {

struct Operand {
  std::string name;
  CUdeviceptr address = 0;
  TensorSpec spec;
};

// As the trainer holds it: float tensors of any width are float32 on the device.
TensorSpec on_device(const TensorSpec& s) {
  TensorSpec out{s.dtype, s.shape, false, nullptr};
  if (is_floating(out.dtype)) out.dtype = DType::kFloat32;
  return out;
}

TensorSpec f32(Shape shape) {
  return TensorSpec{DType::kFloat32, std::move(shape), false, nullptr};
}

}  // namespace

Result<double> GpuTrainer::debug_step(const cuda::Stream& stream,
                                      const std::function<void(const std::string&)>& trace) {
  Impl& t = *impl_;
  if (t.paged) return invalid_argument("GpuTrainer: the state is paged out; page_in() first");
  if (mid_step()) return invalid_argument("GpuTrainer: debug_step() in the middle of a step");
  PS_ASSIGN_OR_RETURN(const PlanLayout specs, build_layout(t.manifest));
  const TrainLayout& lay = t.layout;
  auto tensor_name = [&](uint32_t layer, bool input, size_t k) -> std::string {
    const auto& l = t.manifest.layers(static_cast<int>(layer));
    const int n = input ? l.inputs_size() : l.outputs_size();
    if (static_cast<int>(k) >= n) return str_cat(input ? "input " : "output ", k);
    const uint32_t tensor = input ? l.inputs(static_cast<int>(k)) : l.outputs(static_cast<int>(k));
    return str_cat("'", t.manifest.tensors(static_cast<int>(tensor)).name(), "'");
  };
  // What item `i` writes (and, for a forward layer, what it reads).
  auto outputs_of = [&](const TrainItem& item, std::vector<Operand>& ins) {
    std::vector<Operand> outs;
    ins.clear();
    switch (item.kind) {
      case TrainItemKind::kData:
        if (t.tokens) break;  // integer ids: nothing to scan
        outs.push_back({"images", t.addr(lay.images), f32(Shape{lay.batch, lay.sample_size})});
        break;
      case TrainItemKind::kForward: {
        const LayerLayout& l = specs.layers[item.index];
        const ForwardStep& f = lay.forward[item.index];
        for (size_t k = 0; k < f.outputs.size(); ++k) {
          // BatchNormalization's saved mean and inverse std are [C] beside Y.
          const TensorSpec spec =
              k == 0 ? on_device(l.output_specs[0]) : f32(Shape{l.input_specs[0].shape.at(1)});
          outs.push_back({k == 0 ? tensor_name(item.index, false, 0)
                                 : (k == 1 ? "saved mean" : "saved inverse std"),
                          t.addr(f.outputs[k]), spec});
        }
        for (size_t k = 0; k < f.inputs.size() && k < l.input_specs.size(); ++k) {
          ins.push_back(
              {tensor_name(item.index, true, k), t.addr(f.inputs[k]), on_device(l.input_specs[k])});
        }
        break;
      }
      case TrainItemKind::kLoss:
        outs.push_back({"dlogits", t.addr(lay.dlogits), f32(Shape{lay.batch, lay.outputs_k})});
        outs.push_back(
            {"loss", t.addr(lay.loss), TensorSpec{DType::kFloat64, Shape{1}, false, nullptr}});
        break;
      case TrainItemKind::kBackward: {
        const BackwardStep& b = lay.backward[item.index];
        const LayerLayout& l = specs.layers[b.layer];
        for (size_t k = 0; k < b.outputs.size() && k < l.input_specs.size(); ++k) {
          if (b.outputs[k] == kNoBuffer) continue;
          outs.push_back({str_cat("d", tensor_name(b.layer, true, k)), t.addr(b.outputs[k]),
                          f32(l.input_specs[k].shape)});
        }
        break;
      }
      case TrainItemKind::kSgd: {
        for (uint32_t index : sgd_group_weights(lay, item.index)) {
          const TrainWeight& w = lay.weights[index];
          outs.push_back({str_cat("'", t.manifest.tensors(static_cast<int>(w.tensor)).name(), "'"),
                          t.addr(w.offset), f32(w.shape)});
        }
        break;
      }
    }
    return outs;
  };
  PS_TRY(stream.synchronize());
  PS_TRY(t.runtime->bind(stream, t.workspace, t.workspace_bytes));
  std::vector<uint8_t> host;
  std::vector<Operand> ins;
  for (uint32_t i = 0; i < lay.items.size(); ++i) {
    const TrainItem& item = lay.items[i];
    const std::string label = str_cat("item ", i, " (", t.item_label(item), ")");
    const Status launched = t.enqueue_item(item, stream);
    if (!launched.ok()) return launched.with_context(str_cat("debug step: ", label));
    const Status ran = stream.synchronize();
    if (!ran.ok()) return ran.with_context(str_cat("debug step: after ", label));
    for (const Operand& out : outputs_of(item, ins)) {
      PS_ASSIGN_OR_RETURN(const NonFinite bad,
                          scan_device_tensor(out.address, out.spec, stream, host));
      if (trace) {
        trace(str_cat(label, " ", out.name, shape_string(out.spec.shape), ": max |v| ", bad.max_abs,
                      bad.count > 0 ? str_cat(", ", bad.count, " NaN/Inf") : ""));
      }
      if (bad.count == 0) continue;
      std::string inputs_state;
      for (const Operand& in : ins) {
        PS_ASSIGN_OR_RETURN(const NonFinite in_bad,
                            scan_device_tensor(in.address, in.spec, stream, host));
        inputs_state += str_cat("; input ", in.name, " max |v| ", in_bad.max_abs,
                                in_bad.count > 0 ? str_cat(", ", in_bad.count, " NaN/Inf") : "");
      }
      return internal_error("debug step ", t.step, ": ", label, " output ", out.name,
                            shape_string(out.spec.shape), ": ", describe_non_finite(bad, out.spec),
                            inputs_state);
    }
  }
  PS_TRY(cuda::copy_to_host_async(t.loss_host.data(), t.addr(lay.loss), 8, stream));
  PS_TRY(stream.synchronize());
  return complete_step();
}

}  // namespace ps::models::gpu
