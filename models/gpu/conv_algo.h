// The cuDNN forward-convolution algorithm choice: timed once per (layer geometry, precision,
// device) at plan time with cudnnFindConvolutionForwardAlgorithmEx on the runtime's plan
// scratch memory, then cached for the life of the process (every plan of every model with the
// same layer shape reuses it; ResNet152's 155 convolutions have a few dozen distinct shapes).
#pragma once

#include <cudnn.h>

#include <cstddef>
#include <string>

#include "common/status.h"
#include "models/gpu/dnn_descriptors.h"
#include "models/gpu/op.h"

namespace ps::models::gpu {

// The most workspace one convolution may use.
inline constexpr size_t kConvWorkspaceCap = size_t{256} << 20;
// The most one convolution's backward (dX or dW, training) may use. Larger: the tensor-op
// algorithms of Inception v3's slow early layers want 359-531 MB (Conv2d_4a_3x3's dX 372 MB),
// which kConvWorkspaceCap shut out (cudnnFind reported them failed). A training step has one
// workspace, its largest op's (plan_workspace_bytes), so this bounds the step's extra memory.
inline constexpr size_t kConvGradWorkspaceCap = size_t{2} << 30;

struct ConvAlgoChoice {
  cudnnConvolutionFwdAlgo_t algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
  cudnnMathType_t math = CUDNN_FMA_MATH;
  size_t workspace_bytes = 0;
  float time_ms = 0;
  bool cached = false;  // found in the cache, not timed now
};

// The tensors of one convolution, as described to cuDNN.
struct ConvDescriptors {
  const TensorDesc& x;
  const FilterDesc& w;
  const ConvDesc& conv;  // its math type is set to the choice's on success
  const TensorDesc& y;
  size_t x_bytes, w_bytes, y_bytes;
};

// Returns the fastest algorithm for `d` under `precision` (kFp32 admits only FMA kernels,
// kTf32 also tensor-op ones) within kConvWorkspaceCap, timing the candidates on the plan
// stream unless `key` (which must identify the geometry; the precision and device are added
// here) is cached. Sets the math type on d.conv. Plan time only: synchronises, binds the
// runtime's cuDNN handle to the plan stream. Errors: kDevice from cuDNN, kUnsupported when no
// algorithm works.
Result<ConvAlgoChoice> choose_conv_algo(GpuRuntime& runtime, Precision precision,
                                        const std::string& key, const ConvDescriptors& d);

// Number of entries in the process-wide cache (for tests).
size_t conv_algo_cache_size();

// The runtime's plan scratch for a cuDNN algorithm search, laid out x | w | y | workspace (each
// at a 256-byte boundary; contents are whatever is there: only timing matters), with a workspace
// of `cap` bytes, or an eighth of it at a time, down to 32 MiB, where the device cannot spare
// that (a crowded device searches within a smaller workspace).
struct FindScratch {
  void* x = nullptr;
  void* w = nullptr;
  void* y = nullptr;
  void* workspace = nullptr;
  size_t workspace_cap = 0;  // what the search may use
};
Result<FindScratch> find_scratch(GpuRuntime& runtime, size_t x_bytes, size_t w_bytes,
                                 size_t y_bytes, size_t cap);

// Shared by the forward's and the backward's searches: whether a result's math type is allowed
// under `precision` (kFp32: FMA or default math only; kTf32: any, tensor-op included). Their
// scratch and workspaces are carved with op.h's round_up_256.
inline bool acceptable_math(Precision precision, cudnnMathType_t math) {
  return precision == Precision::kTf32 || math == CUDNN_FMA_MATH || math == CUDNN_DEFAULT_MATH;
}

}  // namespace ps::models::gpu
