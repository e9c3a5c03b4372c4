// The importer's graph IR: what an ONNX model becomes before passes, planning and packaging.
//
// Values are edges (tensors), nodes are operators; both live in vectors and refer to each other
// by index, so passes can rewrite the graph without pointer juggling. A pass marks nodes dead
// instead of erasing them; Graph::compact() drops dead nodes and unused values and renumbers.
// Every value's dtype and static shape are known after shape inference (import fixes the
// symbolic dimensions from the command line: batch, sequence length).
//
// Knows nothing of CUDA (import and its tests run anywhere).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "common/dtype.h"
#include "common/shape.h"
#include "common/status.h"

namespace ps::onnx_loader {

// The project-wide element type (common/dtype.h), under its old names here.
using ::ps::DType;
using ::ps::dtype_name;
using ::ps::dtype_size;

// Shapes and their helpers (common/shape.h).
using ::ps::element_count;
using ::ps::Shape;
using ::ps::shape_string;

// A constant tensor on the host: an initializer, a Constant node's value or a folded result.
// Bytes are little-endian and densely packed in row-major order.
struct TensorData {
  DType dtype = DType::kUndefined;
  Shape shape;
  std::vector<uint8_t> bytes;

  int64_t elements() const { return element_count(shape); }
  template <typename T>
  std::span<const T> as() const {
    return {reinterpret_cast<const T*>(bytes.data()), bytes.size() / sizeof(T)};
  }
  template <typename T>
  std::span<T> as_mutable() {
    return {reinterpret_cast<T*>(bytes.data()), bytes.size() / sizeof(T)};
  }
};
using ConstTensor = std::shared_ptr<const TensorData>;

// An edge of the graph.
struct Value {
  std::string name;
  DType dtype = DType::kUndefined;
  std::optional<Shape> shape;  // known after shape inference
  ConstTensor constant;        // non-null when the value is known at import time
  // True for initializers that are model parameters or buffers (they go to the weight blob);
  // false for small constants that only feed shape arithmetic or attributes.
  bool is_weight = false;
  // True for a constant the graph makes itself: a Constant node's value, or one constant
  // folding computed from such values and shapes alone (HF's attention mask, built from a
  // literal tensor of ones). It goes to the weight blob when read as data, like is_weight
  // constants, but is never a model parameter: only initializers (and what folding or the
  // passes derive from them) are. PyTorch's exporters store every parameter and buffer as an
  // initializer, and Constant nodes for tensors the forward pass creates.
  bool literal = false;
  int producer = -1;           // index of the producing node, -1 for inputs and constants
};

struct Attribute {
  using Value = std::variant<int64_t, float, std::string, std::vector<int64_t>,
                             std::vector<float>, ConstTensor>;
  Value value;
};

struct Node {
  std::string op;                    // ONNX op_type, or one of ours after fusion
  std::string name;                  // the ONNX node name (or made from fused nodes)
  std::vector<int> inputs;           // value indices; -1 for an omitted optional input
  std::vector<int> outputs;          // value indices (never -1: import drops trailing omitted
                                     // optional outputs and names the ones in between)
  std::map<std::string, Attribute> attrs;
  std::vector<int> onnx_nodes;       // indices of the ONNX nodes this node came from
  bool dead = false;
  std::string domain;                // ONNX operator domain; "" is the default (ai.onnx)

  // Attribute accessors with defaults; a wrong-typed attribute returns the default.
  int64_t attr_int(const std::string& key, int64_t fallback) const;
  float attr_float(const std::string& key, float fallback) const;
  std::string attr_string(const std::string& key, const std::string& fallback) const;
  std::vector<int64_t> attr_ints(const std::string& key,
                                 const std::vector<int64_t>& fallback = {}) const;
  bool has_attr(const std::string& key) const { return attrs.count(key) != 0; }
};

class Graph {
 public:
  std::string name;
  int64_t opset = 0;                 // default-domain opset the model was exported with
  std::vector<Value> values;
  std::vector<Node> nodes;           // kept in a valid topological order
  std::vector<int> inputs;           // value indices of the runtime inputs
  std::vector<int> outputs;          // value indices of the outputs
  std::map<std::string, int64_t> dims;  // symbolic dims fixed at import ("batch" -> 8)

  int add_value(Value value);
  // Appends a node and sets the producer of its outputs. Returns its index.
  int add_node(Node node);

  // Indices of live nodes that read `value`.
  std::vector<int> consumers(int value) const;
  // True when `value` is a graph output.
  bool is_output(int value) const;
  // Value index by name, or -1.
  int find_value(const std::string& name) const;

  // Replaces every use of `from` (node inputs and graph outputs) by `to`.
  void replace_uses(int from, int to);

  // Drops dead nodes and values nothing refers to, renumbering indices; keeps order.
  void compact();

  // Reorders the nodes so that each live node follows the producers of its inputs, moving a
  // node only as far up as a reader needs it (stable: an order that was valid stays as it
  // is). For passes that append nodes whose outputs earlier nodes read. Errors: a cycle.
  Status sort_topologically();

  // Checks the invariants: indices in range, each value produced once, topological order,
  // inputs/outputs present. Returns the first broken one.
  Status validate() const;
};

// "node 12 'Reshape_5' (Reshape)" for error messages: the ONNX node index when the node came
// from one ONNX node, else "IR node N". Precondition: 0 <= node < graph.nodes.size().
std::string describe_node(const Graph& graph, int node);

}  // namespace ps::onnx_loader
