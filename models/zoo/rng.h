// Seeded, reproducible random numbers for the zoo's weights.
//
// Every tensor draws from its own stream, seeded from the model seed and the tensor's name, so a
// tensor's values depend only on (seed, name): adding a layer elsewhere does not change them.
// The generator is xoshiro256** and normals come from a 256-layer ziggurat, fast enough to fill
// BERT-base's 108M floats in well under a second on one core.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace ps::zoo {

// The seed of the stream for the tensor `name` of a model built with `model_seed`.
uint64_t stream_seed(uint64_t model_seed, std::string_view name);

// xoshiro256** (Blackman and Vigna), seeded through SplitMix64. Not for cryptography.
class Rng {
 public:
  explicit Rng(uint64_t seed);

  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, 1), 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  // Standard normal N(0, 1).
  double normal();

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  double normal_tail(double sign);
  uint64_t s_[4];
};

// Fill `out` from the distributions the initialisers need.
void fill_normal(std::span<float> out, Rng& rng, double mean, double stddev);
// N(0, stddev) redrawn until it lies within ±bound_stddevs standard deviations.
void fill_truncated_normal(std::span<float> out, Rng& rng, double stddev, double bound_stddevs);
// U[lo, hi).
void fill_uniform(std::span<float> out, Rng& rng, double lo, double hi);

}  // namespace ps::zoo
