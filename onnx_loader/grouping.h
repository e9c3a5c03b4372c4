// Default layer groupings: which consecutive layers share one weight transfer.
//
// Every layer records the source block it came from (Layer.block), read from the ONNX node
// name the PyTorch exporter writes: "/layer1/layer1.0/conv1/Conv" is module "layer1.0.conv1"
// and belongs to block "layer1.0"; "/encoder/layer.3/attention/self/query/MatMul" is module
// "encoder.layer.3.attention.self.query", block "encoder.layer.3.attention". The optimal
// grouping search (measured compute and transfer times) is a separate, later piece.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace ps::onnx_loader {

enum class GroupingMode {
  kPerLayer,    // one group per layer (the default)
  kWholeModel,  // one group: copy everything, then compute
  kBlocks,      // one group per source block, as the original PipeSwitch
};

// "per-layer", "whole-model", "blocks".
const char* grouping_name(GroupingMode mode);
// Inverse of grouping_name; errors name the accepted spellings.
Result<GroupingMode> parse_grouping(std::string_view name);

// The dotted module path of an exporter node name: the scope components between the slashes,
// without the last (the op), joined with '.', where a component that repeats its parent as a
// prefix ("layer1" then "layer1.0") replaces it. "" for a name without scope ("Conv_0",
// "/Flatten"). "/layer1/layer1.0/conv1/Conv" -> "layer1.0.conv1".
std::string module_path(std::string_view node_name);

// The source block of every layer, from all layers' module paths (execution order):
//  - Under a repeated container (the first path segment that is a number, "layer1.0",
//    "encoder.layer.3"), the block is the repeated element; when every child module of that
//    element has children of its own (BERT's attention / intermediate / output, not ResNet's
//    conv1 / bn1) the block is the child instead.
//  - Otherwise the block is the shortest prefix of the path that is not an ancestor of a
//    repeated element ("embeddings", "pooler", "conv1", "Mixed_5b"), or "" without scope.
std::vector<std::string> assign_blocks(std::span<const std::string> module_paths);

struct LayerSummary {
  std::string module_path;      // module_path(node name)
  std::string block;            // from assign_blocks
  std::string name;             // the layer's name (labels of per-layer groups)
  bool has_parameters = false;  // reads a model parameter or buffer (not just small constants)
};

struct GroupSpan {
  uint32_t first_layer = 0;
  uint32_t layer_count = 0;
  std::string label;
};

// Partitions the layers into consecutive groups that cover them all in order.
//  - kPerLayer: one group per layer, labelled with the layer's name.
//  - kWholeModel: one group "model".
//  - kBlocks: one group per run of layers of the same block; adjacent runs of single-module
//    top-level blocks (ResNet's conv1 / maxpool, avgpool / fc) or unscoped layers merge into
//    one group ("conv1+maxpool"); a run without parameters then joins the group before it (the
//    first one joins the group after it). So ResNet gives stem, one group per bottleneck, head;
//    Inception v3 one group per top-level block; BERT embeddings, attention / intermediate /
//    output of every layer, pooler. Errors when no layer has a scoped name (nothing to group
//    by: use per-layer).
// An empty layer list gives no groups.
Result<std::vector<GroupSpan>> make_groups(std::span<const LayerSummary> layers, GroupingMode mode);

}  // namespace ps::onnx_loader
