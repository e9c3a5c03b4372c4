// Shape inference on the graph IR: gives every value a dtype and a static shape.
//
// Our own per-op shape functions are the authority, not libonnx's InferShapes, because:
//  - libonnx 1.12 knows opsets up to 17, and we must import opset 18 exports too;
//  - we need fully static shapes everywhere (for fused ops, memory planning and cuDNN/cuBLAS
//    plans), which means seeing through the shape arithmetic PyTorch emits (Shape -> Gather ->
//    Concat -> Reshape); we evaluate that arithmetic with the constant evaluator as we go;
//  - passes re-run inference on our IR, which libonnx cannot read.
// libonnx still checks the model (checker and its own shape inference as a cross-check) at
// import where the model's opset and IR version are within what it knows; see
// onnx_validation.h.
#pragma once

#include <span>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "onnx_loader/graph.h"
#include "onnx_loader/op_context.h"

namespace ps::onnx_loader {

// True when we have a shape function for this default-domain op type (every op in
// supported_ops() has one).
bool has_shape_function(std::string_view op_type);

// The dtype and shape of each output of ctx.node(), computed from its inputs (their types,
// and their values where known). Preconditions: every present input has a dtype and shape.
// Returns one OutputType per node output, or an InvalidArgument error naming the node and the
// offending inputs (shapes that do not broadcast, wrong ranks, non-constant target shapes...).
Result<std::vector<OutputType>> infer_node_types(const OpContext& ctx);

// Runs over the live nodes of `graph` in order and sets dtype and shape of every value they
// produce. Graph inputs must already have both; constants get theirs from their data. Small
// shape arithmetic is evaluated on the side (without changing the graph) so that Reshape,
// Expand, Slice... targets computed from Shape are known. Nodes with no shape function (fused
// ops made by passes) keep the types their outputs already have, or fail. Every tensor must fit
// in `max_tensor_bytes`. Returns the first error, naming the node.
Status infer_shapes(Graph& graph, uint64_t max_tensor_bytes);
Status infer_shapes(Graph& graph);  // with kDefaultMaxTensorBytes (4 GiB)

}  // namespace ps::onnx_loader
