#include "onnx_loader/passes/fuse_head_projections.h"

#include <algorithm>
#include <map>

#include "onnx_loader/passes/pattern.h"

namespace ps::onnx_loader::passes {
namespace {

// One projection of a group: MatMulTransB(X, W [N, K], b) or MatMulBias(X, W [K, N], b), then
// Reshape, then Transpose(perm).
struct Projection {
  int matmul = -1, reshape = -1, transpose = -1;
  int weight = -1, bias = -1;
  bool trans_b = true;  // MatMulTransB: W [N, K]; MatMulBias: W [K, N]
  int64_t rows = 0;     // N
  int64_t depth = 0;    // K
  int64_t heads = 0;    // the Reshape's second-to-last dim
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
  p.trans_b = mm.op == "MatMulTransB";
  if (!is_f32_constant(graph, p.weight, 2) || !is_f32_constant(graph, p.bias, 1))
    return std::nullopt;
  const Shape& w = constant_of(graph, p.weight)->shape;
  p.rows = p.trans_b ? w[0] : w[1];
  p.depth = p.trans_b ? w[1] : w[0];
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

// The constants of `values` (float32, [rows_i, cols] each along axis 0, [cols, n_i] along axis
// 1 of 2-D ones, [n_i] of 1-D ones) joined along `axis`.
TensorData join_constants(const Graph& graph, const std::vector<int>& values, size_t axis) {
  TensorData out;
  out.dtype = DType::kFloat32;
  out.shape = constant_of(graph, values[0])->shape;
  out.shape[axis] = 0;
  for (int v : values) out.shape[axis] += constant_of(graph, v)->shape[axis];
  const int64_t rows = axis == 1 ? out.shape[0] : 1;
  out.bytes.reserve(static_cast<size_t>(element_count(out.shape)) * 4);
  for (int64_t r = 0; r < rows; ++r) {
    for (int v : values) {
      const TensorData& in = *constant_of(graph, v);
      const size_t row_bytes = in.bytes.size() / static_cast<size_t>(rows);
      const auto* begin = in.bytes.data() + static_cast<size_t>(r) * row_bytes;
      out.bytes.insert(out.bytes.end(), begin, begin + row_bytes);
    }
  }
  return out;
}

void fuse_group(Graph& graph, int x, const std::vector<Projection>& group) {
  // Copies: adding nodes below moves graph.nodes.
  const std::string op = graph.nodes[group[0].matmul].op;
  const std::string scope = fused_node_name(graph.nodes[group[0].matmul].name, "HeadProjection");
  const int first_product = graph.nodes[group[0].matmul].outputs[0];
  const int64_t k = group[0].depth;
  int64_t rows = 0;
  std::vector<int> weights, biases;
  for (const Projection& p : group) {
    weights.push_back(p.weight);
    biases.push_back(p.bias);
    rows += p.rows;
  }
  int joined_w = -1, joined_b = -1;
  if (group[0].trans_b) {
    // Training's form: the parameters stay (names, shapes, trainable); Concat layers join them.
    Node concat_w, concat_b;
    concat_w.op = concat_b.op = "Concat";
    concat_w.attrs["axis"] = concat_b.attrs["axis"] = Attribute{int64_t{0}};
    concat_w.inputs = weights;
    concat_b.inputs = biases;
    concat_w.name = str_cat(scope, "/ConcatWeight");
    concat_b.name = str_cat(scope, "/ConcatBias");
    joined_w = add_value(graph, str_cat(scope, ".weight"), DType::kFloat32, {rows, k});
    joined_b = add_value(graph, str_cat(scope, ".bias"), DType::kFloat32, {rows});
    concat_w.outputs = {joined_w};
    concat_b.outputs = {joined_b};
    graph.add_node(std::move(concat_w));
    graph.add_node(std::move(concat_b));
  } else {
    // Inference's: the joined weights are constants of their own ([K, sum N] and [sum N]).
    joined_w =
        add_constant(graph, str_cat(scope, ".weight"), join_constants(graph, weights, 1), true);
    joined_b = add_constant(graph, str_cat(scope, ".bias"), join_constants(graph, biases, 0), true);
  }
  Shape p_shape = *static_shape(graph, first_product);
  p_shape.back() = rows;
  Node product;
  product.op = op;
  product.name = scope;
  product.inputs = {x, joined_w, joined_b};
  product.outputs = {add_value(graph, str_cat(scope, ":0"), DType::kFloat32, p_shape)};
  for (const Projection& p : group) {
    for (int n : graph.nodes[p.matmul].onnx_nodes) product.onnx_nodes.push_back(n);
  }
  std::sort(product.onnx_nodes.begin(), product.onnx_nodes.end());
  product.onnx_nodes.erase(std::unique(product.onnx_nodes.begin(), product.onnx_nodes.end()),
                           product.onnx_nodes.end());
  const int p_value = product.outputs[0];
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
    if (node.dead || (node.op != "MatMulTransB" && node.op != "MatMulBias")) continue;
    std::optional<Projection> p = match(graph, i);
    if (!p) continue;
    const int x = node.inputs[0];
    if (by_input.count(x) == 0) inputs_in_order.push_back(x);
    by_input[x].push_back(std::move(*p));
  }
  int groups = 0;
  for (int x : inputs_in_order) {
    std::vector<Projection>& candidates = by_input[x];
    // One group per (form, K, heads): projections of different widths or head counts stay apart.
    while (candidates.size() >= 2) {
      const Projection& lead = candidates[0];
      const bool trans_b = lead.trans_b;
      const int64_t k = lead.depth, heads = lead.heads;
      std::vector<Projection> group, rest;
      for (Projection& p : candidates) {
        const bool fits = p.trans_b == trans_b && p.depth == k && p.heads == heads;
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
