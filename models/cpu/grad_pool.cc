// Pooling backward: MaxPool (to the window's first maximum), AveragePool (the forward's
// divisor, count_include_pad honoured), GlobalAveragePool. Same window geometry as pool.cc.
#include <algorithm>

#include "models/cpu/grad.h"
#include "models/cpu/grad_util.h"
#include "models/cpu/op_context.h"
#include "models/cpu/window.h"

namespace ps::models::cpu {

namespace {

// The windows of a pooling layer, with the output sizes taken from dY.
Result<std::array<SpatialWindow, 3>> pool_windows(const std::string& op, const Attributes& attrs,
                                                  const Tensor& x, const Tensor& dy) {
  PS_TRY(require_f64(x, op + " backward: X"));
  PS_TRY(require_f64(dy, op + " backward: dY"));
  if (x.rank() < 3 || x.rank() > 5 || dy.rank() != x.rank() || dy.dim(0) != x.dim(0) ||
      dy.dim(1) != x.dim(1)) {
    return invalid_argument(op, " backward: X ", x.description(), " and dY ", dy.description(),
                            " must be [N, C, 1-3 spatial dims] alike");
  }
  const OpContext ctx(op, attrs, {}, {});
  PS_ASSIGN_OR_RETURN(const std::vector<int64_t> kernel, ctx.attr_ints("kernel_shape"));
  const Shape in_spatial(x.shape().begin() + 2, x.shape().end());
  if (kernel.size() != in_spatial.size()) {
    return invalid_argument(op, " backward: kernel_shape ", shape_string(kernel),
                            " does not fit X ", x.description());
  }
  PS_ASSIGN_OR_RETURN(const int64_t ceil_mode, ctx.attr_int("ceil_mode", 0));
  WindowOptions options;
  options.ceil_mode = ceil_mode != 0;
  options.allow_dilations = op == "MaxPool";
  PS_ASSIGN_OR_RETURN(std::vector<SpatialWindow> windows,
                      window_geometry(ctx, in_spatial, kernel, options));
  for (size_t i = 0; i < windows.size(); ++i) {
    const int64_t out = dy.dim(static_cast<int64_t>(i) + 2);
    if (out != windows[i].out && out != windows[i].out_ceil_clipped) {
      return invalid_argument(op, " backward: dY ", dy.description(),
                              " does not have the pooled shape of X ", x.description());
    }
    windows[i].out = out;
  }
  return as_3d(windows);
}

}  // namespace

Result<Tensor> max_pool_backward(const Attributes& attrs, const Tensor& x, const Tensor& dy) {
  PS_ASSIGN_OR_RETURN(const auto s, pool_windows("MaxPool", attrs, x, dy));
  const auto& [wd, wh, ww] = s;
  PS_ASSIGN_OR_RETURN(Tensor dx, zeros_f64(x.shape()));
  const int64_t planes = x.dim(0) * x.dim(1);
  const int64_t in_plane = wd.in * wh.in * ww.in, out_plane = wd.out * wh.out * ww.out;
  const double* xp = x.data<double>();
  const double* dyp = dy.data<double>();
  double* dxp = dx.mutable_data<double>();
  for (int64_t p = 0; p < planes; ++p) {
    const double* xin = xp + p * in_plane;
    double* dxin = dxp + p * in_plane;
    int64_t o = p * out_plane;
    for (int64_t od = 0; od < wd.out; ++od) {
      const TapRange rd = valid_taps(wd, od);
      for (int64_t oh = 0; oh < wh.out; ++oh) {
        const TapRange rh = valid_taps(wh, oh);
        for (int64_t ow = 0; ow < ww.out; ++ow, ++o) {
          const TapRange rw = valid_taps(ww, ow);
          double best = 0;
          int64_t best_at = -1;
          for (int64_t td = rd.first; td < rd.last; ++td) {
            const int64_t id = od * wd.stride - wd.pad_begin + td * wd.dilation;
            for (int64_t th = rh.first; th < rh.last; ++th) {
              const int64_t ih = oh * wh.stride - wh.pad_begin + th * wh.dilation;
              for (int64_t tw = rw.first; tw < rw.last; ++tw) {
                const int64_t iw = ow * ww.stride - ww.pad_begin + tw * ww.dilation;
                const int64_t at = (id * wh.in + ih) * ww.in + iw;
                if (best_at < 0 || xin[at] > best) {
                  best = xin[at];
                  best_at = at;
                }
              }
            }
          }
          if (best_at >= 0) dxin[best_at] += dyp[o];
        }
      }
    }
  }
  return dx;
}

Result<Tensor> average_pool_backward(const Attributes& attrs, const Tensor& x, const Tensor& dy) {
  PS_ASSIGN_OR_RETURN(const auto s, pool_windows("AveragePool", attrs, x, dy));
  const std::string op = "AveragePool";
  const OpContext ctx(op, attrs, {}, {});
  PS_ASSIGN_OR_RETURN(const int64_t count_include_pad, ctx.attr_int("count_include_pad", 0));
  const auto& [wd, wh, ww] = s;
  auto counted = [&](const SpatialWindow& w, int64_t o, TapRange valid) {
    if (count_include_pad == 0) return valid.last - valid.first;
    const int64_t start = o * w.stride - w.pad_begin;
    const int64_t lo = std::max(start, -w.pad_begin);
    const int64_t hi = std::min(start + w.kernel, w.in + w.pad_end);
    return std::max<int64_t>(hi - lo, 0);
  };
  PS_ASSIGN_OR_RETURN(Tensor dx, zeros_f64(x.shape()));
  const int64_t planes = x.dim(0) * x.dim(1);
  const int64_t in_plane = wd.in * wh.in * ww.in, out_plane = wd.out * wh.out * ww.out;
  const double* dyp = dy.data<double>();
  double* dxp = dx.mutable_data<double>();
  for (int64_t p = 0; p < planes; ++p) {
    double* dxin = dxp + p * in_plane;
    int64_t o = p * out_plane;
    for (int64_t od = 0; od < wd.out; ++od) {
      const TapRange rd = valid_taps(wd, od);
      for (int64_t oh = 0; oh < wh.out; ++oh) {
        const TapRange rh = valid_taps(wh, oh);
        for (int64_t ow = 0; ow < ww.out; ++ow, ++o) {
          const TapRange rw = valid_taps(ww, ow);
          const int64_t divisor = counted(wd, od, rd) * counted(wh, oh, rh) * counted(ww, ow, rw);
          if (divisor <= 0) continue;
          const double share = dyp[o] / static_cast<double>(divisor);
          for (int64_t td = rd.first; td < rd.last; ++td) {
            const int64_t id = od * wd.stride - wd.pad_begin + td;
            for (int64_t th = rh.first; th < rh.last; ++th) {
              const int64_t ih = oh * wh.stride - wh.pad_begin + th;
              for (int64_t tw = rw.first; tw < rw.last; ++tw) {
                const int64_t iw = ow * ww.stride - ww.pad_begin + tw;
                dxin[(id * wh.in + ih) * ww.in + iw] += share;
              }
            }
          }
        }
      }
    }
  }
  return dx;
}

Result<Tensor> global_average_pool_backward(const Tensor& x, const Tensor& dy) {
  PS_TRY(require_f64(x, "GlobalAveragePool backward: X"));
  PS_TRY(require_f64(dy, "GlobalAveragePool backward: dY"));
  if (x.rank() < 3 || dy.rank() != x.rank() || dy.dim(0) != x.dim(0) || dy.dim(1) != x.dim(1) ||
      dy.numel() != x.dim(0) * x.dim(1)) {
    return invalid_argument("GlobalAveragePool backward: X ", x.description(), " and dY ",
                            dy.description(), " must be [N, C, ...] and [N, C, 1, ...]");
  }
  PS_ASSIGN_OR_RETURN(Tensor dx, zeros_f64(x.shape()));
  const int64_t planes = x.dim(0) * x.dim(1);
  const int64_t inner = planes == 0 ? 0 : x.numel() / planes;
  double* dxp = dx.mutable_data<double>();
  for (int64_t p = 0; p < planes; ++p) {
    const double share = dy.data<double>()[p] / static_cast<double>(inner);
    for (int64_t i = 0; i < inner; ++i) dxp[p * inner + i] = share;
  }
  return dx;
}

}  // namespace ps::models::cpu
