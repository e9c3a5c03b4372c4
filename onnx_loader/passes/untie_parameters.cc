#include "onnx_loader/passes/untie_parameters.h"

#include <vector>

#include "onnx_loader/pipeline.h"

namespace ps::onnx_loader::passes {

Result<int> untie_parameters(Graph& graph) {
  std::vector<bool> used(graph.values.size(), false);
  int copies = 0;
  for (size_t n = 0; n < graph.nodes.size(); ++n) {
    if (graph.nodes[n].dead) continue;
    for (size_t i = 0; i < graph.nodes[n].inputs.size(); ++i) {
      const int v = graph.nodes[n].inputs[i];
      if (v < 0 || static_cast<size_t>(v) >= used.size()) continue;
      const Value& value = graph.values[static_cast<size_t>(v)];
      if (!is_parameter(value) || !is_floating(value.constant->dtype)) continue;
      if (!used[static_cast<size_t>(v)]) {
        used[static_cast<size_t>(v)] = true;
        continue;
      }
      Value copy;
      copy.name = str_cat(value.name, "@", graph.nodes[n].name);
      for (int k = 2; graph.find_value(copy.name) >= 0; ++k) {
        copy.name = str_cat(value.name, "@", graph.nodes[n].name, "#", k);
      }
      copy.dtype = value.dtype;
      copy.shape = value.shape;
      copy.constant = value.constant;  // immutable bytes: shared on the host, stored per copy
      copy.is_weight = true;
      graph.nodes[n].inputs[i] = graph.add_value(std::move(copy));
      ++copies;
    }
  }
  return copies;
}

}  // namespace ps::onnx_loader::passes
