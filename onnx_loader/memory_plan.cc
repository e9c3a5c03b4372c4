#include "onnx_loader/memory_plan.h"

#include <algorithm>
#include <numeric>
#include <string_view>

namespace ps::onnx_loader {
namespace {

uint64_t align_up(uint64_t bytes, uint64_t alignment) {
  return (bytes + alignment - 1) / alignment * alignment;
}

bool overlap_in_time(int first_a, int last_a, int first_b, int last_b) {
  return first_a <= last_b && first_b <= last_a;
}

bool is_view_op(std::string_view op) {
  return op == "Reshape" || op == "Flatten" || op == "Squeeze" || op == "Unsqueeze";
}

uint64_t live_bytes_peak(std::span<const BufferRequest> requests) {
  int steps = 0;
  for (const BufferRequest& request : requests) steps = std::max(steps, request.last + 1);
  std::vector<int64_t> delta(static_cast<size_t>(steps) + 1, 0);
  for (const BufferRequest& request : requests) {
    delta[request.first] += static_cast<int64_t>(request.bytes);
    delta[request.last + 1] -= static_cast<int64_t>(request.bytes);
  }
  int64_t live = 0;
  int64_t peak = 0;
  for (int64_t change : delta) {
    live += change;
    peak = std::max(peak, live);
  }
  return static_cast<uint64_t>(peak);
}

}  // namespace

BufferLayout place_buffers(std::span<const BufferRequest> requests, uint64_t alignment) {
  BufferLayout layout;
  layout.offsets.assign(requests.size(), 0);
  layout.lower_bound = live_bytes_peak(requests);

  // Largest first; among equals the earlier-born first, then by index so the plan is stable.
  std::vector<size_t> order(requests.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (requests[a].bytes != requests[b].bytes) return requests[a].bytes > requests[b].bytes;
    return requests[a].first < requests[b].first;
  });

  std::vector<size_t> placed;  // indices already given an offset, sorted by offset
  std::vector<size_t> neighbours;
  for (size_t index : order) {
    const BufferRequest& request = requests[index];
    if (request.bytes == 0) continue;
    neighbours.clear();
    for (size_t other : placed) {
      if (overlap_in_time(request.first, request.last, requests[other].first,
                          requests[other].last)) {
        neighbours.push_back(other);
      }
    }
    // `placed` is kept sorted by offset, so `neighbours` is too. Best fit: the smallest gap
    // between time-overlapping buffers that holds the request; else after the highest one.
    uint64_t best_offset = 0;
    uint64_t best_gap = UINT64_MAX;
    uint64_t cursor = 0;
    for (size_t other : neighbours) {
      const uint64_t start = layout.offsets[other];
      if (start >= cursor) {
        const uint64_t gap = start - cursor;
        if (gap >= request.bytes && gap < best_gap) {
          best_gap = gap;
          best_offset = cursor;
        }
      }
      cursor = std::max(cursor, start + requests[other].bytes);
    }
    if (best_gap == UINT64_MAX) best_offset = cursor;
    layout.offsets[index] = align_up(best_offset, alignment);
    layout.arena_bytes = std::max(layout.arena_bytes, layout.offsets[index] + request.bytes);
    const auto position = std::upper_bound(
        placed.begin(), placed.end(), layout.offsets[index],
        [&](uint64_t offset, size_t other) { return offset < layout.offsets[other]; });
    placed.insert(position, index);
  }
  return layout;
}

const PlannedTensor* MemoryPlan::find(int value) const {
  const auto it = by_value.find(value);
  return it == by_value.end() ? nullptr : &tensors[it->second];
}

Result<MemoryPlan> plan_memory(const Graph& graph, const MemoryPlanOptions& options) {
  const uint64_t alignment = options.alignment;
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
    return invalid_argument("memory plan: alignment ", alignment, " is not a power of two");
  }
  const int value_count = static_cast<int>(graph.values.size());
  auto is_activation_value = [&](int value) {
    return value >= 0 && value < value_count && graph.values[value].constant == nullptr;
  };

  std::vector<int> step_of_node(graph.nodes.size(), -1);
  int steps = 0;
  for (size_t index = 0; index < graph.nodes.size(); ++index) {
    if (!graph.nodes[index].dead) step_of_node[index] = steps++;
  }
  const int last_step = std::max(steps - 1, 0);

  MemoryPlan plan;
  plan.alignment = alignment;
  plan.steps = steps;
  auto add_tensor = [&](int value, int first) -> Status {
    if (plan.by_value.count(value) != 0) return Status::OK();
    const Value& v = graph.values[value];
    const std::string producer =
        v.producer >= 0 && v.producer < static_cast<int>(graph.nodes.size())
            ? str_cat(" (produced by ", describe_node(graph, v.producer), ")")
            : std::string(" (a model input)");
    if (dtype_size(v.dtype) == 0) {
      return invalid_argument("memory plan: value '", v.name, "'", producer, " has no dtype");
    }
    if (!v.shape) {
      return invalid_argument("memory plan: value '", v.name, "'", producer, " has no shape");
    }
    for (int64_t dim : *v.shape) {
      if (dim < 0) {
        return invalid_argument("memory plan: value '", v.name, "'", producer,
                                " has a dynamic shape ", shape_string(*v.shape));
      }
    }
    PlannedTensor tensor;
    tensor.value = value;
    tensor.bytes = static_cast<uint64_t>(element_count(*v.shape)) * dtype_size(v.dtype);
    tensor.first = first;
    tensor.last = first;
    plan.by_value.emplace(value, plan.tensors.size());
    plan.tensors.push_back(tensor);
    return Status::OK();
  };

  for (int input : graph.inputs) {
    if (is_activation_value(input)) PS_TRY(add_tensor(input, 0));
  }
  for (size_t index = 0; index < graph.nodes.size(); ++index) {
    const Node& node = graph.nodes[index];
    if (node.dead) continue;
    const int step = step_of_node[index];
    for (int input : node.inputs) {
      if (!is_activation_value(input)) continue;
      const PlannedTensor* tensor = plan.find(input);
      if (tensor == nullptr) {
        return invalid_argument("memory plan: ", describe_node(graph, static_cast<int>(index)),
                                " reads '", graph.values[input].name,
                                "', which is neither a model input nor produced before it");
      }
      plan.tensors[plan.by_value[input]].last = std::max(tensor->last, step);
    }
    for (int output : node.outputs) {
      if (is_activation_value(output)) PS_TRY(add_tensor(output, step));
    }
  }
  for (int output : graph.outputs) {
    if (!is_activation_value(output)) continue;
    if (plan.find(output) == nullptr) {
      return invalid_argument("memory plan: model output '", graph.values[output].name,
                              "' is not produced by any live node");
    }
    plan.tensors[plan.by_value[output]].last = last_step;
  }

  // Views share their input's buffer when the input dies at the view.
  auto owner_of = [&](int value) {
    const PlannedTensor* tensor = plan.find(value);
    return tensor->alias_of >= 0 ? tensor->alias_of : value;
  };
  if (options.alias_views) {
    for (size_t index = 0; index < graph.nodes.size(); ++index) {
      const Node& node = graph.nodes[index];
      if (node.dead || !is_view_op(node.op) || node.inputs.empty() || node.outputs.size() != 1) {
        continue;
      }
      const int in = node.inputs[0];
      const int out = node.outputs[0];
      if (!is_activation_value(in) || !is_activation_value(out) || graph.is_output(in)) continue;
      const PlannedTensor* source = plan.find(in);
      const PlannedTensor* view = plan.find(out);
      if (source->last != step_of_node[index] || source->bytes != view->bytes) continue;
      plan.tensors[plan.by_value[out]].alias_of = owner_of(in);
    }
  }

  // One buffer per owner, alive from the owner's birth to the death of its last view.
  std::vector<BufferRequest> requests;
  std::unordered_map<int, size_t> request_of_owner;
  for (const PlannedTensor& tensor : plan.tensors) {
    if (tensor.alias_of >= 0) continue;
    request_of_owner.emplace(tensor.value, requests.size());
    requests.push_back({align_up(tensor.bytes, alignment), tensor.first, tensor.last});
  }
  for (const PlannedTensor& tensor : plan.tensors) {
    if (tensor.alias_of < 0) continue;
    BufferRequest& request = requests[request_of_owner.at(tensor.alias_of)];
    request.last = std::max(request.last, tensor.last);
  }

  const BufferLayout layout = place_buffers(requests, alignment);
  for (PlannedTensor& tensor : plan.tensors) {
    const int owner = tensor.alias_of >= 0 ? tensor.alias_of : tensor.value;
    tensor.offset = layout.offsets[request_of_owner.at(owner)];
  }
  plan.arena_bytes = layout.arena_bytes;
  plan.lower_bound_bytes = layout.lower_bound;
  return plan;
}

Status check_memory_plan(const MemoryPlan& plan) {
  const uint64_t alignment = plan.alignment;
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
    return corrupt("memory plan: alignment ", alignment, " is not a power of two");
  }
  for (const PlannedTensor& tensor : plan.tensors) {
    if (tensor.offset % alignment != 0) {
      return corrupt("memory plan: value ", tensor.value, " at offset ", tensor.offset,
                     " is not aligned to ", alignment);
    }
    if (tensor.first > tensor.last || tensor.offset > plan.arena_bytes ||
        tensor.bytes > plan.arena_bytes - tensor.offset) {
      return corrupt("memory plan: value ", tensor.value, " [", tensor.offset, ", +", tensor.bytes,
                     ") steps ", tensor.first, "..", tensor.last, " does not fit in the arena of ",
                     plan.arena_bytes, " bytes");
    }
    if (tensor.alias_of >= 0) {
      const PlannedTensor* owner = plan.find(tensor.alias_of);
      if (owner == nullptr || owner->alias_of >= 0 || owner->offset != tensor.offset ||
          owner->bytes < tensor.bytes) {
        return corrupt("memory plan: value ", tensor.value, " aliases value ", tensor.alias_of,
                       ", which is not a buffer owner at the same offset");
      }
    }
  }
  if (plan.arena_bytes < plan.lower_bound_bytes) {
    return corrupt("memory plan: arena ", plan.arena_bytes, " bytes is below the lower bound ",
                   plan.lower_bound_bytes);
  }
  for (size_t i = 0; i < plan.tensors.size(); ++i) {
    const PlannedTensor& a = plan.tensors[i];
    const int owner_a = a.alias_of >= 0 ? a.alias_of : a.value;
    for (size_t j = i + 1; j < plan.tensors.size(); ++j) {
      const PlannedTensor& b = plan.tensors[j];
      const int owner_b = b.alias_of >= 0 ? b.alias_of : b.value;
      if (owner_a == owner_b || a.bytes == 0 || b.bytes == 0) continue;
      if (!overlap_in_time(a.first, a.last, b.first, b.last)) continue;
      if (a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes) {
        return corrupt("memory plan: values ", a.value, " and ", b.value,
                       " are alive together (steps ", a.first, "..", a.last, " and ", b.first, "..",
                       b.last, ") and overlap in memory");
      }
    }
  }
  return Status::OK();
}

}  // namespace ps::onnx_loader
