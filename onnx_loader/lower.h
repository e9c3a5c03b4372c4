// Lowering: a graph after passes (all shapes static) -> the .psm manifest and its weight blob.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "onnx_loader/graph.h"
#include "onnx_loader/grouping.h"
#include "onnx_loader/memory_plan.h"
#include "onnx_loader/pipeline.h"
#include "onnx_loader/psm.pb.h"

namespace ps::onnx_loader {

// The manifest format version this lowering writes.
inline constexpr uint32_t kManifestFormatVersion = 1;

struct LowerOptions {
  Mode mode = Mode::kInference;
  GroupingMode grouping = GroupingMode::kPerLayer;
  std::string model_name;
  std::string producer;             // "psimport 0.1.0 from resnet152.onnx (pytorch 2.11)"
  std::vector<std::string> passes;  // passes applied (PipelineReport::pass_names())
  uint32_t weight_alignment = 256;  // a power of two >= 256
  MemoryPlanOptions memory;
};

struct LoweredModel {
  pipeswitch::psm::Manifest manifest;
  std::vector<uint8_t> weights;  // the weight blob; manifest.weights_bytes() == weights.size()
};

// Lowers `graph` (read only). Layers are the live nodes in order. Every constant a layer reads
// is a WEIGHT tensor: its bytes go to the blob in order of first use, each at an offset that
// is a multiple of weight_alignment, so each group's weights are one contiguous range (a
// weight shared with an earlier group stays in that group's range). Static inputs (a
// Reshape's shape, Slice bounds) are weights too: the executor reads them from the host blob
// when it plans the layer. trainable: Value::is_weight float constants of more than one
// element, except BatchNormalization statistics; scalars and other constants are not.
// Constants no layer reads (folded into attributes) are dropped. Activations get arena
// offsets from plan_memory.
// Errors: a value without dtype or static shape, a constant whose bytes disagree with its
// shape, an omitted optional input followed by a present one (not representable), a live
// Constant node, an attribute that has no manifest form, a bad alignment, a blocks grouping
// without scoped names. Each names the node or value.
Result<LoweredModel> lower(const Graph& graph, const LowerOptions& options);

}  // namespace ps::onnx_loader
