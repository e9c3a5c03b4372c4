// GraphBuilder: writes an ONNX graph the way PyTorch's exporter names things.
//
// The zoo's builders describe a network as its PyTorch modules call each other; the builder
// turns that into exporter-style names so the importer sees what it sees in real exports:
//   - node names are the module scope path plus the op type, made unique with "_1", "_2"...:
//     "/layer1/layer1.0/conv1/Conv", "/encoder/layer.3/attention/self/Reshape_2";
//   - a module called twice in one parent gets "_1" on its scope: ".../relu_1/Relu";
//   - node outputs are "<node name>_output_<k>";
//   - parameters are initialisers named by their state_dict key ("layer1.0.conv1.weight");
//     weights the exporter transposes for MatMul get its anonymous names ("onnx::MatMul_7"),
//     with the source parameter in the initialiser's doc_string.
// Weights are generated as they are added (raw_data, little-endian float32) from a stream
// seeded by (model seed, parameter name), unless the builder only counts (materialize false).
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <onnx/onnx_pb.h>

namespace ps::zoo {

// How an initialiser's values are drawn.
struct Init {
  enum class Kind : uint8_t { kConstant, kNormal, kTruncatedNormal, kUniform };
  Kind kind = Kind::kConstant;
  double a = 0.0;  // constant: the value; normal: mean; truncated: stddev; uniform: lo
  double b = 0.0;  // normal: stddev; truncated: bound in stddevs; uniform: hi

  static Init constant(double value) { return {Kind::kConstant, value, 0.0}; }
  static Init normal(double mean, double stddev) { return {Kind::kNormal, mean, stddev}; }
  static Init truncated_normal(double stddev, double bound_stddevs) {
    return {Kind::kTruncatedNormal, stddev, bound_stddevs};
  }
  static Init uniform(double lo, double hi) { return {Kind::kUniform, lo, hi}; }
};

// A dimension of a graph input or output: a fixed size or a symbolic name ("batch").
struct Dim {
  Dim(int64_t v) : value(v) {}             // NOLINT(google-explicit-constructor)
  Dim(const char* p) : param(p) {}         // NOLINT(google-explicit-constructor)
  int64_t value = -1;
  std::string param;
};

onnx::AttributeProto attr_int(const std::string& name, int64_t value);
onnx::AttributeProto attr_ints(const std::string& name, std::vector<int64_t> values);
onnx::AttributeProto attr_float(const std::string& name, float value);

class GraphBuilder {
 public:
  // graph: filled by the builder; not owned, must outlive it. seed: the model seed.
  // materialize: generate weight bytes; when false, initialisers get dims and no data (the
  // graph is then only good for counting parameters).
  GraphBuilder(onnx::GraphProto* graph, uint64_t seed, bool materialize);
  GraphBuilder(const GraphBuilder&) = delete;
  GraphBuilder& operator=(const GraphBuilder&) = delete;

  // A module scope, left when the Scope is destroyed. Scopes nest strictly (LIFO).
  class [[nodiscard]] Scope {
   public:
    explicit Scope(GraphBuilder* builder) : builder_(builder) {}
    Scope(Scope&& other) noexcept : builder_(other.builder_) { other.builder_ = nullptr; }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;
    Scope& operator=(Scope&&) = delete;
    ~Scope();

   private:
    GraphBuilder* builder_;
  };
  // Enters the submodule `attr` of the current module (its forward is called).
  Scope module(std::string_view attr);
  // Enters child `index` of the current module, an nn.Sequential ("layer1" -> "layer1.0").
  Scope sequential_item(int index);
  // Enters child `index` of the nn.ModuleList attribute `list_attr` of the current module
  // (the list itself is never called, so it is no scope: "encoder" -> "layer.3").
  Scope list_item(std::string_view list_attr, int index);

  // The state_dict key of `leaf` in the current module: "layer1.0.conv1" + "." + leaf.
  std::string param_name(std::string_view leaf) const;
  // A trainable parameter "<module path>.<leaf>" with `dims`; returns its name.
  std::string param(std::string_view leaf, std::vector<int64_t> dims, Init init);
  // A float buffer that is not trained (BatchNorm running statistics); returns its name.
  std::string buffer(std::string_view leaf, std::vector<int64_t> dims, Init init);
  // An int64 buffer with the given values (e.g. position ids); returns its name.
  std::string int64_buffer(std::string_view leaf, std::vector<int64_t> dims, std::span<const int64_t> values);
  // A trainable parameter that the exporter stores under an anonymous name, as it does for
  // weights it transposes ahead of MatMul: "onnx::<op_type>_<n>". Values are drawn from the
  // stream of `source` (the state_dict key), recorded in the doc_string.
  std::string anonymous_param(std::string_view op_type, const std::string& source,
                              std::vector<int64_t> dims, Init init);
  // The float data of an initialiser added by this builder (empty when not materialised).
  std::span<float> float_data(const std::string& name);

  // Appends a node in the current scope; returns the names of its `outputs` outputs.
  std::vector<std::string> node(std::string_view op_type, std::vector<std::string> inputs, int outputs,
                                std::vector<onnx::AttributeProto> attrs = {});
  // Appends a single-output node; returns its output name.
  std::string op(std::string_view op_type, std::vector<std::string> inputs,
                 std::vector<onnx::AttributeProto> attrs = {});
  // Constant nodes in the current scope (as the exporter emits them for literals).
  std::string constant_float(float value);                // a float32 scalar
  std::string constant_int64(int64_t value);              // an int64 scalar
  std::string constant_int64s(std::vector<int64_t> values);  // a 1-D int64 tensor

  void add_input(const std::string& name, onnx::TensorProto::DataType type, const std::vector<Dim>& dims);
  void add_output(const std::string& name, onnx::TensorProto::DataType type, const std::vector<Dim>& dims);
  // Records the shape of an intermediate value in value_info, as the exporter does for shapes
  // its own inference knows (libonnx cannot always derive them, e.g. after a Slice whose ends
  // are computed from an input's shape).
  void add_value_info(const std::string& name, onnx::TensorProto::DataType type, const std::vector<Dim>& dims);
  // Renames a value everywhere it is produced or consumed (the exporter's output_names).
  void rename_value(const std::string& from, const std::string& to);

  // Sum of the element counts of trainable parameters added so far.
  int64_t trainable_parameters() const { return trainable_parameters_; }

 private:
  struct Frame {
    std::string scope;         // "/layer1/layer1.0": the node-name prefix
    std::string param_prefix;  // "layer1.0": the state_dict prefix
    std::string segment;       // this frame's segment without its "_k" call suffix
  };
  Scope enter(std::string segment, std::string param_prefix);
  void leave();
  onnx::TensorProto* add_float_initializer(const std::string& name, std::string_view stream,
                                           std::vector<int64_t> dims, Init init);
  std::string unique_node_name(std::string_view op_type);

  onnx::GraphProto* graph_;
  uint64_t seed_;
  bool materialize_;
  std::vector<Frame> frames_;
  std::map<std::string, int> scope_calls_;  // full scope path -> times entered
  std::map<std::string, int> node_names_;   // base node name -> times used
  std::map<std::string, int> initializer_index_;
  int anonymous_count_ = 0;
  int64_t trainable_parameters_ = 0;
};

}  // namespace ps::zoo
