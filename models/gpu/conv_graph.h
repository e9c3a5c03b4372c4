// ConvGraph: one convolution and its epilogue, y = relu(conv(x, w) + bias + residual) (each of
// bias, residual and ReLU optional), as a cuDNN graph (cuda/dnn_backend.h) with finalised
// execution plans, for ConvOp to time against the legacy calls (conv_op.cc).
//
// Why: the legacy cudnnConvolutionBiasActivationForward costs ~80 us of host time per call
// under cuDNN 9 (docs/gpu-executor.md: ResNet152 enqueued layer by layer is host-bound at
// 13.4 ms against 3.5-4.4 ms of GPU work in TF32); a finalised plan runs with ~10 us
// (cudnnBackendExecute), and cuDNN's heuristics offer engines the eight legacy algorithms do
// not name. Plans are built once per layer at plan time; enqueue only binds pointers.
#pragma once

#include <cudnn.h>

#include <array>
#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "cuda/dnn_backend.h"
#include "cuda/driver.h"
#include "models/gpu/op.h"

namespace ps::models::gpu {

// The convolution, as cudnn_conv_shape gives it (window_plan.h): float32 NC[D]HW tensors,
// group 1, 2 or 3 spatial dimensions.
struct ConvGraphShape {
  std::span<const int64_t> x, w, y, bias;  // bias: [1, K, 1, ...] (used when has_bias)
  std::span<const int64_t> pads, strides, dilations;
  bool has_bias = false, has_residual = false, relu = false;
};

class ConvGraph {
 public:
  // Builds the operation graph and finalises up to `max_plans` execution plans from cuDNN's
  // heuristics (mode A, then the fallback list when A gives none), in the heuristics' order,
  // each within `workspace_cap` bytes. kFp32 keeps only engines without the tensor-core,
  // down-convert and reduced-precision notes (strict IEEE fp32, as CUDNN_FMA_MATH); engines
  // that compile at run time are skipped (seconds of plan time each). The plans run on the
  // handle's stream. Errors: kUnsupported for a shape this does not describe (group != 1, one
  // spatial dimension) or when no plan finalises, with cuDNN's last reason; kDevice otherwise.
  static Result<ConvGraph> build(cudnnHandle_t handle, const ConvGraphShape& shape,
                                 Precision precision, size_t max_plans, size_t workspace_cap);

  ConvGraph() = default;
  ConvGraph(ConvGraph&&) noexcept;
  ConvGraph& operator=(ConvGraph&&) noexcept;

  size_t plan_count() const { return plans_.size(); }
  size_t workspace_bytes(size_t plan) const { return plans_[plan].workspace_bytes; }
  int64_t engine(size_t plan) const { return plans_[plan].engine; }
  // Keeps plan `plan` only (it becomes plan 0), releasing the others.
  void keep(size_t plan);

  // Queues plan `plan` on the handle's current stream. `ws` has workspace_bytes(plan) bytes
  // (0 when none); b and r are ignored unless the graph has them. Device pointers must be
  // 16-byte aligned (the tensors were declared so); callers check with aligned(). A variant
  // pack (cuDNN's host record of the pointers) is built when the pointers differ from the last
  // call's and reused otherwise, so a resident model's repeated requests build none.
  Status execute(cudnnHandle_t handle, size_t plan, CUdeviceptr x, CUdeviceptr w, CUdeviceptr b,
                 CUdeviceptr r, CUdeviceptr y, CUdeviceptr ws) const;
  static bool aligned(std::span<const CUdeviceptr> pointers);

 private:
  struct Plan {
    cuda::BackendDescriptor plan;
    size_t workspace_bytes = 0;
    int64_t engine = -1;  // cuDNN's global engine index, for descriptions
  };
  // Keeps the descriptors the plans were built from alive for their lifetime.
  std::vector<cuda::BackendDescriptor> parts_;
  std::vector<Plan> plans_;
  std::vector<int64_t> uids_;  // x, w, [b], [r], y

  // The last variant pack and the pointers it holds (plan, x, w, b, r, y, ws).
  mutable std::mutex pack_mutex_;
  mutable cuda::BackendDescriptor pack_;
  mutable std::array<uint64_t, 7> pack_key_{};
};

}  // namespace ps::models::gpu
