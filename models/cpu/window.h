// Sliding-window geometry shared by convolution and pooling: kernel, strides, dilations,
// explicit pads or auto_pad, floor or ceil output sizes. Internal to models/cpu.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "common/status.h"
#include "models/cpu/op_context.h"
#include "models/cpu/tensor.h"

namespace ps::models::cpu {

// One spatial dimension: input position of output o, tap t is
// o * stride - pad_begin + t * dilation.
struct SpatialWindow {
  int64_t in = 1;
  int64_t out = 1;
  int64_t kernel = 1;
  int64_t stride = 1;
  int64_t dilation = 1;
  int64_t pad_begin = 0;
  int64_t pad_end = 0;
  // In ceil mode, PyTorch drops a last window that starts inside the end padding, so an output
  // exported from PyTorch may be one shorter than ONNX's formula; this is that size (== out
  // when the rule does not apply). Callers accept either.
  int64_t out_ceil_clipped = 1;
};

struct WindowOptions {
  bool ceil_mode = false;
  bool allow_dilations = true;
};

// Reads `strides`, `dilations`, `pads` and `auto_pad` (NOTSET, VALID, SAME_UPPER, SAME_LOWER)
// from ctx for input spatial sizes `in` and kernel sizes `kernel` (same length, >= 1) and
// computes every dimension's window. Errors name the attribute that is malformed or a kernel
// larger than the padded input.
Result<std::vector<SpatialWindow>> window_geometry(const OpContext& ctx, const Shape& in,
                                                   const Shape& kernel,
                                                   const WindowOptions& options);

// The windows of up to 3 spatial dimensions as exactly 3 (leading trivial ones added), so
// kernels can loop over D, H, W. Precondition: windows.size() <= 3.
std::array<SpatialWindow, 3> as_3d(const std::vector<SpatialWindow>& windows);

// The first and one-past-last output positions o (in [0, w.out)) whose tap t reads inside the
// input, i.e. 0 <= o * stride - pad_begin + t * dilation < in. Empty when first >= last.
struct OutputRange {
  int64_t first;
  int64_t last;
};
OutputRange valid_outputs(const SpatialWindow& w, int64_t tap);

// The taps t in [first, last) of output position o that read inside the input (the same
// condition seen from the output side). Empty when first == last.
struct TapRange {
  int64_t first, last;
};
TapRange valid_taps(const SpatialWindow& w, int64_t o);

// FusedConv's own attributes (docs/operators.md): `activation` ("relu" | "none") and
// `has_residual` (0 | 1), which must agree with whether the residual input is present. Plain
// Conv has neither (relu false). Errors name the attribute.
Result<bool> fused_conv_relu(const OpContext& ctx, bool residual_present);

}  // namespace ps::models::cpu
