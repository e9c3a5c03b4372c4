#include "onnx_loader/onnx_convert.h"

#include <cstring>
#include <unordered_map>

#include "onnx_loader/supported_ops.h"
#include "onnx_loader/tensor_data.h"

namespace ps::onnx_loader {
namespace {

using onnx::AttributeProto;
using onnx::NodeProto;

std::string onnx_node_label(const NodeProto& node, int index) {
  return str_cat("node ", index, " '", node.name(), "' (", node.op_type(), ")");
}

bool is_default_domain(const std::string& domain) { return domain.empty() || domain == "ai.onnx"; }

Result<int64_t> default_opset(const onnx::ModelProto& model) {
  int64_t opset = -1;
  for (const auto& import : model.opset_import()) {
    if (!is_default_domain(import.domain())) continue;
    if (opset != -1) return corrupt("the default domain is imported twice in opset_import");
    opset = import.version();
  }
  if (opset == -1) return invalid_argument("the model imports no default-domain (ai.onnx) opset");
  if (opset > kMaxSupportedOpset) {
    return unsupported("opset ", opset, " is newer than the importer supports (",
                       kMaxSupportedOpset, ")");
  }
  if (opset < kMinSupportedOpset) {
    return unsupported("opset ", opset, " is not a valid opset version");
  }
  return opset;
}

// The size of dimension `index` of graph input `name`, from its value, its name in
// options.dims, or the batch/seq convention for the first two dimensions.
Result<int64_t> resolve_dim(const onnx::TensorShapeProto::Dimension& dim, size_t index,
                            const std::string& name, const ImportOptions& options,
                            std::map<std::string, int64_t>& resolved) {
  auto option = [&](const char* key) -> std::optional<int64_t> {
    auto it = options.dims.find(key);
    return it == options.dims.end() ? std::nullopt : std::optional<int64_t>(it->second);
  };
  if (dim.has_dim_value()) {
    const int64_t value = dim.dim_value();
    if (value < 0) return invalid_argument("graph input '", name, "': negative dimension ", value);
    if (index == 0 && option("batch") && *option("batch") != value) {
      return invalid_argument("graph input '", name, "' has a fixed batch dimension of ", value,
                              " but batch ", *option("batch"),
                              " was asked for; export the model with a dynamic batch axis");
    }
    return value;
  }
  const std::string& param = dim.has_dim_param() ? dim.dim_param() : std::string();
  std::optional<int64_t> value;
  if (!param.empty()) value = option(param.c_str());
  if (!value && index == 0) value = option("batch");
  if (!value && index == 1) value = option("seq");
  if (!value) {
    return invalid_argument("graph input '", name, "' dimension ", index, " (",
                            param.empty() ? std::string("unnamed") : "'" + param + "'",
                            ") is symbolic: give its size", param.empty() ? "" : " as ", param,
                            index == 0 ? " or as batch" : (index == 1 ? " or as seq" : ""));
  }
  if (*value < 0) return invalid_argument("dimension '", param, "' set to negative ", *value);
  if (!param.empty()) resolved[param] = *value;
  return *value;
}

Status convert_attribute(const AttributeProto& a, Node& node, const TensorReadOptions& read,
                         const std::string& label) {
  using V = Attribute::Value;
  // Required since IR version 2 (libonnx's checker insists too); guessing it from the field
  // that holds a value would accept models other tools refuse.
  if (a.type() == AttributeProto::UNDEFINED) {
    return invalid_argument(label, ": attribute '", a.name(), "' has no type");
  }
  switch (a.type()) {
    case AttributeProto::FLOAT:
      node.attrs[a.name()] = Attribute{V(std::in_place_type<float>, a.f())};
      break;
    case AttributeProto::INT:
      node.attrs[a.name()] = Attribute{V(std::in_place_type<int64_t>, a.i())};
      break;
    case AttributeProto::STRING:
      node.attrs[a.name()] = Attribute{V(std::in_place_type<std::string>, a.s())};
      break;
    case AttributeProto::FLOATS:
      node.attrs[a.name()] = Attribute{
          V(std::in_place_type<std::vector<float>>, a.floats().begin(), a.floats().end())};
      break;
    case AttributeProto::INTS:
      node.attrs[a.name()] =
          Attribute{V(std::in_place_type<std::vector<int64_t>>, a.ints().begin(), a.ints().end())};
      break;
    case AttributeProto::TENSOR: {
      auto tensor = tensor_from_onnx(a.t(), read);
      if (!tensor.ok()) {
        return tensor.status().with_context(str_cat(label, ": attribute '", a.name(), "'"));
      }
      node.attrs[a.name()] = Attribute{V(std::in_place_type<ConstTensor>,
                                         std::make_shared<const TensorData>(std::move(*tensor)))};
      break;
    }
    default:
      // Graphs, string lists, sparse tensors: no supported op uses them; an op that needs
      // them is reported by check_supported.
      break;
  }
  return Status::OK();
}

// The value of a Constant node.
Result<TensorData> constant_value(const NodeProto& node, const TensorReadOptions& read,
                                  const std::string& label) {
  if (node.attribute_size() != 1) {
    return invalid_argument(label, ": a Constant needs exactly one value attribute");
  }
  const AttributeProto& a = node.attribute(0);
  TensorData t;
  if (a.name() == "value") {
    auto tensor = tensor_from_onnx(a.t(), read);
    if (!tensor.ok()) return tensor.status().with_context(label);
    return std::move(*tensor);
  }
  if (a.name() == "value_float" || a.name() == "value_floats") {
    std::vector<float> v;
    if (a.name() == "value_float") {
      v.push_back(a.f());
    } else {
      v.assign(a.floats().begin(), a.floats().end());
      t.shape = {static_cast<int64_t>(v.size())};
    }
    t.dtype = DType::kFloat32;
    t.bytes.resize(v.size() * sizeof(float));
    copy_bytes(t.bytes.data(), v.data(), t.bytes.size());
    return t;
  }
  if (a.name() == "value_int" || a.name() == "value_ints") {
    std::vector<int64_t> v;
    if (a.name() == "value_int") {
      v.push_back(a.i());
    } else {
      v.assign(a.ints().begin(), a.ints().end());
      t.shape = {static_cast<int64_t>(v.size())};
    }
    t.dtype = DType::kInt64;
    t.bytes.resize(v.size() * sizeof(int64_t));
    copy_bytes(t.bytes.data(), v.data(), t.bytes.size());
    return t;
  }
  return unsupported(label, ": Constant attribute '", a.name(), "' is not supported");
}

// Explains why node `reader` cannot read `name` yet: a cycle, or nodes out of order.
Status ordering_error(const onnx::GraphProto& g, int reader, const std::string& name,
                      const std::unordered_map<std::string, int>& producer_of) {
  const int n = g.node_size();
  // Depth-first search over producer -> consumer edges for a cycle through any node.
  std::vector<std::vector<int>> next(n);
  for (int j = 0; j < n; ++j) {
    for (const std::string& input : g.node(j).input()) {
      auto it = producer_of.find(input);
      if (it != producer_of.end()) next[it->second].push_back(j);
    }
  }
  std::vector<int> state(n, 0), parent(n, -1);  // 0 new, 1 on the stack, 2 done
  for (int root = 0; root < n; ++root) {
    if (state[root] != 0) continue;
    std::vector<std::pair<int, size_t>> stack = {{root, 0}};
    state[root] = 1;
    while (!stack.empty()) {
      auto& [u, k] = stack.back();
      if (k == next[u].size()) {
        state[u] = 2;
        stack.pop_back();
        continue;
      }
      const int v = next[u][k++];
      if (state[v] == 1) {
        // Found: v -> ... -> u -> v; walk back from u to v along the search path.
        std::vector<int> back;
        for (int w = u; w != v; w = parent[w]) back.push_back(w);
        std::string path = onnx_node_label(g.node(v), v);
        for (auto it = back.rbegin(); it != back.rend(); ++it) {
          path += " -> " + onnx_node_label(g.node(*it), *it);
        }
        path += " -> " + onnx_node_label(g.node(v), v);
        return invalid_argument("the graph has a cycle: ", path);
      }
      if (state[v] == 0) {
        state[v] = 1;
        parent[v] = u;
        stack.push_back({v, 0});
      }
    }
  }
  const int producer = producer_of.at(name);
  return invalid_argument(onnx_node_label(g.node(reader), reader), " reads '", name, "' before ",
                          onnx_node_label(g.node(producer), producer),
                          " produces it: ONNX requires nodes in topological order");
}

}  // namespace

Result<ConvertedModel> convert_model_structure(const onnx::ModelProto& model,
                                               const ImportOptions& options) {
  if (!model.has_graph()) {
    return corrupt("the model has no graph (an empty or truncated file, or not ONNX)");
  }
  if (model.ir_version() <= 0) {
    return corrupt("the model has no ir_version (not an ONNX model?)");
  }
  ConvertedModel out;
  Graph& graph = out.graph;
  const onnx::GraphProto& g = model.graph();
  graph.name = g.name();
  PS_ASSIGN_OR_RETURN(graph.opset, default_opset(model));
  graph.dims = options.dims;

  const TensorReadOptions read{options.base_dir, options.max_tensor_bytes};
  std::unordered_map<std::string, int> value_of;         // defined so far, in order
  std::unordered_map<std::string, std::string> definer;  // for "defined twice" errors
  auto define = [&](const std::string& name, std::string by) -> Status {
    auto [it, inserted] = definer.emplace(name, by);
    if (!inserted) {
      return invalid_argument("'", name, "' is defined twice: as ", it->second, " and as ", by);
    }
    return Status::OK();
  };

  // Initializers: metadata now, data later.
  for (int i = 0; i < g.initializer_size(); ++i) {
    const onnx::TensorProto& init = g.initializer(i);
    PS_TRY(define(init.name(), "an initializer"));
    Value value;
    value.name = init.name();
    PS_ASSIGN_OR_RETURN(value.dtype,
                        dtype_from_onnx(init.data_type(), "initializer " + init.name()));
    value.shape = Shape(init.dims().begin(), init.dims().end());
    PS_TRY(check_tensor_size(*value.shape, value.dtype, options.max_tensor_bytes,
                             "initializer " + init.name()));
    const int v = graph.add_value(std::move(value));
    value_of[init.name()] = v;
    out.pending_initializers.emplace_back(i, v);
  }

  // Runtime inputs (those without an initializer).
  for (const auto& input : g.input()) {
    if (value_of.count(input.name())) continue;  // IR < 4 lists initializers as inputs too
    PS_TRY(define(input.name(), "a graph input"));
    if (!input.type().has_tensor_type()) {
      return unsupported("graph input '", input.name(), "' is not a tensor");
    }
    const auto& type = input.type().tensor_type();
    Value value;
    value.name = input.name();
    PS_ASSIGN_OR_RETURN(value.dtype,
                        dtype_from_onnx(type.elem_type(), "graph input " + input.name()));
    if (!type.has_shape()) {
      return invalid_argument("graph input '", input.name(), "' has no shape (unknown rank)");
    }
    Shape shape;
    for (int d = 0; d < type.shape().dim_size(); ++d) {
      PS_ASSIGN_OR_RETURN(int64_t size,
                          resolve_dim(type.shape().dim(d), d, input.name(), options, graph.dims));
      shape.push_back(size);
    }
    PS_TRY(check_tensor_size(shape, value.dtype, options.max_tensor_bytes,
                             "graph input " + input.name()));
    value.shape = std::move(shape);
    const int v = graph.add_value(std::move(value));
    value_of[input.name()] = v;
    graph.inputs.push_back(v);
  }

  // Who produces each name, to tell a missing value from one produced too late.
  std::unordered_map<std::string, int> producer_of;
  for (int j = 0; j < g.node_size(); ++j) {
    for (const std::string& name : g.node(j).output()) {
      if (!name.empty()) producer_of.emplace(name, j);
    }
  }

  for (int j = 0; j < g.node_size(); ++j) {
    const NodeProto& proto = g.node(j);
    const std::string label = onnx_node_label(proto, j);
    if (proto.op_type() == "Constant" && is_default_domain(proto.domain())) {
      if (proto.output_size() != 1) return invalid_argument(label, ": needs one output");
      PS_TRY(define(proto.output(0), label));
      PS_ASSIGN_OR_RETURN(TensorData data, constant_value(proto, read, label));
      Value value;
      value.name = proto.output(0);
      value.dtype = data.dtype;
      value.shape = data.shape;
      value.constant = std::make_shared<const TensorData>(std::move(data));
      value.literal = true;
      value_of[proto.output(0)] = graph.add_value(std::move(value));
      ++out.constant_nodes;
      continue;
    }

    Node node;
    node.op = proto.op_type();
    node.name = proto.name();
    node.domain = is_default_domain(proto.domain()) ? std::string() : proto.domain();
    node.onnx_nodes = {j};
    for (const std::string& name : proto.input()) {
      if (name.empty()) {
        node.inputs.push_back(-1);
        continue;
      }
      auto it = value_of.find(name);
      if (it == value_of.end()) {
        if (producer_of.count(name)) return ordering_error(g, j, name, producer_of);
        return invalid_argument(label, ": input '", name,
                                "' is not defined by any graph input, initializer or node "
                                "(a missing initializer?)");
      }
      node.inputs.push_back(it->second);
    }
    for (const auto& attribute : proto.attribute()) {
      PS_TRY(convert_attribute(attribute, node, read, label));
    }
    // Trailing omitted outputs are dropped; omitted ones in between get a placeholder name.
    int last = proto.output_size() - 1;
    while (last >= 0 && proto.output(last).empty()) --last;
    for (int k = 0; k <= last; ++k) {
      std::string name = proto.output(k);
      if (name.empty()) {
        name = str_cat(proto.name().empty() ? proto.op_type() : proto.name(), ":unused_output_", k);
        while (definer.count(name) || producer_of.count(name)) name += "_";
      }
      PS_TRY(define(name, label));
      Value value;
      value.name = name;
      const int v = graph.add_value(std::move(value));
      value_of[name] = v;
      node.outputs.push_back(v);
    }
    graph.add_node(std::move(node));
  }

  for (const auto& output : g.output()) {
    auto it = value_of.find(output.name());
    if (it == value_of.end()) {
      return invalid_argument("graph output '", output.name(),
                              "' is not produced by any node, input or initializer");
    }
    graph.outputs.push_back(it->second);
  }
  if (graph.outputs.empty()) return invalid_argument("the graph has no outputs");
  return out;
}

}  // namespace ps::onnx_loader
