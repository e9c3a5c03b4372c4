// ONNX import: an ONNX model (as torch.onnx.export writes it, opsets 7 to 18) becomes our graph
// IR with static shapes, constants folded and Identity/Dropout removed.
//
// Pipeline: parse -> model checks (IR version, opsets) -> graph structure (names resolved,
// topological order and cycles checked, Constant nodes turned into constants) -> every node
// checked against supported_ops (all unsupported nodes reported at once) -> initializer data
// (raw_data, typed fields or external files) -> our shape inference -> libonnx's checker and
// shape inference as a cross-check where libonnx 1.12 knows the opset -> declared output types
// checked -> constant folding, Identity/Dropout removal, dead code elimination -> weights
// classified -> invariants validated -> executability checked.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "common/status.h"
#include "onnx_loader/graph.h"
#include "onnx_loader/tensor_data.h"

namespace ps::onnx_loader {

// What import did, for tools that print it and for tests.
struct ImportStats {
  int onnx_nodes = 0;      // nodes in the ONNX graph, Constant nodes included
  int constant_nodes = 0;  // Constant nodes turned into constants
  int initializers = 0;
  int folded = 0;                // nodes evaluated at import time
  int removed = 0;               // Identity/Dropout nodes removed
  bool libonnx_checked = false;  // libonnx's checker and shape inference ran and agreed
  std::string libonnx_note;      // why they did not run, when they did not
};

struct ImportOptions {
  // Fixes symbolic dimensions: "batch" -> 8, "seq" -> 251. Also applies "batch" to the first
  // and "seq" to the second dimension of inputs where those are symbolic or unnamed. A fixed
  // first dimension that differs from "batch" is an error (the export baked another batch
  // size in).
  std::map<std::string, int64_t> dims;
  // Folder for external data; default: the model file's folder (import_onnx_file).
  std::string base_dir;
  // Absurd dimensions guard: no tensor (input, initializer, intermediate) may exceed it.
  uint64_t max_tensor_bytes = kDefaultMaxTensorBytes;
  // Called with a stage name ("parse", "structure", "weights", "shapes", "validate",
  // "optimize", "done") and the fraction of the import done; may be empty.
  std::function<void(std::string_view stage, double fraction)> progress;

  // Fold constants, remove Identity/Dropout and dead code. Off: the graph as exported, with
  // shapes (for tools and tests).
  bool optimize = true;
  // Fail when something the executor cannot run is left (check_executable).
  bool require_executable = true;
  // Run libonnx's checker and shape inference cross-check where libonnx knows the opset.
  bool libonnx_checks = true;
  // Filled when not null.
  ImportStats* stats = nullptr;
};

// Reads and imports an .onnx file. Precondition: none (any bytes are handled). The model's
// folder is the default base_dir for external data. Returns the graph, or an error naming the
// file and the cause (truncated or not ONNX, unsupported nodes listed all at once, a missing
// initializer, wrong shapes, a cycle, absurd dimensions, a missing or escaping external file).
Result<Graph> import_onnx_file(const std::string& path, const ImportOptions& options);

// The same for a model already in memory; external data needs options.base_dir.
Result<Graph> import_onnx_model(const onnx::ModelProto& model, const ImportOptions& options);

}  // namespace ps::onnx_loader
