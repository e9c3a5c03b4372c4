// Cleanup passes on the graph IR: Identity and inference-mode Dropout removal, dead code
// elimination, and classifying constants as weights.
#pragma once

#include "common/status.h"
#include "onnx_loader/graph.h"

namespace ps::onnx_loader {

// Removes Identity nodes and Dropout nodes that are inference-mode (no training_mode input,
// or a constant false one) by wiring their consumers to their input. Graph output names are
// kept: when the removed node's output is a graph output, its producer writes the output
// directly instead. A node whose input is itself a graph input or output stays, as an
// Identity. A used Dropout mask becomes a constant all-true tensor (needs its shape known).
// Marks removed nodes dead; stores how many in *removed when given.
Status remove_identity_and_dropout(Graph& graph, int* removed = nullptr);

// Marks dead every node none of whose outputs reaches a graph output, then compacts the graph
// (Graph::compact: node and value indices change).
Status eliminate_dead_code(Graph& graph);

// Sets Value::is_weight for every constant: true when a live node reads it as data (not as a
// shape, axes or bounds input, see SupportedOp::static_inputs) or it is a graph output, so it
// must be uploaded with the weights; false for constants that only parameterise nodes.
void mark_weights(Graph& graph);

}  // namespace ps::onnx_loader
