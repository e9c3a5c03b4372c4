// libonnx's checker and shape inference as a second opinion on an imported model.
//
// Our own conversion and shape inference are the authority (they cover opset 18 and give
// errors that name our nodes); libonnx 1.12 knows opsets up to 17 and IR version 8. Where the
// model is within that, we run its checker (attribute types, op schemas, type constraints) and
// its shape inference in strict mode with data propagation on a light copy of the model, and
// require its fully known shapes and types to equal ours. That catches both malformed models
// our checks let through and bugs in our shape functions.
#pragma once

#include <onnx/onnx_pb.h>

#include <string>

#include "common/status.h"
#include "onnx_loader/graph.h"

namespace ps::onnx_loader {

// The newest default-domain opset libonnx's schemas know.
int64_t libonnx_max_opset();

// Preconditions: `graph` came from `model` by convert_model_structure, its initializers are
// loaded and infer_shapes has run; no pass has run (names must match the model's). The light
// copy takes the graph's fixed input shapes, keeps small initializers (with their data, for
// data propagation) and declares large ones as typed inputs, so no weight is copied.
// Returns OK and sets *ran to false with *note saying why when libonnx cannot judge the model
// (opset newer than it knows); otherwise *ran is true and the result is libonnx's verdict:
// an InvalidArgument error with its message, or an Internal error naming the first value whose
// type or shape disagrees with ours.
Status check_with_libonnx(const onnx::ModelProto& model, const Graph& graph, bool* ran,
                          std::string* note);

}  // namespace ps::onnx_loader
