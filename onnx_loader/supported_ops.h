// The one list of ONNX operators we accept: which the executor runs, which the importer only
// folds away, for which opsets, and which inputs must be known at import time.
//
// Import checks every node against it before doing anything else and reports all unsupported
// nodes in one error. The executor implements exactly the kExecuted entries (plus the fused ops
// the passes create, which never come from ONNX and so are not listed here).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "common/status.h"
#include "onnx_loader/graph.h"

namespace ps::onnx_loader {

// The newest default-domain opset whose operator semantics we implement. libonnx 1.12 knows
// opsets up to 17; our own shape inference and folding cover 18 as well.
inline constexpr int64_t kMaxSupportedOpset = 18;
// The oldest one. Each op's own range (SupportedOp::min_opset) says where the semantics we
// implement begin; a model at an older opset is accepted when all its ops are in range.
inline constexpr int64_t kMinSupportedOpset = 1;

enum class OpKind : uint8_t {
  kExecuted,        // the executor runs it (CPU reference and GPU)
  kFoldedAtImport,  // only accepted when import can evaluate or remove it (constant inputs,
                    // shape arithmetic, Identity/Dropout); never reaches the executor
};

struct SupportedOp {
  std::string_view domain;  // "" is the default domain, ai.onnx
  std::string_view op_type;
  int64_t min_opset;  // model opset range (of the op's domain) whose semantics we handle
  int64_t max_opset;
  OpKind kind;
  // Bit i set: input i, when present, must be a constant known at import time (a target
  // shape, axes, slice bounds, clip limits) for the executor to plan the node.
  uint32_t static_inputs = 0;
};

// Every supported operator, sorted by op_type.
std::span<const SupportedOp> supported_ops();

// The entry for `op_type` in `domain` ("ai.onnx" counts as "") at model opset `opset`, or
// nullptr when we do not support it there.
const SupportedOp* find_supported_op(std::string_view domain, std::string_view op_type,
                                     int64_t opset);

// Checks every live node of `graph` against the list at graph.opset. Returns OK, or one
// Unsupported error that lists every unsupported node with its ONNX node index, name, op type
// (and domain and opset), one per line.
Status check_supported(const Graph& graph);

// After folding and cleanup: checks that no kFoldedAtImport node is left and that every
// static input of a kExecuted node is a constant. Lists every offending node in one error.
// Nodes whose op is not in the list (fused ops made by passes) are skipped.
Status check_executable(const Graph& graph);

}  // namespace ps::onnx_loader
