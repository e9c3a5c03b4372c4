// Inference pass: the residual Add before a LayerNormalization -> one "AddLayerNormalization"
// node that normalises A + B as it reads them. A transformer sub-layer ends with
// LayerNorm(sublayer(x) + x): the sum ([8, 251, 768], 6 MB for BERT-base at batch 8) is written
// by one kernel only to be read by the next.
#pragma once

#include "common/status.h"
#include "onnx_loader/graph.h"

namespace ps::onnx_loader::passes {

// For every live LayerNormalization(X, Scale[, B]) with one output whose X comes from a live
// Add(A, B) that is X's only reader, where A and B are float32 of X's static shape (no
// broadcast) and X is not a graph output: replaces both with AddLayerNormalization(A, B, Scale
// [, B]) and the LayerNormalization's attributes, at its place in the order. Returns the number
// of fusions.
Result<int> fuse_add_layernorm(Graph& graph);

}  // namespace ps::onnx_loader::passes
