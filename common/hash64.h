// XXH64 (the published xxHash 64-bit algorithm, written here from its specification; no
// library): the checksum of the .psm format and of INFER replies (net/text_reply.h). It runs at memory speed, a word at a time in four
// independent lanes (several GB/s on one core: test_package prints the measured MB/s), so
// verifying a ~450 MB weight blob costs a few tens of milliseconds, far less than reading it.
// It detects corruption (every single-bit flip, truncation); it is not a cryptographic hash.
//
// The format and the protocol depend on these exact values: tests/models/package_test.cc checks
// them against known answers of the reference implementation. Changing the function is a new
// major version of both.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace ps {

// One-shot XXH64 of `bytes` with `seed`.
uint64_t hash64(std::span<const uint8_t> bytes, uint64_t seed = 0);

// Incremental XXH64: update() any number of times with chunks of any size, then digest().
// The result equals hash64() of the concatenated chunks. Copyable; holds no resources.
class Hash64 {
 public:
  explicit Hash64(uint64_t seed = 0);

  void update(std::span<const uint8_t> bytes);
  // The hash of everything given so far; does not change the state (update() may continue).
  uint64_t digest() const;

 private:
  uint64_t seed_;
  uint64_t lanes_[4];
  uint64_t total_bytes_ = 0;
  uint8_t pending_[32];  // a partial 32-byte stripe
  size_t pending_bytes_ = 0;
};

}  // namespace ps
