// BatchNormalization in training mode: the forward with batch statistics, the running-
// statistics update as PyTorch does it, and the backward (all per channel, in double).
#include <cmath>

#include "models/cpu/grad.h"
#include "models/cpu/grad_util.h"

namespace ps::models::cpu {

namespace {

// N * inner values per channel of X [N, C, ...].
int64_t inner_of(const Tensor& x) {
  int64_t inner = 1;
  for (int64_t d = 2; d < x.rank(); ++d) inner *= x.dim(d);
  return inner;
}

Status check_param(const Tensor& p, int64_t channels, std::string_view what) {
  PS_TRY(require_f64(p, what));
  if (p.rank() != 1 || p.dim(0) != channels) {
    return invalid_argument(what, " ", p.description(), " must have shape [", channels, "]");
  }
  return Status::OK();
}

}  // namespace

Result<Tensor> batch_norm_train_forward(const Tensor& x, const Tensor& scale, const Tensor& bias,
                                        double epsilon, BatchNormSaved* saved) {
  PS_TRY(require_f64(x, "BatchNormalization: X"));
  if (x.rank() < 2) {
    return invalid_argument("BatchNormalization: X ", x.description(), " must be [N, C, ...]");
  }
  const int64_t batch = x.dim(0), channels = x.dim(1), inner = inner_of(x);
  PS_TRY(check_param(scale, channels, "BatchNormalization: scale"));
  PS_TRY(check_param(bias, channels, "BatchNormalization: B"));
  const int64_t count = batch * inner;
  if (count < 2) {
    return invalid_argument("BatchNormalization: X ", x.description(),
                            " has fewer than 2 values per channel (training needs a variance)");
  }
  PS_ASSIGN_OR_RETURN(Tensor y, zeros_f64(x.shape()));
  saved->mean.assign(static_cast<size_t>(channels), 0.0);
  saved->inv_std.assign(static_cast<size_t>(channels), 0.0);
  saved->unbiased_var.assign(static_cast<size_t>(channels), 0.0);
  const double* xp = x.data<double>();
  double* yp = y.mutable_data<double>();
  for (int64_t c = 0; c < channels; ++c) {
    double sum = 0;
    for (int64_t n = 0; n < batch; ++n) {
      const double* v = xp + (n * channels + c) * inner;
      for (int64_t i = 0; i < inner; ++i) sum += v[i];
    }
    const double mean = sum / static_cast<double>(count);
    double sq = 0;
    for (int64_t n = 0; n < batch; ++n) {
      const double* v = xp + (n * channels + c) * inner;
      for (int64_t i = 0; i < inner; ++i) sq += (v[i] - mean) * (v[i] - mean);
    }
    const double inv_std = 1.0 / std::sqrt(sq / static_cast<double>(count) + epsilon);
    saved->mean[c] = mean;
    saved->inv_std[c] = inv_std;
    saved->unbiased_var[c] = sq / static_cast<double>(count - 1);
    const double a = scale.data<double>()[c] * inv_std, b = bias.data<double>()[c];
    for (int64_t n = 0; n < batch; ++n) {
      const int64_t base = (n * channels + c) * inner;
      for (int64_t i = 0; i < inner; ++i) yp[base + i] = (xp[base + i] - mean) * a + b;
    }
  }
  return y;
}

Status batch_norm_update_running(const BatchNormSaved& saved, double momentum, Tensor& running_mean,
                                 Tensor& running_var) {
  const auto channels = static_cast<int64_t>(saved.mean.size());
  PS_TRY(check_param(running_mean, channels, "BatchNormalization: running_mean"));
  PS_TRY(check_param(running_var, channels, "BatchNormalization: running_var"));
  double* rm = running_mean.mutable_data<double>();
  double* rv = running_var.mutable_data<double>();
  for (int64_t c = 0; c < channels; ++c) {
    rm[c] = momentum * rm[c] + (1.0 - momentum) * saved.mean[c];
    rv[c] = momentum * rv[c] + (1.0 - momentum) * saved.unbiased_var[c];
  }
  return Status::OK();
}

Result<BatchNormGrads> batch_norm_backward(const Tensor& x, const Tensor& scale,
                                           const BatchNormSaved& saved, const Tensor& dy) {
  PS_TRY(require_f64(x, "BatchNormalization backward: X"));
  PS_TRY(require_f64(dy, "BatchNormalization backward: dY"));
  if (x.rank() < 2 || dy.shape() != x.shape()) {
    return invalid_argument("BatchNormalization backward: X ", x.description(), " and dY ",
                            dy.description(), " must be the same [N, C, ...]");
  }
  const int64_t batch = x.dim(0), channels = x.dim(1), inner = inner_of(x);
  PS_TRY(check_param(scale, channels, "BatchNormalization backward: scale"));
  if (static_cast<int64_t>(saved.mean.size()) != channels ||
      static_cast<int64_t>(saved.inv_std.size()) != channels) {
    return invalid_argument("BatchNormalization backward: saved statistics for ", saved.mean.size(),
                            " channels, X has ", channels);
  }
  BatchNormGrads g;
  PS_ASSIGN_OR_RETURN(g.dx, zeros_f64(x.shape()));
  PS_ASSIGN_OR_RETURN(g.dscale, zeros_f64(Shape{channels}));
  PS_ASSIGN_OR_RETURN(g.dbias, zeros_f64(Shape{channels}));
  const double* xp = x.data<double>();
  const double* dyp = dy.data<double>();
  double* dxp = g.dx.mutable_data<double>();
  const auto count = static_cast<double>(batch * inner);
  for (int64_t c = 0; c < channels; ++c) {
    const double mean = saved.mean[c], inv_std = saved.inv_std[c];
    double sum_dy = 0, sum_dy_xhat = 0;
    for (int64_t n = 0; n < batch; ++n) {
      const int64_t base = (n * channels + c) * inner;
      for (int64_t i = 0; i < inner; ++i) {
        sum_dy += dyp[base + i];
        sum_dy_xhat += dyp[base + i] * (xp[base + i] - mean) * inv_std;
      }
    }
    g.dbias.mutable_data<double>()[c] = sum_dy;
    g.dscale.mutable_data<double>()[c] = sum_dy_xhat;
    const double k = scale.data<double>()[c] * inv_std / count;
    for (int64_t n = 0; n < batch; ++n) {
      const int64_t base = (n * channels + c) * inner;
      for (int64_t i = 0; i < inner; ++i) {
        const double xhat = (xp[base + i] - mean) * inv_std;
        dxp[base + i] = k * (count * dyp[base + i] - sum_dy - xhat * sum_dy_xhat);
      }
    }
  }
  return g;
}

}  // namespace ps::models::cpu
