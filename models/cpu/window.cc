#include "models/cpu/window.h"

#include <algorithm>

namespace ps::models::cpu {

namespace {

int64_t floor_div(int64_t a, int64_t b) {  // b > 0
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}
int64_t ceil_div(int64_t a, int64_t b) {  // b > 0
  return a >= 0 ? (a + b - 1) / b : -((-a) / b);
}

Result<std::vector<int64_t>> per_dim(const OpContext& ctx, std::string_view name, size_t count,
                                     int64_t fallback, int64_t min_value) {
  PS_ASSIGN_OR_RETURN(std::vector<int64_t> v,
                      ctx.attr_ints(name, std::vector<int64_t>(count, fallback)));
  if (v.size() != count) {
    return invalid_argument("attribute '", name, "' has ", v.size(), " values, expected ", count);
  }
  for (int64_t x : v) {
    if (x < min_value) return invalid_argument("attribute '", name, "' has the value ", x);
  }
  return v;
}

}  // namespace

Result<std::vector<SpatialWindow>> window_geometry(const OpContext& ctx, const Shape& in,
                                                   const Shape& kernel,
                                                   const WindowOptions& options) {
  const size_t n = in.size();
  PS_CHECK(kernel.size() == n);
  PS_ASSIGN_OR_RETURN(const std::vector<int64_t> strides, per_dim(ctx, "strides", n, 1, 1));
  PS_ASSIGN_OR_RETURN(const std::vector<int64_t> dilations, per_dim(ctx, "dilations", n, 1, 1));
  PS_ASSIGN_OR_RETURN(const std::vector<int64_t> pads, per_dim(ctx, "pads", 2 * n, 0, 0));
  PS_ASSIGN_OR_RETURN(const std::string auto_pad, ctx.attr_string("auto_pad", "NOTSET"));
  if (!options.allow_dilations) {
    for (int64_t d : dilations) {
      if (d != 1) return unsupported("dilations other than 1");
    }
  }
  if (auto_pad != "NOTSET" && auto_pad != "VALID" && auto_pad != "SAME_UPPER" &&
      auto_pad != "SAME_LOWER") {
    return invalid_argument("auto_pad='", auto_pad, "' is not one of NOTSET, VALID, SAME_UPPER, ",
                            "SAME_LOWER");
  }
  std::vector<SpatialWindow> windows(n);
  for (size_t i = 0; i < n; ++i) {
    SpatialWindow& w = windows[i];
    w.in = in[i];
    w.kernel = kernel[i];
    w.stride = strides[i];
    w.dilation = dilations[i];
    if (w.kernel < 1) return invalid_argument("kernel size ", w.kernel, " in dimension ", i);
    const int64_t effective = (w.kernel - 1) * w.dilation + 1;
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      w.out = ceil_div(w.in, w.stride);
      const int64_t total = std::max<int64_t>((w.out - 1) * w.stride + effective - w.in, 0);
      const int64_t small = total / 2;
      w.pad_begin = auto_pad == "SAME_UPPER" ? small : total - small;
      w.pad_end = total - w.pad_begin;
    } else {
      if (auto_pad == "NOTSET") {
        w.pad_begin = pads[i];
        w.pad_end = pads[i + n];
      }
      const int64_t span = w.in + w.pad_begin + w.pad_end - effective;
      if (span < 0) {
        return invalid_argument("kernel extent ", effective, " exceeds the padded input ",
                                w.in + w.pad_begin + w.pad_end, " in spatial dimension ", i);
      }
      w.out = (options.ceil_mode ? ceil_div(span, w.stride) : span / w.stride) + 1;
    }
    w.out_ceil_clipped = w.out;
    if (options.ceil_mode && w.out > 1 && (w.out - 1) * w.stride >= w.in + w.pad_begin) {
      w.out_ceil_clipped = w.out - 1;
    }
  }
  return windows;
}

std::array<SpatialWindow, 3> as_3d(const std::vector<SpatialWindow>& windows) {
  PS_CHECK(windows.size() <= 3);
  std::array<SpatialWindow, 3> out{};
  std::copy(windows.begin(), windows.end(), out.begin() + (3 - windows.size()));
  return out;
}

OutputRange valid_outputs(const SpatialWindow& w, int64_t tap) {
  const int64_t shift = tap * w.dilation - w.pad_begin;  // input = o * stride + shift
  const int64_t first = std::max<int64_t>(0, ceil_div(-shift, w.stride));
  const int64_t last = std::min<int64_t>(w.out, floor_div(w.in - 1 - shift, w.stride) + 1);
  return {first, std::max(first, last)};
}

TapRange valid_taps(const SpatialWindow& w, int64_t o) {
  const int64_t start = o * w.stride - w.pad_begin;
  // t * dilation + start in [0, in)
  int64_t first = start >= 0 ? 0 : (-start + w.dilation - 1) / w.dilation;
  int64_t last = w.in - 1 - start < 0 ? 0 : (w.in - 1 - start) / w.dilation + 1;
  first = std::min(first, w.kernel);
  last = std::min(last, w.kernel);
  return {first, std::max(first, last)};
}

Result<bool> fused_conv_relu(const OpContext& ctx, bool residual_present) {
  PS_ASSIGN_OR_RETURN(const std::string activation, ctx.attr_string("activation", "none"));
  PS_ASSIGN_OR_RETURN(const int64_t has_residual, ctx.attr_int("has_residual", 0));
  if (activation != "none" && activation != "relu") {
    return unsupported("activation='", activation, "' (expected 'relu' or 'none')");
  }
  if (has_residual != 0 && has_residual != 1) {
    return invalid_argument("has_residual=", has_residual, " (expected 0 or 1)");
  }
  if ((has_residual == 1) != residual_present) {
    return invalid_argument("has_residual=", has_residual, " but the residual input is ",
                            residual_present ? "present" : "missing");
  }
  return activation == "relu";
}

}  // namespace ps::models::cpu
