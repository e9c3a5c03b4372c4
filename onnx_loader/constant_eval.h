// A small CPU evaluator for the ops that appear in shape arithmetic and on constants (Shape,
// Gather, Concat, Slice, Cast, Range, Where, Expand, elementwise arithmetic and comparisons,
// reductions...), used by constant folding and, for small tensors, by shape inference.
// Not the executor's CPU reference: no Conv, MatMul, pooling or normalisation here.
#pragma once

#include <span>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "onnx_loader/graph.h"
#include "onnx_loader/op_context.h"

namespace ps::onnx_loader {

// True when evaluate_node handles this default-domain op type.
bool can_evaluate(std::string_view op_type);

// True for ops whose outputs depend only on their inputs' shapes (Shape, Size).
bool needs_only_shapes(std::string_view op_type);

// Computes the outputs of ctx.node(). Preconditions: can_evaluate(op); every present input has
// its value in InputInfo::constant (for Shape and Size only its shape is needed); `outputs`
// are the node's types from infer_node_types. Returns one TensorData per output, or an error
// naming the node (an index out of range, an integer division by zero, ...).
Result<std::vector<TensorData>> evaluate_node(const OpContext& ctx,
                                              std::span<const OutputType> outputs);

}  // namespace ps::onnx_loader
