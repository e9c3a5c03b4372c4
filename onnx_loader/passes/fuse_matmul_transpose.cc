#include "onnx_loader/passes/fuse_matmul_transpose.h"

#include <variant>
#include <vector>

#include "onnx_loader/passes/pattern.h"

namespace ps::onnx_loader::passes {
namespace {

// True when the Transpose's perm swaps the two axes of a 2-D input: [1, 0], or absent (ONNX's
// default reverses the axes). A perm of another type or length is no match.
bool swaps_two_axes(const Node& transpose) {
  auto it = transpose.attrs.find("perm");
  if (it == transpose.attrs.end()) return true;
  const auto* perm = std::get_if<std::vector<int64_t>>(&it->second.value);
  return perm != nullptr && *perm == std::vector<int64_t>{1, 0};
}

bool is_float32(const Graph& graph, int value) {
  const Value& v = graph.values[value];
  return v.dtype == DType::kFloat32 && (!v.constant || v.constant->dtype == DType::kFloat32);
}

bool try_fuse(Graph& graph, int transpose_index) {
  const Node& transpose = graph.nodes[transpose_index];
  if (!transpose.domain.empty() || transpose.inputs.size() != 1 || transpose.outputs.size() != 1) {
    return false;
  }
  const int w = transpose.inputs[0];
  const int t = transpose.outputs[0];
  if (w < 0 || !swaps_two_axes(transpose)) return false;
  const std::optional<Shape> w_shape = static_shape(graph, w);
  if (!w_shape || w_shape->size() != 2 || !is_float32(graph, w)) return false;

  const int matmul_index = sole_consumer(graph, t);
  if (matmul_index < 0) return false;
  const Node& matmul = graph.nodes[matmul_index];
  if (matmul.op != "MatMul" || !matmul.domain.empty() || matmul.inputs.size() != 2 ||
      matmul.outputs.size() != 1 || matmul.inputs[1] != t || matmul.inputs[0] == t) {
    return false;
  }
  if (matmul.inputs[0] < 0 || !is_float32(graph, matmul.inputs[0])) return false;

  Node fused;
  fused.op = "MatMulTransB";
  fused.name = fused_node_name(matmul.name, "MatMulTransB");
  fused.inputs = {matmul.inputs[0], w};
  fused.outputs = matmul.outputs;
  replace_nodes(graph, {transpose_index, matmul_index}, matmul_index, std::move(fused));
  return true;
}

}  // namespace

Result<int> fuse_matmul_transpose(Graph& graph) { return fuse_each(graph, "Transpose", try_fuse); }

}  // namespace ps::onnx_loader::passes
