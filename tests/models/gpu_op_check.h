// Test support for the GPU operators: runs one op on the GPU and compares it with the CPU
// reference (models/cpu), the ggml test-backend-ops way. Used by every [gpu] operator test.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "models/cpu/ops.h"
#include "models/cpu/tensor.h"
#include "models/gpu/op.h"
#include "models/gpu/runtime.h"

namespace ps::models::gpu::testing {

// The process-wide runtime of a test executable, created on first use on device 0.
// Precondition: PS_REQUIRE_GPU() passed. A creation failure fails the test (REQUIRE).
GpuRuntime& shared_runtime();

// How far `actual` is from `expected` (same dtype and shape, else an error).
//  - max_abs: the largest |a - e|;
//  - max_rel: max_abs over the largest |e| of the tensor (1 when that is 0): the "maximum
//    relative error" of the issue's targets, insensitive to single values near zero;
//  - mismatches: for integer and bool tensors, how many elements differ (they must be exact);
//    for floats, how many are NaN/Inf in one but not the other.
struct TensorError {
  double max_abs = 0;
  double max_rel = 0;
  int64_t worst_index = -1;
  int64_t mismatches = 0;
};
Result<TensorError> compare_tensors(const cpu::Tensor& expected, const cpu::Tensor& actual);

// Runs `op` on the GPU: uploads `inputs` (nullptr: an absent optional input), builds the op
// with the output specs given, enqueues it on the runtime's plan stream with a workspace of
// the size it asks for, and downloads the outputs. `weight_inputs` marks inputs that are
// weights (TensorSpec::is_weight). Every input's TensorSpec::host_data points at its host
// tensor during the build (so static inputs can be read). Returns the outputs, in order.
struct GpuOpRun {
  std::vector<cpu::Tensor> outputs;
  std::string description;  // GpuOp::describe()
  size_t workspace_bytes = 0;
};
Result<GpuOpRun> run_gpu_op(GpuRuntime& runtime, Precision precision, const std::string& op,
                            const cpu::Attributes& attrs,
                            std::span<const cpu::Tensor* const> inputs,
                            std::span<const TensorSpec> outputs,
                            std::initializer_list<size_t> weight_inputs = {});
// The same with the weight input positions in a run-time list.
Result<GpuOpRun> run_gpu_op(GpuRuntime& runtime, Precision precision, const std::string& op,
                            const cpu::Attributes& attrs,
                            std::span<const cpu::Tensor* const> inputs,
                            std::span<const TensorSpec> outputs,
                            std::span<const size_t> weight_inputs);

// Runs `op` on the CPU reference (run_op_allocating) and on the GPU with the same inputs and
// output shapes, and compares every output. Returns one TensorError per output.
struct OpCheck {
  std::vector<TensorError> errors;
  std::string description;
  double worst_rel() const;
};
Result<OpCheck> check_against_cpu(GpuRuntime& runtime, Precision precision, const std::string& op,
                                  const cpu::Attributes& attrs,
                                  std::span<const cpu::Tensor* const> inputs,
                                  size_t num_outputs = 1,
                                  std::initializer_list<size_t> weight_inputs = {});

// A tensor of uniform random values in [lo, hi) (floats) or [lo, hi] rounded (integers),
// reproducible from `seed`.
cpu::Tensor random_tensor(DType dtype, Shape shape, uint64_t seed, double lo = -1.0,
                          double hi = 1.0);

}  // namespace ps::models::gpu::testing
