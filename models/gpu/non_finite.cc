#include "models/gpu/non_finite.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "cuda/copy.h"

namespace ps::models::gpu {

NonFinite scan_non_finite(const uint8_t* p, DType dtype, int64_t count) {
  NonFinite out;
  for (int64_t i = 0; i < count; ++i) {
    double v = 0;
    if (dtype == DType::kFloat32) {
      float f;
      std::memcpy(&f, p + i * 4, 4);
      v = f;
    } else if (dtype == DType::kFloat64) {
      std::memcpy(&v, p + i * 8, 8);
    } else if (dtype == DType::kFloat16 || dtype == DType::kBFloat16) {
      uint16_t h;
      std::memcpy(&h, p + i * 2, 2);
      v = dtype == DType::kFloat16 ? float16_to_float(h) : bfloat16_to_float(h);
    } else {
      return out;
    }
    if (std::isfinite(v)) {
      out.max_abs = std::max(out.max_abs, std::fabs(v));
    } else if (out.count++ == 0) {
      out.first = i;
      out.first_value = v;
    }
  }
  return out;
}

Result<NonFinite> scan_device_tensor(CUdeviceptr address, const TensorSpec& spec,
                                     const cuda::Stream& stream, std::vector<uint8_t>& host) {
  if (!is_floating(spec.dtype) || spec.bytes() == 0) return NonFinite{};
  host.resize(spec.bytes());
  PS_TRY(cuda::copy_to_host_async(host.data(), address, spec.bytes(), stream));
  PS_TRY(stream.synchronize());
  return scan_non_finite(host.data(), spec.dtype, spec.numel());
}

std::string describe_non_finite(const NonFinite& bad, const TensorSpec& spec) {
  return str_cat(bad.count, " of ", spec.numel(), " values are NaN or Inf (first at element ",
                 bad.first, ": ", bad.first_value, ")");
}

}  // namespace ps::models::gpu
