// Test helper: every structural promise of a lowered model, checked against its graph.
#pragma once

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <set>

#include "onnx_loader/lower.h"

namespace ps::onnx_loader::testing {

namespace psm = pipeswitch::psm;

inline uint64_t dtype_bytes(psm::DataType dtype) {
  switch (dtype) {
    case psm::DT_FLOAT32:
    case psm::DT_INT32:
      return 4;
    case psm::DT_INT64:
    case psm::DT_FLOAT64:
      return 8;
    case psm::DT_FLOAT16:
    case psm::DT_BFLOAT16:
      return 2;
    default:
      return 1;
  }
}

// Checks every structural promise of a lowered model against the graph it came from.
inline void check_lowered(const LoweredModel& model, const Graph& graph,
                          const LowerOptions& options) {
  const psm::Manifest& m = model.manifest;
  CHECK(m.format_version() == kManifestFormatVersion);
  CHECK(m.weight_alignment() == options.weight_alignment);
  CHECK(m.weights_bytes() == model.weights.size());
  CHECK(m.weights_bytes() % m.weight_alignment() == 0);
  CHECK(m.grouping() == grouping_name(options.grouping));

  Result<MemoryPlan> plan = plan_memory(graph, options.memory);
  REQUIRE(plan.ok());
  CHECK(m.memory_plan().arena_bytes() == plan->arena_bytes);
  CHECK(m.memory_plan().alignment() == plan->alignment);

  // Tensors: sizes, offsets in bounds, blob bytes equal to the constants, arena = plan.
  std::vector<std::pair<uint64_t, uint64_t>> weight_ranges;
  for (const psm::Tensor& t : m.tensors()) {
    INFO("tensor " << t.name());
    uint64_t elements = 1;
    for (int64_t d : t.shape()) elements *= static_cast<uint64_t>(d);
    CHECK(t.byte_size() == elements * dtype_bytes(t.dtype()));
    const int value = graph.find_value(t.name());
    REQUIRE(value >= 0);
    if (t.kind() == psm::Tensor::WEIGHT) {
      CHECK(t.weight_offset() % m.weight_alignment() == 0);
      REQUIRE(t.weight_offset() + t.byte_size() <= model.weights.size());
      const TensorData& data = *graph.values[value].constant;
      REQUIRE(data.bytes.size() == t.byte_size());
      CHECK(std::memcmp(model.weights.data() + t.weight_offset(), data.bytes.data(),
                        t.byte_size()) == 0);
      weight_ranges.emplace_back(t.weight_offset(), t.weight_offset() + t.byte_size());
    } else {
      const PlannedTensor* planned = plan->find(value);
      REQUIRE(planned != nullptr);
      CHECK(t.arena_offset() == planned->offset);
      CHECK(t.arena_offset() % m.memory_plan().alignment() == 0);
      CHECK(t.arena_offset() + t.byte_size() <= m.memory_plan().arena_bytes());
    }
  }
  std::sort(weight_ranges.begin(), weight_ranges.end());
  for (size_t i = 1; i < weight_ranges.size(); ++i) {
    CHECK(weight_ranges[i - 1].second <= weight_ranges[i].first);
  }
  for (uint32_t in : m.inputs()) CHECK(m.tensors(in).kind() == psm::Tensor::INPUT);
  for (uint32_t out : m.outputs()) CHECK(m.tensors(out).kind() == psm::Tensor::OUTPUT);

  // Groups cover the layers in order; their blob ranges are ordered and disjoint; every weight
  // lies in the range of the group that uses it first; offsets grow in order of first use.
  uint32_t next_layer = 0;
  uint64_t previous_end = 0;
  std::set<uint32_t> seen;
  uint64_t last_offset = 0;
  for (const psm::Group& g : m.groups()) {
    INFO("group " << g.label());
    CHECK(g.first_layer() == next_layer);
    CHECK(g.blob_offset() >= previous_end);
    CHECK(g.blob_offset() % m.weight_alignment() == 0);
    CHECK(g.blob_offset() + g.byte_size() <= model.weights.size());
    previous_end = g.blob_offset() + g.byte_size();
    for (uint32_t l = g.first_layer(); l < g.first_layer() + g.layer_count(); ++l) {
      for (uint32_t in : m.layers(l).inputs()) {
        const psm::Tensor& t = m.tensors(in);
        if (t.kind() != psm::Tensor::WEIGHT || !seen.insert(in).second) continue;
        CHECK(t.weight_offset() >= g.blob_offset());
        CHECK(t.weight_offset() + t.byte_size() <= g.blob_offset() + g.byte_size());
        CHECK(t.weight_offset() >= last_offset);
        last_offset = t.weight_offset();
      }
    }
    next_layer += g.layer_count();
  }
  CHECK(next_layer == static_cast<uint32_t>(m.layers_size()));
}

}  // namespace ps::onnx_loader::testing
