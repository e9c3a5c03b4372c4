// What an INFER reply says about its output without sending it: `checksum=` and `sum=`.
//
//   checksum  XXH64 over the raw output bytes exactly as output=raw sends them (all outputs
//             concatenated in ModelInfo order; net::payload_checksum). Exact: equal only for
//             bit-identical outputs (the same backend, or the CPU against its own reference).
//   sum       the sum, in double, of every output element read as a number (float16/bfloat16
//             widened). Stable to ~1e-6 relative across backends whose results differ in the
//             last bits (GPU vs CPU), so it is the value to compare across devices.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "reactor/backend.h"

namespace ps::reactor {

struct OutputSummary {
  uint64_t checksum = 0;
  double sum = 0.0;
};

// Summarises `bytes`, the concatenation of tensors of `specs`. Precondition: bytes.size() is
// the sum of the specs' bytes().
OutputSummary summarize_output(const std::vector<TensorSpec>& specs, std::string_view bytes);

// "2x1000" for one output; "2x8x32,2x32" for several.
std::string output_shapes(const std::vector<TensorSpec>& specs);
// "float32" or "float32,float32".
std::string output_dtypes(const std::vector<TensorSpec>& specs);

}  // namespace ps::reactor
