// LayerNormalization backward over the normalized axes (from `axis` to the last), with the
// statistics recomputed from X as the forward computes them (mean, biased variance, the float
// epsilon). With x̂ = (x - mean) * inv_std and g = dY * scale, per normalized row of H values:
// dX = inv_std * (g - mean(g) - x̂ * mean(g * x̂)); dscale = sum over rows of dY * x̂;
// dbias = sum over rows of dY; both then reduced to the parameters' own shapes.
#include <cmath>

#include "models/cpu/grad.h"
#include "models/cpu/grad_util.h"
#include "models/cpu/op_context.h"

namespace ps::models::cpu {

Result<LayerNormGrads> layer_norm_backward(const Attributes& attrs, const Tensor& x,
                                           const Tensor& scale, const Shape* bias_shape,
                                           const Tensor& dy) {
  PS_TRY(require_f64(x, "LayerNormalization backward: X"));
  PS_TRY(require_f64(scale, "LayerNormalization backward: Scale"));
  PS_TRY(require_f64(dy, "LayerNormalization backward: dY"));
  if (x.shape() != dy.shape() || x.rank() == 0) {
    return invalid_argument("LayerNormalization backward: X ", x.description(), " and dY ",
                            dy.description(), " must have one shape of rank >= 1");
  }
  const std::string op = "LayerNormalization";
  const OpContext ctx(op, attrs, {}, {});
  PS_ASSIGN_OR_RETURN(const int64_t axis_attr, ctx.attr_int("axis", -1));
  PS_ASSIGN_OR_RETURN(const float epsilon, ctx.attr_float("epsilon", 1e-5f));
  PS_ASSIGN_OR_RETURN(const int64_t axis, normalize_axis(axis_attr, x.rank()));
  const Shape norm_shape(x.shape().begin() + axis, x.shape().end());
  for (const Shape* s : {&scale.shape(), bias_shape}) {
    if (s == nullptr) continue;
    const Result<Shape> b = broadcast_shapes(*s, norm_shape);
    if (!b.ok() || *b != norm_shape) {
      return invalid_argument("LayerNormalization backward: parameter shape ", shape_string(*s),
                              " does not broadcast to the normalized shape ",
                              shape_string(norm_shape));
    }
  }
  const int64_t inner = element_count(norm_shape);
  const int64_t outer = inner == 0 ? 0 : x.numel() / inner;
  // Scale read as the normalized shape.
  const std::vector<int64_t> scale_strides = broadcast_strides(scale.shape(), norm_shape);
  std::vector<double> gamma(static_cast<size_t>(inner));
  for (int64_t i = 0; i < inner; ++i) {
    gamma[i] = scale.data<double>()[strided_offset(i, norm_shape, scale_strides)];
  }
  PS_ASSIGN_OR_RETURN(Tensor dx, zeros_f64(x.shape()));
  PS_ASSIGN_OR_RETURN(Tensor dscale_full, zeros_f64(norm_shape));
  PS_ASSIGN_OR_RETURN(Tensor dbias_full, zeros_f64(norm_shape));
  const double* xp = x.data<double>();
  const double* dyp = dy.data<double>();
  double* dxp = dx.mutable_data<double>();
  double* dsp = dscale_full.mutable_data<double>();
  double* dbp = dbias_full.mutable_data<double>();
  const double h = static_cast<double>(inner);
  std::vector<double> xhat(static_cast<size_t>(inner));
  for (int64_t o = 0; o < outer; ++o) {
    const double* v = xp + o * inner;
    const double* g = dyp + o * inner;
    double sum = 0;
    for (int64_t i = 0; i < inner; ++i) sum += v[i];
    const double mean = sum / h;
    double sq = 0;
    for (int64_t i = 0; i < inner; ++i) sq += (v[i] - mean) * (v[i] - mean);
    const double inv_std = 1.0 / std::sqrt(sq / h + static_cast<double>(epsilon));
    double mean_g = 0, mean_gx = 0;
    for (int64_t i = 0; i < inner; ++i) {
      xhat[i] = (v[i] - mean) * inv_std;
      const double gi = g[i] * gamma[i];
      mean_g += gi;
      mean_gx += gi * xhat[i];
      dsp[i] += g[i] * xhat[i];
      dbp[i] += g[i];
    }
    mean_g /= h;
    mean_gx /= h;
    for (int64_t i = 0; i < inner; ++i) {
      dxp[o * inner + i] = inv_std * (g[i] * gamma[i] - mean_g - xhat[i] * mean_gx);
    }
  }
  LayerNormGrads grads;
  grads.dx = std::move(dx);
  PS_ASSIGN_OR_RETURN(grads.dscale, reduce_to_shape(dscale_full, scale.shape()));
  if (bias_shape != nullptr) {
    PS_ASSIGN_OR_RETURN(grads.dbias, reduce_to_shape(dbias_full, *bias_shape));
  }
  return grads;
}

}  // namespace ps::models::cpu
