// Conversions between ps::DType and the .psm manifest's DataType enum (onnx_loader/psm.proto).
// Part of ps_psm_proto, so the importer, the package reader and the CPU operators share them.
#pragma once

#include "common/dtype.h"
#include "common/status.h"
#include "onnx_loader/psm.pb.h"

namespace ps::onnx_loader {

// The DType of a manifest DataType. DT_UNDEFINED or an unknown value is an InvalidArgument
// error that names the number.
Result<DType> dtype_from_psm(pipeswitch::psm::DataType dtype);
// The manifest DataType of `dtype` (DT_UNDEFINED for kUndefined).
pipeswitch::psm::DataType dtype_to_psm(DType dtype);

}  // namespace ps::onnx_loader
