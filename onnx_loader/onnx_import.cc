#include "onnx_loader/onnx_import.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>

#include "onnx_loader/cleanup_passes.h"
#include "onnx_loader/constant_folding.h"
#include "onnx_loader/onnx_convert.h"
#include "onnx_loader/onnx_validation.h"
#include "onnx_loader/shape_inference.h"
#include "onnx_loader/supported_ops.h"

namespace ps::onnx_loader {
namespace {

namespace fs = std::filesystem;

void report(const ImportOptions& options, std::string_view stage, double fraction) {
  if (options.progress) options.progress(stage, fraction);
}

// The model's declared output types must agree with what we computed (dimensions that are
// symbolic and not fixed by ImportOptions::dims are not compared).
Status check_declared_outputs(const onnx::ModelProto& model, const Graph& graph) {
  const auto& outputs = model.graph().output();
  for (int i = 0; i < outputs.size(); ++i) {
    const onnx::ValueInfoProto& declared = outputs[i];
    if (!declared.type().has_tensor_type()) continue;
    const auto& type = declared.type().tensor_type();
    const Value& ours = graph.values[graph.outputs[i]];
    if (type.elem_type() != 0 && type.elem_type() != dtype_to_onnx(ours.dtype)) {
      auto declared_dtype = dtype_from_onnx(type.elem_type(), declared.name());
      return invalid_argument("graph output '", declared.name(), "' is declared as ",
                              declared_dtype.ok() ? dtype_name(*declared_dtype) : "another type",
                              " but computes ", dtype_name(ours.dtype));
    }
    if (!type.has_shape()) continue;
    const auto& dims = type.shape().dim();
    bool agrees = dims.size() == static_cast<int>(ours.shape->size());
    for (int d = 0; agrees && d < dims.size(); ++d) {
      const int64_t size = (*ours.shape)[d];
      if (dims[d].has_dim_value()) {
        agrees = dims[d].dim_value() == size;
      } else if (dims[d].has_dim_param()) {
        auto it = graph.dims.find(dims[d].dim_param());
        agrees = it == graph.dims.end() || it->second == size;
      }
    }
    if (!agrees) {
      std::string shape = "[";
      for (int d = 0; d < dims.size(); ++d) {
        if (d != 0) shape += ",";
        shape +=
            dims[d].has_dim_value() ? std::to_string(dims[d].dim_value()) : dims[d].dim_param();
      }
      return invalid_argument("graph output '", declared.name(), "' is declared with shape ", shape,
                              "] but computes ", shape_string(*ours.shape));
    }
  }
  return Status::OK();
}

// Reads every initializer's data. When `owned` is given (a model import_onnx_file parsed),
// each raw_data is released once copied, so the weights are never held twice.
Status load_initializers(const onnx::ModelProto& model, onnx::ModelProto* owned,
                         ConvertedModel& converted, const ImportOptions& options) {
  const TensorReadOptions read{options.base_dir, options.max_tensor_bytes};
  const size_t count = converted.pending_initializers.size();
  for (size_t n = 0; n < count; ++n) {
    const auto [index, v] = converted.pending_initializers[n];
    PS_ASSIGN_OR_RETURN(TensorData data, tensor_from_onnx(model.graph().initializer(index), read));
    converted.graph.values[v].constant = std::make_shared<const TensorData>(std::move(data));
    if (owned != nullptr) {
      std::unique_ptr<std::string> released(
          owned->mutable_graph()->mutable_initializer(index)->release_raw_data());
    }
    report(options, "weights", 0.1 + 0.6 * static_cast<double>(n + 1) / count);
  }
  return Status::OK();
}

Result<Graph> import_model(const onnx::ModelProto& model, onnx::ModelProto* owned,
                           const ImportOptions& options) {
  ImportStats stats;
  report(options, "structure", 0.05);
  PS_ASSIGN_OR_RETURN(ConvertedModel converted, convert_model_structure(model, options));
  Graph& graph = converted.graph;
  stats.onnx_nodes = model.graph().node_size();
  stats.constant_nodes = converted.constant_nodes;
  stats.initializers = static_cast<int>(converted.pending_initializers.size());
  PS_TRY(check_supported(graph));

  report(options, "weights", 0.1);
  PS_TRY(load_initializers(model, owned, converted, options));

  report(options, "shapes", 0.7);
  PS_TRY(infer_shapes(graph, options.max_tensor_bytes));
  PS_TRY(check_declared_outputs(model, graph));

  report(options, "validate", 0.8);
  if (options.libonnx_checks) {
    PS_TRY(check_with_libonnx(model, graph, &stats.libonnx_checked, &stats.libonnx_note));
  } else {
    stats.libonnx_note = "libonnx checks turned off";
  }

  report(options, "optimize", 0.9);
  if (options.optimize) {
    // Identity and Dropout go first, so that an Identity on a weight (PyTorch emits one per
    // shared parameter) is rewired rather than folded into a copy of the weight; a second
    // round catches those whose training_mode input only became constant by folding.
    int removed_before = 0, removed_after = 0;
    PS_TRY(remove_identity_and_dropout(graph, &removed_before));
    PS_TRY(fold_constants(graph, &stats.folded));
    PS_TRY(remove_identity_and_dropout(graph, &removed_after));
    stats.removed = removed_before + removed_after;
    PS_TRY(eliminate_dead_code(graph));
  }
  mark_weights(graph);
  PS_TRY(graph.validate());
  if (options.require_executable) PS_TRY(check_executable(graph));
  if (options.stats != nullptr) *options.stats = stats;
  report(options, "done", 1.0);
  return std::move(graph);
}

}  // namespace

Result<Graph> import_onnx_model(const onnx::ModelProto& model, const ImportOptions& options) {
  return import_model(model, nullptr, options);
}

Result<Graph> import_onnx_file(const std::string& path, const ImportOptions& options) {
  report(options, "parse", 0.0);
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (ec || !fs::exists(status)) return not_found("model file '", path, "' does not exist");
  if (!fs::is_regular_file(status)) return invalid_argument("'", path, "' is not a regular file");
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) return io_error("cannot stat '", path, "': ", ec.message());
  if (size > static_cast<uintmax_t>(INT_MAX)) {
    return unsupported("'", path, "' is ", size,
                       " bytes; protobuf files are limited to 2 GiB, larger models must keep "
                       "their weights in external data files");
  }

  // The file is mapped rather than streamed: protobuf then copies each raw_data once, straight
  // from the page cache, instead of assembling it from small reads.
  onnx::ModelProto model;
  {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return io_error("cannot open '", path, "': ", std::strerror(errno));
    void* mapped =
        size == 0 ? nullptr : ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    const int map_errno = errno;
    ::close(fd);
    if (mapped == MAP_FAILED) {
      return io_error("cannot map '", path, "': ", std::strerror(map_errno));
    }
    const bool parsed = model.ParseFromArray(mapped, static_cast<int>(size));
    if (mapped != nullptr) ::munmap(mapped, size);
    if (!parsed) {
      return corrupt("'", path,
                     "' is not a valid ONNX model: protobuf parsing failed (truncated file?)");
    }
  }
  report(options, "parse", 0.05);

  ImportOptions with_base = options;
  if (with_base.base_dir.empty()) {
    const fs::path folder = fs::path(path).parent_path();
    with_base.base_dir = folder.empty() ? std::string(".") : folder.string();
  }
  auto graph = import_model(model, &model, with_base);
  if (!graph.ok()) return graph.status().with_context(path);
  return graph;
}

}  // namespace ps::onnx_loader
