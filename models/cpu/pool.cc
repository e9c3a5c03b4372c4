// Pooling: MaxPool (dilations, ceil mode, optional Indices output), AveragePool
// (count_include_pad, ceil mode), GlobalAveragePool, GlobalMaxPool; 1 to 3 spatial dims.
// Padding never contributes a value; averages accumulate in double.
#include <algorithm>
#include <cmath>
#include <limits>

#include "models/cpu/dispatch.h"
#include "models/cpu/kernels.h"
#include "models/cpu/window.h"

namespace ps::models::cpu {

namespace {

// Reads kernel_shape and the window attributes for X [N, C, spatial...] and picks the output
// sizes that match the preallocated output 0 (ONNX's ceil-mode size or PyTorch's, see
// SpatialWindow). Returns the windows; errors when output 0 has neither shape.
Result<std::vector<SpatialWindow>> pool_windows(const OpContext& ctx, const Tensor& x,
                                                const WindowOptions& options) {
  if (x.rank() < 3 || x.rank() > 5) {
    return unsupported("X ", x.description(), ": rank must be 3 to 5 (N, C, 1-3 spatial dims)");
  }
  const Shape in_spatial(x.shape().begin() + 2, x.shape().end());
  PS_ASSIGN_OR_RETURN(const std::vector<int64_t> kernel, ctx.attr_ints("kernel_shape"));
  if (kernel.size() != in_spatial.size()) {
    return invalid_argument("kernel_shape ", shape_string(kernel), " must have one value per ",
                            "spatial dimension of X ", x.description());
  }
  PS_ASSIGN_OR_RETURN(std::vector<SpatialWindow> windows,
                      window_geometry(ctx, in_spatial, kernel, options));
  Shape onnx_shape{x.dim(0), x.dim(1)};
  Shape clipped_shape = onnx_shape;
  for (const SpatialWindow& w : windows) {
    onnx_shape.push_back(w.out);
    clipped_shape.push_back(w.out_ceil_clipped);
  }
  const Tensor* y = ctx.output(0);
  if (y != nullptr && y->shape() == clipped_shape && clipped_shape != onnx_shape) {
    for (SpatialWindow& w : windows) w.out = w.out_ceil_clipped;
  }
  return windows;
}

Shape pooled_shape(const Tensor& x, const std::vector<SpatialWindow>& windows) {
  Shape s{x.dim(0), x.dim(1)};
  for (const SpatialWindow& w : windows) s.push_back(w.out);
  return s;
}

template <typename T>
void max_pool_kernel(const std::array<SpatialWindow, 3>& s, int64_t planes, bool column_major,
                     const T* x, T* y, int64_t* indices) {
  const auto& [wd, wh, ww] = s;
  const int64_t in_plane = wd.in * wh.in * ww.in;
  const int64_t out_plane = wd.out * wh.out * ww.out;
  for (int64_t p = 0; p < planes; ++p) {
    const T* xin = x + p * in_plane;
    int64_t o = p * out_plane;
    for (int64_t od = 0; od < wd.out; ++od) {
      const TapRange rd = valid_taps(wd, od);
      for (int64_t oh = 0; oh < wh.out; ++oh) {
        const TapRange rh = valid_taps(wh, oh);
        for (int64_t ow = 0; ow < ww.out; ++ow, ++o) {
          const TapRange rw = valid_taps(ww, ow);
          T best = std::numeric_limits<T>::lowest();
          int64_t best_at = -1;
          for (int64_t td = rd.first; td < rd.last; ++td) {
            const int64_t id = od * wd.stride - wd.pad_begin + td * wd.dilation;
            for (int64_t th = rh.first; th < rh.last; ++th) {
              const int64_t ih = oh * wh.stride - wh.pad_begin + th * wh.dilation;
              for (int64_t tw = rw.first; tw < rw.last; ++tw) {
                const int64_t iw = ow * ww.stride - ww.pad_begin + tw * ww.dilation;
                const T v = xin[(id * wh.in + ih) * ww.in + iw];
                bool take = best_at < 0 || v > best;
                if constexpr (kIsFloat<T>) take = take || (std::isnan(v) && !std::isnan(best));
                if (take) {
                  best = v;
                  best_at = column_major ? id + wd.in * (ih + wh.in * iw)
                                         : (id * wh.in + ih) * ww.in + iw;
                }
              }
            }
          }
          y[o] = best;
          if (indices) indices[o] = p * in_plane + std::max<int64_t>(best_at, 0);
        }
      }
    }
  }
}

template <typename T>
void average_pool_kernel(const std::array<SpatialWindow, 3>& s, int64_t planes,
                         bool count_include_pad, const T* x, T* y) {
  const auto& [wd, wh, ww] = s;
  const int64_t in_plane = wd.in * wh.in * ww.in;
  const int64_t out_plane = wd.out * wh.out * ww.out;
  // Taps counted by the divisor: inside the input, or inside input + explicit padding.
  auto counted = [count_include_pad](const SpatialWindow& w, int64_t o, TapRange valid) {
    if (!count_include_pad) return valid.last - valid.first;
    const int64_t start = o * w.stride - w.pad_begin;
    const int64_t lo = std::max(start, -w.pad_begin);
    const int64_t hi = std::min(start + w.kernel, w.in + w.pad_end);
    return std::max<int64_t>(hi - lo, 0);
  };
  for (int64_t p = 0; p < planes; ++p) {
    const T* xin = x + p * in_plane;
    int64_t o = p * out_plane;
    for (int64_t od = 0; od < wd.out; ++od) {
      const TapRange rd = valid_taps(wd, od);
      for (int64_t oh = 0; oh < wh.out; ++oh) {
        const TapRange rh = valid_taps(wh, oh);
        for (int64_t ow = 0; ow < ww.out; ++ow, ++o) {
          const TapRange rw = valid_taps(ww, ow);
          double sum = 0;
          for (int64_t td = rd.first; td < rd.last; ++td) {
            const int64_t id = od * wd.stride - wd.pad_begin + td;
            for (int64_t th = rh.first; th < rh.last; ++th) {
              const int64_t ih = oh * wh.stride - wh.pad_begin + th;
              const T* row = xin + (id * wh.in + ih) * ww.in + (ow * ww.stride - ww.pad_begin);
              for (int64_t tw = rw.first; tw < rw.last; ++tw) sum += static_cast<double>(row[tw]);
            }
          }
          const int64_t divisor = counted(wd, od, rd) * counted(wh, oh, rh) * counted(ww, ow, rw);
          y[o] = static_cast<T>(divisor > 0 ? sum / static_cast<double>(divisor) : 0.0);
        }
      }
    }
  }
}

}  // namespace

Status run_max_pool(const OpContext& ctx) {
  PS_TRY(ctx.check_arity(1, 1, 1, 2));
  PS_TRY(ctx.check_attrs(
      {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"}));
  const Tensor& x = *ctx.input(0);
  PS_ASSIGN_OR_RETURN(const int64_t ceil_mode, ctx.attr_int("ceil_mode", 0));
  PS_ASSIGN_OR_RETURN(const int64_t storage_order, ctx.attr_int("storage_order", 0));
  if (storage_order != 0 && storage_order != 1) {
    return invalid_argument("storage_order=", storage_order, " (expected 0 or 1)");
  }
  PS_ASSIGN_OR_RETURN(const std::vector<SpatialWindow> windows,
                      pool_windows(ctx, x, WindowOptions{ceil_mode != 0, true}));
  const Shape out_shape = pooled_shape(x, windows);
  PS_ASSIGN_OR_RETURN(Tensor * y, ctx.output_checked(0, x.dtype(), out_shape));
  PS_ASSIGN_OR_RETURN(Tensor * indices, ctx.optional_output_checked(1, DType::kInt64, out_shape));
  return dispatch(NumericTypes{}, x.dtype(), "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    max_pool_kernel<T>(as_3d(windows), x.dim(0) * x.dim(1), storage_order == 1, x.data<T>(),
                       y->mutable_data<T>(), indices ? indices->mutable_data<int64_t>() : nullptr);
    return Status::OK();
  });
}

Status run_average_pool(const OpContext& ctx) {
  PS_TRY(ctx.check_arity(1, 1, 1, 1));
  PS_TRY(ctx.check_attrs({"auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape",
                          "pads", "strides"}));
  const Tensor& x = *ctx.input(0);
  PS_ASSIGN_OR_RETURN(const int64_t ceil_mode, ctx.attr_int("ceil_mode", 0));
  PS_ASSIGN_OR_RETURN(const int64_t count_include_pad, ctx.attr_int("count_include_pad", 0));
  PS_ASSIGN_OR_RETURN(const std::vector<SpatialWindow> windows,
                      pool_windows(ctx, x, WindowOptions{ceil_mode != 0, false}));
  PS_ASSIGN_OR_RETURN(Tensor * y, ctx.output_checked(0, x.dtype(), pooled_shape(x, windows)));
  return dispatch(FloatTypes{}, x.dtype(), "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    average_pool_kernel<T>(as_3d(windows), x.dim(0) * x.dim(1), count_include_pad != 0, x.data<T>(),
                           y->mutable_data<T>());
    return Status::OK();
  });
}

Status run_global_pool(const OpContext& ctx) {
  PS_TRY(ctx.check_arity(1, 1, 1, 1));
  PS_TRY(ctx.check_attrs({}));
  const Tensor& x = *ctx.input(0);
  if (x.rank() < 3) {
    return invalid_argument("X ", x.description(), " must be [N, C, spatial...]");
  }
  Shape out_shape(x.shape().size(), 1);
  out_shape[0] = x.dim(0);
  out_shape[1] = x.dim(1);
  PS_ASSIGN_OR_RETURN(Tensor * y, ctx.output_checked(0, x.dtype(), out_shape));
  const int64_t planes = x.dim(0) * x.dim(1);
  const int64_t plane = planes == 0 ? 0 : x.numel() / planes;
  const bool average = ctx.op() == "GlobalAveragePool";
  return dispatch(FloatTypes{}, x.dtype(), "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* in = x.data<T>();
    T* out = y->mutable_data<T>();
    for (int64_t p = 0; p < planes; ++p) {
      const T* v = in + p * plane;
      if (average) {
        double sum = 0;
        for (int64_t i = 0; i < plane; ++i) sum += static_cast<double>(v[i]);
        out[p] = static_cast<T>(sum / static_cast<double>(plane));
      } else {
        T best = -std::numeric_limits<T>::infinity();
        for (int64_t i = 0; i < plane; ++i) {
          if (v[i] > best || std::isnan(v[i])) best = v[i];
          if (std::isnan(best)) break;
        }
        out[p] = best;
      }
    }
    return Status::OK();
  });
}

}  // namespace ps::models::cpu
