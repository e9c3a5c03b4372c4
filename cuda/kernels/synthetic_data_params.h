// Parameter block of the synthetic data kernels (cuda/kernels/synthetic_data.cu), shared by
// nvcc and the launcher (models/gpu/trainer_data.cc). Passed BY VALUE (kernel_params.h's
// convention).
#pragma once

#include <cstdint>

namespace ps::data_kernels {

// One SplitMix64 stream: draw k (0-based) is mix64(state + (k + 1) * golden), so any draw is a
// pure function of the stream's initial state and k (models/cpu/synthetic_data.cc's Rng).
struct SyntheticParams {
  uint64_t state = 0;        // the stream's state before its first draw
  int64_t samples = 0;       // batch: samples; patterns: patterns
  int64_t sample_size = 0;   // elements per sample
  int64_t classes = 1;       // labels in [0, classes)
  double noise = 0;          // stddev of the per-element noise
  int32_t single_image = 0;  // 1: every sample is pattern 0, label 0 (no draws)
  int32_t pad = 0;
};

}  // namespace ps::data_kernels
