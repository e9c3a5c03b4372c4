// The CPU executor: runs a lowered model (manifest + weight blob) layer by layer on the CPU
// reference operators. It is the oracle of the GPU executor's tests and the engine of the
// server's `--device cpu` backend. Tensors are kept by tensor index (no activation arena, so
// layers the arena lets alias their input, such as Reshape, need no care) and each activation
// is freed after its last use. Single-threaded; safe to call concurrently on different inputs
// (it only reads the manifest and the weights).
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>

#include "common/status.h"
#include "models/cpu/tensor.h"
#include "onnx_loader/psm.pb.h"

namespace ps::models::cpu {

// Runs the layers of `manifest` in order on the CPU.
// Precondition: the manifest was validated (Package::open or the importer made it).
// - weights: the weight blob (manifest.weights_bytes() bytes); WEIGHT tensors borrow their bytes
//   from it at weight_offset, so it must outlive the call (read only; an offset the blob is
//   too small for is an error).
// - inputs: one tensor per INPUT tensor, by name, with the manifest's dtype and shape
//   (borrowed for the call). A missing, extra or mismatched input is an error.
// Returns the OUTPUT tensors by name, owned by the caller, or an error naming the layer (index,
// op and name) that failed or the tensor that is wrong.
Result<std::map<std::string, Tensor>> run_model(
    const pipeswitch::psm::Manifest& manifest, std::span<const uint8_t> weights,
    const std::map<std::string, const Tensor*>& inputs);

}  // namespace ps::models::cpu
