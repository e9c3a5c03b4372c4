// The [gpu] backward-op tests' shared harness (gpu_grad_ops_test.cc, gpu_grad_bert_ops_test.cc):
// tolerances, building a backward op from a forward layer, running it on the device with
// uploaded tensors, and the comparison with the float64 CPU reference (one printed line each).
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cuda/copy.h"
#include "cuda/device_buffer.h"
#include "cuda/stream.h"
#include "models/gpu/grad_op.h"
#include "models/gpu/runtime.h"
#include "tests/models/gpu_op_check.h"
#include "tests/models/grad_check_util.h"
#include "tests/support/gpu.h"
#include "tests/support/require_ok.h"

namespace ps::models::gpu::grad_gpu {

using cpu::Tensor;
using grad_test::grad_error;
using grad_test::zeros_f32;
using testing::shared_runtime;

inline constexpr double kElementwise = 1e-6;
inline constexpr double kReduced = 2e-5;
inline constexpr double kTf32 = 5e-3;

inline TensorSpec spec_of(const Tensor& t) { return TensorSpec{t.dtype(), t.shape(), false}; }

// Runs a built op: uploads `inputs` (nullptr: address 0) and the current contents of
// `outputs` (nullptr: address 0; their contents matter when the op accumulates), enqueues on
// the plan stream with the workspace the op asks for, and downloads the outputs in place.
inline void run_on_gpu(const GpuOp& op, const std::vector<const Tensor*>& inputs,
                const std::vector<Tensor*>& outputs) {
  GpuRuntime& runtime = shared_runtime();
  const cuda::Stream& stream = runtime.plan_stream();
  std::vector<cuda::DeviceBuffer> keep;
  auto upload = [&](const Tensor* t) -> CUdeviceptr {
    if (t == nullptr) return 0;
    Result<cuda::DeviceBuffer> b =
        cuda::DeviceBuffer::allocate(std::max<size_t>(t->byte_size(), 256));
    REQUIRE_OK(b);
    if (t->byte_size() > 0)
      REQUIRE(cuda::copy_to_device_async(b->ptr(), t->raw(), t->byte_size(), stream).ok());
    keep.push_back(std::move(b).value());
    return keep.back().ptr();
  };
  std::vector<CUdeviceptr> in, out;
  for (const Tensor* t : inputs) in.push_back(upload(t));
  for (Tensor* t : outputs) out.push_back(upload(t));
  cuda::DeviceBuffer workspace;
  if (op.workspace_bytes() > 0) {
    Result<cuda::DeviceBuffer> w = cuda::DeviceBuffer::allocate(op.workspace_bytes());
    REQUIRE_OK(w);
    workspace = std::move(w).value();
  }
  REQUIRE(runtime.bind(stream, workspace.ptr(), workspace.size()).ok());
  const Status s = op.enqueue(LaunchArgs{stream, in, out, workspace.ptr(), workspace.size()});
  INFO(s.to_string());
  REQUIRE(s.ok());
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (outputs[i] == nullptr) continue;
    REQUIRE(
        cuda::copy_to_host_async(outputs[i]->mutable_raw(), out[i], outputs[i]->byte_size(), stream)
            .ok());
  }
  REQUIRE(stream.synchronize().ok());
}

// base + g (float64): what a gradient `g` accumulated onto a float32 buffer holding `base` is.
inline Tensor plus(const Tensor& base_f32, const Tensor& g64) {
  Tensor out = grad_test::to_f64(base_f32);
  for (int64_t i = 0; i < out.numel(); ++i) out.mutable_data<double>()[i] += g64.data<double>()[i];
  return out;
}

// A float32 tensor of NaNs: an output the op must overwrite.
inline Tensor poisoned(const Shape& shape) {
  Tensor t = zeros_f32(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = NAN;
  return t;
}

inline void report(const std::string& op, const std::string& label, const std::string& what, Precision p,
            const grad_test::GradError& e, const std::string& impl) {
  std::printf("[grad] %-18s %-34s %-7s %s: max_rel %.3g (at %lld) | %s\n", op.c_str(),
              label.c_str(), what.c_str(), std::string(precision_name(p)).c_str(), e.max_rel,
              static_cast<long long>(e.worst), impl.c_str());
}

inline void expect_close(const std::string& op, const std::string& label, const std::string& what,
                  Precision p, const Tensor& expected, const Tensor& actual, double tolerance,
                  const std::string& impl) {
  const grad_test::GradError e = grad_error(expected, actual);
  report(op, label, what, p, e, impl);
  INFO(op << " " << label << " " << what << " " << precision_name(p) << ": max_rel " << e.max_rel
          << " at " << e.worst << " via " << impl);
  CHECK(e.max_rel <= tolerance);
}

// Builds the backward of the forward layer (op, attrs, inputs, output) with `accumulate`
// (and GradSpec::partial).
inline std::unique_ptr<GpuOp> build_grad(const std::string& op, const cpu::Attributes& a,
                                         const std::vector<const Tensor*>& inputs, const Shape& y,
                                         Precision p, uint32_t accumulate = 0,
                                         uint32_t wanted = ~0u, bool partial = false) {
  std::vector<TensorSpec> in;
  for (const Tensor* t : inputs) in.push_back(t != nullptr ? spec_of(*t) : TensorSpec{});
  const std::vector<TensorSpec> out{TensorSpec{DType::kFloat32, y, false}};
  const OpSpec forward{op, "test", a, in, out};
  Result<std::unique_ptr<GpuOp>> g =
      build_grad_op(GradSpec{forward, wanted, accumulate, partial}, OpEnv{shared_runtime(), p});
  REQUIRE_OK(g);
  return std::move(g).value();
}

}  // namespace ps::models::gpu::grad_gpu
