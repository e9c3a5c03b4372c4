#include "models/gpu/copy_groups.h"

#include <algorithm>
#include <cstdio>
#include <iterator>

#include "onnx_loader/grouping.h"

namespace ps::models::gpu {
namespace {

constexpr const char* kChoiceNames[] = {"package", "per-layer", "whole",
                                        "blocks",  "optimal",   "timed"};

std::string size_text(uint64_t bytes) {
  char buf[32];
  if (bytes >= (uint64_t{1} << 20)) {
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f KiB", static_cast<double>(bytes) / 1024);
  }
  return buf;
}

}  // namespace

const char* grouping_choice_name(GroupingChoice choice) {
  return kChoiceNames[static_cast<int>(choice)];
}

Result<GroupingChoice> parse_grouping_choice(std::string_view name) {
  for (size_t i = 0; i < std::size(kChoiceNames); ++i) {
    if (name == kChoiceNames[i]) return static_cast<GroupingChoice>(i);
  }
  return invalid_argument("grouping '", name,
                          "': expected timed, optimal, package, per-layer, blocks or whole");
}

Result<std::vector<CopyGroup>> package_groups(const pipeswitch::psm::Manifest& manifest) {
  std::vector<CopyGroup> groups;
  groups.reserve(static_cast<size_t>(manifest.groups_size()));
  uint32_t next_layer = 0;
  uint64_t next_byte = 0;  // where the previous group's bytes end
  for (int g = 0; g < manifest.groups_size(); ++g) {
    const auto& group = manifest.groups(g);
    // Groups follow each other; between two groups' bytes there may be alignment padding.
    if (group.first_layer() != next_layer || group.layer_count() == 0 ||
        (group.byte_size() > 0 && group.blob_offset() < next_byte) ||
        group.blob_offset() > manifest.weights_bytes() ||
        group.byte_size() > manifest.weights_bytes() - group.blob_offset()) {
      return corrupt("model '", manifest.model_name(), "': group ", g, " (layers ",
                     group.first_layer(), "+", group.layer_count(), ", bytes ", group.blob_offset(),
                     "+", group.byte_size(), ") does not follow the previous group (layer ",
                     next_layer, ", byte ", next_byte, ") or leaves the blob");
    }
    const uint64_t offset = group.byte_size() > 0 ? group.blob_offset() : next_byte;
    groups.push_back({group.first_layer(), group.layer_count(), offset, group.byte_size()});
    next_layer += group.layer_count();
    next_byte = offset + group.byte_size();
  }
  if (next_layer != static_cast<uint32_t>(manifest.layers_size())) {
    return corrupt("model '", manifest.model_name(), "': the groups cover ", next_layer, " of ",
                   manifest.layers_size(), " layers");
  }
  return groups;
}

Result<std::vector<CopyGroup>> merge_groups(std::span<const CopyGroup> units,
                                            const GroupStarts& starts) {
  if (units.empty() != starts.empty() || (!starts.empty() && starts.front() != 0)) {
    return invalid_argument("group starts must begin at unit 0 (", starts.size(), " starts, ",
                            units.size(), " units)");
  }
  std::vector<CopyGroup> groups;
  groups.reserve(starts.size());
  for (size_t i = 0; i < starts.size(); ++i) {
    const uint32_t begin = starts[i];
    const uint32_t end =
        i + 1 < starts.size() ? starts[i + 1] : static_cast<uint32_t>(units.size());
    if (begin >= end || end > units.size()) {
      return invalid_argument("group starts must ascend strictly below ", units.size(), " (start ",
                              i, " is ", begin, ")");
    }
    // One contiguous copy from the first unit's bytes to the last's (padding included).
    CopyGroup g{units[begin].first_layer, 0, units[begin].blob_offset, 0};
    uint64_t end_byte = g.blob_offset;
    for (uint32_t u = begin; u < end; ++u) {
      g.layer_count += units[u].layer_count;
      if (units[u].bytes > 0) end_byte = std::max(end_byte, units[u].blob_offset + units[u].bytes);
    }
    g.bytes = end_byte - g.blob_offset;
    groups.push_back(g);
  }
  return groups;
}

std::vector<CopyGroup> whole_model_group(const pipeswitch::psm::Manifest& manifest) {
  if (manifest.layers_size() == 0) return {};
  return {CopyGroup{0, static_cast<uint32_t>(manifest.layers_size()), 0, manifest.weights_bytes()}};
}

Result<std::vector<CopyGroup>> block_groups(const pipeswitch::psm::Manifest& manifest,
                                            std::span<const CopyGroup> units) {
  std::vector<onnx_loader::LayerSummary> layers(static_cast<size_t>(manifest.layers_size()));
  for (int l = 0; l < manifest.layers_size(); ++l) {
    const auto& layer = manifest.layers(l);
    onnx_loader::LayerSummary& s = layers[static_cast<size_t>(l)];
    s.module_path = onnx_loader::module_path(layer.name());
    s.block = layer.block();
    s.name = layer.name();
    for (uint32_t t : layer.inputs()) {
      const auto& tensor = manifest.tensors(static_cast<int>(t));
      if (tensor.trainable()) s.has_parameters = true;
    }
  }
  PS_ASSIGN_OR_RETURN(std::vector<onnx_loader::GroupSpan> spans,
                      onnx_loader::make_groups(layers, onnx_loader::GroupingMode::kBlocks));
  // A block starts a new group at the unit that holds its first layer.
  GroupStarts starts;
  size_t u = 0;
  for (const onnx_loader::GroupSpan& span : spans) {
    while (u < units.size() && units[u].first_layer + units[u].layer_count <= span.first_layer) ++u;
    if (u < units.size() && (starts.empty() || starts.back() != u)) {
      starts.push_back(static_cast<uint32_t>(u));
    }
  }
  return merge_groups(units, starts);
}

std::vector<GroupingUnit> grouping_units(std::span<const CopyGroup> units,
                                         std::span<const double> layer_us,
                                         std::span<const WeightRange> host_read) {
  std::vector<GroupingUnit> out;
  out.reserve(units.size());
  for (const CopyGroup& unit : units) {
    double us = 0;
    for (uint32_t l = unit.first_layer; l < unit.first_layer + unit.layer_count; ++l) {
      if (l < layer_us.size()) us += layer_us[l];
    }
    out.push_back({unit.bytes - bytes_inside(unit.blob_offset, unit.bytes, host_read), us});
  }
  return out;
}

std::string describe_groups(std::span<const CopyGroup> groups) {
  if (groups.empty()) return "0 groups";
  uint64_t smallest = UINT64_MAX, largest = 0;
  for (const CopyGroup& g : groups) {
    smallest = std::min(smallest, g.bytes);
    largest = std::max(largest, g.bytes);
  }
  return str_cat(groups.size(), groups.size() == 1 ? " group, " : " groups, ", size_text(smallest),
                 " - ", size_text(largest));
}

}  // namespace ps::models::gpu
