#include "reactor/synthetic_input.h"

#include <cstring>

namespace ps::reactor {
namespace {

uint64_t fnv1a64(const std::string& text) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

template <typename T>
void put(char* out, T value) {
  std::memcpy(out, &value, sizeof(T));
}

}  // namespace

uint64_t synthetic_seed(const std::string& model_name, uint32_t batch, size_t index) {
  return fnv1a64(model_name) ^ (uint64_t{batch} * 0x9e3779b97f4a7c15ull) ^
         ((uint64_t{index} + 1) * 0xbf58476d1ce4e5b9ull);
}

std::string synthetic_input(const ModelInfo& model, uint32_t batch) {
  std::string out(input_bytes(model, batch), '\0');
  char* p = out.data();
  const std::vector<TensorSpec> specs = specs_at_batch(model.inputs, model.batch, batch);
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorSpec& spec = specs[i];
    uint64_t state = synthetic_seed(model.name, batch, i);
    const int64_t count = element_count(spec.shape);
    const uint64_t modulus = spec.value_bound > 0 ? static_cast<uint64_t>(spec.value_bound) : 2;
    const size_t size = dtype_size(spec.dtype);
    for (int64_t e = 0; e < count; ++e, p += size) {
      const uint64_t x = splitmix64(state);
      const float f = static_cast<float>(x >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f;
      switch (spec.dtype) {
        case DType::kFloat32:
          put(p, f);
          break;
        case DType::kFloat64:
          put(p, static_cast<double>(f));
          break;
        case DType::kFloat16:
          put(p, float_to_float16(f));
          break;
        case DType::kBFloat16:
          put(p, float_to_bfloat16(f));
          break;
        case DType::kInt64:
          put(p, static_cast<int64_t>(x % modulus));
          break;
        case DType::kInt32:
          put(p, static_cast<int32_t>(x % modulus));
          break;
        case DType::kInt8:
          put(p, static_cast<int8_t>(x % modulus));
          break;
        case DType::kUInt8:
          put(p, static_cast<uint8_t>(x % modulus));
          break;
        case DType::kBool:
          put(p, static_cast<uint8_t>(x & 1));
          break;
        case DType::kUndefined:
          break;
      }
    }
  }
  return out;
}

}  // namespace ps::reactor
