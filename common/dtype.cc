#include "common/dtype.h"

#include <bit>
#include <cmath>

namespace ps {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return 4;
    case DType::kFloat16:
      return 2;
    case DType::kBFloat16:
      return 2;
    case DType::kFloat64:
      return 8;
    case DType::kInt64:
      return 8;
    case DType::kInt32:
      return 4;
    case DType::kInt8:
      return 1;
    case DType::kUInt8:
      return 1;
    case DType::kBool:
      return 1;
    case DType::kUndefined:
      break;
  }
  return 0;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return "float32";
    case DType::kFloat16:
      return "float16";
    case DType::kBFloat16:
      return "bfloat16";
    case DType::kFloat64:
      return "float64";
    case DType::kInt64:
      return "int64";
    case DType::kInt32:
      return "int32";
    case DType::kInt8:
      return "int8";
    case DType::kUInt8:
      return "uint8";
    case DType::kBool:
      return "bool";
    case DType::kUndefined:
      break;
  }
  return "undefined";
}

bool is_floating(DType dtype) {
  return dtype == DType::kFloat32 || dtype == DType::kFloat64 || dtype == DType::kFloat16 ||
         dtype == DType::kBFloat16;
}

// ONNX TensorProto.DataType numbers (onnx.proto); kept here so common/ needs no libonnx.
namespace onnx_type {
constexpr int32_t kFloat = 1, kUInt8 = 2, kInt8 = 3, kUInt16 = 4, kInt16 = 5, kInt32 = 6,
                  kInt64 = 7, kString = 8, kBool = 9, kFloat16 = 10, kDouble = 11, kUInt32 = 12,
                  kUInt64 = 13, kComplex64 = 14, kComplex128 = 15, kBFloat16 = 16;
}  // namespace onnx_type

Result<DType> dtype_from_onnx(int64_t onnx_type) {
  switch (onnx_type) {
    case onnx_type::kFloat:
      return DType::kFloat32;
    case onnx_type::kUInt8:
      return DType::kUInt8;
    case onnx_type::kInt8:
      return DType::kInt8;
    case onnx_type::kInt32:
      return DType::kInt32;
    case onnx_type::kInt64:
      return DType::kInt64;
    case onnx_type::kBool:
      return DType::kBool;
    case onnx_type::kFloat16:
      return DType::kFloat16;
    case onnx_type::kDouble:
      return DType::kFloat64;
    case onnx_type::kBFloat16:
      return DType::kBFloat16;
    case onnx_type::kUInt16:
      return unsupported("ONNX data type UINT16 (4) is not supported");
    case onnx_type::kInt16:
      return unsupported("ONNX data type INT16 (5) is not supported");
    case onnx_type::kString:
      return unsupported("ONNX data type STRING (8) is not supported");
    case onnx_type::kUInt32:
      return unsupported("ONNX data type UINT32 (12) is not supported");
    case onnx_type::kUInt64:
      return unsupported("ONNX data type UINT64 (13) is not supported");
    case onnx_type::kComplex64:
    case onnx_type::kComplex128:
      return unsupported("ONNX complex data type (", onnx_type, ") is not supported");
    default:
      break;
  }
  return unsupported("ONNX data type ", onnx_type, " is not supported");
}

int32_t dtype_to_onnx(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return onnx_type::kFloat;
    case DType::kFloat16:
      return onnx_type::kFloat16;
    case DType::kBFloat16:
      return onnx_type::kBFloat16;
    case DType::kFloat64:
      return onnx_type::kDouble;
    case DType::kInt64:
      return onnx_type::kInt64;
    case DType::kInt32:
      return onnx_type::kInt32;
    case DType::kInt8:
      return onnx_type::kInt8;
    case DType::kUInt8:
      return onnx_type::kUInt8;
    case DType::kBool:
      return onnx_type::kBool;
    case DType::kUndefined:
      break;
  }
  return 0;
}

float float16_to_float(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu;
  const uint32_t mantissa = bits & 0x3ffu;
  if (exponent == 0) {
    // Zero or subnormal: mantissa * 2^-24, exact in float.
    const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
    return std::bit_cast<float>(std::bit_cast<uint32_t>(magnitude) | sign);
  }
  if (exponent == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  return std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

uint16_t float_to_float16(float value) {
  const uint32_t x = std::bit_cast<uint32_t>(value);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t magnitude = x & 0x7fffffffu;
  if (magnitude > 0x7f800000u) {  // NaN: keep it quiet and non-zero
    return static_cast<uint16_t>(sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu));
  }
  if (magnitude >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520: inf
  if (magnitude < 0x38800000u) {
    // Below the smallest normal half (2^-14): count units of 2^-24, rounding half to even
    // (the default floating-point rounding mode). 1024 units is the smallest normal, which
    // is also its correct bit pattern.
    const float units = std::bit_cast<float>(magnitude) * 0x1p24f;
    return static_cast<uint16_t>(sign | static_cast<uint16_t>(std::nearbyint(units)));
  }
  // Normal: rebias the exponent (127 -> 15) and round the 13 dropped bits to nearest even;
  // a carry out of the mantissa correctly bumps the exponent.
  const uint32_t odd = (magnitude >> 13) & 1u;
  const uint32_t rounded = magnitude - (112u << 23) + 0xfffu + odd;
  return static_cast<uint16_t>(sign | (rounded >> 13));
}

float bfloat16_to_float(uint16_t bits) {
  return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16);
}

uint16_t float_to_bfloat16(float value) {
  const uint32_t x = std::bit_cast<uint32_t>(value);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
  const uint32_t odd = (x >> 16) & 1u;
  return static_cast<uint16_t>((x + 0x7fffu + odd) >> 16);
}

}  // namespace ps
