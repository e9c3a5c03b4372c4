// Reading a model into host memory, for the backends: a .psm package (models/package_reader.h)
// or a zoo model built, imported and lowered in-process (models/zoo, onnx_loader) the way
// psimport does it. Blocking (reads files, builds weights): call it off the loop thread.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "models/package_reader.h"
#include "onnx_loader/psm.pb.h"
#include "reactor/backend.h"

namespace ps::reactor {

// A model in host memory: its manifest and its weight blob.
struct HostModel {
  pipeswitch::psm::Manifest manifest;
  std::vector<uint8_t> weights;  // manifest.weights_bytes() bytes
};

using LoadProgress = std::function<void(std::string_view stage, double fraction)>;

// Opens and validates the package of a package source (models::Package::open_fd): from a
// duplicate of source.package_fd when it is set (the path is not looked up again; every copy of
// the source can open it), else by source.package_path. Errors as Package::open, or kIo when
// the descriptor cannot be duplicated; the messages name source.package_path.
Result<models::Package> open_package(const ModelSource& source);

// Reads `source` (package_path or zoo_model). `progress` may be empty. Returns the model, or
// the package reader's / importer's error with the source named in front.
Result<HostModel> read_model(const ModelSource& source, const LoadProgress& progress = {});

// Imports zoo model `zoo_model` at dims batch and seq (per-layer groups), exactly as
// read_model does for a zoo source: for inference (the passes fuse BatchNorm into the
// convolutions) or, with training = true, for training (the unfused graph the trainer needs,
// as `psimport --mode training`). Also for tests that need the server's reference.
Result<HostModel> import_zoo_model(const std::string& zoo_model, uint32_t batch, uint32_t seq,
                                   bool training = false);

// What a training job trains for model `name` registered from `source` with `registered` as
// its manifest: nullopt when the registered model is itself a training-mode package (train it
// as it is); a zoo model re-imported for training; UNSUPPORTED for a package imported for
// inference (its BatchNormalizations are folded into the convolutions). Blocking (imports).
Result<std::optional<HostModel>> training_import(const std::string& name,
                                                 const ModelSource& source,
                                                 const pipeswitch::psm::Manifest& registered);

// The ModelInfo of a manifest registered as `name` from `source_label`: inputs and outputs
// with dtypes and shapes, native batch (dim 0 of the first input; every input and output must
// have it), the integer inputs' value bounds (the table size of a Gather that reads them),
// parameter count. Errors (INVALID_ARGUMENT / UNSUPPORTED) for a model without inputs or
// outputs, a scalar input or output, or inputs whose first dimensions disagree.
Result<ModelInfo> describe_model(const std::string& name, const std::string& source_label,
                                 const pipeswitch::psm::Manifest& manifest);

}  // namespace ps::reactor
