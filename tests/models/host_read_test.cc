// Direct host access for embedding tables (models/gpu/host_read.h): which weights qualify, the
// copies that remain, the grouping input without them, and the plan layout's marks. Pure: runs
// in CI. (The GPU reading them is checked in gpu_backend_test.cc's switch cases.)
#include "models/gpu/host_read.h"

#include <catch2/catch.hpp>
#include <vector>

#include "models/gpu/copy_groups.h"
#include "models/gpu/plan_layout.h"
#include "tests/models/zoo_lowering.h"
#include "tests/support/require_ok.h"

namespace ps::models::gpu {
namespace {

using pipeswitch::psm::Manifest;
using TensorProto = pipeswitch::psm::Tensor;

Manifest lowered(const std::string& model) {
  testing::ZooLowering what;
  what.model = model;
  what.grouping = onnx_loader::GroupingMode::kPerLayer;
  auto l = testing::lower_zoo_model(what);
  INFO(l.status().to_string());
  REQUIRE(l.ok());
  return l->manifest;
}

// A hand-made manifest: weight tensors 0 (table, [rows, 8] float) and 1 ([8, 8] float),
// activations 2.. as the layers need.
struct Builder {
  Manifest m;
  explicit Builder(int64_t rows) {
    add_weight("table", {rows, 8});
    add_weight("matrix", {8, 8});
  }
  uint32_t add_weight(const std::string& name, std::vector<int64_t> shape) {
    TensorProto* t = m.add_tensors();
    t->set_name(name);
    t->set_kind(TensorProto::WEIGHT);
    t->set_dtype(pipeswitch::psm::DT_FLOAT32);
    int64_t n = 4;
    for (int64_t d : shape) {
      t->add_shape(d);
      n *= d;
    }
    t->set_weight_offset(m.weights_bytes());
    m.set_weights_bytes(m.weights_bytes() + static_cast<uint64_t>(n));
    return static_cast<uint32_t>(m.tensors_size() - 1);
  }
  uint32_t add_activation() {
    TensorProto* t = m.add_tensors();
    t->set_name("a" + std::to_string(m.tensors_size()));
    t->set_kind(TensorProto::ACTIVATION);
    t->set_dtype(pipeswitch::psm::DT_FLOAT32);
    t->add_shape(4);
    return static_cast<uint32_t>(m.tensors_size() - 1);
  }
  void add_layer(const std::string& op, std::vector<uint32_t> inputs, int64_t axis = 0,
                 bool with_axis = false) {
    auto* layer = m.add_layers();
    layer->set_op(op);
    layer->set_name(op + std::to_string(m.layers_size()));
    for (uint32_t i : inputs) layer->add_inputs(i);
    layer->add_outputs(add_activation());
    if (with_axis) {
      auto* a = layer->add_attributes();
      a->set_name("axis");
      a->set_i(axis);
    }
  }
};

TEST_CASE("host_readable_weights: BERT's embedding tables, nothing of the CNNs",
          "[host_read]") {
  const Manifest bert = lowered("bert_tiny");
  const auto tables = host_readable_weights(bert, 1);
  REQUIRE_FALSE(tables.empty());
  // Each is a weight that only Gather layers read, as their data input.
  for (const WeightRange& r : tables) {
    const TensorProto& t = bert.tensors(static_cast<int>(r.tensor));
    INFO(t.name());
    CHECK(t.kind() == TensorProto::WEIGHT);
    CHECK(r.offset == t.weight_offset());
    for (const auto& layer : bert.layers()) {
      for (int i = 0; i < layer.inputs_size(); ++i) {
        if (layer.inputs(i) == r.tensor) CHECK((layer.op() == "Gather" && i == 0));
      }
    }
  }
  bool word_embeddings = false;
  for (const WeightRange& r : tables) {
    word_embeddings |= bert.tensors(static_cast<int>(r.tensor)).name().find("word_embeddings") !=
                       std::string::npos;
  }
  CHECK(word_embeddings);
  // Sorted and disjoint.
  for (size_t i = 1; i < tables.size(); ++i) {
    CHECK(tables[i - 1].offset + tables[i - 1].bytes <= tables[i].offset);
  }
  // The default threshold (4 MiB) leaves bert_tiny's small tables alone; the CNNs have none.
  CHECK(host_readable_weights(bert).empty());
  CHECK(host_readable_weights(lowered("resnet_tiny"), 1).empty());
  CHECK(host_readable_weights(lowered("inception_tiny"), 1).empty());
}

TEST_CASE("host_readable_weights: only tables every use of which is a Gather's axis-0 data",
          "[host_read]") {
  SECTION("a Gather along axis 0 (default, explicit, or -rank) qualifies") {
    for (int64_t axis : {int64_t{0}, int64_t{-2}}) {
      Builder b(1000);
      const uint32_t ids = b.add_activation();
      b.add_layer("Gather", {0, ids}, axis, true);
      const auto tables = host_readable_weights(b.m, 1);
      REQUIRE(tables.size() == 1);
      CHECK(tables[0].tensor == 0);
      CHECK(tables[0].offset == 0);
      CHECK(tables[0].bytes == 1000 * 8 * 4);
    }
    Builder b(1000);
    b.add_layer("Gather", {0, b.add_activation()});
    CHECK(host_readable_weights(b.m, 1).size() == 1);
    CHECK(host_readable_weights(b.m, 1000 * 8 * 4 + 1).empty());  // below the threshold
  }
  SECTION("a table also read by another op (tied embeddings) does not") {
    Builder b(1000);
    b.add_layer("Gather", {0, b.add_activation()});
    b.add_layer("MatMul", {b.add_activation(), 0});
    CHECK(host_readable_weights(b.m, 1).empty());
  }
  SECTION("the other order of uses does not either") {
    Builder b(1000);
    b.add_layer("MatMul", {b.add_activation(), 0});
    b.add_layer("Gather", {0, b.add_activation()});
    CHECK(host_readable_weights(b.m, 1).empty());
  }
  SECTION("a Gather along axis 1, or a weight as a Gather's indices, does not") {
    Builder b(1000);
    b.add_layer("Gather", {0, b.add_activation()}, 1, true);
    b.add_layer("Gather", {b.add_activation(), 1});
    CHECK(host_readable_weights(b.m, 1).empty());
  }
}

// The parts for_each_range_outside visits, as a list.
std::vector<ByteRange> ranges_outside(uint64_t offset, uint64_t bytes,
                                      std::span<const WeightRange> skip) {
  std::vector<ByteRange> out;
  REQUIRE_OK(for_each_range_outside(offset, bytes, skip, [&](ByteRange r) {
    out.push_back(r);
    return Status::OK();
  }));
  return out;
}

TEST_CASE("ranges_outside and bytes_inside cut the skipped ranges out of a copy", "[host_read]") {
  const std::vector<WeightRange> skip = {{100, 50, 0}, {200, 100, 1}};
  auto pieces = [&](uint64_t offset, uint64_t bytes) {
    std::vector<std::pair<uint64_t, uint64_t>> out;
    for (const ByteRange& r : ranges_outside(offset, bytes, skip)) out.emplace_back(r.offset, r.bytes);
    return out;
  };
  using P = std::vector<std::pair<uint64_t, uint64_t>>;
  CHECK(pieces(0, 100) == P{{0, 100}});                         // before
  CHECK(pieces(0, 400) == P{{0, 100}, {150, 50}, {300, 100}});  // around both
  CHECK(pieces(100, 50).empty());                               // exactly one
  CHECK(pieces(120, 100) == P{{150, 50}});                      // starts and ends inside
  CHECK(pieces(250, 100) == P{{300, 50}});
  CHECK(pieces(300, 0).empty());
  CHECK(ranges_outside(0, 10, {}).size() == 1);
  CHECK(bytes_inside(0, 400, skip) == 150);
  CHECK(bytes_inside(120, 100, skip) == 50);
  CHECK(bytes_inside(0, 100, skip) == 0);
  // The visitor stops at the first error (a failed copy) and returns it.
  int visited = 0;
  const Status stopped = for_each_range_outside(0, 400, skip, [&](ByteRange) {
    return ++visited == 2 ? io_error("copy failed") : Status::OK();
  });
  CHECK(stopped.code() == Code::kIo);
  CHECK(visited == 2);
}

TEST_CASE("the grouping input leaves the host-read bytes out and the layout marks their operands",
          "[host_read]") {
  const Manifest bert = lowered("bert_tiny");
  auto units = package_groups(bert);
  REQUIRE(units.ok());
  const auto tables = host_readable_weights(bert, 1);
  REQUIRE_FALSE(tables.empty());
  const std::vector<double> layer_us(static_cast<size_t>(bert.layers_size()), 1.0);
  const auto all = grouping_units(*units, layer_us);
  const auto without = grouping_units(*units, layer_us, tables);
  REQUIRE(all.size() == without.size());
  uint64_t all_bytes = 0, without_bytes = 0, table_bytes = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    all_bytes += all[i].bytes;
    without_bytes += without[i].bytes;
  }
  for (const WeightRange& r : tables) table_bytes += r.bytes;
  CHECK(all_bytes - without_bytes == table_bytes);

  // build_layout marks with the default threshold: bert_tiny's tables are too small...
  auto layout = build_layout(bert);
  REQUIRE(layout.ok());
  CHECK(layout->host_readable.empty());
  for (const LayerLayout& lay : layout->layers) {
    for (const OperandPlace& p : lay.inputs) CHECK_FALSE(p.host_readable);
  }
  // ...and bert_tiny at a large vocabulary is not a zoo option, so mark a hand-made table.
  Builder b(200000);  // 6.1 MiB
  b.add_layer("Gather", {0, b.add_activation()});
  b.add_layer("MatMul", {b.m.layers(0).outputs(0), 1});
  b.m.mutable_memory_plan()->set_arena_bytes(4096);
  auto hand = build_layout(b.m);
  INFO(hand.status().to_string());
  REQUIRE(hand.ok());
  REQUIRE(hand->host_readable.size() == 1);
  CHECK(hand->layers[0].inputs[0].host_readable);
  CHECK_FALSE(hand->layers[0].inputs[1].host_readable);
  CHECK_FALSE(hand->layers[1].inputs[1].host_readable);
}

}  // namespace
}  // namespace ps::models::gpu
