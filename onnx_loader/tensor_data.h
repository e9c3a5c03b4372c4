// Converting ONNX TensorProtos into TensorData: raw_data, typed fields (float_data, int64_data,
// ...) and external data files, with size and path checks.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

#include "common/dtype.h"
#include "common/status.h"
#include "onnx_loader/graph.h"

namespace ps::onnx_loader {

// The default guard against absurd dimensions: no single tensor may exceed it.
inline constexpr uint64_t kDefaultMaxTensorBytes = 4ull << 30;

// The shared conversions (common/dtype.h), under their old names here.
using ::ps::bfloat16_to_float;
using ::ps::dtype_from_onnx;
using ::ps::dtype_to_onnx;
using ::ps::float16_to_float;
using ::ps::float_to_bfloat16;
using ::ps::float_to_float16;

// ps::dtype_from_onnx with context: types we do not handle (string, uint16, complex, ...) give
// an Unsupported error naming `what` (a tensor or value name) and the ONNX type's name.
Result<DType> dtype_from_onnx(int32_t onnx_type, std::string_view what);

// Checks that `shape` has no negative dimension, that its element count does not overflow and
// that the tensor fits in `max_bytes`. `what` names the tensor in the error.
Status check_tensor_size(const Shape& shape, DType dtype, uint64_t max_bytes,
                         std::string_view what);

struct TensorReadOptions {
  // Folder that external data locations are relative to; they may not leave it.
  std::string base_dir;
  uint64_t max_tensor_bytes = kDefaultMaxTensorBytes;
};

// Converts one TensorProto (an initializer, a Constant's value, a test data file) into a dense
// little-endian TensorData. Reads external data from below options.base_dir. Errors name the
// tensor: unsupported dtype, a data field whose size disagrees with the dims, a missing or
// escaping external file, a tensor larger than options.max_tensor_bytes.
Result<TensorData> tensor_from_onnx(const onnx::TensorProto& tensor,
                                    const TensorReadOptions& options);

// Resolves an external data `location` against `base_dir`. Absolute locations, locations that
// climb out with "..", and symbolic links that lead out of base_dir are refused
// (PermissionDenied); a missing file gives NotFound. Returns the canonical path.
Result<std::filesystem::path> resolve_external_data_path(const std::string& base_dir,
                                                         const std::string& location);

// Writes `data` into `out` (name untouched) as dims + data_type + raw_data.
void tensor_to_onnx(const TensorData& data, onnx::TensorProto* out);

// Reads a serialized TensorProto file (the ONNX test data's input_0.pb ...).
Result<TensorData> read_tensor_file(const std::string& path);

// memcpy that also accepts an empty range (where data() of an empty container may be null).
inline void copy_bytes(void* dst, const void* src, size_t count) {
  if (count != 0) std::memcpy(dst, src, count);
}

}  // namespace ps::onnx_loader
