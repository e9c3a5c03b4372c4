// Constant folding on the graph IR: evaluates at import time every node whose inputs are known
// (constants, or only the static shapes of its inputs for Shape/Size), including the shape
// arithmetic PyTorch exports emit, and turns its outputs into constants.
#pragma once

#include "common/status.h"
#include "onnx_loader/graph.h"

namespace ps::onnx_loader {

// A node the executor could run is folded only when its result is no bigger than this or than
// its inputs together: folding must not swell the weights (an Expand of a scalar into a large
// tensor stays a node). Ops that exist only at import time are always folded.
inline constexpr uint64_t kMaxFoldGrowthBytes = 16ull << 20;

// Folds, in one pass in node order, every live node that the evaluator handles and whose
// inputs are all constants (Shape and Size: whose input has a static shape). Its outputs
// become constants (producer -1) and the node is marked dead; call eliminate_dead_code() or
// Graph::compact() afterwards to drop what is no longer used, and mark_weights() to classify
// the new constants. An output is a literal (Value::literal) when every input whose data the
// node read was one: what the graph computes from its own Constant nodes and shapes is never a
// parameter. Preconditions: graph inputs have static shapes (infer_shapes has run, so
// Shape of intermediate values can fold too). Stores the number of folded nodes in *folded
// when given. Returns an error naming the node when an evaluation fails for a reason other
// than "not a constant" (an index out of range, an integer division by zero).
Status fold_constants(Graph& graph, int* folded = nullptr);

}  // namespace ps::onnx_loader
