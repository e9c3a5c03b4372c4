// The GPU plan's device-free logic (models/gpu/plan_layout.h) on real lowered zoo models:
// address tables, model inputs/outputs, group starts, unsupported-layer listing, workspace
// sizing, and the refusal of manifests whose offsets leave the blob or the arena. No GPU.
#include <catch2/catch.hpp>

#include <set>
#include <string>

#include "models/gpu/plan_layout.h"
#include "tests/models/zoo_lowering.h"

namespace ps::models::gpu {
namespace {

using pipeswitch::psm::Manifest;
using TensorProto = pipeswitch::psm::Tensor;

onnx_loader::LoweredModel lowered(const std::string& model,
                                  onnx_loader::GroupingMode grouping =
                                      onnx_loader::GroupingMode::kPerLayer) {
  testing::ZooLowering what;
  what.model = model;
  what.grouping = grouping;
  auto l = testing::lower_zoo_model(what);
  INFO(model << ": " << l.status().to_string());
  REQUIRE(l.ok());
  return std::move(l).value();
}

TEST_CASE("the layout addresses every operand where the manifest put it", "[gpu_plan_layout]") {
  const std::string model = GENERATE("resnet_tiny", "inception_tiny", "bert_tiny");
  INFO(model);
  const onnx_loader::LoweredModel l = lowered(model);
  const Manifest& m = l.manifest;
  auto layout = build_layout(m);
  INFO(layout.status().to_string());
  REQUIRE(layout.ok());
  REQUIRE(layout->layers.size() == static_cast<size_t>(m.layers_size()));
  CHECK(layout->arena_bytes == m.memory_plan().arena_bytes());
  CHECK(layout->weights_bytes == m.weights_bytes());

  size_t weights_seen = 0;
  size_t most = 0;
  for (int i = 0; i < m.layers_size(); ++i) {
    const auto& layer = m.layers(i);
    const LayerLayout& lay = layout->layers[static_cast<size_t>(i)];
    REQUIRE(lay.inputs.size() == static_cast<size_t>(layer.inputs_size()));
    REQUIRE(lay.outputs.size() == static_cast<size_t>(layer.outputs_size()));
    most = std::max(most, lay.inputs.size() + lay.outputs.size());
    for (int k = 0; k < layer.inputs_size(); ++k) {
      const TensorProto& t = m.tensors(static_cast<int>(layer.inputs(k)));
      const OperandPlace& p = lay.inputs[static_cast<size_t>(k)];
      const TensorSpec& s = lay.input_specs[static_cast<size_t>(k)];
      CHECK(p.tensor == layer.inputs(k));
      CHECK(s.shape == Shape(t.shape().begin(), t.shape().end()));
      CHECK(p.bytes == s.bytes());
      CHECK(s.host_data == nullptr);
      if (t.kind() == TensorProto::WEIGHT) {
        ++weights_seen;
        CHECK(s.is_weight);
        CHECK(p.region == Region::kWeights);
        CHECK(p.offset == t.weight_offset());
        CHECK(p.bytes == t.byte_size());
        CHECK(p.offset + p.bytes <= m.weights_bytes());
      } else {
        CHECK_FALSE(s.is_weight);
        CHECK(p.region == Region::kArena);
        CHECK(p.offset == t.arena_offset());
        CHECK(p.offset % 256 == 0);
        CHECK(p.offset + p.bytes <= m.memory_plan().arena_bytes());
      }
    }
    for (int k = 0; k < layer.outputs_size(); ++k) {
      const TensorProto& t = m.tensors(static_cast<int>(layer.outputs(k)));
      const OperandPlace& p = lay.outputs[static_cast<size_t>(k)];
      CHECK(p.region == Region::kArena);
      CHECK(p.offset == t.arena_offset());
      CHECK(p.offset + p.bytes <= m.memory_plan().arena_bytes());
    }
  }
  CHECK(weights_seen > 0);
  CHECK(layout->max_operands == most);

  REQUIRE(layout->inputs.size() == static_cast<size_t>(m.inputs_size()));
  REQUIRE(layout->outputs.size() == static_cast<size_t>(m.outputs_size()));
  for (size_t i = 0; i < layout->inputs.size(); ++i) {
    const TensorProto& t = m.tensors(static_cast<int>(m.inputs(static_cast<int>(i))));
    CHECK(layout->inputs[i].name == t.name());
    CHECK(layout->inputs[i].arena_offset == t.arena_offset());
    CHECK(layout->inputs[i].bytes > 0);
  }
  for (size_t i = 0; i < layout->outputs.size(); ++i) {
    const TensorProto& t = m.tensors(static_cast<int>(m.outputs(static_cast<int>(i))));
    CHECK(layout->outputs[i].name == t.name());
    CHECK(layout->outputs[i].dtype == DType::kFloat32);
  }
  // Per-layer grouping: every layer starts a group.
  REQUIRE(layout->group_first_layer.size() == static_cast<size_t>(m.layers_size()));
  for (size_t g = 0; g < layout->group_first_layer.size(); ++g) {
    CHECK(layout->group_first_layer[g] == g);
  }
}

TEST_CASE("block groups give ascending group starts that cover the layers",
          "[gpu_plan_layout]") {
  const onnx_loader::LoweredModel l = lowered("resnet_tiny", onnx_loader::GroupingMode::kBlocks);
  auto layout = build_layout(l.manifest);
  REQUIRE(layout.ok());
  REQUIRE(layout->group_first_layer.size() == static_cast<size_t>(l.manifest.groups_size()));
  REQUIRE(layout->group_first_layer.size() > 1);
  CHECK(layout->group_first_layer.size() < layout->layers.size());
  CHECK(layout->group_first_layer.front() == 0);
  for (size_t g = 1; g < layout->group_first_layer.size(); ++g) {
    CHECK(layout->group_first_layer[g - 1] < layout->group_first_layer[g]);
    CHECK(layout->group_first_layer[g] == l.manifest.groups(static_cast<int>(g)).first_layer());
  }
}

TEST_CASE("every unsupported layer is listed, by index, op and name", "[gpu_plan_layout]") {
  const onnx_loader::LoweredModel l = lowered("resnet_tiny");
  const Manifest& m = l.manifest;
  std::set<uint32_t> fused;
  for (int i = 0; i < m.layers_size(); ++i) {
    if (m.layers(i).op() == "FusedConv") fused.insert(static_cast<uint32_t>(i));
  }
  REQUIRE(fused.size() > 1);
  const auto bad = find_unsupported_layers(m, [](std::string_view op) { return op != "FusedConv"; });
  REQUIRE(bad.size() == fused.size());
  for (const UnsupportedLayer& u : bad) {
    CHECK(fused.count(u.index) == 1);
    CHECK(u.op == "FusedConv");
    CHECK(u.name == m.layers(static_cast<int>(u.index)).name());
  }
  const std::string text = describe_unsupported(bad);
  for (const UnsupportedLayer& u : bad) {
    CHECK_THAT(text, Catch::Contains(str_cat("layer ", u.index, " (FusedConv '", u.name, "')")));
  }
  CHECK(find_unsupported_layers(m, [](std::string_view) { return true; }).empty());
}

TEST_CASE("the workspace is the largest request, aligned", "[gpu_plan_layout]") {
  CHECK(plan_workspace_bytes({}) == 0);
  const std::vector<size_t> zeros{0, 0};
  CHECK(plan_workspace_bytes(zeros) == 0);
  const std::vector<size_t> some{100, 4096, 3000};
  CHECK(plan_workspace_bytes(some) == 4096);
  const std::vector<size_t> odd{1, 4097};
  CHECK(plan_workspace_bytes(odd) == 4352);
  CHECK(plan_workspace_bytes(odd, 1024) == 5120);
}

TEST_CASE("a manifest whose offsets leave the blob or the arena is refused, naming the layer",
          "[gpu_plan_layout]") {
  const onnx_loader::LoweredModel l = lowered("resnet_tiny");
  const Manifest& good = l.manifest;
  // The first layer that reads a weight, and that weight's tensor index.
  int layer = -1;
  uint32_t weight = 0;
  for (int i = 0; i < good.layers_size() && layer < 0; ++i) {
    for (uint32_t t : good.layers(i).inputs()) {
      if (good.tensors(static_cast<int>(t)).kind() == TensorProto::WEIGHT) {
        layer = i;
        weight = t;
        break;
      }
    }
  }
  REQUIRE(layer >= 0);
  const std::string where = str_cat("layer ", layer, " (", good.layers(layer).op());

  SECTION("a weight past the end of the blob") {
    Manifest m = good;
    m.mutable_tensors(static_cast<int>(weight))->set_weight_offset(m.weights_bytes() - 4);
    auto r = build_layout(m);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Code::kCorrupt);
    CHECK_THAT(r.status().message(), Catch::Contains(where));
    CHECK_THAT(r.status().message(), Catch::Contains("weight blob"));
  }
  SECTION("an activation past the end of the arena") {
    Manifest m = good;
    const uint32_t out = m.layers(0).outputs(0);
    m.mutable_tensors(static_cast<int>(out))->set_arena_offset(m.memory_plan().arena_bytes());
    auto r = build_layout(m);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Code::kCorrupt);
    CHECK_THAT(r.status().message(), Catch::Contains("layer 0"));
    CHECK_THAT(r.status().message(), Catch::Contains("arena"));
  }
  SECTION("a tensor index out of range") {
    Manifest m = good;
    m.mutable_layers(layer)->set_inputs(0, static_cast<uint32_t>(m.tensors_size()));
    auto r = build_layout(m);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains(where));
    CHECK_THAT(r.status().message(), Catch::Contains("out of range"));
  }
  SECTION("groups that skip a layer") {
    Manifest m = good;
    REQUIRE(m.groups_size() > 2);
    m.mutable_groups(1)->set_first_layer(m.groups(1).first_layer() + 1);
    auto r = build_layout(m);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("group 1"));
  }
  SECTION("no layers") {
    Manifest m = good;
    m.clear_layers();
    CHECK(build_layout(m).status().code() == Code::kInvalidArgument);
  }
}

}  // namespace
}  // namespace ps::models::gpu
