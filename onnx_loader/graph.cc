#include "onnx_loader/graph.h"

#include <algorithm>
#include <unordered_map>

namespace ps::onnx_loader {

int64_t Node::attr_int(const std::string& key, int64_t fallback) const {
  auto it = attrs.find(key);
  if (it == attrs.end()) return fallback;
  const auto* v = std::get_if<int64_t>(&it->second.value);
  return v ? *v : fallback;
}

float Node::attr_float(const std::string& key, float fallback) const {
  auto it = attrs.find(key);
  if (it == attrs.end()) return fallback;
  const auto* v = std::get_if<float>(&it->second.value);
  return v ? *v : fallback;
}

std::string Node::attr_string(const std::string& key, const std::string& fallback) const {
  auto it = attrs.find(key);
  if (it == attrs.end()) return fallback;
  const auto* v = std::get_if<std::string>(&it->second.value);
  return v ? *v : fallback;
}

std::vector<int64_t> Node::attr_ints(const std::string& key,
                                     const std::vector<int64_t>& fallback) const {
  auto it = attrs.find(key);
  if (it == attrs.end()) return fallback;
  const auto* v = std::get_if<std::vector<int64_t>>(&it->second.value);
  return v ? *v : fallback;
}

int Graph::add_value(Value value) {
  values.push_back(std::move(value));
  return static_cast<int>(values.size()) - 1;
}

int Graph::add_node(Node node) {
  const int index = static_cast<int>(nodes.size());
  for (int out : node.outputs) {
    PS_CHECK(out >= 0 && out < static_cast<int>(values.size()));
    values[out].producer = index;
  }
  nodes.push_back(std::move(node));
  return index;
}

std::vector<int> Graph::consumers(int value) const {
  std::vector<int> result;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& node = nodes[i];
    if (node.dead) continue;
    if (std::find(node.inputs.begin(), node.inputs.end(), value) != node.inputs.end()) {
      result.push_back(static_cast<int>(i));
    }
  }
  return result;
}

bool Graph::is_output(int value) const {
  return std::find(outputs.begin(), outputs.end(), value) != outputs.end();
}

int Graph::find_value(const std::string& value_name) const {
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i].name == value_name) return static_cast<int>(i);
  }
  return -1;
}

void Graph::replace_uses(int from, int to) {
  for (Node& node : nodes) {
    std::replace(node.inputs.begin(), node.inputs.end(), from, to);
  }
  std::replace(outputs.begin(), outputs.end(), from, to);
}

void Graph::compact() {
  const int value_count = static_cast<int>(values.size());
  std::vector<char> referenced(value_count, 0);
  auto mark = [&](int v) {
    if (v >= 0 && v < value_count) referenced[v] = 1;
  };
  for (const Node& node : nodes) {
    if (node.dead) continue;
    for (int v : node.inputs) mark(v);
    for (int v : node.outputs) mark(v);
  }
  for (int v : inputs) mark(v);
  for (int v : outputs) mark(v);

  std::vector<int> value_map(value_count, -1);
  std::vector<Value> kept_values;
  kept_values.reserve(value_count);
  for (int v = 0; v < value_count; ++v) {
    if (!referenced[v]) continue;
    value_map[v] = static_cast<int>(kept_values.size());
    kept_values.push_back(std::move(values[v]));
    kept_values.back().producer = -1;
  }
  auto remap = [&](int v) { return v >= 0 && v < value_count ? value_map[v] : -1; };

  std::vector<Node> kept_nodes;
  kept_nodes.reserve(nodes.size());
  for (Node& node : nodes) {
    if (node.dead) continue;
    for (int& v : node.inputs) v = remap(v);
    for (int& v : node.outputs) {
      v = remap(v);
      if (v >= 0) kept_values[v].producer = static_cast<int>(kept_nodes.size());
    }
    kept_nodes.push_back(std::move(node));
  }
  for (int& v : inputs) v = remap(v);
  for (int& v : outputs) v = remap(v);
  values = std::move(kept_values);
  nodes = std::move(kept_nodes);
}

std::string describe_node(const Graph& graph, int node) {
  const Node& n = graph.nodes[node];
  std::string where =
      n.onnx_nodes.size() == 1 ? str_cat("node ", n.onnx_nodes[0]) : str_cat("IR node ", node);
  return str_cat(where, " '", n.name, "' (", n.op, ")");
}

Status Graph::sort_topologically() {
  const int count = static_cast<int>(nodes.size());
  // 0: not placed, 1: its producers being placed, 2: placed.
  std::vector<char> state(count, 0);
  std::vector<int> order;
  order.reserve(nodes.size());
  std::vector<std::pair<int, size_t>> stack;  // (node, next input to look at)
  for (int root = 0; root < count; ++root) {
    if (state[root] != 0) continue;
    stack.push_back({root, 0});
    state[root] = 1;
    while (!stack.empty()) {
      auto& [node, next] = stack.back();
      const Node& n = nodes[node];
      int wait = -1;
      while (!n.dead && wait < 0 && next < n.inputs.size()) {
        const int v = n.inputs[next++];
        const int p = v >= 0 ? values[v].producer : -1;
        if (p < 0 || nodes[p].dead || state[p] == 2) continue;
        if (state[p] == 1) {
          return internal_error("a cycle through ", describe_node(*this, p), " and ",
                                describe_node(*this, node));
        }
        wait = p;
      }
      if (wait >= 0) {
        state[wait] = 1;
        stack.push_back({wait, 0});
        continue;
      }
      state[node] = 2;
      order.push_back(node);
      stack.pop_back();
    }
  }
  std::vector<Node> sorted;
  sorted.reserve(nodes.size());
  std::vector<int> new_index(nodes.size());
  for (int old : order) {
    new_index[static_cast<size_t>(old)] = static_cast<int>(sorted.size());
    sorted.push_back(std::move(nodes[static_cast<size_t>(old)]));
  }
  nodes = std::move(sorted);
  for (Value& v : values) {
    if (v.producer >= 0) v.producer = new_index[static_cast<size_t>(v.producer)];
  }
  return Status::OK();
}

Status Graph::validate() const {
  const int value_count = static_cast<int>(values.size());
  auto in_range = [&](int v) { return v >= 0 && v < value_count; };

  // Who produces each value, and where in the node order.
  std::vector<int> producer_of(value_count, -1);
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& node = nodes[i];
    if (node.dead) continue;
    for (int v : node.outputs) {
      if (!in_range(v)) {
        return internal_error(describe_node(*this, i), ": output index ", v, " out of range");
      }
      if (producer_of[v] != -1) {
        return internal_error("value '", values[v].name, "' is produced twice: by ",
                              describe_node(*this, producer_of[v]), " and by ",
                              describe_node(*this, i));
      }
      producer_of[v] = static_cast<int>(i);
    }
  }
  std::vector<char> is_input(value_count, 0);
  for (int v : inputs) {
    if (!in_range(v)) return internal_error("graph input index ", v, " out of range");
    if (producer_of[v] != -1 || values[v].constant) {
      return internal_error("graph input '", values[v].name,
                            "' is also produced by a node or a constant");
    }
    is_input[v] = 1;
  }
  for (int v = 0; v < value_count; ++v) {
    const Value& value = values[v];
    if (producer_of[v] != -1 && value.producer != producer_of[v]) {
      return internal_error("value '", value.name, "' records producer ", value.producer,
                            " but is produced by ", describe_node(*this, producer_of[v]));
    }
    if (value.constant) {
      if (producer_of[v] != -1) {
        return internal_error("value '", value.name, "' is a constant and also produced by ",
                              describe_node(*this, producer_of[v]));
      }
      if (value.shape && *value.shape != value.constant->shape) {
        return internal_error("constant '", value.name, "' has shape ",
                              shape_string(value.constant->shape), " but its value says ",
                              shape_string(*value.shape));
      }
      if (value.dtype != DType::kUndefined && value.dtype != value.constant->dtype) {
        return internal_error("constant '", value.name, "' holds ",
                              dtype_name(value.constant->dtype), " but its value says ",
                              dtype_name(value.dtype));
      }
    }
  }

  // Topological order: every live node reads values defined before it.
  std::vector<char> defined(value_count, 0);
  for (int v = 0; v < value_count; ++v) defined[v] = is_input[v] || values[v].constant != nullptr;
  std::unordered_map<std::string, int> names;
  auto check_name = [&](int v) -> Status {
    auto [it, inserted] = names.emplace(values[v].name, v);
    if (!inserted && it->second != v) {
      return internal_error("two values are named '", values[v].name, "' (", it->second, " and ", v,
                            ")");
    }
    return Status::OK();
  };
  for (int v : inputs) PS_TRY(check_name(v));
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& node = nodes[i];
    if (node.dead) continue;
    for (int v : node.inputs) {
      if (v == -1) continue;
      if (!in_range(v)) {
        return internal_error(describe_node(*this, i), ": input index ", v, " out of range");
      }
      if (!defined[v]) {
        return internal_error(
            describe_node(*this, i), " reads '", values[v].name, "' ",
            producer_of[v] == -1
                ? std::string("which nothing defines")
                : str_cat("before ", describe_node(*this, producer_of[v]), " produces it"));
      }
      PS_TRY(check_name(v));
    }
    for (int v : node.outputs) {
      defined[v] = 1;
      PS_TRY(check_name(v));
    }
  }
  if (outputs.empty()) return internal_error("graph '", name, "' has no outputs");
  for (int v : outputs) {
    if (!in_range(v)) return internal_error("graph output index ", v, " out of range");
    if (!defined[v]) {
      return internal_error("graph output '", values[v].name, "' is not defined");
    }
    PS_TRY(check_name(v));
  }
  return Status::OK();
}

}  // namespace ps::onnx_loader
