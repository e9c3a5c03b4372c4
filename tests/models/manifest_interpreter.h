// A test-only CPU interpreter of a lowered model (manifest + weight blob), built on the CPU
// reference operators. It keeps every tensor in a map by tensor index (no activation arena),
// so layers that may alias their input in the arena (Reshape, Flatten, ...) need no care here.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>

#include "common/status.h"
#include "models/cpu/tensor.h"
#include "onnx_loader/psm.pb.h"

namespace ps::models::testing {

// Runs the layers of `manifest` in order on the CPU.
// - weights: the weight blob (manifest.weights_bytes() bytes); WEIGHT tensors borrow their bytes
//   from it at weight_offset, so it must outlive the call (read only; an offset the blob is
//   too small for is an error).
// - inputs: one tensor per INPUT tensor, by name, with the manifest's dtype and shape
//   (borrowed for the call). A missing, extra or mismatched input is an error.
// Returns the OUTPUT tensors by name, owned by the caller, or an error naming the layer (index,
// op and name) that failed or the tensor that is wrong.
Result<std::map<std::string, cpu::Tensor>> run_manifest(
    const pipeswitch::psm::Manifest& manifest, std::span<const uint8_t> weights,
    const std::map<std::string, const cpu::Tensor*>& inputs);

}  // namespace ps::models::testing
