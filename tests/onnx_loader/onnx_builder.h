// Builds small ONNX ModelProtos by hand for the import tests.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <variant>
#include <vector>

namespace ps::onnx_loader::testing {

// A dimension: a size, or a symbolic name ("" for an unnamed one).
using Dim = std::variant<int64_t, std::string>;

inline onnx::AttributeProto attr(const std::string& name, int64_t value) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::INT);
  a.set_i(value);
  return a;
}
inline onnx::AttributeProto attr(const std::string& name, float value) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::FLOAT);
  a.set_f(value);
  return a;
}
inline onnx::AttributeProto attr(const std::string& name, const char* value) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::STRING);
  a.set_s(value);
  return a;
}
inline onnx::AttributeProto attr(const std::string& name, std::vector<int64_t> values) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::INTS);
  for (int64_t v : values) a.add_ints(v);
  return a;
}
inline onnx::AttributeProto attr(const std::string& name, const onnx::TensorProto& value) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::TENSOR);
  *a.mutable_t() = value;
  return a;
}

// Tensors with raw_data.
template <typename T>
onnx::TensorProto tensor(const std::string& name, int32_t type, std::vector<int64_t> dims,
                         const std::vector<T>& values) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(type);
  for (int64_t d : dims) t.add_dims(d);
  t.set_raw_data(values.data(), values.size() * sizeof(T));
  return t;
}
inline onnx::TensorProto floats(const std::string& name, std::vector<int64_t> dims,
                                const std::vector<float>& values) {
  return tensor(name, onnx::TensorProto::FLOAT, std::move(dims), values);
}
inline onnx::TensorProto int64s(const std::string& name, std::vector<int64_t> dims,
                                const std::vector<int64_t>& values) {
  return tensor(name, onnx::TensorProto::INT64, std::move(dims), values);
}
// A float tensor of the given shape filled with `value`.
inline onnx::TensorProto filled(const std::string& name, std::vector<int64_t> dims, float value) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return floats(name, std::move(dims), std::vector<float>(n, value));
}

class ModelBuilder {
 public:
  explicit ModelBuilder(int64_t opset = 13, int64_t ir_version = 8) {
    model_.set_ir_version(ir_version);
    model_.set_producer_name("pipeswitch-tests");
    auto* import = model_.add_opset_import();
    import->set_domain("");
    import->set_version(opset);
    model_.mutable_graph()->set_name("test_graph");
  }

  ModelBuilder& input(const std::string& name, int32_t type, std::vector<Dim> dims) {
    fill_value_info(graph()->add_input(), name, type, &dims);
    return *this;
  }
  // An output; type 0 and no dims declares only the name.
  ModelBuilder& output(const std::string& name, int32_t type = 0, std::vector<Dim> dims = {},
                       bool with_shape = false) {
    fill_value_info(graph()->add_output(), name, type, with_shape ? &dims : nullptr);
    return *this;
  }
  ModelBuilder& initializer(const onnx::TensorProto& t) {
    *graph()->add_initializer() = t;
    return *this;
  }
  ModelBuilder& node(const std::string& op, std::vector<std::string> inputs,
                     std::vector<std::string> outputs, std::vector<onnx::AttributeProto> attrs = {},
                     std::string name = "") {
    onnx::NodeProto* n = graph()->add_node();
    n->set_op_type(op);
    n->set_name(name.empty() ? op + "_" + std::to_string(graph()->node_size() - 1) : name);
    for (auto& i : inputs) n->add_input(i);
    for (auto& o : outputs) n->add_output(o);
    for (auto& a : attrs) *n->add_attribute() = a;
    return *this;
  }
  ModelBuilder& constant(const std::string& output, const onnx::TensorProto& value) {
    return node("Constant", {}, {output}, {attr("value", value)});
  }

  onnx::GraphProto* graph() { return model_.mutable_graph(); }
  onnx::ModelProto& model() { return model_; }
  const onnx::ModelProto& build() const { return model_; }

 private:
  static void fill_value_info(onnx::ValueInfoProto* info, const std::string& name, int32_t type,
                              const std::vector<Dim>* dims) {
    info->set_name(name);
    if (type == 0) return;
    auto* tensor_type = info->mutable_type()->mutable_tensor_type();
    tensor_type->set_elem_type(type);
    if (dims == nullptr) return;
    auto* shape = tensor_type->mutable_shape();
    for (const Dim& d : *dims) {
      auto* dim = shape->add_dim();
      if (const auto* size = std::get_if<int64_t>(&d)) {
        dim->set_dim_value(*size);
      } else if (!std::get<std::string>(d).empty()) {
        dim->set_dim_param(std::get<std::string>(d));
      }
    }
  }

  onnx::ModelProto model_;
};

}  // namespace ps::onnx_loader::testing
