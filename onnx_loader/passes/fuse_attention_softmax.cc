#include "onnx_loader/passes/fuse_attention_softmax.h"

#include <optional>
#include <variant>

#include "common/attention.h"
#include "onnx_loader/passes/pattern.h"

namespace ps::onnx_loader::passes {
namespace {

// `node` is `op` of the default domain with `inputs` inputs and one output.
bool is_node(const Node& node, const char* op, size_t inputs) {
  return node.op == op && node.domain.empty() && node.inputs.size() == inputs &&
         node.outputs.size() == 1;
}

bool try_fuse(Graph& graph, int softmax_index) {
  const Node& softmax = graph.nodes[softmax_index];
  if (!is_node(softmax, "Softmax", 1)) return false;
  const int scores = softmax.inputs[0];
  const int probs = softmax.outputs[0];
  const std::optional<Shape> s_shape = static_shape(graph, scores);
  if (!s_shape || s_shape->size() != 4 || graph.values[scores].dtype != DType::kFloat32) {
    return false;
  }
  const int64_t axis = softmax.attr_int("axis", -1);
  if (axis != -1 && axis != 3) return false;

  // The scores: AttentionScores(X), read by the Softmax alone.
  const int scores_index = live_producer(graph, scores);
  if (scores_index < 0 || sole_consumer(graph, scores) != softmax_index) return false;
  const Node& a = graph.nodes[scores_index];
  if (!is_node(a, "AttentionScores", 1)) return false;
  // The context: AttentionContext(P, X) of the same X, the probabilities' only reader.
  const int context_index = sole_consumer(graph, probs);
  if (context_index < 0) return false;
  const Node& c = graph.nodes[context_index];
  if (!is_node(c, "AttentionContext", 2)) return false;
  const int x = a.inputs[0];
  if (c.inputs[0] != probs || c.inputs[1] != x || x < 0 ||
      graph.values[x].dtype != DType::kFloat32) {
    return false;
  }

  int64_t heads = 0, size = 0, q_start = 0, k_start = 0, c_heads = 0, c_size = 0, v_start = 0;
  if (!int_attr(a, "heads", &heads) || !int_attr(a, "size", &size) ||
      !int_attr(a, "q_start", &q_start) || !int_attr(a, "k_start", &k_start) ||
      !int_attr(c, "heads", &c_heads) || !int_attr(c, "size", &c_size) ||
      !int_attr(c, "v_start", &v_start) || heads != c_heads || size != c_size) {
    return false;
  }
  float alpha = 1.0f;
  if (auto it = a.attrs.find("alpha"); it != a.attrs.end()) {
    const auto* f = std::get_if<float>(&it->second.value);
    if (f == nullptr) return false;
    alpha = *f;
  }
  const std::optional<Shape> x_shape = static_shape(graph, x);
  if (!x_shape) return false;
  Result<AttentionLayout> l = attention_layout("fuse_attention_softmax", *x_shape, heads, size,
                                               {q_start, k_start, v_start});
  if (!l.ok() || *s_shape != Shape{l->batch, l->heads, l->seq, l->seq} ||
      l->head_size > kFusedAttentionMaxHeadSize) {
    return false;
  }

  Node fused;
  fused.op = "FusedAttention";
  fused.name = fused_node_name(c.name, "FusedAttention");
  fused.inputs = {x};
  fused.outputs = c.outputs;
  fused.attrs["heads"] = Attribute{heads};
  fused.attrs["size"] = Attribute{size};
  fused.attrs["q_start"] = Attribute{q_start};
  fused.attrs["k_start"] = Attribute{k_start};
  fused.attrs["v_start"] = Attribute{v_start};
  fused.attrs["alpha"] = Attribute{alpha};
  replace_nodes(graph, {scores_index, softmax_index, context_index}, context_index,
                std::move(fused));
  return true;
}

}  // namespace

Result<int> fuse_attention_softmax(Graph& graph) { return fuse_each(graph, "Softmax", try_fuse); }

}  // namespace ps::onnx_loader::passes
