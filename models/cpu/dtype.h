// Element types of the CPU reference operators, and the C++ types that hold them.
//
// DType is the manifest's DataType set (onnx_loader/psm.proto) as a plain enum, so the
// operators do not need protobuf enums in their inner loops. float16 and bfloat16 are storage
// types here: Cast converts to and from them and data-movement operators copy them, but no
// arithmetic is done in them.
#pragma once

#include <cstdint>
#include <string_view>
#include <type_traits>

#include "common/status.h"
#include "onnx_loader/psm.pb.h"

namespace ps::models::cpu {

enum class DType : uint8_t {
  kUndefined = 0,
  kFloat32,
  kFloat16,
  kBFloat16,
  kFloat64,
  kInt64,
  kInt32,
  kInt8,
  kUInt8,
  kBool,
};

// Bytes per element; 0 for kUndefined.
size_t dtype_size(DType dtype);
// "float32", "int64", ...; "undefined" for kUndefined.
std::string_view dtype_name(DType dtype);
bool is_floating(DType dtype);  // float32, float64, float16, bfloat16

// Conversions with the manifest's enum. DT_UNDEFINED (or an unknown value) is an error.
Result<DType> dtype_from_psm(pipeswitch::psm::DataType dtype);
pipeswitch::psm::DataType dtype_to_psm(DType dtype);

// Conversion from an ONNX TensorProto.DataType number (Cast's `to` attribute, test data).
// Types outside our set (string, int16, uint16/32/64, complex, float8) are Unsupported errors
// that name the ONNX type.
Result<DType> dtype_from_onnx(int64_t onnx_data_type);
// The ONNX TensorProto.DataType number of `dtype` (0 for kUndefined).
int32_t dtype_to_onnx(DType dtype);

// IEEE binary16 and bfloat16 bit patterns. Conversions from float round to nearest, ties to
// even; NaN stays NaN; out-of-range values become infinity.
struct Float16 {
  uint16_t bits;
};
struct BFloat16 {
  uint16_t bits;
};
float float16_to_float(uint16_t bits);
uint16_t float_to_float16(float value);
float bfloat16_to_float(uint16_t bits);
uint16_t float_to_bfloat16(float value);

// The DType of a C++ element type; kUndefined for types that are not one.
template <typename T>
constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, float>)
    return DType::kFloat32;
  else if constexpr (std::is_same_v<T, Float16>)
    return DType::kFloat16;
  else if constexpr (std::is_same_v<T, BFloat16>)
    return DType::kBFloat16;
  else if constexpr (std::is_same_v<T, double>)
    return DType::kFloat64;
  else if constexpr (std::is_same_v<T, int64_t>)
    return DType::kInt64;
  else if constexpr (std::is_same_v<T, int32_t>)
    return DType::kInt32;
  else if constexpr (std::is_same_v<T, int8_t>)
    return DType::kInt8;
  else if constexpr (std::is_same_v<T, uint8_t>)
    return DType::kUInt8;
  else if constexpr (std::is_same_v<T, bool>)
    return DType::kBool;
  else
    return DType::kUndefined;
}

}  // namespace ps::models::cpu
