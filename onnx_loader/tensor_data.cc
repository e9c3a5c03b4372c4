#include "onnx_loader/tensor_data.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>

namespace ps::onnx_loader {
namespace {

namespace fs = std::filesystem;
using onnx::TensorProto;

const char* onnx_type_name(int32_t type) {
  switch (type) {
    case TensorProto::UNDEFINED:
      return "UNDEFINED";
    case TensorProto::FLOAT:
      return "FLOAT";
    case TensorProto::UINT8:
      return "UINT8";
    case TensorProto::INT8:
      return "INT8";
    case TensorProto::UINT16:
      return "UINT16";
    case TensorProto::INT16:
      return "INT16";
    case TensorProto::INT32:
      return "INT32";
    case TensorProto::INT64:
      return "INT64";
    case TensorProto::STRING:
      return "STRING";
    case TensorProto::BOOL:
      return "BOOL";
    case TensorProto::FLOAT16:
      return "FLOAT16";
    case TensorProto::DOUBLE:
      return "DOUBLE";
    case TensorProto::UINT32:
      return "UINT32";
    case TensorProto::UINT64:
      return "UINT64";
    case TensorProto::COMPLEX64:
      return "COMPLEX64";
    case TensorProto::COMPLEX128:
      return "COMPLEX128";
    case TensorProto::BFLOAT16:
      return "BFLOAT16";
    default:
      return "unknown";
  }
}

// Copies the typed field of `tensor` that matches its data_type into `out` (sized already).
Status copy_typed_field(const TensorProto& tensor, TensorData& out, const std::string& what) {
  const int64_t n = out.elements();
  auto check_count = [&](int count, const char* field) -> Status {
    if (count != n) {
      return corrupt("tensor '", what, "': ", field, " holds ", count, " values but dims ",
                     shape_string(out.shape), " need ", n);
    }
    return Status::OK();
  };
  switch (out.dtype) {
    case DType::kFloat32:
      PS_TRY(check_count(tensor.float_data_size(), "float_data"));
      copy_bytes(out.bytes.data(), tensor.float_data().data(), n * sizeof(float));
      return Status::OK();
    case DType::kFloat64:
      PS_TRY(check_count(tensor.double_data_size(), "double_data"));
      copy_bytes(out.bytes.data(), tensor.double_data().data(), n * sizeof(double));
      return Status::OK();
    case DType::kInt64:
      PS_TRY(check_count(tensor.int64_data_size(), "int64_data"));
      copy_bytes(out.bytes.data(), tensor.int64_data().data(), n * sizeof(int64_t));
      return Status::OK();
    case DType::kInt32:
      PS_TRY(check_count(tensor.int32_data_size(), "int32_data"));
      copy_bytes(out.bytes.data(), tensor.int32_data().data(), n * sizeof(int32_t));
      return Status::OK();
    case DType::kInt8:
    case DType::kUInt8:
    case DType::kBool: {
      // Stored one value per int32.
      PS_TRY(check_count(tensor.int32_data_size(), "int32_data"));
      auto dst = out.as_mutable<uint8_t>();
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<uint8_t>(tensor.int32_data(i));
      return Status::OK();
    }
    case DType::kFloat16:
    case DType::kBFloat16: {
      // Stored as the 16-bit patterns, one per int32.
      PS_TRY(check_count(tensor.int32_data_size(), "int32_data"));
      auto dst = out.as_mutable<uint16_t>();
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<uint16_t>(tensor.int32_data(i));
      return Status::OK();
    }
    case DType::kUndefined:
      break;
  }
  return internal_error("tensor '", what, "': no typed field for ", dtype_name(out.dtype));
}

Result<uint64_t> parse_external_number(const std::string& text, const char* key,
                                       const std::string& what) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) {
    return corrupt("tensor '", what, "': external data ", key, " '", text,
                   "' is not a non-negative integer");
  }
  return value;
}

Status read_external_data(const TensorProto& tensor, const TensorReadOptions& options,
                          TensorData& out, const std::string& what) {
  std::string location;
  uint64_t offset = 0;
  std::optional<uint64_t> length;
  for (const auto& entry : tensor.external_data()) {
    if (entry.key() == "location") {
      location = entry.value();
    } else if (entry.key() == "offset") {
      PS_ASSIGN_OR_RETURN(offset, parse_external_number(entry.value(), "offset", what));
    } else if (entry.key() == "length") {
      PS_ASSIGN_OR_RETURN(length, parse_external_number(entry.value(), "length", what));
    }
  }
  if (location.empty()) {
    return corrupt("tensor '", what, "': external data without a 'location'");
  }
  auto resolved = resolve_external_data_path(options.base_dir, location);
  if (!resolved.ok()) return resolved.status().with_context(str_cat("tensor '", what, "'"));
  const fs::path& path = *resolved;

  const uint64_t want = out.bytes.size();
  if (length && *length != want) {
    return corrupt("tensor '", what, "': external data length ", *length, " but dims ",
                   shape_string(out.shape), " of ", dtype_name(out.dtype), " need ", want,
                   " bytes");
  }
  std::error_code ec;
  const uint64_t file_size = fs::file_size(path, ec);
  if (ec) return io_error("tensor '", what, "': cannot stat '", path.string(), "': ", ec.message());
  if (offset > file_size || file_size - offset < want) {
    return corrupt("tensor '", what, "': needs bytes [", offset, ", ", offset + want, ") of '",
                   path.string(), "' but the file has ", file_size, " bytes");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return io_error("tensor '", what, "': cannot open '", path.string(), "'");
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(reinterpret_cast<char*>(out.bytes.data()), static_cast<std::streamsize>(want));
  if (!in) return io_error("tensor '", what, "': short read from '", path.string(), "'");
  return Status::OK();
}

}  // namespace

Result<DType> dtype_from_onnx(int32_t onnx_type, std::string_view what) {
  auto dtype = ::ps::dtype_from_onnx(static_cast<int64_t>(onnx_type));
  if (dtype.ok()) return dtype;
  return unsupported("'", what, "': element type ", onnx_type_name(onnx_type), " (", onnx_type,
                     ") is not supported");
}

Status check_tensor_size(const Shape& shape, DType dtype, uint64_t max_bytes,
                         std::string_view what) {
  bool empty = false;
  for (int64_t dim : shape) {
    if (dim < 0) {
      return invalid_argument("'", what, "': negative dimension in shape ", shape_string(shape));
    }
    empty = empty || dim == 0;
  }
  if (empty) return Status::OK();
  uint64_t bytes = dtype_size(dtype);
  for (int64_t dim : shape) {
    // Checked before multiplying so that the product cannot overflow.
    if (bytes > max_bytes / static_cast<uint64_t>(dim)) {
      return resource_exhausted("'", what, "': shape ", shape_string(shape), " of ",
                                dtype_name(dtype), " exceeds the limit of ", max_bytes,
                                " bytes per tensor");
    }
    bytes *= static_cast<uint64_t>(dim);
  }
  if (bytes > max_bytes) {
    return resource_exhausted("'", what, "': ", bytes, " bytes exceed the limit of ", max_bytes,
                              " bytes per tensor");
  }
  return Status::OK();
}

Result<fs::path> resolve_external_data_path(const std::string& base_dir,
                                            const std::string& location) {
  if (base_dir.empty()) {
    return invalid_argument("external data '", location,
                            "' needs a base folder (ImportOptions::base_dir)");
  }
  const fs::path relative(location);
  if (location.empty() || relative.is_absolute() || relative.has_root_name() ||
      relative.has_root_directory()) {
    return permission_denied("external data location '", location,
                             "' must be a path relative to the model's folder");
  }
  for (const auto& part : relative.lexically_normal()) {
    if (part == "..") {
      return permission_denied("external data location '", location, "' leaves the model's folder");
    }
  }
  std::error_code ec;
  const fs::path base = fs::weakly_canonical(fs::path(base_dir), ec);
  if (ec) return io_error("cannot resolve folder '", base_dir, "': ", ec.message());
  const fs::path full = fs::weakly_canonical(base / relative, ec);
  if (ec) return io_error("cannot resolve '", (base / relative).string(), "': ", ec.message());
  // A symbolic link inside the folder may still point out of it.
  auto [base_end, full_it] = std::mismatch(base.begin(), base.end(), full.begin(), full.end());
  if (base_end != base.end()) {
    return permission_denied("external data location '", location, "' resolves to '", full.string(),
                             "' outside '", base.string(), "'");
  }
  if (!fs::exists(full, ec)) {
    return not_found("external data file '", full.string(), "' does not exist");
  }
  if (!fs::is_regular_file(full, ec)) {
    return invalid_argument("external data '", full.string(), "' is not a regular file");
  }
  return full;
}

Result<TensorData> tensor_from_onnx(const TensorProto& tensor, const TensorReadOptions& options) {
  const std::string& what = tensor.name();
  TensorData out;
  PS_ASSIGN_OR_RETURN(out.dtype, dtype_from_onnx(tensor.data_type(), what));
  out.shape.assign(tensor.dims().begin(), tensor.dims().end());
  PS_TRY(
      check_tensor_size(out.shape, out.dtype, options.max_tensor_bytes, str_cat("tensor ", what)));
  if (tensor.has_segment()) {
    return unsupported("tensor '", what, "': segmented tensors are not supported");
  }
  const uint64_t bytes = static_cast<uint64_t>(out.elements()) * dtype_size(out.dtype);
  out.bytes.resize(bytes);

  if (tensor.data_location() == TensorProto::EXTERNAL) {
    PS_TRY(read_external_data(tensor, options, out, what));
  } else if (tensor.has_raw_data()) {
    if (tensor.raw_data().size() != bytes) {
      return corrupt("tensor '", what, "': raw_data has ", tensor.raw_data().size(),
                     " bytes but dims ", shape_string(out.shape), " of ", dtype_name(out.dtype),
                     " need ", bytes);
    }
    copy_bytes(out.bytes.data(), tensor.raw_data().data(), bytes);
  } else {
    PS_TRY(copy_typed_field(tensor, out, what));
  }
  return out;
}

void tensor_to_onnx(const TensorData& data, TensorProto* out) {
  out->clear_dims();
  for (int64_t dim : data.shape) out->add_dims(dim);
  out->set_data_type(dtype_to_onnx(data.dtype));
  out->set_raw_data(data.bytes.data(), data.bytes.size());
}

Result<TensorData> read_tensor_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("cannot open tensor file '", path, "'");
  TensorProto proto;
  if (!proto.ParseFromIstream(&in)) {
    return corrupt("'", path, "' is not a serialized TensorProto");
  }
  TensorReadOptions options;
  options.base_dir = fs::path(path).parent_path().string();
  auto data = tensor_from_onnx(proto, options);
  if (!data.ok()) return data.status().with_context(path);
  return data;
}

}  // namespace ps::onnx_loader
