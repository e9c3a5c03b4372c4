// Small helpers the fusion passes share to match patterns defensively: who produces and who
// reads a value, scalar constants, and how a fused node takes the place of the nodes it replaces.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "onnx_loader/graph.h"

namespace ps::onnx_loader::passes {

// The live node that produces `value`, or -1 (graph input, constant, dead producer, -1 value).
int live_producer(const Graph& graph, int value);

// The one live node that reads `value` when exactly one node reads it (reading it twice counts
// once) and `value` is not a graph output; -1 otherwise. Fusing away a value is only safe then.
int sole_consumer(const Graph& graph, int value);

// The constant behind `value`, or nullptr when it is not known at import time.
const TensorData* constant_of(const Graph& graph, int value);

// The value of a constant holding exactly one element of a float or integer dtype (any shape
// whose dims are all 1, so [] and [1] both qualify); nullopt otherwise.
std::optional<double> scalar_constant(const Graph& graph, int value);

// |a - b| <= tolerance * max(1, |b|).
bool approx_equal(double a, double b, double tolerance = 1e-5);

// For a node with exactly two inputs of which one is `value`: the other input. -1 when the
// node does not read `value` in either slot or has a different arity. When both slots hold
// `value`, returns `value`.
int other_input(const Node& node, int value);

// Node attribute `name` when it is an integer: true and *out set; false (out untouched) when
// it is absent or of another type.
bool int_attr(const Node& node, const char* name, int64_t* out);

// The static shape of `value` (from shape inference, or from its constant), or nullopt.
std::optional<Shape> static_shape(const Graph& graph, int value);

// Name for a node fused from others: the primary node's scope with `op` as the last component
// ("/layer1/layer1.0/conv1/Conv_3" + "FusedConv" -> "/layer1/layer1.0/conv1/FusedConv_3"),
// so the block a layer came from can still be read from its name. Unscoped names stay
// unscoped ("Conv_3" -> "FusedConv_3", "conv" -> "conv_FusedConv").
std::string fused_node_name(const std::string& primary_name, const std::string& op);

// The ONNX node indices of `nodes` (graph node indices; -1 skipped), merged and sorted.
std::vector<int> merged_onnx_nodes(const Graph& graph, std::initializer_list<int> nodes);

// A fusion's last step: `fused` takes the place of the nodes `replaced` (graph node indices, -1
// skipped, `slot` among them). Its onnx_nodes become theirs merged, every replaced node but
// `slot` dies, and `fused` sits at `slot` as the producer of its outputs. Precondition: every
// input of `fused` is available before `slot` in the order (slot is the last of the pattern).
void replace_nodes(Graph& graph, std::initializer_list<int> replaced, int slot, Node fused);

// The passes' driver: calls try_fuse(graph, index) for every live node of op `op`, in order
// (nodes appended meanwhile included); returns how many calls returned true.
int fuse_each(Graph& graph, std::string_view op, bool (*try_fuse)(Graph&, int));

// Adds a new constant value holding `data`, named `name` or, when a value has that name
// already, `name`_1, `name`_2... (manifest tensor names stay unique). Returns its index.
int add_constant(Graph& graph, const std::string& name, TensorData data, bool is_weight);

}  // namespace ps::onnx_loader::passes
