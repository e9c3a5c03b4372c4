// The first stage of import: the structure of an ONNX ModelProto as our graph IR, before any
// weight is read. Internal to onnx_loader; onnx_import.h is the public entry point.
#pragma once

#include <onnx/onnx_pb.h>

#include <utility>
#include <vector>

#include "common/status.h"
#include "onnx_loader/graph.h"
#include "onnx_loader/onnx_import.h"

namespace ps::onnx_loader {

struct ConvertedModel {
  Graph graph;
  // Initializers whose data is still to be read: (index in model.graph().initializer(),
  // value index). The values already carry dtype and shape.
  std::vector<std::pair<int, int>> pending_initializers;
  int constant_nodes = 0;
};

// Checks the model header (graph present, IR version, default-domain opset within
// kMinSupportedOpset..kMaxSupportedOpset) and builds the graph: runtime inputs with their
// dimensions fixed from options.dims, initializers (without data), Constant nodes as
// constants, other nodes with their attributes. Errors name the node or value: a name nothing
// defines (a missing initializer), a name defined twice, a cycle, nodes out of topological
// order, a symbolic dimension with no size given, absurd dimensions.
Result<ConvertedModel> convert_model_structure(const onnx::ModelProto& model,
                                               const ImportOptions& options);

}  // namespace ps::onnx_loader
