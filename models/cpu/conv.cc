// Convolution: ONNX Conv and our FusedConv (Y = act(conv(X, W) + B + residual)), 1 to 3
// spatial dimensions, groups, strides, dilations, explicit or automatic padding. Direct
// convolution accumulating each output plane in double; the innermost loop runs along an
// output row, so it vectorises.
#include <algorithm>

#include "models/cpu/dispatch.h"
#include "models/cpu/kernels.h"
#include "models/cpu/window.h"

namespace ps::models::cpu {

namespace {

struct ConvShape {
  int64_t batch, in_channels, out_channels, group;
  std::array<SpatialWindow, 3> w;  // D, H, W
};

template <typename T>
void conv_kernel(const ConvShape& s, const T* x, const T* weight, const T* bias, const T* residual,
                 bool relu, T* y) {
  const auto& [wd, wh, ww] = s.w;
  const int64_t cg = s.in_channels / s.group;
  const int64_t mg = s.out_channels / s.group;
  const int64_t in_plane = wd.in * wh.in * ww.in;
  const int64_t out_plane = wd.out * wh.out * ww.out;
  const int64_t taps = wd.kernel * wh.kernel * ww.kernel;
  std::vector<double> acc(static_cast<size_t>(out_plane));
  std::vector<OutputRange> w_ranges(static_cast<size_t>(ww.kernel));
  for (int64_t t = 0; t < ww.kernel; ++t) w_ranges[t] = valid_outputs(ww, t);

  for (int64_t n = 0; n < s.batch; ++n) {
    for (int64_t m = 0; m < s.out_channels; ++m) {
      std::fill(acc.begin(), acc.end(), 0.0);
      const int64_t g = m / mg;
      for (int64_t c = 0; c < cg; ++c) {
        const T* xin = x + (n * s.in_channels + g * cg + c) * in_plane;
        const T* wk = weight + (m * cg + c) * taps;
        for (int64_t kd = 0; kd < wd.kernel; ++kd) {
          const OutputRange dr = valid_outputs(wd, kd);
          for (int64_t kh = 0; kh < wh.kernel; ++kh) {
            const OutputRange hr = valid_outputs(wh, kh);
            for (int64_t kw = 0; kw < ww.kernel; ++kw) {
              const double wv = static_cast<double>(wk[(kd * wh.kernel + kh) * ww.kernel + kw]);
              const OutputRange wr = w_ranges[kw];
              const int64_t shift_w = kw * ww.dilation - ww.pad_begin;
              for (int64_t od = dr.first; od < dr.last; ++od) {
                const int64_t id = od * wd.stride - wd.pad_begin + kd * wd.dilation;
                for (int64_t oh = hr.first; oh < hr.last; ++oh) {
                  const int64_t ih = oh * wh.stride - wh.pad_begin + kh * wh.dilation;
                  const T* xrow = xin + (id * wh.in + ih) * ww.in;
                  double* arow = acc.data() + (od * wh.out + oh) * ww.out;
                  if (ww.stride == 1) {
                    const T* xs = xrow + shift_w;
                    for (int64_t ow = wr.first; ow < wr.last; ++ow) {
                      arow[ow] += wv * static_cast<double>(xs[ow]);
                    }
                  } else {
                    for (int64_t ow = wr.first; ow < wr.last; ++ow) {
                      arow[ow] += wv * static_cast<double>(xrow[ow * ww.stride + shift_w]);
                    }
                  }
                }
              }
            }
          }
        }
      }
      const double b = bias ? static_cast<double>(bias[m]) : 0.0;
      T* out = y + (n * s.out_channels + m) * out_plane;
      const T* res = residual ? residual + (n * s.out_channels + m) * out_plane : nullptr;
      for (int64_t p = 0; p < out_plane; ++p) {
        double v = acc[p] + b;
        if (res) v += static_cast<double>(res[p]);
        if (relu && v < 0) v = 0;
        out[p] = static_cast<T>(v);
      }
    }
  }
}

}  // namespace

Status run_conv(const OpContext& ctx) {
  const bool fused = ctx.op() == "FusedConv";
  PS_TRY(ctx.check_arity(2, fused ? 4 : 3, 1, 1));
  if (fused) {
    PS_TRY(ctx.check_attrs({"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides",
                            "activation", "has_residual"}));
  } else {
    PS_TRY(ctx.check_attrs({"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"}));
  }
  const Tensor& x = *ctx.input(0);
  const Tensor& w = *ctx.input(1);
  const Tensor* bias = ctx.input(2);
  const Tensor* residual = ctx.input(3);

  PS_ASSIGN_OR_RETURN(const bool relu, fused_conv_relu(ctx, residual != nullptr));

  if (x.rank() < 3 || x.rank() > 5) {
    return unsupported("X ", x.description(), ": rank must be 3 to 5 (N, C, 1-3 spatial dims)");
  }
  if (w.rank() != x.rank()) {
    return invalid_argument("W ", w.description(), " must have the rank of X ", x.description());
  }
  if (w.dtype() != x.dtype() || (bias && bias->dtype() != x.dtype()) ||
      (residual && residual->dtype() != x.dtype())) {
    return invalid_argument("input dtypes differ: X ", x.description(), ", W ", w.description(),
                            bias ? ", B " + bias->description() : "",
                            residual ? ", residual " + residual->description() : "");
  }
  PS_ASSIGN_OR_RETURN(const int64_t group, ctx.attr_int("group", 1));
  const int64_t channels = x.dim(1);
  const int64_t out_channels = w.dim(0);
  if (group < 1 || channels % group != 0 || out_channels % group != 0 ||
      w.dim(1) * group != channels) {
    return invalid_argument("group=", group, " does not fit X ", x.description(), " and W ",
                            w.description(), " (need C = W.dim(1) * group, M divisible by group)");
  }
  if (bias && (bias->rank() != 1 || bias->dim(0) != out_channels)) {
    return invalid_argument("B ", bias->description(), " must have shape [", out_channels, "]");
  }
  const Shape in_spatial(x.shape().begin() + 2, x.shape().end());
  const Shape kernel(w.shape().begin() + 2, w.shape().end());
  PS_ASSIGN_OR_RETURN(const std::vector<int64_t> kernel_attr,
                      ctx.attr_ints("kernel_shape", kernel));
  if (kernel_attr != kernel) {
    return invalid_argument("kernel_shape ", shape_string(kernel_attr), " differs from W ",
                            w.description());
  }
  PS_ASSIGN_OR_RETURN(const std::vector<SpatialWindow> windows,
                      window_geometry(ctx, in_spatial, kernel, WindowOptions{}));
  Shape out_shape{x.dim(0), out_channels};
  for (const SpatialWindow& sw : windows) out_shape.push_back(sw.out);
  if (residual && residual->shape() != out_shape) {
    return invalid_argument("residual ", residual->description(), " must have the output shape ",
                            shape_string(out_shape));
  }
  PS_ASSIGN_OR_RETURN(Tensor * y, ctx.output_checked(0, x.dtype(), out_shape));
  const ConvShape shape{x.dim(0), channels, out_channels, group, as_3d(windows)};
  return dispatch(FloatTypes{}, x.dtype(), "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    conv_kernel<T>(shape, x.data<T>(), w.data<T>(), bias ? bias->data<T>() : nullptr,
                   residual ? residual->data<T>() : nullptr, relu,
                   y->mutable_data<T>());
    return Status::OK();
  });
}

}  // namespace ps::models::cpu
