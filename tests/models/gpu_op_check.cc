#include "tests/models/gpu_op_check.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>

#include "cuda/copy.h"
#include "cuda/device_buffer.h"

namespace ps::models::gpu::testing {
namespace {

double element_as_double(const cpu::Tensor& t, int64_t i) {
  const auto* p = static_cast<const uint8_t*>(t.raw());
  switch (t.dtype()) {
    case DType::kFloat32: { float v; std::memcpy(&v, p + i * 4, 4); return v; }
    case DType::kFloat64: { double v; std::memcpy(&v, p + i * 8, 8); return v; }
    case DType::kFloat16: { uint16_t v; std::memcpy(&v, p + i * 2, 2); return float16_to_float(v); }
    case DType::kBFloat16: { uint16_t v; std::memcpy(&v, p + i * 2, 2); return bfloat16_to_float(v); }
    case DType::kInt64: { int64_t v; std::memcpy(&v, p + i * 8, 8); return static_cast<double>(v); }
    case DType::kInt32: { int32_t v; std::memcpy(&v, p + i * 4, 4); return v; }
    case DType::kInt8: return static_cast<int8_t>(p[i]);
    case DType::kUInt8: return p[i];
    case DType::kBool: return p[i] != 0 ? 1.0 : 0.0;
    default: return 0.0;
  }
}

Result<cuda::DeviceBuffer> upload(const cpu::Tensor& t, const cuda::Stream& stream) {
  // At least 256 bytes, so absent-looking zero-size tensors still get a distinct address.
  PS_ASSIGN_OR_RETURN(cuda::DeviceBuffer buf, cuda::DeviceBuffer::allocate(std::max<size_t>(t.byte_size(), 256)));
  if (t.byte_size() > 0) {
    PS_TRY(cuda::copy_to_device_async(buf.ptr(), t.raw(), t.byte_size(), stream));
  }
  return buf;
}

}  // namespace

GpuRuntime& shared_runtime() {
  static std::unique_ptr<GpuRuntime> runtime = [] {
    auto rt = GpuRuntime::create(0);
    if (!rt.ok()) FAIL("GpuRuntime::create(0): " << rt.status().to_string());
    return std::move(rt).value();
  }();
  return *runtime;
}

Result<TensorError> compare_tensors(const cpu::Tensor& expected, const cpu::Tensor& actual) {
  if (expected.dtype() != actual.dtype() || expected.shape() != actual.shape()) {
    return invalid_argument("compare_tensors: expected ", expected.description(), ", got ",
                            actual.description());
  }
  TensorError err;
  const bool floating = is_floating(expected.dtype());
  double max_mag = 0;
  for (int64_t i = 0; i < expected.numel(); ++i) {
    const double e = element_as_double(expected, i);
    const double a = element_as_double(actual, i);
    if (!floating) {
      if (e != a) ++err.mismatches;
      continue;
    }
    if (!std::isfinite(e) || !std::isfinite(a)) {
      const bool same = (std::isnan(e) && std::isnan(a)) || e == a;
      if (!same) ++err.mismatches;
      continue;
    }
    max_mag = std::max(max_mag, std::fabs(e));
    const double d = std::fabs(a - e);
    if (d > err.max_abs) {
      err.max_abs = d;
      err.worst_index = i;
    }
  }
  err.max_rel = err.max_abs / (max_mag > 0 ? max_mag : 1.0);
  if (!floating && err.mismatches > 0) err.max_rel = 1.0;
  return err;
}

Result<GpuOpRun> run_gpu_op(GpuRuntime& runtime, Precision precision, const std::string& op,
                            const cpu::Attributes& attrs,
                            std::span<const cpu::Tensor* const> inputs,
                            std::span<const TensorSpec> outputs,
                            std::initializer_list<size_t> weight_inputs) {
  return run_gpu_op(runtime, precision, op, attrs, inputs, outputs,
                    std::span<const size_t>(weight_inputs.begin(), weight_inputs.size()));
}

Result<GpuOpRun> run_gpu_op(GpuRuntime& runtime, Precision precision, const std::string& op,
                            const cpu::Attributes& attrs,
                            std::span<const cpu::Tensor* const> inputs,
                            std::span<const TensorSpec> outputs,
                            std::span<const size_t> weight_inputs) {
  const cuda::Stream& stream = runtime.plan_stream();
  std::vector<TensorSpec> in_specs;
  std::vector<cuda::DeviceBuffer> in_bufs;
  std::vector<CUdeviceptr> in_ptrs;
  for (size_t i = 0; i < inputs.size(); ++i) {
    TensorSpec spec;
    if (inputs[i] != nullptr) {
      spec.dtype = inputs[i]->dtype();
      spec.shape = inputs[i]->shape();
      spec.is_weight = std::find(weight_inputs.begin(), weight_inputs.end(), i) != weight_inputs.end();
      if (spec.is_weight) spec.host_data = inputs[i]->raw();
      PS_ASSIGN_OR_RETURN(cuda::DeviceBuffer buf, upload(*inputs[i], stream));
      in_ptrs.push_back(buf.ptr());
      in_bufs.push_back(std::move(buf));
    } else {
      in_ptrs.push_back(0);
    }
    in_specs.push_back(spec);
  }
  OpSpec spec{op, "test", attrs, in_specs, outputs};
  PS_ASSIGN_OR_RETURN(std::unique_ptr<GpuOp> gpu_op, build_op(spec, OpEnv{runtime, precision}));

  std::vector<cuda::DeviceBuffer> out_bufs;
  std::vector<CUdeviceptr> out_ptrs;
  for (const TensorSpec& o : outputs) {
    if (!o.present()) {
      out_ptrs.push_back(0);
      continue;
    }
    PS_ASSIGN_OR_RETURN(cuda::DeviceBuffer buf, cuda::DeviceBuffer::allocate(std::max<size_t>(o.bytes(), 256)));
    // Poison the outputs so an op that writes nothing cannot pass.
    PS_TRY(cuda::memset_d8_async(buf.ptr(), 0xA5, buf.size(), stream));
    out_ptrs.push_back(buf.ptr());
    out_bufs.push_back(std::move(buf));
  }
  cuda::DeviceBuffer workspace;
  if (gpu_op->workspace_bytes() > 0) {
    PS_ASSIGN_OR_RETURN(workspace, cuda::DeviceBuffer::allocate(gpu_op->workspace_bytes()));
  }
  PS_TRY(runtime.bind(stream, workspace.ptr(), workspace.size()));
  LaunchArgs args{stream, in_ptrs, out_ptrs, workspace.ptr(), workspace.size()};
  PS_TRY(gpu_op->enqueue(args));

  GpuOpRun run;
  run.description = gpu_op->describe();
  run.workspace_bytes = gpu_op->workspace_bytes();
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (!outputs[i].present()) {
      run.outputs.emplace_back();
      continue;
    }
    PS_ASSIGN_OR_RETURN(cpu::Tensor t, cpu::Tensor::allocate(outputs[i].dtype, outputs[i].shape));
    if (t.byte_size() > 0) {
      PS_TRY(cuda::copy_to_host_async(t.mutable_raw(), out_ptrs[i], t.byte_size(), stream));
    }
    run.outputs.push_back(std::move(t));
  }
  PS_TRY(stream.synchronize());
  return run;
}

double OpCheck::worst_rel() const {
  double worst = 0;
  for (const TensorError& e : errors) worst = std::max(worst, e.max_rel);
  return worst;
}

Result<OpCheck> check_against_cpu(GpuRuntime& runtime, Precision precision, const std::string& op,
                                  const cpu::Attributes& attrs,
                                  std::span<const cpu::Tensor* const> inputs, size_t num_outputs,
                                  std::initializer_list<size_t> weight_inputs) {
  PS_ASSIGN_OR_RETURN(std::vector<cpu::Tensor> expected,
                      cpu::run_op_allocating(op, attrs, inputs, num_outputs));
  std::vector<TensorSpec> out_specs;
  for (const cpu::Tensor& t : expected) out_specs.push_back(TensorSpec{t.dtype(), t.shape(), false});
  PS_ASSIGN_OR_RETURN(GpuOpRun run,
                      run_gpu_op(runtime, precision, op, attrs, inputs, out_specs, weight_inputs));
  OpCheck check;
  check.description = run.description;
  for (size_t i = 0; i < expected.size(); ++i) {
    PS_ASSIGN_OR_RETURN(TensorError e, compare_tensors(expected[i], run.outputs[i]));
    check.errors.push_back(e);
  }
  return check;
}

cpu::Tensor random_tensor(DType dtype, Shape shape, uint64_t seed, double lo, double hi) {
  Result<cpu::Tensor> made = cpu::Tensor::allocate(dtype, std::move(shape));
  REQUIRE(made.ok());
  cpu::Tensor t = std::move(made).value();
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> uni(lo, hi);
  auto* p = static_cast<uint8_t*>(t.mutable_raw());
  for (int64_t i = 0; i < t.numel(); ++i) {
    const double v = uni(rng);
    switch (dtype) {
      case DType::kFloat32: { float f = static_cast<float>(v); std::memcpy(p + i * 4, &f, 4); break; }
      case DType::kFloat64: std::memcpy(p + i * 8, &v, 8); break;
      case DType::kFloat16: { uint16_t h = float_to_float16(static_cast<float>(v)); std::memcpy(p + i * 2, &h, 2); break; }
      case DType::kBFloat16: { uint16_t h = float_to_bfloat16(static_cast<float>(v)); std::memcpy(p + i * 2, &h, 2); break; }
      case DType::kInt64: { int64_t x = std::llround(v); std::memcpy(p + i * 8, &x, 8); break; }
      case DType::kInt32: { int32_t x = static_cast<int32_t>(std::lround(v)); std::memcpy(p + i * 4, &x, 4); break; }
      case DType::kInt8: p[i] = static_cast<uint8_t>(static_cast<int8_t>(std::lround(v))); break;
      case DType::kUInt8: p[i] = static_cast<uint8_t>(std::lround(v)); break;
      case DType::kBool: p[i] = v > (lo + hi) / 2 ? 1 : 0; break;
      default: break;
    }
  }
  return t;
}

}  // namespace ps::models::gpu::testing
