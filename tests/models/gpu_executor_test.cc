// The GPU executor on whole models: the tiny zoo models (lowered in process) run by a Plan on
// the GPU against the CPU executor (max relative error <= 1e-4 strict fp32, <= 5e-3 TF32),
// CUDA graph replay against plain enqueue (bit-identical), the group hook, parallel
// transmission over several links of one GPU, the debug run naming a broken layer, and build
// errors listing every layer that cannot run. All [gpu].
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "cuda/context.h"
#include "cuda/copy.h"
#include "cuda/device_buffer.h"
#include "cuda/event.h"
#include "cuda/host_memory.h"
#include "cuda/stream.h"
#include "models/cpu/executor.h"
#include "models/gpu/copy_groups.h"
#include "models/gpu/cuda_lanes.h"
#include "models/gpu/parallel_run.h"
#include "models/gpu/plan.h"
#include "tests/models/gpu_op_check.h"
#include "tests/models/zoo_lowering.h"
#include "tests/support/gpu.h"
#include "tests/support/require_ok.h"

namespace ps::models::gpu {
namespace {

using cpu::Tensor;
using pipeswitch::psm::Manifest;

constexpr double kFp32Tolerance = 1e-4;
constexpr double kTf32Tolerance = 5e-3;

// A lowered model with its device memory: weights copied, arena and workspace allocated.
struct DeviceModel {
  onnx_loader::LoweredModel lowered;
  cuda::DeviceBuffer weights, arena, workspace;
  Bindings bindings;
};

onnx_loader::LoweredModel lower(const std::string& model, int opset = 17) {
  models::testing::ZooLowering what;
  what.model = model;
  what.opset = opset;
  auto l = models::testing::lower_zoo_model(what);
  INFO(model << ": " << l.status().to_string());
  REQUIRE(l.ok());
  return std::move(l).value();
}

cuda::DeviceBuffer allocate(size_t bytes) {
  auto b = cuda::DeviceBuffer::allocate(std::max<size_t>(bytes, 256));
  INFO("allocate " << bytes << ": " << b.status().to_string());
  REQUIRE(b.ok());
  return std::move(b).value();
}

// Device memory for `plan` and the weights of `lowered` on the device.
void place(DeviceModel& dm, const Plan& plan) {
  GpuRuntime& rt = testing::shared_runtime();
  dm.weights = allocate(dm.lowered.weights.size());
  dm.arena = allocate(plan.arena_bytes());
  dm.workspace = allocate(plan.workspace_bytes());
  REQUIRE_OK(cuda::copy_to_device_async(dm.weights.ptr(), dm.lowered.weights.data(),
                                        dm.lowered.weights.size(), rt.plan_stream()));
  // Poison the arena: a layer that reads what nobody wrote shows up as a mismatch.
  REQUIRE_OK(cuda::memset_d8_async(dm.arena.ptr(), 0xA5, dm.arena.size(), rt.plan_stream()));
  REQUIRE_OK(rt.plan_stream().synchronize());
  dm.bindings = Bindings{dm.weights.ptr(), dm.arena.ptr(), dm.workspace.ptr(), dm.workspace.size()};
}

Plan build_plan(const Manifest& m, std::span<const uint8_t> weights, Precision precision,
                const PlanOptions& base = {}) {
  PlanOptions options = base;
  options.precision = precision;
  auto plan = Plan::build(m, weights, testing::shared_runtime(), options);
  INFO("Plan::build(" << m.model_name() << ", " << precision_name(precision)
                      << "): " << plan.status().to_string());
  REQUIRE(plan.ok());
  return std::move(plan).value();
}

// Writes `inputs` into the arena at the plan's input slots (synchronously).
void write_inputs(const Plan& plan, const DeviceModel& dm,
                  const std::map<std::string, Tensor>& inputs, const cuda::Stream& stream) {
  REQUIRE(inputs.size() == plan.inputs().size());
  for (const IoSpec& in : plan.inputs()) {
    const Tensor& t = inputs.at(in.name);
    REQUIRE(t.byte_size() == in.bytes);
    REQUIRE_OK(
        cuda::copy_to_device_async(dm.arena.ptr() + in.arena_offset, t.raw(), in.bytes, stream));
  }
  REQUIRE_OK(stream.synchronize());
}

// Reads the plan's outputs from the arena (synchronously), by name.
std::map<std::string, Tensor> read_outputs(const Plan& plan, const DeviceModel& dm,
                                           const cuda::Stream& stream) {
  std::map<std::string, Tensor> out;
  for (const IoSpec& o : plan.outputs()) {
    auto t = Tensor::allocate(o.dtype, o.shape);
    REQUIRE(t.ok());
    REQUIRE_OK(cuda::copy_to_host_async(t->mutable_raw(), dm.arena.ptr() + o.arena_offset, o.bytes,
                                        stream));
    out.emplace(o.name, std::move(t).value());
  }
  REQUIRE_OK(stream.synchronize());
  return out;
}

std::map<std::string, Tensor> run_plain(const Plan& plan, const DeviceModel& dm,
                                        const std::map<std::string, Tensor>& inputs,
                                        const cuda::Stream& stream) {
  write_inputs(plan, dm, inputs, stream);
  REQUIRE_OK(plan.enqueue(stream, dm.bindings));
  return read_outputs(plan, dm, stream);
}

bool bit_identical(const std::map<std::string, Tensor>& a, const std::map<std::string, Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [name, t] : a) {
    auto it = b.find(name);
    if (it == b.end() || it->second.byte_size() != t.byte_size()) return false;
    if (std::memcmp(t.raw(), it->second.raw(), t.byte_size()) != 0) return false;
  }
  return true;
}

std::map<std::string, const Tensor*> borrow(const std::map<std::string, Tensor>& m) {
  std::map<std::string, const Tensor*> out;
  for (const auto& [name, t] : m) out.emplace(name, &t);
  return out;
}

// The whole-model check: GPU plan vs CPU executor, then graph replay vs plain enqueue.
void check_model(const std::string& model, int opset, Precision precision) {
  const std::string label = str_cat(model, " opset ", opset, " ", precision_name(precision));
  INFO(label);
  DeviceModel dm;
  dm.lowered = lower(model, opset);
  const Manifest& m = dm.lowered.manifest;
  Plan plan = build_plan(m, dm.lowered.weights, precision);
  place(dm, plan);
  auto stream = cuda::Stream::create(cuda::StreamPriority::kHigh);
  REQUIRE(stream.ok());

  auto inputs = models::testing::make_model_inputs(m, 20240611);
  REQUIRE(inputs.ok());
  auto expected = cpu::run_model(m, dm.lowered.weights, borrow(*inputs));
  INFO("cpu::run_model: " << expected.status().to_string());
  REQUIRE(expected.ok());

  const auto gpu = run_plain(plan, dm, *inputs, *stream);
  const double tolerance = precision == Precision::kFp32 ? kFp32Tolerance : kTf32Tolerance;
  for (const auto& [name, ref] : *expected) {
    INFO("output " << name);
    REQUIRE(gpu.count(name) == 1);
    auto err = testing::compare_tensors(ref, gpu.at(name));
    INFO(err.status().to_string());
    REQUIRE(err.ok());
    std::printf(
        "%s: output %s %s max relative error %.3g (max abs %.3g, non-finite mismatches %lld)\n",
        label.c_str(), name.c_str(), ref.description().c_str(), err->max_rel, err->max_abs,
        static_cast<long long>(err->mismatches));
    CHECK(err->mismatches == 0);
    CHECK(err->max_rel <= tolerance);
  }

  // Graph replay: bit-identical to plain enqueue when plain enqueue is itself deterministic.
  const auto again = run_plain(plan, dm, *inputs, *stream);
  const bool deterministic = bit_identical(gpu, again);
  if (!deterministic) {
    std::printf(
        "WARN %s: two plain runs differ (a non-deterministic algorithm); graph replay is "
        "checked against the tolerance only\n",
        label.c_str());
  }
  auto graph = plan.capture_graph(*stream, dm.bindings);
  INFO("capture_graph: " << graph.status().to_string());
  REQUIRE(graph.ok());
  CHECK(graph->node_count() >= plan.layer_count() / 4);  // views add no node
  std::printf("%s: graph of %zu nodes for %zu layers\n", label.c_str(), graph->node_count(),
              plan.layer_count());
  // New inputs, so a graph that baked the first run in cannot pass.
  auto other = models::testing::make_model_inputs(m, 777);
  REQUIRE(other.ok());
  const auto plain_other = run_plain(plan, dm, *other, *stream);
  for (const IoSpec& o : plan.outputs()) {  // poison the outputs before the replay
    REQUIRE_OK(cuda::memset_d8_async(dm.arena.ptr() + o.arena_offset, 0xA5, o.bytes, *stream));
  }
  write_inputs(plan, dm, *other, *stream);
  REQUIRE_OK(graph->launch(*stream));
  const auto replayed = read_outputs(plan, dm, *stream);
  if (deterministic) {
    CHECK(bit_identical(plain_other, replayed));
  }
  for (const auto& [name, t] : plain_other) {
    auto err = testing::compare_tensors(t, replayed.at(name));
    REQUIRE(err.ok());
    CHECK(err->max_rel <= tolerance);
  }
  CHECK_FALSE(bit_identical(gpu, plain_other));  // the inputs matter
}

TEST_CASE("resnet_tiny on the GPU matches the CPU executor, graph replay matches enqueue",
          "[gpu][gpu_executor]") {
  PS_REQUIRE_GPU();
  check_model("resnet_tiny", 17, GENERATE(Precision::kFp32, Precision::kTf32));
}

TEST_CASE("inception_tiny on the GPU matches the CPU executor, graph replay matches enqueue",
          "[gpu][gpu_executor]") {
  PS_REQUIRE_GPU();
  check_model("inception_tiny", 17, GENERATE(Precision::kFp32, Precision::kTf32));
}

TEST_CASE("bert_tiny on the GPU matches the CPU executor, graph replay matches enqueue",
          "[gpu][gpu_executor]") {
  PS_REQUIRE_GPU();
  const int opset = GENERATE(13, 17);
  check_model("bert_tiny", opset, GENERATE(Precision::kFp32, Precision::kTf32));
}

TEST_CASE("the group hook runs before each group's first layer, with the stream",
          "[gpu][gpu_executor]") {
  PS_REQUIRE_GPU();
  DeviceModel dm;
  dm.lowered = lower("resnet_tiny");
  Plan plan = build_plan(dm.lowered.manifest, dm.lowered.weights, Precision::kFp32);
  place(dm, plan);
  REQUIRE(plan.group_count() == plan.layer_count());  // per-layer grouping
  auto stream = cuda::Stream::create();
  REQUIRE(stream.ok());
  auto inputs = models::testing::make_model_inputs(dm.lowered.manifest, 1);
  REQUIRE(inputs.ok());
  write_inputs(plan, dm, *inputs, *stream);

  // As the switching engine uses it: each group waits for an event recorded on another stream.
  auto copy_stream = cuda::Stream::create();
  REQUIRE(copy_stream.ok());
  auto ready = cuda::Event::create();
  REQUIRE(ready.ok());
  REQUIRE_OK(ready->record(*copy_stream));
  std::vector<uint32_t> seen;
  const GroupHook hook = [&](uint32_t group, const cuda::Stream& s) -> Status {
    if (&s != &*stream) return internal_error("hook got another stream");
    seen.push_back(group);
    return s.wait(*ready);
  };
  REQUIRE_OK(plan.enqueue(*stream, dm.bindings, hook));
  REQUIRE_OK(stream->synchronize());
  REQUIRE(seen.size() == plan.group_count());
  for (size_t g = 0; g < seen.size(); ++g) CHECK(seen[g] == g);

  seen.clear();
  REQUIRE_OK(plan.enqueue_layers(2, 3, *stream, dm.bindings, hook));
  CHECK(seen == std::vector<uint32_t>{2, 3, 4});
  CHECK(plan.enqueue_layers(0, static_cast<uint32_t>(plan.layer_count() + 1), *stream, dm.bindings)
            .code() == Code::kOutOfRange);

  const GroupHook failing = [](uint32_t group, const cuda::Stream&) -> Status {
    return group == 3 ? make_error(Code::kCancelled, "preempted") : Status::OK();
  };
  const Status stopped = plan.enqueue(*stream, dm.bindings, failing);
  CHECK(stopped.code() == Code::kCancelled);
  CHECK_THAT(stopped.message(), Catch::Contains("group 3"));
  REQUIRE_OK(stream->synchronize());

  Bindings no_arena = dm.bindings;
  no_arena.arena = 0;
  CHECK(plan.enqueue(*stream, no_arena).code() == Code::kInvalidArgument);
  if (plan.workspace_bytes() > 0) {
    Bindings small = dm.bindings;
    small.workspace_bytes = plan.workspace_bytes() - 1;
    CHECK(plan.enqueue(*stream, small).code() == Code::kInvalidArgument);
  }
}

// "" when every copy group's bytes of `got` are the package's (`want`) and the padding between
// groups, which no copy touches, still holds the poison; else where they differ: the count,
// the first and last offsets, and for the first the tensor holding it (or the padding it falls
// in) and its group. So that a failure on the GPU says what went wrong.
std::string describe_weight_difference(const Manifest& m, const std::vector<CopyGroup>& groups,
                                       const std::vector<uint8_t>& want,
                                       const std::vector<uint8_t>& got, uint8_t poison) {
  std::vector<bool> in_group(want.size(), false);
  for (const CopyGroup& g : groups) {
    for (uint64_t b = g.blob_offset; b < g.blob_offset + g.bytes && b < want.size(); ++b) {
      in_group[b] = true;
    }
  }
  uint64_t count = 0, first = 0, last = 0;
  for (uint64_t b = 0; b < want.size(); ++b) {
    if (got[b] == (in_group[b] ? want[b] : poison)) continue;
    if (count++ == 0) first = b;
    last = b;
  }
  if (count == 0) return "";
  std::string where = "padding between groups (should hold the poison)";
  for (const auto& t : m.tensors()) {
    if (t.kind() == pipeswitch::psm::Tensor::WEIGHT && first >= t.weight_offset() &&
        first < t.weight_offset() + t.byte_size()) {
      where =
          str_cat("tensor '", t.name(), "' at ", first - t.weight_offset(), " of ", t.byte_size());
    }
  }
  std::string group = "no group";
  for (size_t g = 0; g < groups.size(); ++g) {
    if (first >= groups[g].blob_offset && first < groups[g].blob_offset + groups[g].bytes) {
      group = str_cat("group ", g, " [", groups[g].blob_offset, ", +", groups[g].bytes, ")");
    }
  }
  return str_cat(count, " of ", want.size(), " bytes differ, offsets ", first, "..", last,
                 "; the first in ", where, ", ", group, " (got 0x", std::hex,
                 static_cast<int>(got[first]), ")");
}

// Parallel transmission (parallel_run.h, cuda_lanes.h) on one GPU: links 1 and 2 are "peers"
// in the same context (their own in and hop streams, staging slots in device memory, forwards
// as device-to-device copies), so the whole path runs: pieces copied into slots, forwarded,
// every group's layers waiting on its arrivals across streams. The weights are poisoned first;
// the outputs must be the resident run's, every copy group's bytes the package's, and the
// alignment padding between groups, which no copy covers (4.5 KiB of bert_tiny's), still the
// poison: a copy that strays is caught there.
TEST_CASE("parallel transmission over three links of one GPU gives the resident outputs",
          "[gpu][gpu_executor]") {
  PS_REQUIRE_GPU();
  const std::string model = GENERATE("resnet_tiny", "bert_tiny");
  const uint32_t link_count = GENERATE(1u, 2u, 3u);
  const uint64_t max_piece = GENERATE(uint64_t{0}, uint64_t{64} << 10);
  INFO(model << ", " << link_count << " links, pieces of at most " << max_piece);
  DeviceModel dm;
  dm.lowered = lower(model);
  const Manifest& m = dm.lowered.manifest;
  Plan plan = build_plan(m, dm.lowered.weights, Precision::kFp32);
  place(dm, plan);
  auto compute = cuda::Stream::create(cuda::StreamPriority::kHigh);
  REQUIRE(compute.ok());
  auto inputs = models::testing::make_model_inputs(m, 42);
  REQUIRE(inputs.ok());
  const auto resident = run_plain(plan, dm, *inputs, *compute);
  const bool deterministic = bit_identical(resident, run_plain(plan, dm, *inputs, *compute));

  auto host = cuda::PinnedBuffer::allocate(dm.lowered.weights.size());
  REQUIRE(host.ok());
  std::memcpy(host->data(), dm.lowered.weights.data(), dm.lowered.weights.size());
  auto groups = package_groups(m);
  REQUIRE(groups.ok());
  std::vector<uint64_t> group_bytes;
  for (const CopyGroup& g : *groups) group_bytes.push_back(g.bytes);
  LinkSet links;
  links.links = link_count;
  links.host = {3.0, 50000.0};
  links.nvlink_bytes_per_us = 350000.0;
  links.hop_fixed_us = 2.0;
  links.max_piece_bytes = max_piece;
  auto route = plan_parallel_transfer(group_bytes, links);
  REQUIRE(route.ok());
  for (uint32_t l = 0; l < link_count; ++l) CHECK(route->bytes_per_link[l] > 0);
  uint64_t slot_bytes = 256;
  for (const PieceRoute& p : route->pieces) slot_bytes = std::max(slot_bytes, p.bytes);

  auto context = cuda::current_context();
  REQUIRE(context.ok());
  constexpr uint32_t kSlots = 2;
  std::vector<cuda::Stream> streams;
  for (uint32_t i = 0; i < 2 * link_count; ++i) {
    auto s = cuda::Stream::create();
    REQUIRE(s.ok());
    streams.push_back(std::move(s).value());
  }
  cuda::DeviceBuffer staging = allocate(link_count * kSlots * slot_bytes);
  std::vector<LinkStreams> link_streams(link_count);
  std::vector<std::vector<cuda::Event>> link_events(link_count);
  for (uint32_t l = 0; l < link_count; ++l) {
    LinkStreams& k = link_streams[l];
    k.context = *context;
    k.in = &streams[2 * l];
    if (l > 0) {
      k.hop = &streams[2 * l + 1];
      k.staging = staging.ptr() + l * kSlots * slot_bytes;
      k.slots = kSlots;
      k.slot_bytes = slot_bytes;
    }
    auto events = create_link_events(*context, lane_events_needed(*route, l, k.slots));
    REQUIRE(events.ok());
    link_events[l] = std::move(events).value();
    k.events = link_events[l];
  }
  auto lanes = CudaLanes::create(link_streams, *context, *compute);
  INFO(lanes.status().to_string());
  REQUIRE(lanes.ok());
  lanes->bind(host->data(), dm.weights.ptr());

  constexpr uint8_t kPoison = 0xA5;
  for (int round = 0; round < 2; ++round) {  // the second reuses the lanes and their events
    REQUIRE_OK(cuda::memset_d8_async(dm.weights.ptr(), kPoison, dm.weights.size(), *compute));
    write_inputs(plan, dm, *inputs, *compute);  // synchronises: the poison is in place
    REQUIRE_OK(enqueue_parallel(*groups, *route, {}, *lanes, [&](size_t g) {
      return plan.enqueue_layers((*groups)[g].first_layer, (*groups)[g].layer_count, *compute,
                                 dm.bindings);
    }));
    const auto switched = read_outputs(plan, dm, *compute);
    for (cuda::Stream& s : streams) REQUIRE_OK(s.synchronize());
    if (deterministic) {
      CHECK(bit_identical(resident, switched));
    } else {
      for (const auto& [name, t] : resident) {
        auto err = testing::compare_tensors(t, switched.at(name));
        REQUIRE(err.ok());
        CHECK(err->max_rel <= kFp32Tolerance);
      }
    }
    std::vector<uint8_t> weights(dm.lowered.weights.size());
    REQUIRE_OK(
        cuda::copy_to_host_async(weights.data(), dm.weights.ptr(), weights.size(), *compute));
    REQUIRE_OK(compute->synchronize());
    const std::string diff =
        describe_weight_difference(m, *groups, dm.lowered.weights, weights, kPoison);
    INFO("round " << round << ": " << diff);
    CHECK(diff.empty());
  }
}

// Wraps a real op; after it, fills its first output with NaN, or fails at enqueue.
class BrokenOp : public GpuOp {
 public:
  enum class Mode { kNaN, kFail };
  BrokenOp(std::unique_ptr<GpuOp> inner, Mode mode, size_t output_bytes)
      : inner_(std::move(inner)), mode_(mode), output_bytes_(output_bytes) {}
  size_t workspace_bytes() const override { return inner_->workspace_bytes(); }
  Status enqueue(const LaunchArgs& args) const override {
    if (mode_ == Mode::kFail) return device_error("injected launch failure");
    PS_TRY(inner_->enqueue(args));
    return cuda::memset_d32_async(args.outputs[0], 0x7fc00000u, output_bytes_ / 4, args.stream);
  }
  std::string describe() const override { return "broken(" + inner_->describe() + ")"; }

 private:
  std::unique_ptr<GpuOp> inner_;
  Mode mode_;
  size_t output_bytes_;
};

TEST_CASE("the debug run names the layer that produces NaN or fails", "[gpu][gpu_executor]") {
  PS_REQUIRE_GPU();
  DeviceModel dm;
  dm.lowered = lower("resnet_tiny");
  const Manifest& m = dm.lowered.manifest;
  // A FusedConv in the middle of the model, with a float32 output.
  uint32_t target = 0;
  for (int i = m.layers_size() / 2; i < m.layers_size(); ++i) {
    if (m.layers(i).op() == "FusedConv") {
      target = static_cast<uint32_t>(i);
      break;
    }
  }
  REQUIRE(target > 0);
  const std::string name = m.layers(static_cast<int>(target)).name();
  const BrokenOp::Mode mode = GENERATE(BrokenOp::Mode::kNaN, BrokenOp::Mode::kFail);
  PlanOptions options;
  options.warm_up = mode == BrokenOp::Mode::kNaN;  // a failing op would fail the warm-up
  options.op_factory = [&](const OpSpec& spec, const OpEnv& env,
                           uint32_t layer) -> Result<std::unique_ptr<GpuOp>> {
    PS_ASSIGN_OR_RETURN(std::unique_ptr<GpuOp> op, build_op(spec, env));
    if (layer != target) return op;
    return std::unique_ptr<GpuOp>(new BrokenOp(std::move(op), mode, spec.outputs[0].bytes()));
  };
  Plan plan = build_plan(m, dm.lowered.weights, Precision::kFp32, options);
  place(dm, plan);
  auto stream = cuda::Stream::create();
  REQUIRE(stream.ok());
  auto inputs = models::testing::make_model_inputs(m, 5);
  REQUIRE(inputs.ok());
  write_inputs(plan, dm, *inputs, *stream);

  const Status s = plan.run_debug(*stream, dm.bindings);
  std::printf("debug run: %s\n", s.to_string().c_str());
  REQUIRE_FALSE(s.ok());
  CHECK_THAT(s.message(), Catch::Contains(str_cat("layer ", target, " (FusedConv '", name, "'")));
  if (mode == BrokenOp::Mode::kNaN) {
    CHECK_THAT(s.message(), Catch::Contains("NaN"));
    CHECK_THAT(s.message(), Catch::Contains("all its inputs are finite"));
  } else {
    CHECK_THAT(s.message(), Catch::Contains("injected launch failure"));
    const Status plain = plan.enqueue(*stream, dm.bindings);
    CHECK_THAT(plain.message(), Catch::Contains(str_cat("layer ", target, " (FusedConv")));
  }
  REQUIRE_OK(stream->synchronize());
}

TEST_CASE("the debug run passes a healthy model and names a NaN model input",
          "[gpu][gpu_executor]") {
  PS_REQUIRE_GPU();
  DeviceModel dm;
  dm.lowered = lower("inception_tiny");
  const Manifest& m = dm.lowered.manifest;
  Plan plan = build_plan(m, dm.lowered.weights, Precision::kTf32);
  place(dm, plan);
  auto stream = cuda::Stream::create();
  REQUIRE(stream.ok());
  auto inputs = models::testing::make_model_inputs(m, 9);
  REQUIRE(inputs.ok());
  write_inputs(plan, dm, *inputs, *stream);
  REQUIRE_OK(plan.run_debug(*stream, dm.bindings));

  Tensor& x = inputs->begin()->second;
  x.mutable_data<float>()[3] = std::numeric_limits<float>::quiet_NaN();
  write_inputs(plan, dm, *inputs, *stream);
  const Status s = plan.run_debug(*stream, dm.bindings);
  REQUIRE_FALSE(s.ok());
  CHECK_THAT(s.message(), Catch::Contains("model input '" + inputs->begin()->first + "'"));
  CHECK_THAT(s.message(), Catch::Contains("first at element 3"));

  auto profile = plan.profile_layers(*stream, dm.bindings);
  REQUIRE(profile.ok());
  REQUIRE(profile->size() == plan.layer_count());
  double total = 0;
  for (double ms : *profile) {
    CHECK(ms >= 0);
    total += ms;
  }
  CHECK(total > 0);
}

class NothingOp : public GpuOp {
 public:
  Status enqueue(const LaunchArgs&) const override { return Status::OK(); }
  std::string describe() const override { return "nothing"; }
};

TEST_CASE("a build error lists every layer the GPU cannot run", "[gpu][gpu_executor]") {
  PS_REQUIRE_GPU();
  const onnx_loader::LoweredModel l = lower("resnet_tiny");
  const Manifest& m = l.manifest;
  std::vector<int> convs;
  for (int i = 0; i < m.layers_size(); ++i) {
    if (m.layers(i).op() == "FusedConv") convs.push_back(i);
  }
  REQUIRE(convs.size() > 2);
  PlanOptions options;
  options.warm_up = false;
  // Every other layer gets an op that does nothing, so only the FusedConvs can fail.
  options.op_factory = [](const OpSpec& spec, const OpEnv&,
                          uint32_t) -> Result<std::unique_ptr<GpuOp>> {
    if (spec.op == "FusedConv") return unsupported("pretend FusedConv is missing");
    return std::unique_ptr<GpuOp>(new NothingOp());
  };
  auto plan = Plan::build(m, l.weights, testing::shared_runtime(), options);
  REQUIRE_FALSE(plan.ok());
  std::printf("%s\n", plan.status().to_string().c_str());
  CHECK(plan.status().code() == Code::kUnsupported);
  CHECK_THAT(plan.status().message(), Catch::Contains(str_cat(convs.size(), " of ")));
  for (int i : convs) {
    CHECK_THAT(plan.status().message(),
               Catch::Contains(str_cat("layer ", i, " (FusedConv '", m.layers(i).name(), "')")));
  }

  std::vector<uint8_t> short_blob(l.weights.begin(), l.weights.begin() + 16);
  auto truncated = Plan::build(m, short_blob, testing::shared_runtime());
  CHECK(truncated.status().code() == Code::kInvalidArgument);
}

}  // namespace
}  // namespace ps::models::gpu
