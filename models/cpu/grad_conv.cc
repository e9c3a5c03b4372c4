// Conv backward: dX, dW and dB of ONNX Conv with groups, strides, pads and dilations, by the
// same direct loops as the forward (one scatter per tap), accumulating in double.
#include "models/cpu/grad.h"
#include "models/cpu/grad_util.h"
#include "models/cpu/op_context.h"
#include "models/cpu/window.h"

namespace ps::models::cpu {

Result<ConvGrads> conv_backward(const Attributes& attrs, const Tensor& x, const Tensor& w,
                                bool has_bias, const Tensor& dy) {
  PS_TRY(require_f64(x, "Conv backward: X"));
  PS_TRY(require_f64(w, "Conv backward: W"));
  PS_TRY(require_f64(dy, "Conv backward: dY"));
  if (x.rank() < 3 || x.rank() > 5 || w.rank() != x.rank() || dy.rank() != x.rank()) {
    return invalid_argument("Conv backward: X ", x.description(), ", W ", w.description(), ", dY ",
                            dy.description(), " must be [N, C, 1-3 spatial dims]");
  }
  const std::string op = "Conv";
  const OpContext ctx(op, attrs, {}, {});
  PS_ASSIGN_OR_RETURN(const int64_t group, ctx.attr_int("group", 1));
  const int64_t batch = x.dim(0), channels = x.dim(1), out_channels = w.dim(0);
  if (group < 1 || out_channels % group != 0 || w.dim(1) * group != channels) {
    return invalid_argument("Conv backward: group=", group, " does not fit X ", x.description(),
                            " and W ", w.description());
  }
  const Shape in_spatial(x.shape().begin() + 2, x.shape().end());
  const Shape kernel(w.shape().begin() + 2, w.shape().end());
  PS_ASSIGN_OR_RETURN(const std::vector<SpatialWindow> windows,
                      window_geometry(ctx, in_spatial, kernel, WindowOptions{}));
  Shape out_shape{batch, out_channels};
  for (const SpatialWindow& sw : windows) out_shape.push_back(sw.out);
  if (dy.shape() != out_shape) {
    return invalid_argument("Conv backward: dY ", dy.description(), " must have the output shape ",
                            shape_string(out_shape));
  }
  const auto [wd, wh, ww] = as_3d(windows);
  ConvGrads g;
  PS_ASSIGN_OR_RETURN(g.dx, zeros_f64(x.shape()));
  PS_ASSIGN_OR_RETURN(g.dw, zeros_f64(w.shape()));
  if (has_bias) {
    PS_ASSIGN_OR_RETURN(g.db, zeros_f64(Shape{out_channels}));
  }

  const int64_t cg = channels / group, mg = out_channels / group;
  const int64_t in_plane = wd.in * wh.in * ww.in, out_plane = wd.out * wh.out * ww.out;
  const int64_t taps = wd.kernel * wh.kernel * ww.kernel;
  const double* xp = x.data<double>();
  const double* wp = w.data<double>();
  const double* dyp = dy.data<double>();
  double* dxp = g.dx.mutable_data<double>();
  double* dwp = g.dw.mutable_data<double>();
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t m = 0; m < out_channels; ++m) {
      const double* dyo = dyp + (n * out_channels + m) * out_plane;
      if (has_bias) {
        double s = 0;
        for (int64_t p = 0; p < out_plane; ++p) s += dyo[p];
        g.db.mutable_data<double>()[m] += s;
      }
      const int64_t gi = m / mg;
      for (int64_t c = 0; c < cg; ++c) {
        const int64_t xc = (n * channels + gi * cg + c) * in_plane;
        const double* wk = wp + (m * cg + c) * taps;
        double* dwk = dwp + (m * cg + c) * taps;
        for (int64_t kd = 0; kd < wd.kernel; ++kd) {
          const OutputRange dr = valid_outputs(wd, kd);
          for (int64_t kh = 0; kh < wh.kernel; ++kh) {
            const OutputRange hr = valid_outputs(wh, kh);
            for (int64_t kw = 0; kw < ww.kernel; ++kw) {
              const OutputRange wr = valid_outputs(ww, kw);
              const int64_t tap = (kd * wh.kernel + kh) * ww.kernel + kw;
              const double wv = wk[tap];
              double dw_acc = 0;
              for (int64_t od = dr.first; od < dr.last; ++od) {
                const int64_t id = od * wd.stride - wd.pad_begin + kd * wd.dilation;
                for (int64_t oh = hr.first; oh < hr.last; ++oh) {
                  const int64_t ih = oh * wh.stride - wh.pad_begin + kh * wh.dilation;
                  const int64_t xrow = xc + (id * wh.in + ih) * ww.in;
                  const double* dyrow = dyo + (od * wh.out + oh) * ww.out;
                  for (int64_t ow = wr.first; ow < wr.last; ++ow) {
                    const int64_t iw = ow * ww.stride - ww.pad_begin + kw * ww.dilation;
                    dw_acc += xp[xrow + iw] * dyrow[ow];
                    dxp[xrow + iw] += wv * dyrow[ow];
                  }
                }
              }
              dwk[tap] += dw_acc;
            }
          }
        }
      }
    }
  }
  return g;
}

}  // namespace ps::models::cpu
