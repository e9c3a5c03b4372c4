#include "onnx_loader/psm_dtype.h"

namespace ps::onnx_loader {

namespace psm = pipeswitch::psm;

Result<DType> dtype_from_psm(psm::DataType dtype) {
  switch (dtype) {
    case psm::DT_FLOAT32:
      return DType::kFloat32;
    case psm::DT_FLOAT16:
      return DType::kFloat16;
    case psm::DT_BFLOAT16:
      return DType::kBFloat16;
    case psm::DT_FLOAT64:
      return DType::kFloat64;
    case psm::DT_INT64:
      return DType::kInt64;
    case psm::DT_INT32:
      return DType::kInt32;
    case psm::DT_INT8:
      return DType::kInt8;
    case psm::DT_UINT8:
      return DType::kUInt8;
    case psm::DT_BOOL:
      return DType::kBool;
    default:
      break;
  }
  return invalid_argument("manifest data type ", static_cast<int>(dtype),
                          " is undefined or unknown");
}

psm::DataType dtype_to_psm(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return psm::DT_FLOAT32;
    case DType::kFloat16:
      return psm::DT_FLOAT16;
    case DType::kBFloat16:
      return psm::DT_BFLOAT16;
    case DType::kFloat64:
      return psm::DT_FLOAT64;
    case DType::kInt64:
      return psm::DT_INT64;
    case DType::kInt32:
      return psm::DT_INT32;
    case DType::kInt8:
      return psm::DT_INT8;
    case DType::kUInt8:
      return psm::DT_UINT8;
    case DType::kBool:
      return psm::DT_BOOL;
    case DType::kUndefined:
      break;
  }
  return psm::DT_UNDEFINED;
}

}  // namespace ps::onnx_loader
