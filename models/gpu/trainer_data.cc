#include "models/gpu/trainer_data.h"

#include "cuda/stream.h"
#include "models/gpu/kernel_op_util.h"

namespace ps::models::gpu {

uint64_t synthetic_mix(uint64_t a, uint64_t b) {
  uint64_t z = (a ^ (b * 0xD6E8FEB86659FD93ULL)) + 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

int64_t synthetic_pattern_count(const cpu::SyntheticDataOptions& options) {
  return options.single_image ? 1 : options.classes;
}

data_kernels::SyntheticParams synthetic_pattern_params(const cpu::SyntheticDataOptions& options,
                                                       int64_t sample_size) {
  data_kernels::SyntheticParams p;
  p.state = options.seed;
  p.samples = synthetic_pattern_count(options);
  p.sample_size = sample_size;
  p.classes = options.classes;
  p.noise = options.noise;
  p.single_image = options.single_image ? 1 : 0;
  return p;
}

data_kernels::SyntheticParams synthetic_batch_params(const cpu::SyntheticDataOptions& options,
                                                     int64_t sample_size, uint64_t index,
                                                     int64_t batch) {
  data_kernels::SyntheticParams p = synthetic_pattern_params(options, sample_size);
  p.state = synthetic_mix(options.seed, index + 1);
  p.samples = batch;
  return p;
}

Result<DeviceSyntheticData> DeviceSyntheticData::load(const OpEnv& env,
                                                      const cpu::SyntheticDataOptions& options,
                                                      int64_t sample_size) {
  if (options.classes < 1 || !(options.noise >= 0) || sample_size < 1) {
    return invalid_argument("synthetic data: classes ", options.classes, ", noise ", options.noise,
                            ", sample size ", sample_size, " must be >= 1, >= 0 and >= 1");
  }
  DeviceSyntheticData d;
  d.options_ = options;
  d.sample_size_ = sample_size;
  PS_ASSIGN_OR_RETURN(d.patterns_, find_kernel(env, "ps_synthetic_patterns_f64"));
  PS_ASSIGN_OR_RETURN(d.batch_, find_kernel(env, "ps_synthetic_batch_f32"));
  return d;
}

uint64_t DeviceSyntheticData::pattern_bytes() const {
  return static_cast<uint64_t>(synthetic_pattern_count(options_) * sample_size_) * 8;
}

Status DeviceSyntheticData::make_patterns(const cuda::Stream& stream, CUdeviceptr patterns) const {
  const data_kernels::SyntheticParams p = synthetic_pattern_params(options_, sample_size_);
  return patterns_.launch(stream, grid_for(p.samples * p.sample_size), kBlock, 0, patterns, p);
}

Status DeviceSyntheticData::make_batch(const cuda::Stream& stream, CUdeviceptr patterns,
                                       uint64_t index, int64_t batch, CUdeviceptr images,
                                       CUdeviceptr labels) const {
  const data_kernels::SyntheticParams p =
      synthetic_batch_params(options_, sample_size_, index, batch);
  return batch_.launch(stream, grid_for(batch * sample_size_), kBlock, 0, patterns, images, labels,
                       p);
}

}  // namespace ps::models::gpu
