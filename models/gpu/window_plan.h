// Plan-time geometry of the sliding-window operators (Conv, FusedConv, MaxPool, AveragePool):
// pure functions of an OpSpec, no device needed, so they are tested on the CPU. They reuse the
// CPU reference's window arithmetic (models/cpu/window.h), which keeps both executors' shape
// rules identical, and decide how cuDNN can express the window.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "cuda/kernels/dnn_pool_params.h"
#include "models/cpu/window.h"
#include "models/gpu/op.h"

namespace ps::models::gpu {

// A Conv or FusedConv layer, validated.
struct ConvPlan {
  int64_t batch = 0;
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  int64_t group = 1;
  // One window per spatial dimension of X (1 to 3), as ONNX defines them.
  std::vector<cpu::SpatialWindow> windows;
  // The symmetric padding cuDNN is given, per spatial dimension. Equal to pad_begin; where
  // pad_end differs, it is only ever larger by padding no window reaches.
  std::vector<int64_t> cudnn_pads;
  bool relu = false;
  bool has_bias = false;
  bool has_residual = false;
  Shape out_shape;
};

// A ConvPlan as cuDNN takes it: the dims of X, W, Y and a bias broadcast (1, M, 1, ...), and the
// window's pads, strides and dilations, a 1-D convolution given a leading trivial spatial
// dimension (cuDNN wants 2 or 3). `key` names the shape for the algorithm caches.
struct CudnnConvShape {
  std::vector<int64_t> x, w, y, bias, pads, strides, dilations;
  std::string key;
};
CudnnConvShape cudnn_conv_shape(const ConvPlan& plan);

// Validates a Conv/FusedConv spec: float32 X [N, C, spatial...] (1-3 spatial dims), W
// [M, C/group, kernel...], optional B [M], FusedConv's residual (present iff has_residual=1,
// with the output's shape), the attributes (group, strides, dilations, pads, auto_pad,
// kernel_shape, activation), and that outputs[0] has the shape ONNX gives. Errors:
// kInvalidArgument for inconsistent shapes or attributes, kUnsupported for what cuDNN cannot
// express here (other dtypes, asymmetric padding that a window reaches, unknown activation).
Result<ConvPlan> plan_conv(const OpSpec& spec);

enum class PoolMode { kMax, kAverageExcludePad, kAverageIncludePad };

// A MaxPool/AveragePool/GlobalAveragePool/GlobalMaxPool layer, validated.
struct PoolPlan {
  PoolMode mode = PoolMode::kMax;
  int64_t batch = 0;
  int64_t channels = 0;
  // One window per spatial dimension; `out` is the output spec's size (in ceil mode ONNX's
  // size or PyTorch's clipped one, whichever the importer inferred). The global pools have a
  // single window over the flattened spatial dimensions (kernel = in, out = 1).
  std::vector<cpu::SpatialWindow> windows;
  Shape out_shape;
  // True when cuDNN's pooling computes exactly these windows: symmetric pads, no dilation,
  // and floor-mode output sizes (ceil mode adds no window); else `why_not_cudnn` says why and
  // our own kernel (cuda/kernels/dnn_pool.cu) runs the layer.
  bool cudnn_exact = true;
  std::string why_not_cudnn;
};

// Validates a pooling spec: float32 X [N, C, spatial...] (1-3 spatial dims for the windowed
// ops, any for the global ones), the attributes (kernel_shape, strides, pads, auto_pad,
// dilations for MaxPool, ceil_mode, count_include_pad) and outputs[0]'s shape. A requested
// MaxPool Indices output is kUnsupported.
Result<PoolPlan> plan_pool(const OpSpec& spec);

// The kernel geometry of a planned pooling layer (3 spatial dims, leading trivial ones), as
// ps_dnn_pool_f32 and the pooling backward kernels read it.
dnn_kernels::PoolParams pool_kernel_params(const PoolPlan& plan);

}  // namespace ps::models::gpu
