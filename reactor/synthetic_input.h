// The deterministic input of an INFER without payload (and of a binary request without data):
// the same bytes for the same (model name, input specs, batch) on every run, machine and
// backend, so a client can compare checksums across servers and tests can recompute it.
//
// Definition. For input i (in ModelInfo order) a splitmix64 stream is seeded with
//   fnv1a64(model name) ^ (batch * 0x9e3779b97f4a7c15) ^ ((i + 1) * 0xbf58476d1ce4e5b9)
// and each element takes the next 64-bit value x:
//   float32/float64/float16/bfloat16: (x >> 40) / 2^24 * 2 - 1, a uniform value in [-1, 1)
//       exact in float32, converted to the element type;
//   int64/int32/int8/uint8: x % value_bound when the spec has one (token ids inside the
//       vocabulary), else x % 2;
//   bool: x & 1.
#pragma once

#include <cstdint>
#include <string>

#include "reactor/backend.h"

namespace ps::reactor {

// The synthetic input of `model` at `batch`: input_bytes(model, batch) bytes.
// Precondition: batch_supported(model, batch).
std::string synthetic_input(const ModelInfo& model, uint32_t batch);

// The seed of input `index` (see above); exposed for tests.
uint64_t synthetic_seed(const std::string& model_name, uint32_t batch, size_t index);

}  // namespace ps::reactor
