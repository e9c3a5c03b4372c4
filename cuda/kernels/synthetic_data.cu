// The synthetic dataset of models/cpu/synthetic_data.h generated on the device, draw for draw:
// SplitMix64 is counter-based (draw k of a stream is a function of its seed and k alone), so
// each element computes its own draws. A batch's stream: sample n takes 1 + 2 * size draws
// (its label, then two uniforms per element for Box-Muller), so element i of sample n uses
// draws n * (1 + 2 size) + 1 + 2i and + 2; the label is draw n * (1 + 2 size). A pattern's
// stream (one per class): element i uses draws 2i and 2i + 1.
// The arithmetic is the CPU's, in double, in the same order; multiplications and additions are
// spelled __dmul_rn / __dadd_rn so nvcc never contracts them into an FMA the CPU does not do.
// log and cos are CUDA's (within 1-2 ulp of glibc's), so a float32 image element can differ
// from the CPU's by one float ulp, rarely (a double that lands within a few double ulps of a
// float rounding boundary). Launcher: models/gpu/trainer_data.cc.
#include <cstdint>

#include "cuda/kernels/synthetic_data_params.h"

namespace synthetic {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ULL;

__device__ inline uint64_t draw(uint64_t state, uint64_t k) {
  uint64_t z = state + (k + 1) * kGolden;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
// Uniform in (0, 1] (exact: a 53-bit integer plus one, times a power of two).
__device__ inline double uniform(uint64_t state, uint64_t k) {
  return __dmul_rn(static_cast<double>(draw(state, k) >> 11) + 1.0, 0x1.0p-53);
}
// Box-Muller from draws k and k + 1: sqrt(-2 log u1) * cos(2 pi u2).
__device__ inline double normal(uint64_t state, uint64_t k) {
  const double u1 = uniform(state, k), u2 = uniform(state, k + 1);
  constexpr double kTwoPi = 2.0 * 3.14159265358979323846;
  return __dmul_rn(sqrt(__dmul_rn(-2.0, log(u1))), cos(__dmul_rn(kTwoPi, u2)));
}

}  // namespace synthetic

// patterns[c * size + i] = normal i of pattern c's stream, whose state is
// mix(seed, 0x5A17E000 + c) = draw 0 of the stream seeded seed ^ ((0x5A17E000 + c) * K).
// p.state = the dataset's seed, p.samples = the number of patterns.
extern "C" __global__ void ps_synthetic_patterns_f64(double* patterns,
                                                     ps::data_kernels::SyntheticParams p) {
  const uint64_t size = static_cast<uint64_t>(p.sample_size);
  const uint64_t total = static_cast<uint64_t>(p.samples) * size;
  const uint64_t stride = static_cast<uint64_t>(gridDim.x) * blockDim.x;
  for (uint64_t i = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const uint64_t c = i / size, e = i - c * size;
    const uint64_t state =
        synthetic::draw(p.state ^ ((0x5A17E000ULL + c) * 0xD6E8FEB86659FD93ULL), 0);
    patterns[i] = synthetic::normal(state, 2 * e);
  }
}

// One batch: images float32 [samples, size] and labels int64 [samples] from the patterns
// (float64 [classes or 1, size]): image = float(pattern[label] + noise * normal).
extern "C" __global__ void ps_synthetic_batch_f32(const double* patterns, float* images,
                                                  int64_t* labels,
                                                  ps::data_kernels::SyntheticParams p) {
  const uint64_t size = static_cast<uint64_t>(p.sample_size);
  const uint64_t total = static_cast<uint64_t>(p.samples) * size;
  const uint64_t per_sample = 1 + 2 * size;
  const uint64_t stride = static_cast<uint64_t>(gridDim.x) * blockDim.x;
  for (uint64_t i = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const uint64_t n = i / size, e = i - n * size;
    if (p.single_image != 0) {
      images[i] = static_cast<float>(patterns[e]);
      if (e == 0) labels[n] = 0;
      continue;
    }
    const uint64_t base = n * per_sample;
    const uint64_t label = synthetic::draw(p.state, base) % static_cast<uint64_t>(p.classes);
    const double noise = __dmul_rn(p.noise, synthetic::normal(p.state, base + 1 + 2 * e));
    images[i] = static_cast<float>(__dadd_rn(patterns[label * size + e], noise));
    if (e == 0) labels[n] = static_cast<int64_t>(label);
  }
}
