// The GPU executor's shared pieces: precision names, the op registry, the runtime.
#include <catch2/catch.hpp>

#include "models/gpu/op.h"
#include "models/gpu/runtime.h"
#include "tests/models/gpu_op_check.h"
#include "tests/support/gpu.h"

namespace ps::models::gpu {
namespace {

TEST_CASE("precision names round-trip and bad names are refused", "[gpu_runtime]") {
  for (Precision p : {Precision::kFp32, Precision::kTf32}) {
    auto parsed = parse_precision(precision_name(p));
    REQUIRE(parsed.ok());
    CHECK(*parsed == p);
  }
  auto bad = parse_precision("fp16");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("fp16") != std::string::npos);
}

TEST_CASE("the registry lists sorted, unique ops and refuses unknown ones", "[gpu_runtime]") {
  const std::vector<std::string> ops = gpu_supported_ops();
  for (size_t i = 1; i < ops.size(); ++i) CHECK(ops[i - 1] < ops[i]);
  for (const std::string& op : ops) CHECK(gpu_supports(op));
  CHECK_FALSE(gpu_supports("NoSuchOp"));
}

TEST_CASE("the runtime opens the GPU, finds kernels and binds handles", "[gpu][gpu_runtime]") {
  PS_REQUIRE_GPU();
  GpuRuntime& rt = testing::shared_runtime();
  CHECK(rt.dnn() != nullptr);
  CHECK(rt.blas() != nullptr);
  CHECK(rt.blas_lt() != nullptr);
  auto k = rt.kernel("ps_fill_u32");
  REQUIRE(k.ok());
  auto again = rt.kernel("ps_fill_u32");
  REQUIRE(again.ok());
  CHECK(again->get() == k->get());
  CHECK_FALSE(rt.kernel("ps_no_such_kernel").ok());
  auto scratch = rt.plan_scratch(1 << 20);
  REQUIRE(scratch.ok());
  CHECK(rt.bind(rt.plan_stream(), *scratch, 1 << 20).ok());
  CHECK(rt.plan_stream().synchronize().ok());

  Attributes none;
  std::vector<TensorSpec> in{TensorSpec{DType::kFloat32, {2, 2}, false}};
  std::vector<TensorSpec> out{TensorSpec{DType::kFloat32, {2, 2}, false}};
  auto op = build_op(OpSpec{"NoSuchOp", "layer7", none, in, out}, OpEnv{rt, Precision::kTf32});
  REQUIRE_FALSE(op.ok());
  CHECK(op.status().code() == Code::kUnsupported);
  CHECK(op.status().message().find("layer7") != std::string::npos);
}

}  // namespace
}  // namespace ps::models::gpu
