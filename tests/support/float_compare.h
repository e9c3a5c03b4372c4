// Comparing raw float32 outputs (as the server sends them) in tests: the error relative to the
// output's scale, the measure the executor tests use.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string_view>

namespace ps::testing {

// max |a - b| / max |b| over the float32 values of two equally long byte strings (1 when b is
// all zeros); NaN anywhere in `a` gives NaN, so a `<= tolerance` check fails.
inline double max_relative_error_f32(std::string_view a, std::string_view b) {
  double max_abs = 0, max_mag = 0;
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i + 4 <= n; i += 4) {
    float x, y;
    std::memcpy(&x, a.data() + i, 4);
    std::memcpy(&y, b.data() + i, 4);
    if (std::isnan(x)) return NAN;
    max_abs = std::max(max_abs, std::fabs(double{x} - y));
    max_mag = std::max(max_mag, std::fabs(double{y}));
  }
  return max_abs / (max_mag > 0 ? max_mag : 1.0);
}

}  // namespace ps::testing
