// libFuzzer target: the ONNX importer (onnx_loader/) on arbitrary bytes parsed as a ModelProto,
// with our own shape inference, folding and passes, then lowering to a manifest. libonnx's own
// checker is off (not our code, and it is cross-checked on real models by the tests).
// Invariants: no crash, no leak, no hang; a tensor cap keeps memory bounded.
#include <onnx/onnx_pb.h>

#include "onnx_loader/lower.h"
#include "onnx_loader/onnx_import.h"
#include "onnx_loader/pipeline.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  onnx::ModelProto model;
  if (!model.ParseFromArray(data, static_cast<int>(size))) return 0;
  ps::onnx_loader::ImportOptions options;
  options.max_tensor_bytes = 16u << 20;
  options.libonnx_checks = false;
  options.dims = {{"batch", 2}, {"seq", 8}};
  options.base_dir = "/nonexistent/ps-fuzz";  // external data never reads real files
  auto graph = ps::onnx_loader::import_onnx_model(model, options);
  if (!graph.ok()) return 0;
  const auto mode = size % 2 ? ps::onnx_loader::Mode::kInference : ps::onnx_loader::Mode::kTraining;
  if (!ps::onnx_loader::run_passes(*graph, mode).ok()) return 0;
  ps::onnx_loader::LowerOptions lower_options;
  auto lowered = ps::onnx_loader::lower(*graph, lower_options);
  (void)lowered;
  return 0;
}
