// The element types of the whole project: the importer's graph IR, the .psm manifest's
// tensors and the CPU reference operators all use this one enum.
//
// Also the ONNX TensorProto.DataType numbers (plain ints, so this library needs no libonnx) and
// the float16/bfloat16 bit conversions. The manifest's protobuf enum is mapped in
// onnx_loader/psm_dtype.h (common/ depends on nothing).
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/status.h"

namespace ps {

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
// "float32", "int64", ...; "undefined" for kUndefined. Returns a static string.
const char* dtype_name(DType dtype);
// True for float32, float64, float16 and bfloat16.
bool is_floating(DType dtype);

// Conversion from an ONNX TensorProto.DataType number (a tensor's data_type, Cast's `to`).
// Types outside our set (string, int16, uint16/32/64, complex, float8, ...) and UNDEFINED are
// Unsupported errors that name the ONNX type.
Result<DType> dtype_from_onnx(int64_t onnx_type);
// The ONNX TensorProto.DataType number of `dtype` (0, UNDEFINED, for kUndefined).
int32_t dtype_to_onnx(DType dtype);

// IEEE binary16 and bfloat16 bit patterns. Conversions from float round to nearest, ties to
// even; NaN stays NaN; out-of-range values become infinity.
float float16_to_float(uint16_t bits);
uint16_t float_to_float16(float value);
float bfloat16_to_float(uint16_t bits);
uint16_t float_to_bfloat16(float value);

}  // namespace ps
