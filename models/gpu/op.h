// The GPU operator interface: what the executor's plan holds for each layer.
//
// A GpuOp is built ONCE, at plan time, from the layer's op name, attributes and the static
// dtypes and shapes of its inputs and outputs (OpSpec): it validates them, creates its
// descriptors, chooses its algorithm (cuDNN search or heuristics, cuBLAS/cuBLASLt
// configuration), looks its kernels up and says how much workspace it needs. At request time
// enqueue() only binds device addresses and queues work on a stream: it allocates nothing,
// synchronises nothing and returns quickly. Builders live in tables (dnn_ops.cc: cuDNN and
// cuBLAS; kernel_ops.cc: our own kernels); registry.cc looks an op up in them.
#pragma once

#include <cuda.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/dtype.h"
#include "common/shape.h"
#include "common/status.h"
#include "models/cpu/ops.h"  // Attributes

namespace ps::cuda {
class Stream;
}

namespace ps::models::gpu {

class GpuRuntime;
using cpu::Attributes;

// The arithmetic of convolutions and matrix products. kTf32 lets cuDNN and cuBLAS use TF32
// tensor cores (PyTorch's default for convolutions); kFp32 is strict IEEE fp32 (CUDNN_FMA_MATH,
// CUBLAS_COMPUTE_32F / CUBLAS_DEFAULT_MATH). Every other op is fp32 either way.
enum class Precision { kFp32, kTf32 };
std::string_view precision_name(Precision precision);  // "fp32" | "tf32"
Result<Precision> parse_precision(std::string_view text);

// The static description of one input or output of a layer.
struct TensorSpec {
  DType dtype = DType::kUndefined;  // kUndefined: an absent optional input/output
  Shape shape;
  bool is_weight = false;  // bytes come from the weight blob (read-only during inference)
  // For a weight: its bytes (bytes() of them) in host memory (the package's weight blob),
  // readable while the op is built; nullptr when the caller has none. Ops with *static* inputs
  // (docs/operators.md: slice bounds, axes, clip limits, a Range's start) read their values
  // here at plan time and never on the GPU; an op that needs them refuses a spec without.
  const void* host_data = nullptr;

  bool present() const { return dtype != DType::kUndefined; }
  int64_t numel() const { return element_count(shape); }
  size_t bytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
};

// What a builder sees. Borrowed for the duration of the build call only.
struct OpSpec {
  std::string_view op;    // ONNX op type or one of our fused ops (docs/operators.md)
  std::string_view name;  // the layer's name, for errors
  const Attributes& attrs;
  std::span<const TensorSpec> inputs;   // in the op's order; absent optional ones !present()
  std::span<const TensorSpec> outputs;  // dtypes and shapes the importer inferred
};

// Everything enqueue() needs. Addresses are device pointers (0 for an absent optional tensor)
// in the same order as OpSpec's inputs/outputs. Inputs and outputs never overlap, except that
// the memory plan may give Reshape-like ops (Reshape, Flatten, Squeeze, Unsqueeze, Identity,
// Dropout) their input's exact bytes as output: those ops then do nothing.
// Before a sequence of enqueue() calls the caller binds the runtime's cuDNN and cuBLAS handles
// to `stream` and `workspace` (GpuRuntime::bind); ops that call cuBLASLt pass both explicitly.
struct LaunchArgs {
  const cuda::Stream& stream;
  std::span<const CUdeviceptr> inputs;
  std::span<const CUdeviceptr> outputs;
  CUdeviceptr workspace = 0;  // at least workspace_bytes() bytes, 256-byte aligned
  size_t workspace_bytes = 0;
};

// `n` bytes rounded up to 256: how ops carve their workspace (and plan-time searches their
// scratch) into pieces that each keep the workspace's 256-byte alignment.
inline size_t round_up_256(size_t n) { return (n + 255) & ~size_t{255}; }

class GpuOp {
 public:
  virtual ~GpuOp() = default;

  // Device scratch bytes enqueue() needs (cuDNN algorithm workspace, cuBLAS(Lt) workspace,
  // temporaries). Fixed at build time.
  virtual size_t workspace_bytes() const { return 0; }

  // Queues the op on args.stream. Allocates nothing, never synchronises. Errors only from
  // the libraries' launch calls (kDevice naming the call).
  virtual Status enqueue(const LaunchArgs& args) const = 0;

  // One line for profiles and debugging: the implementation chosen ("cudnn conv implicit
  // precomp gemm, tf32, ws 1.2 MiB", "kernel ps_binary_f32 (broadcast rank 4)").
  virtual std::string describe() const = 0;
};

// Plan-time context of a builder.
struct OpEnv {
  GpuRuntime& runtime;
  Precision precision = Precision::kTf32;
};

using OpBuilder = Result<std::unique_ptr<GpuOp>> (*)(const OpSpec& spec, const OpEnv& env);
struct OpEntry {
  std::string_view op;
  OpBuilder build;
};

// The builder tables, each sorted by op name. An op appears in at most one table.
std::span<const OpEntry> dnn_op_table();     // dnn_ops.cc: cuDNN and cuBLAS operators
std::span<const OpEntry> kernel_op_table();  // kernel_ops.cc: our own kernels

// Builds the GPU op for `spec` (registry.cc). Errors: kUnsupported when no table has the op
// (naming it); otherwise the builder's error, prefixed with the op and layer name.
Result<std::unique_ptr<GpuOp>> build_op(const OpSpec& spec, const OpEnv& env);
// True when some table has `op`; the sorted list of every op the GPU executor runs.
bool gpu_supports(std::string_view op);
std::vector<std::string> gpu_supported_ops();

}  // namespace ps::models::gpu
