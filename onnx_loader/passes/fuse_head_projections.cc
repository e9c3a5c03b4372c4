#include "onnx_loader/passes/fuse_head_projections.h"

#include <algorithm>
#include <map>

#include "onnx_loader/passes/pattern.h"

namespace ps::onnx_loader::passes {
namespace {

// One projection of a group: MatMulTransB(X, W, b) -> Reshape -> Transpose(perm).
struct Projection {
  int matmul = -1, reshape = -1, transpose = -1;
  int weight = -1, bias = -1;
  int64_t rows = 0;   // N: W is [N, K]
  int64_t heads = 0;  // the Reshape's second-to-last dim
  std::vector<int64_t> perm;
};

bool is_f32_constant(const Graph& graph, int value, size_t rank) {
  const TensorData* data = constant_of(graph, value);
  return data != nullptr && data->dtype == DType::kFloat32 && data->shape.size() == rank;
}

std::optional<Projection> match(const Graph& graph, int matmul_index) {
  const Node& mm = graph.nodes[matmul_index];
  if (!mm.domain.empty() || mm.inputs.size() != 3 || mm.outputs.size() != 1) return std::nullopt;
  Projection p;
  p.matmul = matmul_index;
  p.weight = mm.inputs[1];
  p.bias = mm.inputs[2];
  if (!is_f32_constant(graph, p.weight, 2) || !is_f32_constant(graph, p.bias, 1))
    return std::nullopt;
  p.rows = constant_of(graph, p.weight)->shape[0];
  if (constant_of(graph, p.bias)->shape[0] != p.rows) return std::nullopt;
  const int product = mm.outputs[0];
  const std::optional<Shape> p_shape = static_shape(graph, product);
  if (!p_shape || p_shape->empty() || p_shape->back() != p.rows) return std::nullopt;

  p.reshape = sole_consumer(graph, product);
  if (p.reshape < 0) return std::nullopt;
  const Node& reshape = graph.nodes[p.reshape];
  if (reshape.op != "Reshape" || !reshape.domain.empty() || reshape.inputs.empty() ||
      reshape.inputs[0] != product || reshape.outputs.size() != 1) {
    return std::nullopt;
  }
  const std::optional<Shape> r_shape = static_shape(graph, reshape.outputs[0]);
  if (!r_shape || r_shape->size() != p_shape->size() + 1) return std::nullopt;
  for (size_t d = 0; d + 1 < p_shape->size(); ++d) {
    if ((*r_shape)[d] != (*p_shape)[d]) return std::nullopt;
  }
  p.heads = (*r_shape)[r_shape->size() - 2];
  if (p.heads < 1 || p.heads * r_shape->back() != p.rows) return std::nullopt;

  p.transpose = sole_consumer(graph, reshape.outputs[0]);
  if (p.transpose < 0) return std::nullopt;
  const Node& transpose = graph.nodes[p.transpose];
  if (transpose.op != "Transpose" || !transpose.domain.empty() || transpose.inputs.size() != 1 ||
      transpose.outputs.size() != 1) {
    return std::nullopt;
  }
  std::vector<int64_t> reversed(r_shape->size());
  for (size_t d = 0; d < reversed.size(); ++d)
    reversed[d] = static_cast<int64_t>(reversed.size() - 1 - d);
  p.perm = transpose.attr_ints("perm", reversed);
  if (p.perm.size() != r_shape->size()) return std::nullopt;
  return p;
}

// A new value named after `base`, unique in the graph.
int add_value(Graph& graph, const std::string& base, DType dtype, Shape shape) {
  Value v;
  v.name = base;
  for (int n = 1; graph.find_value(v.name) >= 0; ++n) v.name = str_cat(base, '_', n);
  v.dtype = dtype;
  v.shape = std::move(shape);
  return graph.add_value(std::move(v));
}

void fuse_group(Graph& graph, int x, const std::vector<Projection>& group) {
  const Node& first = graph.nodes[group[0].matmul];
  const std::string scope = fused_node_name(first.name, "HeadProjection");
  const int64_t k = constant_of(graph, group[0].weight)->shape[1];
  int64_t rows = 0;
  Node concat_w, concat_b;
  concat_w.op = concat_b.op = "Concat";
  concat_w.attrs["axis"] = concat_b.attrs["axis"] = Attribute{int64_t{0}};
  for (const Projection& p : group) {
    concat_w.inputs.push_back(p.weight);
    concat_b.inputs.push_back(p.bias);
    rows += p.rows;
  }
  concat_w.name = str_cat(scope, "/ConcatWeight");
  concat_b.name = str_cat(scope, "/ConcatBias");
  concat_w.outputs = {add_value(graph, str_cat(scope, ".weight"), DType::kFloat32, {rows, k})};
  concat_b.outputs = {add_value(graph, str_cat(scope, ".bias"), DType::kFloat32, {rows})};
  Shape p_shape = *static_shape(graph, first.outputs[0]);
  p_shape.back() = rows;
  Node product;
  product.op = "MatMulTransB";
  product.name = scope;
  product.inputs = {x, concat_w.outputs[0], concat_b.outputs[0]};
  product.outputs = {add_value(graph, str_cat(scope, ":0"), DType::kFloat32, p_shape)};
  for (const Projection& p : group) {
    for (int n : graph.nodes[p.matmul].onnx_nodes) product.onnx_nodes.push_back(n);
  }
  std::sort(product.onnx_nodes.begin(), product.onnx_nodes.end());
  product.onnx_nodes.erase(std::unique(product.onnx_nodes.begin(), product.onnx_nodes.end()),
                           product.onnx_nodes.end());
  const int p_value = product.outputs[0];
  graph.add_node(std::move(concat_w));
  graph.add_node(std::move(concat_b));
  graph.add_node(std::move(product));

  int64_t start = 0;
  for (const Projection& p : group) {
    const Node& transpose = graph.nodes[p.transpose];
    Node slice;
    slice.op = "HeadSlice";
    slice.name = fused_node_name(transpose.name, "HeadSlice");
    slice.inputs = {p_value};
    slice.outputs = transpose.outputs;
    slice.attrs["start"] = Attribute{start};
    slice.attrs["size"] = Attribute{p.rows};
    slice.attrs["heads"] = Attribute{p.heads};
    slice.attrs["perm"] = Attribute{p.perm};
    slice.onnx_nodes = merged_onnx_nodes(graph, {p.reshape, p.transpose});
    start += p.rows;
    for (int dead : {p.matmul, p.reshape, p.transpose}) graph.nodes[dead].dead = true;
    graph.add_node(std::move(slice));
  }
}

}  // namespace

Result<int> fuse_head_projections(Graph& graph) {
  // Candidates by their input X, in node order.
  std::map<int, std::vector<Projection>> by_input;
  std::vector<int> inputs_in_order;
  for (int i = 0; i < static_cast<int>(graph.nodes.size()); ++i) {
    const Node& node = graph.nodes[i];
    if (node.dead || node.op != "MatMulTransB") continue;
    std::optional<Projection> p = match(graph, i);
    if (!p) continue;
    const int x = node.inputs[0];
    if (by_input.count(x) == 0) inputs_in_order.push_back(x);
    by_input[x].push_back(std::move(*p));
  }
  int groups = 0;
  for (int x : inputs_in_order) {
    std::vector<Projection>& candidates = by_input[x];
    // One group per (K, heads): projections of different widths or head counts stay apart.
    while (candidates.size() >= 2) {
      const int64_t k = constant_of(graph, candidates[0].weight)->shape[1];
      const int64_t heads = candidates[0].heads;
      std::vector<Projection> group, rest;
      for (Projection& p : candidates) {
        const bool fits = constant_of(graph, p.weight)->shape[1] == k && p.heads == heads;
        (fits ? group : rest).push_back(std::move(p));
      }
      if (group.size() >= 2) {
        fuse_group(graph, x, group);
        ++groups;
      }
      candidates = std::move(rest);
    }
  }
  if (groups > 0) PS_TRY(graph.sort_topologically());
  return groups;
}

}  // namespace ps::onnx_loader::passes
