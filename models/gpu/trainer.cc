// GpuTrainer: building (ops, memory, weights, profile) and the step. The plan of the step and
// the memory layout are trainer_plan.cc's (pure, tested on the CPU); the batch is
// trainer_data.cc's; profiling and chunk cutting are trainer_profile.cc's.
#include "models/gpu/trainer.h"

#include <algorithm>
#include <cstring>

#include "cuda/copy.h"
#include "cuda/host_memory.h"
#include "models/gpu/grad_kernel_plan.h"
#include "models/gpu/grad_op.h"
#include "models/gpu/plan_layout.h"
#include "models/gpu/trainer_impl.h"

namespace ps::models::gpu {
namespace {

using pipeswitch::psm::Manifest;

// Float weights of any width are float32 on the device.
Status convert_weight(const TrainWeight& w, const uint8_t* src, uint8_t* dst) {
  if (!w.is_float || w.dtype == DType::kFloat32) {
    std::memcpy(dst, src, w.bytes);
    return Status::OK();
  }
  auto* out = reinterpret_cast<float*>(dst);
  for (int64_t i = 0; i < w.count; ++i) {
    if (w.dtype == DType::kFloat64) {
      double v;
      std::memcpy(&v, src + i * 8, 8);
      out[i] = static_cast<float>(v);
    } else if (w.dtype == DType::kFloat16 || w.dtype == DType::kBFloat16) {
      uint16_t h;
      std::memcpy(&h, src + i * 2, 2);
      out[i] = w.dtype == DType::kFloat16 ? float16_to_float(h) : bfloat16_to_float(h);
    } else {
      return unsupported("GpuTrainer: weight of dtype ", dtype_name(w.dtype));
    }
  }
  return Status::OK();
}

bool device_wide(Code code) { return code == Code::kDevice || code == Code::kOutOfMemory; }

std::string mib(uint64_t bytes) {
  return str_cat(bytes, " bytes (", (bytes + (uint64_t{1} << 19)) >> 20, " MiB)");
}

}  // namespace

GpuTrainer::Impl::~Impl() {
  if (block.ptr != 0 && pool != nullptr) pool->free(block).ignore();
}

std::string GpuTrainer::Impl::layer_label(uint32_t l) const {
  const auto& layer = manifest.layers(static_cast<int>(l));
  return str_cat("layer ", l, " (", layer.op(), " '", layer.name(), "')");
}

std::string GpuTrainer::Impl::item_label(const TrainItem& item) const {
  switch (item.kind) {
    case TrainItemKind::kForward:
      return str_cat("forward ", layer_label(item.index));
    case TrainItemKind::kBackward:
      return str_cat("backward of ", layer_label(layout.backward[item.index].layer));
    case TrainItemKind::kSgd: {
      const std::span<const uint32_t> group = sgd_group_weights(layout, item.index);
      const auto name = [&](uint32_t w) {
        return manifest.tensors(static_cast<int>(layout.weights[w].tensor)).name();
      };
      if (group.size() == 1) return str_cat("SGD update of '", name(group.front()), "'");
      return str_cat("SGD update of ", group.size(), " tensors, '", name(group.front()), "' to '",
                     name(group.back()), "'");
    }
    default:
      return std::string(train_item_kind_name(item.kind));
  }
}

std::string GpuTrainer::Impl::item_op(const TrainItem& item) const {
  switch (item.kind) {
    case TrainItemKind::kForward:
      return manifest.layers(static_cast<int>(item.index)).op();
    case TrainItemKind::kBackward:
      return manifest.layers(static_cast<int>(layout.backward[item.index].layer)).op();
    default:
      return std::string(train_item_kind_name(item.kind));
  }
}

Status GpuTrainer::Impl::build_ops(std::span<const uint8_t> blob) {
  PS_ASSIGN_OR_RETURN(PlanLayout specs, build_layout(manifest));
  // The weights' host image (float ones converted), read by ops with static inputs and uploaded:
  // the params region of the paging buffer (trainer_impl.h).
  PS_ASSIGN_OR_RETURN(paged_state,
                      cuda::PinnedBuffer::allocate(std::max<uint64_t>(survivor_bytes(), 1)));
  std::memset(params_image(), 0, layout.params_bytes);
  for (const TrainWeight& w : layout.weights) {
    const auto& t = manifest.tensors(static_cast<int>(w.tensor));
    const uint64_t size = t.byte_size();
    if (t.weight_offset() > blob.size() || size > blob.size() - t.weight_offset() ||
        size != static_cast<uint64_t>(w.count) * dtype_size(w.dtype)) {
      return corrupt("GpuTrainer: weight tensor ", w.tensor, " '", t.name(), "' does not fit the ",
                     blob.size(), "-byte weight blob");
    }
    PS_TRY(convert_weight(w, blob.data() + t.weight_offset(), params_image() + w.offset));
  }

  const OpEnv env{*runtime, options.precision};
  const size_t layers = layout.forward.size();
  forward.resize(layers);
  backward.resize(layout.backward.size());
  std::vector<std::vector<TensorSpec>> inputs(layers);
  std::vector<size_t> workspaces;
  std::string failed;
  int failures = 0;
  Code failure_code = Code::kOk;
  auto note = [&](uint32_t l, const Status& s) -> Status {
    if (device_wide(s.code())) return s.with_context(layer_label(l));
    if (failure_code == Code::kOk) failure_code = s.code();
    failed += str_cat(failed.empty() ? "" : "; ", layer_label(l), ": ", s.message());
    ++failures;
    return Status::OK();
  };
  for (size_t l = 0; l < layers; ++l) {
    const auto& layer = manifest.layers(static_cast<int>(l));
    inputs[l] = specs.layers[l].input_specs;
    for (size_t i = 0; i < inputs[l].size(); ++i) {
      const int32_t w = layout.weight_index[static_cast<size_t>(layer.inputs(static_cast<int>(i)))];
      if (w < 0) continue;
      const TrainWeight& weight = layout.weights[static_cast<size_t>(w)];
      if (weight.is_float) inputs[l][i].dtype = DType::kFloat32;
      inputs[l][i].host_data = params_image() + weight.offset;
    }
    const OpSpec spec{layer.op(), layer.name(), layer.attributes(), inputs[l],
                      specs.layers[l].output_specs};
    Result<std::unique_ptr<GpuOp>> op =
        layer.op() == "BatchNormalization" ? build_batch_norm_training(spec, env)
        : gpu_supports(layer.op())         ? build_op(spec, env)
                                   : Result<std::unique_ptr<GpuOp>>(unsupported("no GPU operator"));
    if (!op.ok()) {
      PS_TRY(note(static_cast<uint32_t>(l), op.status()));
      continue;
    }
    forward[l] = std::move(op).value();
    workspaces.push_back(forward[l]->workspace_bytes());
  }
  for (size_t s = 0; s < layout.backward.size(); ++s) {
    const BackwardStep& b = layout.backward[s];
    const auto& layer = manifest.layers(static_cast<int>(b.layer));
    const OpSpec spec{layer.op(), layer.name(), layer.attributes(), inputs[b.layer],
                      specs.layers[b.layer].output_specs};
    Result<std::unique_ptr<GpuOp>> op =
        build_grad_op(GradSpec{spec, b.wanted, b.accumulate, b.partial}, env);
    if (!op.ok()) {
      PS_TRY(note(b.layer, op.status().with_context("backward")));
      continue;
    }
    backward[s] = std::move(op).value();
    workspaces.push_back(backward[s]->workspace_bytes());
  }
  if (failures > 0) {
    return make_error(failure_code, "GpuTrainer: ", failures, " layers of '", manifest.model_name(),
                      "' cannot be trained on the GPU: ", failed);
  }
  PS_ASSIGN_OR_RETURN(loss_op,
                      build_softmax_cross_entropy(Shape{layout.batch, layout.outputs_k}, env));
  workspaces.push_back(loss_op->workspace_bytes());
  workspace_bytes = plan_workspace_bytes(workspaces, kTrainAlign);
  PS_ASSIGN_OR_RETURN(kernels, TrainKernels::load(env));
  if (layout.token_tensors.empty()) {
    PS_ASSIGN_OR_RETURN(data, DeviceSyntheticData::load(env, options.data, layout.sample_size));
  } else {
    PS_ASSIGN_OR_RETURN(HostTokenData t,
                        HostTokenData::create(options.data, layout.token_inputs, layout.batch));
    tokens = std::make_unique<HostTokenData>(std::move(t));
  }
  for (size_t g = 0; g < layout.sgd_groups.size(); ++g) {
    std::vector<int64_t> counts;
    for (uint32_t w : sgd_group_weights(layout, g)) counts.push_back(layout.weights[w].count);
    PS_ASSIGN_OR_RETURN(train_kernels::SgdGroupParams p, plan_sgd_group(options.sgd, counts));
    sgd_groups.push_back(p);
  }
  return Status::OK();
}

Status GpuTrainer::Impl::take_range() {
  const uint64_t total = layout.block_bytes + workspace_bytes;
  Result<cuda::PoolRange> range =
      pool->allocate(total, kTrainAlign, str_cat("training '", manifest.model_name(), "'"));
  if (!range.ok()) {
    if (range.status().code() != Code::kOutOfMemory) return range.status();
    const cuda::DevicePoolStats stats = pool->stats();
    return out_of_memory(
        "GpuTrainer: '", manifest.model_name(), "' at batch ", layout.batch, " needs ", mib(total),
        " of device memory (weights ", mib(layout.params_bytes), ", gradients ",
        mib(layout.grads_bytes), ", momentum ", mib(layout.momentum_bytes), ", data patterns ",
        mib(layout.patterns_bytes), ", step arena ", mib(layout.arena_bytes), ", workspace ",
        mib(workspace_bytes), "); the pool has ", mib(stats.allocator.free_bytes),
        " free (largest block ", mib(stats.allocator.largest_free_block), ") of ",
        mib(stats.allocator.capacity));
  }
  block = *range;
  base = block.ptr;
  workspace = base + layout.block_bytes;
  return Status::OK();
}

void GpuTrainer::Impl::bind_addresses() {
  auto addresses = [&](const std::vector<uint64_t>& offsets) {
    std::vector<CUdeviceptr> out;
    out.reserve(offsets.size());
    for (uint64_t o : offsets) out.push_back(addr(o));
    return out;
  };
  fwd_in.clear();
  fwd_out.clear();
  bwd_in.clear();
  bwd_out.clear();
  for (const ForwardStep& f : layout.forward) {
    fwd_in.push_back(addresses(f.inputs));
    fwd_out.push_back(addresses(f.outputs));
  }
  for (const BackwardStep& b : layout.backward) {
    bwd_in.push_back(addresses(b.inputs));
    bwd_out.push_back(addresses(b.outputs));
  }
  loss_in = {addr(layout.logits), addr(layout.labels)};
  token_addrs = addresses(layout.tokens);
  loss_out = {addr(layout.dlogits), addr(layout.loss)};
}

Status GpuTrainer::Impl::allocate() {
  PS_TRY(take_range());
  bind_addresses();
  has_momentum.assign(layout.weights.size(), false);
  PS_ASSIGN_OR_RETURN(loss_host, cuda::PinnedBuffer::allocate(64));
  return Status::OK();
}

Status GpuTrainer::Impl::upload_params(const cuda::Stream& stream) {
  PS_TRY(cuda::copy_to_device_async(base, params_image(), layout.params_bytes, stream));
  return stream.synchronize();
}

Status GpuTrainer::Impl::enqueue_item(const TrainItem& item, const cuda::Stream& stream) const {
  switch (item.kind) {
    case TrainItemKind::kData:
      if (tokens) return tokens->make_batch(stream, data_position, token_addrs, addr(layout.labels));
      return data.make_batch(stream, addr(layout.patterns), data_position, layout.batch,
                             addr(layout.images), addr(layout.labels));
    case TrainItemKind::kForward: {
      const LaunchArgs args{stream, fwd_in[item.index], fwd_out[item.index], workspace,
                            workspace_bytes};
      const Status s = forward[item.index]->enqueue(args);
      return s.ok() ? s : s.with_context(layer_label(item.index));
    }
    case TrainItemKind::kLoss:
      return loss_op->enqueue(LaunchArgs{stream, loss_in, loss_out, workspace, workspace_bytes});
    case TrainItemKind::kBackward: {
      const LaunchArgs args{stream, bwd_in[item.index], bwd_out[item.index], workspace,
                            workspace_bytes};
      const Status s = backward[item.index]->enqueue(args);
      return s.ok() ? s
                    : s.with_context(
                          str_cat("backward of ", layer_label(layout.backward[item.index].layer)));
    }
    case TrainItemKind::kSgd: {
      const std::span<const uint32_t> group = sgd_group_weights(layout, item.index);
      train_kernels::SgdGroupParams p = sgd_groups[item.index];
      for (size_t k = 0; k < group.size(); ++k) {
        const uint32_t w = group[k];
        const TrainWeight& weight = layout.weights[w];
        p.param[k] = addr(weight.offset);
        p.grad[k] = addr(weight.grad);
        p.buf[k] = addr(weight.momentum);
        if (!has_momentum[w]) p.first_step_bits |= uint64_t{1} << k;
      }
      return kernels.sgd_group(stream, p);
    }
  }
  return internal_error("GpuTrainer: unknown item");
}

Status GpuTrainer::Impl::enqueue_items(uint32_t first, uint32_t count,
                                       const cuda::Stream& stream) const {
  PS_TRY(runtime->bind(stream, workspace, workspace_bytes));
  for (uint32_t i = first; i < first + count; ++i) PS_TRY(enqueue_item(layout.items[i], stream));
  return Status::OK();
}

void GpuTrainer::Impl::finish_step() {
  ++step;
  ++data_position;
  next_chunk = 0;
  next_item = 0;
  if (options.sgd.momentum != 0) {
    for (uint32_t w : layout.sgd) has_momentum[w] = true;
  }
}

Result<std::unique_ptr<GpuTrainer>> GpuTrainer::create(GpuRuntime& runtime, cuda::DevicePool& pool,
                                                       const Manifest& manifest,
                                                       std::span<const uint8_t> weights,
                                                       const GpuTrainerOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->runtime = &runtime;
  impl->pool = &pool;
  impl->manifest = manifest;
  impl->options = options;
  const int64_t one_tensor[] = {0};
  PS_TRY(plan_sgd_group(options.sgd, one_tensor).status().with_context("GpuTrainer"));
  TrainLayoutOptions lo;
  lo.momentum = options.sgd.momentum != 0;
  lo.patterns = synthetic_pattern_count(options.data);  // images only (tokens: sample size 0)
  lo.classes = options.data.classes;
  PS_ASSIGN_OR_RETURN(impl->layout, plan_training(manifest, lo, &gpu_has_backward));
  PS_TRY(impl->build_ops(weights));
  PS_TRY(impl->allocate());
  const cuda::Stream& stream = runtime.plan_stream();
  PS_TRY(impl->upload_params(stream));
  if (!impl->tokens) PS_TRY(impl->data.make_patterns(stream, impl->addr(impl->layout.patterns)));
  // Warm up (lazily loaded kernels, library internals), then profile the items and cut the
  // chunks; both run real steps, so the weights and running statistics are uploaded again and
  // the momentum buffers are marked empty (their first step overwrites them).
  PS_TRY(impl->enqueue_items(0, static_cast<uint32_t>(impl->layout.items.size()), stream)
             .with_context("GpuTrainer warm-up step"));
  PS_TRY(stream.synchronize().with_context("GpuTrainer warm-up step"));
  PS_TRY(impl->profile(stream));
  PS_TRY(impl->upload_params(stream));
  return std::unique_ptr<GpuTrainer>(new GpuTrainer(std::move(impl)));
}

GpuTrainer::GpuTrainer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GpuTrainer::~GpuTrainer() = default;

Result<bool> GpuTrainer::enqueue_next_chunk(const cuda::Stream& stream,
                                            const std::function<bool()>& interrupted) {
  Impl& t = *impl_;
  if (t.paged) return invalid_argument("GpuTrainer: the state is paged out; page_in() first");
  if (t.next_chunk >= t.chunks.size()) {
    return invalid_argument("GpuTrainer: the step's last chunk is enqueued; call complete_step()");
  }
  const TrainChunk& c = t.chunks[t.next_chunk];
  const uint32_t end = c.first + c.count;
  if (t.next_item < c.first) t.next_item = c.first;
  PS_TRY(t.runtime->bind(stream, t.workspace, t.workspace_bytes));
  // At least one item, so that every call makes progress; then up to the chunk's end unless
  // interrupted between two items.
  do {
    PS_TRY(t.enqueue_item(t.layout.items[t.next_item], stream));
    ++t.next_item;
  } while (t.next_item < end && !(interrupted && interrupted()));
  if (t.next_item < end) return false;  // the rest of this chunk comes with the next call
  ++t.next_chunk;
  if (t.next_chunk < t.chunks.size()) return false;
  PS_TRY(cuda::copy_to_host_async(t.loss_host.data(), t.addr(t.layout.loss), 8, stream));
  return true;
}

double GpuTrainer::complete_step() {
  Impl& t = *impl_;
  double loss;
  std::memcpy(&loss, t.loss_host.data(), 8);
  t.finish_step();
  return loss;
}

Result<double> GpuTrainer::step(const cuda::Stream& stream) {
  for (;;) {
    PS_ASSIGN_OR_RETURN(const bool last, enqueue_next_chunk(stream));
    if (last) break;
  }
  PS_TRY(stream.synchronize());
  return complete_step();
}

bool GpuTrainer::mid_step() const { return impl_->next_item > 0; }
size_t GpuTrainer::chunks_per_step() const { return impl_->chunks.size(); }
std::span<const double> GpuTrainer::chunk_ms() const { return impl_->chunk_ms; }

std::vector<TrainItemTime> GpuTrainer::item_profile() const {
  const Impl& t = *impl_;
  std::vector<TrainItemTime> out;
  out.reserve(t.item_ms.size());
  for (size_t i = 0; i < t.item_ms.size() && i < t.layout.items.size(); ++i) {
    const TrainItem& item = t.layout.items[i];
    out.push_back({std::string(train_item_kind_name(item.kind)), t.item_op(item),
                   t.item_label(item), t.item_ms[i]});
  }
  return out;
}
uint64_t GpuTrainer::step_count() const { return impl_->step; }
uint64_t GpuTrainer::data_position() const { return impl_->data_position; }
uint64_t GpuTrainer::device_bytes() const { return impl_->paged ? 0 : impl_->block.size(); }
const pipeswitch::psm::Manifest& GpuTrainer::manifest() const { return impl_->manifest; }

}  // namespace ps::models::gpu
