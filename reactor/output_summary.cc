#include "reactor/output_summary.h"

#include <algorithm>
#include <cstring>
#include <span>
#include <string>

#include "common/hash64.h"

namespace ps::reactor {
namespace {

template <typename T>
T load(const char* p) {
  T value;
  std::memcpy(&value, p, sizeof(T));
  return value;
}

double element(DType dtype, const char* p) {
  switch (dtype) {
    case DType::kFloat32:
      return load<float>(p);
    case DType::kFloat64:
      return load<double>(p);
    case DType::kFloat16:
      return float16_to_float(load<uint16_t>(p));
    case DType::kBFloat16:
      return bfloat16_to_float(load<uint16_t>(p));
    case DType::kInt64:
      return static_cast<double>(load<int64_t>(p));
    case DType::kInt32:
      return load<int32_t>(p);
    case DType::kInt8:
      return load<int8_t>(p);
    case DType::kUInt8:
    case DType::kBool:
      return load<uint8_t>(p);
    case DType::kUndefined:
      return 0.0;
  }
  return 0.0;
}

}  // namespace

OutputSummary summarize_output(const std::vector<TensorSpec>& specs, std::string_view bytes) {
  // One pass over the bytes in cache-sized blocks, each hashed and then summed while it is in
  // the cache (BERT-base's 6.2 MB output arrives by DMA, cold: two passes over it cost twice
  // the memory traffic). The float32 sum keeps eight lanes by element index within its tensor
  // (a fixed order, so deterministic, and the same as summing the tensor in one go), not one
  // serial chain of additions.
  constexpr size_t kBlock = size_t{64} << 10;  // a multiple of 8 elements of every dtype
  OutputSummary summary;
  Hash64 hash;  // seed 0: net::payload_checksum's XXH64, fed block by block
  const char* p = bytes.data();
  for (const TensorSpec& spec : specs) {
    const size_t size = dtype_size(spec.dtype);
    const size_t tensor_bytes = static_cast<size_t>(element_count(spec.shape)) * size;
    const bool f32 = spec.dtype == DType::kFloat32;
    double lanes[8] = {};
    for (size_t done = 0; done < tensor_bytes;) {
      const size_t n = std::min(kBlock, tensor_bytes - done);
      hash.update(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(p), n));
      const size_t count = size == 0 ? 0 : n / size;
      size_t i = 0;
      if (f32) {
        for (; i + 8 <= count; i += 8) {
          for (int l = 0; l < 8; ++l) lanes[l] += load<float>(p + (i + l) * size);
        }
        for (; i < count; ++i) lanes[0] += load<float>(p + i * size);  // the tensor's tail
      } else {
        for (; i < count; ++i) summary.sum += element(spec.dtype, p + i * size);
      }
      p += n;
      done += n;
    }
    for (double lane : lanes) summary.sum += lane;
  }
  summary.checksum = hash.digest();
  return summary;
}

std::string output_shapes(const std::vector<TensorSpec>& specs) {
  std::string out;
  for (const TensorSpec& spec : specs) {
    if (!out.empty()) out += ',';
    for (size_t d = 0; d < spec.shape.size(); ++d) {
      if (d) out += 'x';
      out += std::to_string(spec.shape[d]);
    }
  }
  return out;
}

std::string output_dtypes(const std::vector<TensorSpec>& specs) {
  std::string out;
  for (const TensorSpec& spec : specs) {
    if (!out.empty()) out += ',';
    out += dtype_name(spec.dtype);
  }
  return out;
}

}  // namespace ps::reactor
