#include "models/zoo/rng.h"

#include <array>
#include <cmath>

namespace ps::zoo {
namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Marsaglia and Tsang's ziggurat with 256 layers of equal area kVolume under the density
// f(x) = exp(-x^2/2) (unnormalised); the base layer includes the tail beyond kR.
constexpr int kLayers = 256;
constexpr double kR = 3.6541528853610088;
constexpr double kVolume = 4.92867323399e-3;

double density(double x) { return std::exp(-0.5 * x * x); }

struct Ziggurat {
  // x[i]: right edge of layer i (x[0] is the base layer's pseudo-width kVolume / f(kR),
  // x[1] = kR, decreasing to x[256] = 0); f[i] = density(x[i]).
  std::array<double, kLayers + 1> x;
  std::array<double, kLayers + 1> f;

  Ziggurat() {
    x[0] = kVolume / density(kR);
    x[1] = kR;
    for (int i = 1; i < kLayers - 1; ++i) x[i + 1] = std::sqrt(-2.0 * std::log(kVolume / x[i] + density(x[i])));
    x[kLayers] = 0.0;
    for (int i = 0; i <= kLayers; ++i) f[i] = density(x[i]);
  }
};

const Ziggurat& ziggurat() {
  static const Ziggurat table;
  return table;
}

}  // namespace

uint64_t stream_seed(uint64_t model_seed, std::string_view name) {
  // FNV-1a over the name, then mixed with the seed so that nearby seeds give unrelated streams.
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : name) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  uint64_t state = model_seed ^ splitmix64(h);
  return splitmix64(state);
}

Rng::Rng(uint64_t seed) {
  uint64_t state = seed;
  for (uint64_t& word : s_) word = splitmix64(state);
}

double Rng::normal() {
  const Ziggurat& z = ziggurat();
  for (;;) {
    const uint64_t bits = next();
    const int layer = static_cast<int>(bits & 0xff);
    const double sign = (bits & 0x100) ? -1.0 : 1.0;
    const double x = static_cast<double>(bits >> 11) * 0x1.0p-53 * z.x[layer];
    if (x < z.x[layer + 1]) return sign * x;  // inside the layer's rectangle core: ~99% of draws
    if (layer == 0) return normal_tail(sign);
    // In the wedge between the rectangle and the curve: accept under the density.
    const double y = z.f[layer] + uniform() * (z.f[layer + 1] - z.f[layer]);
    if (y < density(x)) return sign * x;
  }
}

double Rng::normal_tail(double sign) {
  // Marsaglia's tail method for x > kR.
  for (;;) {
    const double a = -std::log(1.0 - uniform()) / kR;
    const double b = -std::log(1.0 - uniform());
    if (b + b >= a * a) return sign * (kR + a);
  }
}

void fill_normal(std::span<float> out, Rng& rng, double mean, double stddev) {
  for (float& v : out) v = static_cast<float>(mean + stddev * rng.normal());
}

void fill_truncated_normal(std::span<float> out, Rng& rng, double stddev, double bound_stddevs) {
  for (float& v : out) {
    double z = rng.normal();
    while (std::fabs(z) > bound_stddevs) z = rng.normal();
    v = static_cast<float>(stddev * z);
  }
}

void fill_uniform(std::span<float> out, Rng& rng, double lo, double hi) {
  for (float& v : out) v = static_cast<float>(lo + (hi - lo) * rng.uniform());
}

}  // namespace ps::zoo
