// GpuTrainer's state in and out: the float32 weights, momentum buffers and gradients as the CPU
// trainer keeps them (float64 by manifest tensor index; float32 -> float64 -> float32 is exact,
// so an export/import round trip continues the identical trajectory). Synchronous, on the
// runtime's plan stream.
#include <cstring>

#include "cuda/copy.h"
#include "cuda/stream.h"
#include "models/gpu/trainer_impl.h"

namespace ps::models::gpu {
namespace {

using cpu::Tensor;

// Copies `count` float32 at `src` into a new float64 tensor of `shape` (blocking).
Result<Tensor> download(CUdeviceptr src, const Shape& shape, const cuda::Stream& stream) {
  const int64_t count = element_count(shape);
  std::vector<float> host(static_cast<size_t>(count));
  if (count > 0) {
    PS_TRY(cuda::copy_to_host_async(host.data(), src, host.size() * 4, stream));
    PS_TRY(stream.synchronize());
  }
  PS_ASSIGN_OR_RETURN(Tensor t, Tensor::allocate(DType::kFloat64, shape));
  double* out = t.mutable_data<double>();
  for (int64_t i = 0; i < count; ++i) out[i] = static_cast<double>(host[static_cast<size_t>(i)]);
  return t;
}

Status upload(CUdeviceptr dst, const Tensor& t, const cuda::Stream& stream) {
  std::vector<float> host(static_cast<size_t>(t.numel()));
  const double* in = t.data<double>();
  for (size_t i = 0; i < host.size(); ++i) host[i] = static_cast<float>(in[i]);
  if (host.empty()) return Status::OK();
  PS_TRY(cuda::copy_to_device_async(dst, host.data(), host.size() * 4, stream));
  return stream.synchronize();  // `host` goes out of scope
}

// The same from the paged-out host copy: float32 at `src`.
Result<Tensor> from_host(const uint8_t* src, const Shape& shape) {
  const int64_t count = element_count(shape);
  PS_ASSIGN_OR_RETURN(Tensor t, Tensor::allocate(DType::kFloat64, shape));
  double* out = t.mutable_data<double>();
  for (int64_t i = 0; i < count; ++i) {
    float v;
    std::memcpy(&v, src + i * 4, 4);
    out[i] = static_cast<double>(v);
  }
  return t;
}

}  // namespace

Result<cpu::TrainingState> GpuTrainer::export_state() const {
  const Impl& t = *impl_;
  if (mid_step()) return invalid_argument("GpuTrainer::export_state: a step is in progress");
  const cuda::Stream& stream = t.runtime->plan_stream();
  // A block offset's value: on the device, or in the paged-out copy (the params region, then
  // the regions from momentum_offset on: trainer_paging.cc).
  const auto* paged = static_cast<const uint8_t*>(t.paged_state.data());
  auto value = [&](uint64_t offset, const Shape& shape) -> Result<Tensor> {
    if (!t.paged) return download(t.addr(offset), shape, stream);
    const uint64_t at = offset < t.layout.params_bytes
                            ? offset
                            : t.layout.params_bytes + (offset - t.layout.momentum_offset);
    return from_host(paged + at, shape);
  };
  cpu::TrainingState state;
  for (size_t w = 0; w < t.layout.weights.size(); ++w) {
    const TrainWeight& weight = t.layout.weights[w];
    if (!weight.is_float) continue;
    PS_ASSIGN_OR_RETURN(Tensor v, value(weight.offset, weight.shape));
    state.weights.emplace(weight.tensor, std::move(v));
    if (weight.momentum != kNoBuffer && t.has_momentum[w]) {
      PS_ASSIGN_OR_RETURN(Tensor m, value(weight.momentum, weight.shape));
      state.momentum.emplace(weight.tensor, std::move(m));
    }
  }
  state.step = t.step;
  state.data_position = t.data_position;
  return state;
}

Status GpuTrainer::import_state(const cpu::TrainingState& state) {
  Impl& t = *impl_;
  if (mid_step()) return invalid_argument("GpuTrainer::import_state: a step is in progress");
  if (t.paged) return invalid_argument("GpuTrainer::import_state: the state is paged out");
  const auto& tensors = t.manifest.tensors();
  auto check = [&](uint32_t index, const Tensor& v, const char* what,
                   const TrainWeight** out) -> Status {
    const int32_t w = index < t.layout.weight_index.size() ? t.layout.weight_index[index] : -1;
    if (w < 0 || !t.layout.weights[static_cast<size_t>(w)].is_float) {
      return invalid_argument("GpuTrainer::import_state: ", what, " of tensor ", index,
                              ", which is not a float weight of '", t.manifest.model_name(), "'");
    }
    const TrainWeight& weight = t.layout.weights[static_cast<size_t>(w)];
    if (v.dtype() != DType::kFloat64 || v.shape() != weight.shape) {
      return invalid_argument("GpuTrainer::import_state: ", what, " of '",
                              tensors[static_cast<int>(index)].name(), "' is ", v.description(),
                              ", the model has float64", shape_string(weight.shape));
    }
    *out = &weight;
    return Status::OK();
  };
  // Check everything before changing anything.
  for (const auto& [index, v] : state.weights) {
    const TrainWeight* w = nullptr;
    PS_TRY(check(index, v, "weight", &w));
  }
  for (const TrainWeight& w : t.layout.weights) {
    if (w.is_float && state.weights.count(w.tensor) == 0) {
      return invalid_argument("GpuTrainer::import_state: weight '",
                              tensors[static_cast<int>(w.tensor)].name(), "' is missing");
    }
  }
  for (const auto& [index, v] : state.momentum) {
    const TrainWeight* w = nullptr;
    PS_TRY(check(index, v, "momentum buffer", &w));
    if (w->momentum == kNoBuffer) {
      return invalid_argument("GpuTrainer::import_state: a momentum buffer for '",
                              tensors[static_cast<int>(index)].name(),
                              "', which has none here (not trained, or momentum 0)");
    }
  }
  const cuda::Stream& stream = t.runtime->plan_stream();
  for (const auto& [index, v] : state.weights) {
    const TrainWeight& w = t.layout.weights[static_cast<size_t>(t.layout.weight_index[index])];
    PS_TRY(upload(t.addr(w.offset), v, stream));
  }
  t.has_momentum.assign(t.layout.weights.size(), false);
  for (const auto& [index, v] : state.momentum) {
    const auto w = static_cast<size_t>(t.layout.weight_index[index]);
    PS_TRY(upload(t.addr(t.layout.weights[w].momentum), v, stream));
    t.has_momentum[w] = true;
  }
  t.step = state.step;
  t.data_position = state.data_position;
  return Status::OK();
}

Result<std::map<uint32_t, cpu::Tensor>> GpuTrainer::export_gradients() const {
  const Impl& t = *impl_;
  if (mid_step()) return invalid_argument("GpuTrainer::export_gradients: a step is in progress");
  if (t.paged) return invalid_argument("GpuTrainer::export_gradients: the state is paged out");
  const cuda::Stream& stream = t.runtime->plan_stream();
  std::map<uint32_t, Tensor> grads;
  for (uint32_t w : t.layout.sgd) {
    const TrainWeight& weight = t.layout.weights[w];
    PS_ASSIGN_OR_RETURN(Tensor g, download(t.addr(weight.grad), weight.shape, stream));
    grads.emplace(weight.tensor, std::move(g));
  }
  return grads;
}

}  // namespace ps::models::gpu
