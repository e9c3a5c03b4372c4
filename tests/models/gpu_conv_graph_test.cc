// The cuDNN graph convolution (models/gpu/conv_graph.h) on the GPU: every execution plan the
// heuristics offer for a layer is run and compared with the CPU reference of FusedConv (or of
// Conv, where no engine fuses the epilogue and ConvOp would run the convolution alone), in
// strict fp32 (where a TF32 engine slipping through the notes filter would miss the tolerance
// by two orders of magnitude) and in TF32. ConvOp only keeps a plan that wins its timing, so
// these cases are what makes every plan's correctness visible. [gpu]: skipped without a GPU.
#include <catch2/catch.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "cuda/copy.h"
#include "cuda/device_buffer.h"
#include "models/gpu/conv_algo.h"
#include "models/gpu/conv_graph.h"
#include "models/gpu/runtime.h"
#include "models/gpu/window_plan.h"
#include "tests/models/gpu_dnn_test_util.h"
#include "tests/models/gpu_op_check.h"
#include "tests/support/gpu.h"

namespace ps::models::gpu {
namespace {

using namespace dnn_test;
using testing::random_tensor;
using testing::shared_runtime;

struct GraphCase {
  std::string label;
  Shape x, w;
  std::vector<int64_t> pads, strides;
  bool bias, residual, relu;
};

Result<cuda::DeviceBuffer> upload(const cpu::Tensor& t, const cuda::Stream& stream) {
  PS_ASSIGN_OR_RETURN(cuda::DeviceBuffer d, cuda::DeviceBuffer::allocate(t.byte_size()));
  PS_TRY(cuda::copy_to_device_async(d.ptr(), t.raw(), t.byte_size(), stream));
  return d;
}

void run_graph_case(const GraphCase& c, uint64_t seed) {
  INFO(c.label);
  std::vector<pipeswitch::psm::Attribute> list{
      attr_ints("pads", {c.pads[0], c.pads[1], c.pads[0], c.pads[1]}),
      attr_ints("strides", c.strides), attr_s("activation", c.relu ? "relu" : "none"),
      attr_i("has_residual", c.residual ? 1 : 0)};
  const cpu::Attributes a = attrs(list);
  const cpu::Tensor x = random_tensor(DType::kFloat32, c.x, seed);
  const cpu::Tensor w = random_tensor(DType::kFloat32, c.w, seed + 1, -0.5, 0.5);
  const cpu::Tensor b = random_tensor(DType::kFloat32, {c.w[0]}, seed + 2);
  // The output shape, from the reference of the convolution alone.
  Result<std::vector<cpu::Tensor>> plain = cpu::run_op_allocating(
      "Conv", attrs({list[0], list[1]}), std::vector<const cpu::Tensor*>{&x, &w}, 1);
  REQUIRE(plain.ok());
  const Shape y_shape = (*plain)[0].shape();
  const cpu::Tensor r = random_tensor(DType::kFloat32, y_shape, seed + 3);
  std::vector<const cpu::Tensor*> inputs{&x, &w, c.bias ? &b : nullptr};
  if (c.residual) inputs.push_back(&r);
  Result<std::vector<cpu::Tensor>> expected = cpu::run_op_allocating("FusedConv", a, inputs, 1);
  REQUIRE(expected.ok());

  std::vector<TensorSpec> in_specs{f32(c.x), f32(c.w), c.bias ? f32({c.w[0]}) : TensorSpec{}};
  if (c.residual) in_specs.push_back(f32(y_shape));
  const std::vector<TensorSpec> out_specs{f32(y_shape)};
  Result<ConvPlan> plan = plan_conv(OpSpec{"FusedConv", c.label, a, in_specs, out_specs});
  REQUIRE(plan.ok());
  const CudnnConvShape s = cudnn_conv_shape(*plan);

  GpuRuntime& runtime = shared_runtime();
  const cuda::Stream& stream = runtime.plan_stream();
  auto dx = upload(x, stream), dw = upload(w, stream), db = upload(b, stream),
       dr = upload(r, stream);
  REQUIRE((dx.ok() && dw.ok() && db.ok() && dr.ok()));
  Result<cuda::DeviceBuffer> dy = cuda::DeviceBuffer::allocate(expected->front().byte_size());
  REQUIRE(dy.ok());
  for (Precision p : {Precision::kFp32, Precision::kTf32}) {
    // The fused graph where cuDNN has an engine for it, else the convolution alone (what
    // ConvOp then runs before its epilogue kernel), checked against the plain Conv.
    bool fused = c.bias || c.residual || c.relu;
    auto build = [&](bool with_epilogue) {
      return ConvGraph::build(runtime.dnn(),
                              ConvGraphShape{s.x, s.w, s.y, s.bias, s.pads, s.strides, s.dilations,
                                             with_epilogue && c.bias, with_epilogue && c.residual,
                                             with_epilogue && c.relu},
                              p, 4, kConvWorkspaceCap);
    };
    Result<ConvGraph> graph = build(fused);
    if (!graph.ok() && fused) {
      std::printf("[dnn] graph conv %-34s %s: no fused engine (%s); the convolution alone\n",
                  c.label.c_str(), std::string(precision_name(p)).c_str(),
                  graph.status().message().c_str());
      CHECK(graph.status().code() == Code::kUnsupported);
      fused = false;
      graph = build(false);
    }
    INFO(precision_name(p) << ": "
                           << (graph.ok() ? std::string("built") : graph.status().to_string()));
    REQUIRE(graph.ok());
    REQUIRE(graph->plan_count() >= 1);
    const cpu::Tensor& want =
        fused || !(c.bias || c.residual || c.relu) ? expected->front() : (*plain)[0];
    for (size_t i = 0; i < graph->plan_count(); ++i) {
      Result<cuda::DeviceBuffer> ws =
          cuda::DeviceBuffer::allocate(std::max<size_t>(graph->workspace_bytes(i), 256));
      REQUIRE(ws.ok());
      REQUIRE(runtime.bind(stream, 0, 0).ok());
      REQUIRE(cuda::memset_d32_async(dy->ptr(), 0x7fc00000u, static_cast<size_t>(want.numel()),
                                     stream)
                  .ok());  // NaN: a plan that writes nothing fails
      Status ran = graph->execute(runtime.dnn(), i, dx->ptr(), dw->ptr(), db->ptr(), dr->ptr(),
                                  dy->ptr(), ws->ptr());
      INFO("engine " << graph->engine(i) << ": " << ran.to_string());
      REQUIRE(ran.ok());
      Result<cpu::Tensor> got = cpu::Tensor::allocate(DType::kFloat32, y_shape);
      REQUIRE(got.ok());
      REQUIRE(
          cuda::copy_to_host_async(got->mutable_raw(), dy->ptr(), got->byte_size(), stream).ok());
      REQUIRE(stream.synchronize().ok());
      Result<testing::TensorError> e = testing::compare_tensors(want, *got);
      REQUIRE(e.ok());
      std::printf("[dnn] graph conv %-34s %s %s engine %3lld ws %9zu: max_rel %.3g\n",
                  c.label.c_str(), std::string(precision_name(p)).c_str(),
                  fused ? "fused" : "conv only", static_cast<long long>(graph->engine(i)),
                  graph->workspace_bytes(i), e->max_rel);
      CHECK(e->mismatches == 0);
      CHECK(e->max_rel <= (p == Precision::kFp32 ? 2e-5 : 5e-3));
    }
  }
}

TEST_CASE("dnn Conv: every cuDNN graph plan matches the reference", "[gpu]") {
  PS_REQUIRE_GPU();
  // One case a line: name, x, w, pads, strides, bias, residual, relu.
  // clang-format off
  const std::vector<GraphCase> cases = {
      {"resnet stem 7x7/2 +bias+relu", {2, 3, 64, 64}, {64, 3, 7, 7}, {3, 3}, {2, 2}, true, false, true},
      {"bottleneck 1x1 +bias+add+relu", {2, 64, 28, 28}, {256, 64, 1, 1}, {0, 0}, {1, 1}, true, true, true},
      {"3x3/2 +relu, no bias", {2, 32, 29, 29}, {48, 32, 3, 3}, {1, 1}, {2, 2}, false, false, true},
      {"inception 1x7 +bias+relu", {2, 24, 17, 17}, {32, 24, 1, 7}, {0, 3}, {1, 1}, true, false, true},
      {"plain 3x3, nothing fused", {1, 16, 12, 12}, {8, 16, 3, 3}, {1, 1}, {1, 1}, false, false, false},
      {"bias+add, no relu", {2, 16, 10, 10}, {16, 16, 3, 3}, {1, 1}, {1, 1}, true, true, false},
  };
  // clang-format on
  uint64_t seed = 7000;
  for (const GraphCase& c : cases) run_graph_case(c, seed += 10);
}

TEST_CASE("dnn Conv: the cuDNN graph refuses grouped convolutions by name", "[gpu]") {
  PS_REQUIRE_GPU();
  const std::vector<int64_t> x{1, 8, 8, 8}, w{8, 2, 3, 3}, y{1, 8, 8, 8}, bias{1, 8, 1, 1};
  const std::vector<int64_t> pads{1, 1}, ones{1, 1};
  Result<ConvGraph> g = ConvGraph::build(
      shared_runtime().dnn(), ConvGraphShape{x, w, y, bias, pads, ones, ones, true, false, true},
      Precision::kTf32, 2, kConvWorkspaceCap);
  REQUIRE_FALSE(g.ok());
  CHECK(g.status().code() == Code::kUnsupported);
  CHECK_THAT(g.status().message(), Catch::Contains("grouped"));
}

}  // namespace
}  // namespace ps::models::gpu
