// The GPU trainer's batches: the CPU trainer's synthetic dataset (models/cpu/synthetic_data.h)
// generated on the device by cuda/kernels/synthetic_data.cu, draw for draw (SplitMix64 is
// counter-based, so every element computes its own draws). The same labels; images are the CPU
// images rounded to float32, except that CUDA's double log/cos may differ from glibc's by an ulp
// or two, so an element can rarely be one float32 ulp away (docs/training.md, "Data").
// Generating ResNet152's batch of 64 on the host costs ~9.6M Box-Muller draws a step; on the
// device it is one kernel of a fraction of a millisecond and no host work at all.
#pragma once

#include <cuda.h>

#include <cstdint>

#include "common/status.h"
#include "cuda/kernels/synthetic_data_params.h"
#include "cuda/module.h"
#include "models/cpu/synthetic_data.h"
#include "models/gpu/op.h"

namespace ps::cuda {
class Stream;
}

namespace ps::models::gpu {

// models/cpu/synthetic_data.cc's mix(a, b): the first SplitMix64 draw of seed a ^ (b * K).
uint64_t synthetic_mix(uint64_t a, uint64_t b);
// The kernels' parameters (pure; the emulation tests use them): the patterns of `options`
// with `sample_size` elements each (classes of them, or 1 with single_image), and batch
// `index` of `batch` samples.
data_kernels::SyntheticParams synthetic_pattern_params(const cpu::SyntheticDataOptions& options,
                                                       int64_t sample_size);
data_kernels::SyntheticParams synthetic_batch_params(const cpu::SyntheticDataOptions& options,
                                                     int64_t sample_size, uint64_t index,
                                                     int64_t batch);
// Patterns kept on the device: options.classes, or 1 with single_image.
int64_t synthetic_pattern_count(const cpu::SyntheticDataOptions& options);

class DeviceSyntheticData {
 public:
  // Looks the kernels up. Errors: classes < 1, negative noise, sample_size < 1.
  static Result<DeviceSyntheticData> load(const OpEnv& env,
                                          const cpu::SyntheticDataOptions& options,
                                          int64_t sample_size);
  DeviceSyntheticData() = default;

  // Bytes of the patterns (float64 [pattern_count, sample_size]).
  uint64_t pattern_bytes() const;
  // Enqueues the patterns' generation into `patterns` (pattern_bytes(), 8-byte aligned). Once.
  Status make_patterns(const cuda::Stream& stream, CUdeviceptr patterns) const;
  // Enqueues batch `index` of `batch` samples from the patterns: images float32
  // [batch, sample_size], labels int64 [batch]. Allocates nothing.
  Status make_batch(const cuda::Stream& stream, CUdeviceptr patterns, uint64_t index, int64_t batch,
                    CUdeviceptr images, CUdeviceptr labels) const;

 private:
  cpu::SyntheticDataOptions options_;
  int64_t sample_size_ = 0;
  cuda::Kernel patterns_, batch_;
};

}  // namespace ps::models::gpu
