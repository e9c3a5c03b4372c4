#include "onnx_loader/passes/fuse_gelu.h"

#include <cmath>

#include "onnx_loader/passes/pattern.h"

namespace ps::onnx_loader::passes {
namespace {

constexpr double kSqrt2 = 1.4142135623730951;

// True when `value` is a scalar constant close to `expected`.
bool is_scalar(const Graph& graph, int value, double expected) {
  const std::optional<double> scalar = scalar_constant(graph, value);
  return scalar && approx_equal(*scalar, expected);
}

// The live Mul node among `node`'s single-output binary form, or nullptr.
const Node* as_binary(const Graph& graph, int index, const char* op) {
  if (index < 0) return nullptr;
  const Node& node = graph.nodes[index];
  if (node.dead || node.op != op || node.inputs.size() != 2 || node.outputs.size() != 1) {
    return nullptr;
  }
  return &node;
}

// If `scaled` (Erf's input) is x / sqrt(2) computed by one node that Erf alone reads, returns
// x; otherwise -1.
int gelu_input(const Graph& graph, int scale_index) {
  if (const Node* div = as_binary(graph, scale_index, "Div")) {
    return is_scalar(graph, div->inputs[1], kSqrt2) ? div->inputs[0] : -1;
  }
  if (const Node* mul = as_binary(graph, scale_index, "Mul")) {
    if (is_scalar(graph, mul->inputs[1], 1.0 / kSqrt2)) return mul->inputs[0];
    if (is_scalar(graph, mul->inputs[0], 1.0 / kSqrt2)) return mul->inputs[1];
  }
  return -1;
}

bool try_fuse(Graph& graph, int erf_index) {
  const Node& erf = graph.nodes[erf_index];
  if (erf.inputs.size() != 1 || erf.outputs.size() != 1) return false;
  const int scale_index = live_producer(graph, erf.inputs[0]);
  if (scale_index < 0 || sole_consumer(graph, erf.inputs[0]) != erf_index) return false;
  const int x = gelu_input(graph, scale_index);
  if (x < 0 || constant_of(graph, x) != nullptr) return false;

  const int e = erf.outputs[0];
  const int add_index = sole_consumer(graph, e);
  const Node* add = as_binary(graph, add_index, "Add");
  if (add == nullptr || !is_scalar(graph, other_input(*add, e), 1.0)) return false;
  const int p = add->outputs[0];

  const int first_index = sole_consumer(graph, p);
  const Node* first = as_binary(graph, first_index, "Mul");
  if (first == nullptr) return false;
  const int partner = other_input(*first, p);
  const int first_out = first->outputs[0];

  int half_index = -1;  // Mul(x, 0.5) of the third form
  int final_index = -1;
  if (partner == x) {  // Mul(Mul(x, p), 0.5)
    final_index = sole_consumer(graph, first_out);
    const Node* last = as_binary(graph, final_index, "Mul");
    if (last == nullptr || !is_scalar(graph, other_input(*last, first_out), 0.5)) return false;
  } else if (is_scalar(graph, partner, 0.5)) {  // Mul(x, Mul(p, 0.5))
    final_index = sole_consumer(graph, first_out);
    const Node* last = as_binary(graph, final_index, "Mul");
    if (last == nullptr || other_input(*last, first_out) != x) return false;
  } else {  // Mul(Mul(x, 0.5), p)
    half_index = live_producer(graph, partner);
    const Node* half = as_binary(graph, half_index, "Mul");
    if (half == nullptr || sole_consumer(graph, partner) != first_index) return false;
    if (other_input(*half, x) == x || !is_scalar(graph, other_input(*half, x), 0.5)) return false;
    final_index = first_index;
  }

  Node gelu;
  gelu.op = "Gelu";
  gelu.name = fused_node_name(graph.nodes[scale_index].name, "Gelu");
  gelu.inputs = {x};
  gelu.outputs = graph.nodes[final_index].outputs;
  gelu.attrs["approximate"] = Attribute{std::string("none")};
  replace_nodes(graph, {scale_index, erf_index, add_index, first_index, half_index, final_index},
                final_index, std::move(gelu));
  return true;
}

}  // namespace

Result<int> fuse_gelu(Graph& graph) { return fuse_each(graph, "Erf", try_fuse); }

}  // namespace ps::onnx_loader::passes
