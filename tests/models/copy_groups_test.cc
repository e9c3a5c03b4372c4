// The switching engine's copy groups (models/gpu/copy_groups.h) on lowered zoo models: pure
// logic, runs in CI.
#include "models/gpu/copy_groups.h"

#include <catch2/catch.hpp>

#include "tests/models/zoo_lowering.h"

namespace ps::models::gpu {
namespace {

using testing::lower_zoo_model;
using testing::ZooLowering;

pipeswitch::psm::Manifest lowered(const std::string& model, onnx_loader::GroupingMode mode) {
  ZooLowering what;
  what.model = model;
  what.grouping = mode;
  auto l = lower_zoo_model(what);
  INFO(l.status().to_string());
  REQUIRE(l.ok());
  return l->manifest;
}

// Every layer exactly once, in order; the byte ranges in order with at most alignment padding
// between them, and the last one ending within the blob's final padding.
void require_cover(const std::vector<CopyGroup>& groups, const pipeswitch::psm::Manifest& m) {
  uint32_t layer = 0;
  uint64_t byte = 0;
  for (const CopyGroup& g : groups) {
    REQUIRE(g.first_layer == layer);
    REQUIRE(g.layer_count > 0);
    REQUIRE(g.blob_offset >= byte);
    REQUIRE(g.blob_offset < byte + m.weight_alignment());
    layer += g.layer_count;
    byte = g.blob_offset + g.bytes;
  }
  REQUIRE(layer == static_cast<uint32_t>(m.layers_size()));
  REQUIRE(byte <= m.weights_bytes());
  REQUIRE(byte + m.weight_alignment() > m.weights_bytes());
}

TEST_CASE("package groups of per-layer imports are one unit per layer, covering the blob",
          "[copy_groups]") {
  for (const char* model : {"resnet_tiny", "inception_tiny", "bert_tiny"}) {
    INFO(model);
    const auto m = lowered(model, onnx_loader::GroupingMode::kPerLayer);
    auto units = package_groups(m);
    INFO(units.status().to_string());
    REQUIRE(units.ok());
    REQUIRE(units->size() == static_cast<size_t>(m.layers_size()));
    require_cover(*units, m);
  }
}

TEST_CASE("merge_groups sums consecutive units and refuses bad starts", "[copy_groups]") {
  const std::vector<CopyGroup> units = {
      {0, 1, 0, 100}, {1, 2, 100, 50}, {3, 1, 150, 0}, {4, 1, 150, 30}};
  auto merged = merge_groups(units, {0, 2});
  REQUIRE(merged.ok());
  REQUIRE(merged->size() == 2);
  CHECK((*merged)[0].first_layer == 0);
  CHECK((*merged)[0].layer_count == 3);
  CHECK((*merged)[0].bytes == 150);
  CHECK((*merged)[1].first_layer == 3);
  CHECK((*merged)[1].layer_count == 2);
  CHECK((*merged)[1].blob_offset == 150);
  CHECK((*merged)[1].bytes == 30);

  CHECK_FALSE(merge_groups(units, {1}).ok());        // must start at unit 0
  CHECK_FALSE(merge_groups(units, {0, 2, 2}).ok());  // strictly ascending
  CHECK_FALSE(merge_groups(units, {0, 4}).ok());     // inside the units
  CHECK_FALSE(merge_groups(units, {}).ok());
  CHECK(merge_groups({}, {}).ok());

  // Padding between units (alignment) is copied along: one contiguous range.
  const std::vector<CopyGroup> padded = {{0, 1, 0, 100}, {1, 1, 256, 50}};
  auto one = merge_groups(padded, {0});
  REQUIRE(one.ok());
  CHECK((*one)[0].blob_offset == 0);
  CHECK((*one)[0].bytes == 306);
}

TEST_CASE("package_groups refuses groups that skip layers or bytes", "[copy_groups]") {
  auto m = lowered("resnet_tiny", onnx_loader::GroupingMode::kPerLayer);
  REQUIRE(m.groups_size() > 3);
  SECTION("a gap in the layers") {
    m.mutable_groups(2)->set_first_layer(m.groups(2).first_layer() + 1);
  }
  SECTION("bytes that overlap the previous group's") {
    int g = 1;
    while (m.groups(g).byte_size() == 0 || m.groups(g - 1).byte_size() == 0) ++g;
    m.mutable_groups(g)->set_blob_offset(m.groups(g - 1).blob_offset());
  }
  SECTION("bytes beyond the blob") {
    m.mutable_groups(m.groups_size() - 1)->set_byte_size(m.weights_bytes() + 1);
  }
  SECTION("a missing last group") { m.mutable_groups()->RemoveLast(); }
  auto groups = package_groups(m);
  REQUIRE_FALSE(groups.ok());
  CHECK(groups.status().code() == Code::kCorrupt);
}

TEST_CASE("block groups rebuilt from a per-layer package equal the imported block groups",
          "[copy_groups]") {
  for (const char* model : {"resnet_tiny", "inception_tiny", "bert_tiny"}) {
    INFO(model);
    const auto per_layer = lowered(model, onnx_loader::GroupingMode::kPerLayer);
    const auto blocks = lowered(model, onnx_loader::GroupingMode::kBlocks);
    auto units = package_groups(per_layer);
    REQUIRE(units.ok());
    auto rebuilt = block_groups(per_layer, *units);
    INFO(rebuilt.status().to_string());
    REQUIRE(rebuilt.ok());
    auto imported = package_groups(blocks);
    REQUIRE(imported.ok());
    REQUIRE(rebuilt->size() == imported->size());
    for (size_t g = 0; g < rebuilt->size(); ++g) {
      INFO("group " << g);
      CHECK((*rebuilt)[g].first_layer == (*imported)[g].first_layer);
      CHECK((*rebuilt)[g].layer_count == (*imported)[g].layer_count);
      // The same byte range up to alignment padding at either end (a group that starts with a
      // layer without weights starts where the previous one ended, not at the next aligned
      // offset).
      const uint64_t align = per_layer.weight_alignment();
      const CopyGroup& r = (*rebuilt)[g];
      const CopyGroup& i = (*imported)[g];
      CHECK(r.blob_offset <= i.blob_offset);
      CHECK(r.blob_offset + align > i.blob_offset);
      CHECK(r.blob_offset + r.bytes + align > i.blob_offset + i.bytes);
      CHECK(r.blob_offset + r.bytes < i.blob_offset + i.bytes + align);
    }
    require_cover(*rebuilt, per_layer);
  }
}

TEST_CASE("whole-model group and grouping units", "[copy_groups]") {
  const auto m = lowered("bert_tiny", onnx_loader::GroupingMode::kPerLayer);
  const auto whole = whole_model_group(m);
  REQUIRE(whole.size() == 1);
  CHECK(whole[0].layer_count == static_cast<uint32_t>(m.layers_size()));
  CHECK(whole[0].bytes == m.weights_bytes());

  const std::vector<CopyGroup> units = {{0, 2, 0, 10}, {2, 1, 10, 20}};
  const std::vector<double> layer_us = {1.5, 2.5, 4.0};
  const auto gu = grouping_units(units, layer_us);
  REQUIRE(gu.size() == 2);
  CHECK(gu[0].bytes == 10);
  CHECK(gu[0].compute_us == Approx(4.0));
  CHECK(gu[1].compute_us == Approx(4.0));
  CHECK(describe_groups(units).find("2 groups") == 0);
}

TEST_CASE("grouping choices parse by name", "[copy_groups]") {
  for (auto c : {GroupingChoice::kPackage, GroupingChoice::kPerLayer, GroupingChoice::kWhole,
                 GroupingChoice::kBlocks, GroupingChoice::kOptimal, GroupingChoice::kTimed}) {
    auto parsed = parse_grouping_choice(grouping_choice_name(c));
    REQUIRE(parsed.ok());
    CHECK(*parsed == c);
  }
  CHECK_FALSE(parse_grouping_choice("fastest").ok());
}

}  // namespace
}  // namespace ps::models::gpu
