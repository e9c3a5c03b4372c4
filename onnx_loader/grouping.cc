#include "onnx_loader/grouping.h"

#include <algorithm>
#include <map>
#include <set>

namespace ps::onnx_loader {
namespace {

std::vector<std::string> split(std::string_view text, char separator) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find(separator, start), text.size());
    parts.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

std::string join(const std::vector<std::string>& parts, size_t count) {
  std::string text;
  for (size_t i = 0; i < count && i < parts.size(); ++i) {
    if (i > 0) text += '.';
    text += parts[i];
  }
  return text;
}

bool is_number(const std::string& segment) {
  return !segment.empty() &&
         std::all_of(segment.begin(), segment.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Index of the first numeric segment (a repeated container's element), or -1.
int element_depth(const std::vector<std::string>& segments) {
  for (size_t i = 1; i < segments.size(); ++i) {
    if (is_number(segments[i])) return static_cast<int>(i);
  }
  return -1;
}

struct Run {
  uint32_t first = 0;
  uint32_t count = 0;
  std::string label;
  bool leaf_like = false;
  bool has_parameters = false;
};

}  // namespace

const char* grouping_name(GroupingMode mode) {
  switch (mode) {
    case GroupingMode::kPerLayer:
      return "per-layer";
    case GroupingMode::kWholeModel:
      return "whole-model";
    case GroupingMode::kBlocks:
      return "blocks";
  }
  return "?";
}

Result<GroupingMode> parse_grouping(std::string_view name) {
  for (GroupingMode mode :
       {GroupingMode::kPerLayer, GroupingMode::kWholeModel, GroupingMode::kBlocks}) {
    if (name == grouping_name(mode)) return mode;
  }
  return invalid_argument("unknown grouping '", name,
                          "' (expected per-layer, whole-model or blocks)");
}

std::string module_path(std::string_view node_name) {
  if (node_name.find('/') == std::string_view::npos) return "";
  std::vector<std::string> components;
  for (std::string& part : split(node_name, '/')) {
    if (!part.empty()) components.push_back(std::move(part));
  }
  if (components.empty()) return "";
  components.pop_back();          // the op
  std::vector<std::string> full;  // full[i]: dotted path of components[0..i]
  for (size_t i = 0; i < components.size(); ++i) {
    const std::string& component = components[i];
    if (i > 0 && component.rfind(components[i - 1] + ".", 0) == 0) {
      full.push_back(i >= 2 ? full[i - 2] + "." + component : component);
    } else {
      full.push_back(i >= 1 ? full[i - 1] + "." + component : component);
    }
  }
  return full.empty() ? "" : full.back();
}

std::vector<std::string> assign_blocks(std::span<const std::string> module_paths) {
  std::vector<std::vector<std::string>> segments;
  segments.reserve(module_paths.size());
  for (const std::string& path : module_paths) {
    segments.push_back(path.empty() ? std::vector<std::string>{} : split(path, '.'));
  }

  // Repeated elements, and whether each one's children all have children of their own.
  struct Element {
    std::map<std::string, bool> child_is_composite;
  };
  std::map<std::string, Element> elements;
  std::set<std::string> element_ancestors;  // every proper prefix of an element, and elements
  for (const auto& segs : segments) {
    const int depth = element_depth(segs);
    if (depth < 0) continue;
    const std::string element = join(segs, depth + 1);
    Element& info = elements[element];
    for (int k = 1; k <= depth + 1; ++k) element_ancestors.insert(join(segs, k));
    if (static_cast<int>(segs.size()) > depth + 1) {
      bool& composite = info.child_is_composite[segs[depth + 1]];
      composite = composite || static_cast<int>(segs.size()) > depth + 2;
    }
  }

  std::vector<std::string> blocks;
  blocks.reserve(segments.size());
  for (const auto& segs : segments) {
    const int depth = element_depth(segs);
    if (depth >= 0) {
      const std::string element = join(segs, depth + 1);
      const auto& children = elements[element].child_is_composite;
      const bool split_children =
          !children.empty() &&
          std::all_of(children.begin(), children.end(), [](const auto& c) { return c.second; });
      const bool has_child = static_cast<int>(segs.size()) > depth + 1;
      blocks.push_back(split_children && has_child ? join(segs, depth + 2) : element);
      continue;
    }
    size_t k = 1;
    while (k < segs.size() && element_ancestors.count(join(segs, k)) != 0) ++k;
    blocks.push_back(join(segs, k));
  }
  return blocks;
}

Result<std::vector<GroupSpan>> make_groups(std::span<const LayerSummary> layers,
                                           GroupingMode mode) {
  std::vector<GroupSpan> groups;
  if (layers.empty()) return groups;
  const auto count = static_cast<uint32_t>(layers.size());
  if (mode == GroupingMode::kPerLayer) {
    for (uint32_t i = 0; i < count; ++i) groups.push_back({i, 1, layers[i].name});
    return groups;
  }
  if (mode == GroupingMode::kWholeModel) {
    groups.push_back({0, count, "model"});
    return groups;
  }

  const bool any_scope = std::any_of(layers.begin(), layers.end(),
                                     [](const LayerSummary& l) { return !l.module_path.empty(); });
  if (!any_scope) {
    return invalid_argument(
        "blocks grouping: no layer name carries a module scope "
        "(\"/layer1/layer1.0/conv1/Conv\"); use per-layer grouping");
  }

  // Runs of one block; single-module blocks and unscoped layers merge with their neighbours.
  std::vector<Run> runs;
  for (uint32_t i = 0; i < count; ++i) {
    const LayerSummary& layer = layers[i];
    const bool leaf_like = layer.block.empty() || (layer.module_path == layer.block &&
                                                   element_depth(split(layer.block, '.')) < 0);
    const bool same_block = !runs.empty() && layers[i - 1].block == layer.block;
    const bool merge_leaves = !runs.empty() && runs.back().leaf_like && leaf_like;
    if (same_block || merge_leaves) {
      Run& run = runs.back();
      if (merge_leaves && !same_block && !layer.block.empty()) {
        run.label += run.label.empty() ? layer.block : "+" + layer.block;
      }
      run.leaf_like = run.leaf_like && leaf_like;
      run.has_parameters = run.has_parameters || layer.has_parameters;
      ++run.count;
      continue;
    }
    runs.push_back({i, 1, layer.block, leaf_like, layer.has_parameters});
  }

  // A run without parameters rides with the group before it (the first with the one after).
  bool last_has_parameters = false;
  for (const Run& run : runs) {
    if (!groups.empty() && (!run.has_parameters || !last_has_parameters)) {
      GroupSpan& group = groups.back();
      group.layer_count += run.count;
      if (!last_has_parameters && run.has_parameters) group.label = run.label;
      last_has_parameters = last_has_parameters || run.has_parameters;
      continue;
    }
    groups.push_back({run.first, run.count, run.label});
    last_has_parameters = run.has_parameters;
  }
  for (GroupSpan& group : groups) {
    if (group.label.empty()) group.label = "(unscoped)";
  }
  return groups;
}

}  // namespace ps::onnx_loader
