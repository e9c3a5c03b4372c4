// Element types of the CPU reference operators, and the C++ types that hold them.
//
// DType (common/dtype.h) is the manifest's DataType set (onnx_loader/psm.proto) as a plain
// enum, so the operators do not need protobuf enums in their inner loops. float16 and bfloat16
// are storage types here: Cast converts to and from them and data-movement operators copy them,
// but no arithmetic is done in them.
#pragma once

#include <cstdint>
#include <type_traits>

#include "common/dtype.h"
#include "common/status.h"
#include "onnx_loader/psm_dtype.h"

namespace ps::models::cpu {

// The project-wide element type and its conversions (common/dtype.h, onnx_loader/psm_dtype.h),
// under their old names here.
using ::ps::bfloat16_to_float;
using ::ps::DType;
using ::ps::dtype_from_onnx;
using ::ps::dtype_name;
using ::ps::dtype_size;
using ::ps::dtype_to_onnx;
using ::ps::float16_to_float;
using ::ps::float_to_bfloat16;
using ::ps::float_to_float16;
using ::ps::is_floating;
using ::ps::onnx_loader::dtype_from_psm;
using ::ps::onnx_loader::dtype_to_psm;

// Typed wrappers of the float16 and bfloat16 bit patterns, so dtype_of<T>() can tell them
// apart from uint16_t.
struct Float16 {
  uint16_t bits;
};
struct BFloat16 {
  uint16_t bits;
};

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
