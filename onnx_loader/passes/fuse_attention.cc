#include "onnx_loader/passes/fuse_attention.h"

#include <optional>
#include <variant>
#include <vector>

#include "common/attention.h"
#include "onnx_loader/passes/pattern.h"

namespace ps::onnx_loader::passes {
namespace {

const std::vector<int64_t> kHeadsFirst = {0, 2, 1, 3};  // Q and V: [B, H, S, D]
const std::vector<int64_t> kKeyT = {0, 2, 3, 1};        // K^T: [B, H, D, S]

// A live HeadSlice with every attribute an int (perm ints) and one output.
struct Slice {
  int node = -1;
  int x = -1;
  int64_t start = 0, size = 0, heads = 0;
  std::vector<int64_t> perm;
};

// The HeadSlice producing `value` when `reader` alone reads it (and it is no graph output), its
// X float32 of static rank 3 and its perm `perm`; nullopt otherwise.
std::optional<Slice> slice_read_only_by(const Graph& graph, int value, int reader,
                                        const std::vector<int64_t>& perm) {
  const int producer = live_producer(graph, value);
  if (producer < 0 || sole_consumer(graph, value) != reader) return std::nullopt;
  const Node& node = graph.nodes[producer];
  if (node.op != "HeadSlice" || !node.domain.empty() || node.inputs.size() != 1 ||
      node.outputs.size() != 1) {
    return std::nullopt;
  }
  Slice s;
  s.node = producer;
  s.x = node.inputs[0];
  if (!int_attr(node, "start", &s.start) || !int_attr(node, "size", &s.size) ||
      !int_attr(node, "heads", &s.heads)) {
    return std::nullopt;
  }
  s.perm = node.attr_ints("perm");
  if (s.perm != perm || s.x < 0 || graph.values[s.x].dtype != DType::kFloat32) return std::nullopt;
  const std::optional<Shape> x_shape = static_shape(graph, s.x);
  if (!x_shape || x_shape->size() != 3) return std::nullopt;
  return s;
}

// X's layout for heads and size with every range of `starts` in X's columns, or nullopt.
std::optional<AttentionLayout> layout_of(const Graph& graph, const Slice& s,
                                         std::initializer_list<int64_t> starts) {
  Result<AttentionLayout> l =
      attention_layout("fuse_attention", *static_shape(graph, s.x), s.heads, s.size, starts);
  if (!l.ok()) return std::nullopt;
  return *l;
}

bool try_fuse_scores(Graph& graph, int product_index) {
  const Node& product = graph.nodes[product_index];
  if (!product.domain.empty() || product.inputs.size() != 2 || product.outputs.size() != 1) {
    return false;
  }
  float alpha = 1.0f;
  if (product.op == "MatMulScale") {
    auto it = product.attrs.find("alpha");
    if (it == product.attrs.end() || !std::holds_alternative<float>(it->second.value)) {
      return false;
    }
    alpha = std::get<float>(it->second.value);
  }
  const std::optional<Slice> q =
      slice_read_only_by(graph, product.inputs[0], product_index, kHeadsFirst);
  const std::optional<Slice> k = slice_read_only_by(graph, product.inputs[1], product_index, kKeyT);
  if (!q || !k || q->x != k->x || q->heads != k->heads || q->size != k->size) return false;
  if (!layout_of(graph, *q, {q->start, k->start})) return false;

  Node fused;
  fused.op = "AttentionScores";
  fused.name = fused_node_name(product.name, "AttentionScores");
  fused.inputs = {q->x};
  fused.outputs = product.outputs;
  fused.attrs["heads"] = Attribute{q->heads};
  fused.attrs["size"] = Attribute{q->size};
  fused.attrs["q_start"] = Attribute{q->start};
  fused.attrs["k_start"] = Attribute{k->start};
  fused.attrs["alpha"] = Attribute{alpha};
  replace_nodes(graph, {q->node, k->node, product_index}, product_index, std::move(fused));
  return true;
}

bool try_fuse_context(Graph& graph, int transpose_index) {
  const Node& transpose = graph.nodes[transpose_index];
  if (!transpose.domain.empty() || transpose.inputs.size() != 1 || transpose.outputs.size() != 1 ||
      transpose.attr_ints("perm") != kHeadsFirst) {
    return false;
  }
  const int context = transpose.inputs[0];
  const int product_index = live_producer(graph, context);
  if (product_index < 0 || sole_consumer(graph, context) != transpose_index) return false;
  const Node& product = graph.nodes[product_index];
  if (product.op != "MatMul" || !product.domain.empty() || product.inputs.size() != 2 ||
      product.outputs.size() != 1) {
    return false;
  }
  const int p = product.inputs[0];
  const std::optional<Slice> v =
      slice_read_only_by(graph, product.inputs[1], product_index, kHeadsFirst);
  if (!v || p < 0 || p == product.inputs[1] || graph.values[p].dtype != DType::kFloat32) {
    return false;
  }
  const std::optional<AttentionLayout> l = layout_of(graph, *v, {v->start});
  const std::optional<Shape> p_shape = static_shape(graph, p);
  if (!l || !p_shape || !attention_context_rows(*l, *p_shape).ok()) return false;

  Node fused;
  fused.op = "AttentionContext";
  fused.name = fused_node_name(product.name, "AttentionContext");
  fused.inputs = {p, v->x};
  fused.outputs = transpose.outputs;
  fused.attrs["heads"] = Attribute{v->heads};
  fused.attrs["size"] = Attribute{v->size};
  fused.attrs["v_start"] = Attribute{v->start};
  replace_nodes(graph, {v->node, product_index, transpose_index}, transpose_index,
                std::move(fused));
  return true;
}

}  // namespace

Result<int> fuse_attention(Graph& graph) {
  return fuse_each(graph, "MatMulScale", try_fuse_scores) +
         fuse_each(graph, "MatMul", try_fuse_scores) +
         fuse_each(graph, "Transpose", try_fuse_context);
}

}  // namespace ps::onnx_loader::passes
