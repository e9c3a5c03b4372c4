// Shared by the fuzz targets: how a target splits its input into chunks, so that every target
// also checks split-invariance (the parsers' contract: the items do not depend on how the
// stream is cut across reads).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace ps::fuzz {

// Cuts `data` into chunks whose lengths come from the input itself (first byte = seed), so the
// fuzzer explores split points. Never returns empty chunks; the concatenation is `data`.
inline std::vector<std::string_view> chunks_of(std::string_view data) {
  std::vector<std::string_view> out;
  if (data.empty()) return out;
  uint32_t state = static_cast<unsigned char>(data[0]) * 2654435761u + 1;
  size_t pos = 0;
  while (pos < data.size()) {
    state = state * 1103515245u + 12345u;
    const size_t len = 1 + (state >> 16) % 17;
    out.push_back(data.substr(pos, len));
    pos += len;
  }
  return out;
}

}  // namespace ps::fuzz

// Aborts (a finding for libFuzzer, a failure for the regression test) when `cond` is false.
#define PS_FUZZ_ASSERT(cond)                                                         \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      __builtin_fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #cond, __FILE__, \
                        __LINE__);                                                   \
      __builtin_abort();                                                             \
    }                                                                                \
  } while (0)
