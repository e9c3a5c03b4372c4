#include "models/gpu/plan.h"

#include <algorithm>
#include <array>
#include <utility>

#include "cuda/copy.h"
#include "cuda/stream.h"
#include "models/gpu/runtime.h"

namespace ps::models::gpu {
namespace {

constexpr uint64_t kAlign = 256;

uint64_t align_up(uint64_t n) { return (n + kAlign - 1) & ~(kAlign - 1); }

bool aligned(CUdeviceptr p) { return p % kAlign == 0; }

// Whether a build failure is about this layer alone (collect it and go on) or about the device
// (every later layer would fail the same way: stop).
bool device_wide(Code code) { return code == Code::kDevice || code == Code::kOutOfMemory; }

}  // namespace

Plan::~Plan() = default;

Result<Plan> Plan::build(const pipeswitch::psm::Manifest& manifest,
                         std::span<const uint8_t> host_weights, GpuRuntime& runtime,
                         const PlanOptions& options) {
  Plan plan;
  plan.runtime_ = &runtime;
  plan.precision_ = options.precision;
  PS_ASSIGN_OR_RETURN(plan.layout_, build_layout(manifest, options.host_read_min_bytes));
  if (!host_weights.empty() && host_weights.size() < plan.layout_.weights_bytes) {
    return invalid_argument("model '", manifest.model_name(), "': the host weight blob has ",
                            host_weights.size(), " bytes, the manifest needs ",
                            plan.layout_.weights_bytes);
  }
  if (plan.layout_.max_operands > kMaxOperands) {
    return unsupported("model '", manifest.model_name(), "' has a layer with ",
                       plan.layout_.max_operands, " operands; the GPU plan takes at most ",
                       kMaxOperands);
  }
  plan.tensor_names_.reserve(static_cast<size_t>(manifest.tensors_size()));
  for (const auto& t : manifest.tensors()) plan.tensor_names_.push_back(t.name());

  const OpEnv env{runtime, options.precision};
  std::vector<UnsupportedLayer> failed;
  Code failure_code = Code::kOk;
  std::vector<size_t> workspaces;
  plan.steps_.resize(plan.layout_.layers.size());
  for (size_t l = 0; l < plan.layout_.layers.size(); ++l) {
    const auto& layer = manifest.layers(static_cast<int>(l));
    LayerLayout& lay = plan.layout_.layers[l];
    Step& step = plan.steps_[l];
    step.info.op = layer.op();
    step.info.name = layer.name();
    step.info.block = layer.block();
    step.info.onnx_nodes.assign(layer.onnx_nodes().begin(), layer.onnx_nodes().end());

    // Static inputs are read from the host blob at build time; the pointers are dropped after.
    std::vector<TensorSpec> inputs = lay.input_specs;
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (inputs[i].is_weight && !host_weights.empty()) {
        inputs[i].host_data = host_weights.data() + lay.inputs[i].offset;
      }
    }
    const OpSpec spec{layer.op(), layer.name(), layer.attributes(), inputs, lay.output_specs};
    Result<std::unique_ptr<GpuOp>> op =
        options.op_factory ? options.op_factory(spec, env, static_cast<uint32_t>(l))
        : gpu_supports(layer.op())
            ? build_op(spec, env)
            : Result<std::unique_ptr<GpuOp>>(unsupported("no GPU operator"));
    if (!op.ok()) {
      if (device_wide(op.status().code())) {
        return op.status().with_context(plan.layer_label(l));
      }
      if (failure_code == Code::kOk) failure_code = op.status().code();
      failed.push_back(UnsupportedLayer{static_cast<uint32_t>(l), layer.op(), layer.name(),
                                        op.status().message()});
      continue;
    }
    step.op = std::move(op).value();
    step.info.implementation = step.op->describe();
    step.info.workspace_bytes = step.op->workspace_bytes();
    workspaces.push_back(step.info.workspace_bytes);
  }
  if (!failed.empty()) {
    return make_error(failure_code, failed.size(), " of ", plan.steps_.size(), " layers of '",
                      manifest.model_name(), "' cannot run on the GPU: ",
                      describe_unsupported(failed));
  }
  plan.workspace_bytes_ = plan_workspace_bytes(workspaces, kAlign);
  if (options.warm_up) PS_TRY(plan.warm_up(options));
  return plan;
}

Status Plan::warm_up(const PlanOptions& options) {
  const cuda::Stream& stream = runtime_->plan_stream();
  if (options.warm_up_with != nullptr) {
    PS_TRY(enqueue(stream, *options.warm_up_with));
    PS_TRY(stream.synchronize());
    return Status::OK();
  }
  const uint64_t weights = align_up(layout_.weights_bytes);
  const uint64_t arena = align_up(layout_.arena_bytes);
  const uint64_t total = std::max<uint64_t>(weights + arena + workspace_bytes_, kAlign);
  PS_ASSIGN_OR_RETURN(CUdeviceptr base, runtime_->plan_scratch(total));
  // Zeros: no garbage indices for gathers, no signalling patterns; the results are ignored.
  PS_TRY(cuda::memset_d8_async(base, 0, total, stream));
  const Bindings scratch{base, base + weights, base + weights + arena, workspace_bytes_};
  const Status run = enqueue(stream, scratch);
  const Status synced = stream.synchronize();
  if (!run.ok()) return run.with_context("warm-up run");
  if (!synced.ok()) return synced.with_context("warm-up run");
  return Status::OK();
}

std::string Plan::layer_label(size_t index) const {
  const LayerInfo& info = steps_[index].info;
  std::string nodes;
  for (int32_t n : info.onnx_nodes) nodes += (nodes.empty() ? "" : ",") + std::to_string(n);
  return str_cat("layer ", index, " (", info.op, " '", info.name, "'",
                 nodes.empty() ? "" : str_cat(", ONNX nodes ", nodes), ")");
}

Status Plan::check_bindings(const Bindings& b) const {
  if (layout_.weights_bytes > 0 && (b.weights == 0 || !aligned(b.weights))) {
    return invalid_argument("plan bindings: the weights address is null or not ", kAlign,
                            "-byte aligned");
  }
  if (layout_.arena_bytes > 0 && (b.arena == 0 || !aligned(b.arena))) {
    return invalid_argument("plan bindings: the arena address is null or not ", kAlign,
                            "-byte aligned");
  }
  if (b.workspace_bytes < workspace_bytes_ || (workspace_bytes_ > 0 && b.workspace == 0) ||
      !aligned(b.workspace)) {
    return invalid_argument("plan bindings: workspace of ", b.workspace_bytes, " bytes at 0x",
                            b.workspace, "; the plan needs ", workspace_bytes_,
                            " bytes, 256-byte aligned");
  }
  return Status::OK();
}

Status Plan::enqueue(const cuda::Stream& stream, const Bindings& bindings,
                     const GroupHook& before_group) const {
  return enqueue_layers(0, static_cast<uint32_t>(steps_.size()), stream, bindings, before_group);
}

Status Plan::enqueue_layers(uint32_t first, uint32_t count, const cuda::Stream& stream,
                            const Bindings& bindings, const GroupHook& before_group) const {
  if (first > steps_.size() || count > steps_.size() - first) {
    return out_of_range("layers [", first, ", ", uint64_t{first} + count, ") of a ",
                        steps_.size(), "-layer plan");
  }
  PS_TRY(check_bindings(bindings));
  PS_TRY(runtime_->bind(stream, bindings.workspace, bindings.workspace_bytes));
  const std::vector<uint32_t>& groups = layout_.group_first_layer;
  size_t next_group = static_cast<size_t>(
      std::lower_bound(groups.begin(), groups.end(), first) - groups.begin());
  std::array<CUdeviceptr, kMaxOperands> addresses;
  const uint32_t end = first + count;
  for (uint32_t l = first; l < end; ++l) {
    if (next_group < groups.size() && groups[next_group] == l) {
      if (before_group) {
        const Status hooked = before_group(static_cast<uint32_t>(next_group), stream);
        if (!hooked.ok()) return hooked.with_context(str_cat("before group ", next_group));
      }
      ++next_group;
    }
    const LayerLayout& lay = layout_.layers[l];
    size_t n = 0;
    for (const OperandPlace& p : lay.inputs) {
      addresses[n++] = operand_address(p, bindings);
    }
    for (const OperandPlace& p : lay.outputs) addresses[n++] = operand_address(p, bindings);
    const size_t inputs = lay.inputs.size();
    const LaunchArgs args{stream, std::span<const CUdeviceptr>(addresses.data(), inputs),
                          std::span<const CUdeviceptr>(addresses.data() + inputs, n - inputs),
                          bindings.workspace, bindings.workspace_bytes};
    const Status launched = steps_[l].op->enqueue(args);
    if (!launched.ok()) return launched.with_context(layer_label(l));
  }
  return Status::OK();
}

Result<CudaGraph> Plan::capture_graph(const cuda::Stream& stream, const Bindings& bindings,
                                      CaptureMode mode) const {
  PS_TRY(check_bindings(bindings));
  return CudaGraph::capture(stream, [&] { return enqueue(stream, bindings); }, mode);
}

}  // namespace ps::models::gpu
