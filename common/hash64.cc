#include "common/hash64.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace ps {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the .psm checksum reads little-endian words; add byte swaps for this host");

constexpr uint64_t kPrime1 = 0x9E3779B185EBCA87ULL;
constexpr uint64_t kPrime2 = 0xC2B2AE3D27D4EB4FULL;
constexpr uint64_t kPrime3 = 0x165667B19E3779F9ULL;
constexpr uint64_t kPrime4 = 0x85EBCA77C2B2AE63ULL;
constexpr uint64_t kPrime5 = 0x27D4EB2F165667C5ULL;
constexpr size_t kStripe = 32;

inline uint64_t load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline uint32_t load32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

inline uint64_t round(uint64_t acc, uint64_t input) {
  acc += input * kPrime2;
  acc = std::rotl(acc, 31);
  return acc * kPrime1;
}

inline uint64_t merge_round(uint64_t acc, uint64_t lane) {
  acc ^= round(0, lane);
  return acc * kPrime1 + kPrime4;
}

// Consumes whole stripes of `p[0, n)`; returns the number of bytes consumed.
inline size_t consume_stripes(uint64_t lanes[4], const uint8_t* p, size_t n) {
  uint64_t v1 = lanes[0], v2 = lanes[1], v3 = lanes[2], v4 = lanes[3];
  const size_t whole = n - n % kStripe;
  for (size_t i = 0; i < whole; i += kStripe) {
    v1 = round(v1, load64(p + i));
    v2 = round(v2, load64(p + i + 8));
    v3 = round(v3, load64(p + i + 16));
    v4 = round(v4, load64(p + i + 24));
  }
  lanes[0] = v1, lanes[1] = v2, lanes[2] = v3, lanes[3] = v4;
  return whole;
}

// The final step: lanes (if a stripe was ever completed), length, the tail (< 32 bytes).
uint64_t finish(const uint64_t lanes[4], uint64_t seed, uint64_t total, const uint8_t* tail,
                size_t tail_bytes) {
  uint64_t h;
  if (total >= kStripe) {
    h = std::rotl(lanes[0], 1) + std::rotl(lanes[1], 7) + std::rotl(lanes[2], 12) +
        std::rotl(lanes[3], 18);
    for (int i = 0; i < 4; ++i) h = merge_round(h, lanes[i]);
  } else {
    h = seed + kPrime5;
  }
  h += total;
  size_t i = 0;
  for (; i + 8 <= tail_bytes; i += 8) {
    h ^= round(0, load64(tail + i));
    h = std::rotl(h, 27) * kPrime1 + kPrime4;
  }
  if (i + 4 <= tail_bytes) {
    h ^= static_cast<uint64_t>(load32(tail + i)) * kPrime1;
    h = std::rotl(h, 23) * kPrime2 + kPrime3;
    i += 4;
  }
  for (; i < tail_bytes; ++i) {
    h ^= static_cast<uint64_t>(tail[i]) * kPrime5;
    h = std::rotl(h, 11) * kPrime1;
  }
  h ^= h >> 33;
  h *= kPrime2;
  h ^= h >> 29;
  h *= kPrime3;
  h ^= h >> 32;
  return h;
}

}  // namespace

Hash64::Hash64(uint64_t seed)
    : seed_(seed), lanes_{seed + kPrime1 + kPrime2, seed + kPrime2, seed, seed - kPrime1} {}

void Hash64::update(std::span<const uint8_t> bytes) {
  const uint8_t* p = bytes.data();
  size_t n = bytes.size();
  if (n == 0) return;  // also keeps a null data() away from memcpy
  total_bytes_ += n;
  if (pending_bytes_ > 0) {
    const size_t take = std::min(kStripe - pending_bytes_, n);
    std::memcpy(pending_ + pending_bytes_, p, take);
    pending_bytes_ += take;
    p += take;
    n -= take;
    if (pending_bytes_ < kStripe) return;
    consume_stripes(lanes_, pending_, kStripe);
    pending_bytes_ = 0;
  }
  const size_t used = consume_stripes(lanes_, p, n);
  pending_bytes_ = n - used;
  if (pending_bytes_ > 0) std::memcpy(pending_, p + used, pending_bytes_);
}

uint64_t Hash64::digest() const {
  return finish(lanes_, seed_, total_bytes_, pending_, pending_bytes_);
}

uint64_t hash64(std::span<const uint8_t> bytes, uint64_t seed) {
  uint64_t lanes[4] = {seed + kPrime1 + kPrime2, seed + kPrime2, seed, seed - kPrime1};
  const size_t used =
      bytes.size() >= kStripe ? consume_stripes(lanes, bytes.data(), bytes.size()) : 0;
  return finish(lanes, seed, bytes.size(), bytes.data() + used, bytes.size() - used);
}

}  // namespace ps
