// The random numbers of the synthetic datasets (synthetic_data.h, synthetic_tokens.h):
// SplitMix64 and Box-Muller written out, so that a batch depends only on its seed and index and
// not on the C++ library. The GPU trainer's data kernels (cuda/kernels/synthetic_data.cu) draw
// the same numbers in the same order.
#pragma once

#include <cmath>
#include <cstdint>

namespace ps::models::cpu {

// SplitMix64: a small generator whose output depends only on its seed.
class SplitMix {
 public:
  explicit SplitMix(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform in (0, 1].
  double uniform() { return (static_cast<double>(next() >> 11) + 1.0) * 0x1.0p-53; }
  // N(0, 1) by Box-Muller (one value per call; the second is dropped for simplicity).
  double normal() {
    const double u1 = uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }

 private:
  uint64_t state_;
};

// A seed for stream `b` of the dataset seeded `a`.
inline uint64_t mix_seed(uint64_t a, uint64_t b) {
  return SplitMix(a ^ (b * 0xD6E8FEB86659FD93ULL)).next();
}

}  // namespace ps::models::cpu
