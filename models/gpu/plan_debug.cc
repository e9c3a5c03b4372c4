// Plan's synchronous tools: the debug run (check after every layer) and the per-layer profile.
#include <vector>

#include "cuda/event.h"
#include "cuda/stream.h"
#include "models/gpu/non_finite.h"
#include "models/gpu/plan.h"

namespace ps::models::gpu {

Status Plan::run_debug(const cuda::Stream& stream, const Bindings& bindings) const {
  PS_TRY(check_bindings(bindings));
  PS_TRY(stream.synchronize());
  std::vector<uint8_t> host;
  for (const IoSpec& in : layout_.inputs) {
    const TensorSpec spec{in.dtype, in.shape, false};
    PS_ASSIGN_OR_RETURN(NonFinite bad,
                        scan_device_tensor(bindings.arena + in.arena_offset, spec, stream, host));
    if (bad.count > 0) {
      return invalid_argument("debug run: model input '", in.name, "' ", dtype_name(in.dtype),
                              shape_string(in.shape), ": ", describe_non_finite(bad, spec));
    }
  }
  for (size_t l = 0; l < steps_.size(); ++l) {
    const Status launched = enqueue_layers(static_cast<uint32_t>(l), 1, stream, bindings);
    if (!launched.ok()) return launched.with_context("debug run");
    const Status ran = stream.synchronize();
    if (!ran.ok()) return ran.with_context(str_cat("debug run: after ", layer_label(l)));
    const LayerLayout& lay = layout_.layers[l];
    for (size_t o = 0; o < lay.outputs.size(); ++o) {
      const TensorSpec& spec = lay.output_specs[o];
      PS_ASSIGN_OR_RETURN(NonFinite bad, scan_device_tensor(bindings.arena + lay.outputs[o].offset,
                                                             spec, stream, host));
      if (bad.count == 0) continue;
      // Were the inputs already bad? Activations were checked by earlier layers, but weights
      // and inputs the memory plan might have let something overwrite were not.
      std::string inputs_state;
      for (size_t i = 0; i < lay.inputs.size(); ++i) {
        const OperandPlace& p = lay.inputs[i];
        PS_ASSIGN_OR_RETURN(NonFinite in_bad, scan_device_tensor(operand_address(p, bindings),
                                                                  lay.input_specs[i], stream, host));
        if (in_bad.count > 0) {
          inputs_state += str_cat("; input ", i, " '", tensor_names_[p.tensor], "'",
                                  p.region == Region::kWeights ? " (weight)" : "", " already has ",
                                  in_bad.count, " NaN/Inf");
        }
      }
      if (inputs_state.empty()) inputs_state = "; all its inputs are finite";
      return internal_error("debug run: ", layer_label(l), " [", steps_[l].info.implementation,
                            "] output ", o, " '", tensor_names_[lay.outputs[o].tensor], "' ",
                            dtype_name(spec.dtype), shape_string(spec.shape), ": ",
                            describe_non_finite(bad, spec), inputs_state);
    }
  }
  return Status::OK();
}

Result<std::vector<double>> Plan::profile_layers(const cuda::Stream& stream,
                                                 const Bindings& bindings) const {
  std::vector<cuda::Event> marks;
  marks.reserve(steps_.size() + 1);
  for (size_t i = 0; i <= steps_.size(); ++i) {
    PS_ASSIGN_OR_RETURN(cuda::Event e, cuda::Event::create(/*timing=*/true));
    marks.push_back(std::move(e));
  }
  // Captured into a graph and replayed, so the marks time the GPU's work alone: enqueued
  // directly, a layer whose host-side enqueue is slower than its kernels (cuDNN's legacy
  // convolution calls cost tens of microseconds each) would be timed at the host's pace.
  PS_ASSIGN_OR_RETURN(CudaGraph graph, CudaGraph::capture(stream, [&]() -> Status {
                        PS_TRY(marks[0].record_timestamp(stream));
                        for (size_t l = 0; l < steps_.size(); ++l) {
                          PS_TRY(enqueue_layers(static_cast<uint32_t>(l), 1, stream, bindings));
                          PS_TRY(marks[l + 1].record_timestamp(stream));
                        }
                        return Status::OK();
                      }));
  PS_TRY(graph.launch(stream));  // the first replay uploads the graph: not timed
  PS_TRY(stream.synchronize());
  PS_TRY(graph.launch(stream));
  PS_TRY(marks.back().synchronize());
  std::vector<double> ms(steps_.size());
  for (size_t l = 0; l < steps_.size(); ++l) {
    PS_ASSIGN_OR_RETURN(float t, cuda::Event::elapsed_ms(marks[l], marks[l + 1]));
    ms[l] = t;
  }
  return ms;
}

}  // namespace ps::models::gpu
