// Softmax backward from the forward's output: dX = Y * (dY - sum_axis(dY * Y)).
#include "models/cpu/grad.h"
#include "models/cpu/grad_util.h"
#include "models/cpu/op_context.h"

namespace ps::models::cpu {

Result<Tensor> softmax_backward(const Attributes& attrs, const Tensor& y, const Tensor& dy) {
  PS_TRY(require_f64(y, "Softmax backward: Y"));
  PS_TRY(require_f64(dy, "Softmax backward: dY"));
  if (y.shape() != dy.shape() || y.rank() == 0) {
    return invalid_argument("Softmax backward: Y ", y.description(), " and dY ", dy.description(),
                            " must have one shape of rank >= 1");
  }
  const std::string op = "Softmax";
  const OpContext ctx(op, attrs, {}, {});
  PS_ASSIGN_OR_RETURN(const int64_t axis_attr, ctx.attr_int("axis", -1));
  PS_ASSIGN_OR_RETURN(const int64_t axis, normalize_axis(axis_attr, y.rank()));
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= y.dim(d);
  for (int64_t d = axis + 1; d < y.rank(); ++d) inner *= y.dim(d);
  const int64_t n = y.dim(axis);
  PS_ASSIGN_OR_RETURN(Tensor dx, zeros_f64(y.shape()));
  const double* yp = y.data<double>();
  const double* dyp = dy.data<double>();
  double* dxp = dx.mutable_data<double>();
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      const int64_t base = o * n * inner + i;
      double dot = 0;
      for (int64_t k = 0; k < n; ++k) dot += dyp[base + k * inner] * yp[base + k * inner];
      for (int64_t k = 0; k < n; ++k) {
        dxp[base + k * inner] = yp[base + k * inner] * (dyp[base + k * inner] - dot);
      }
    }
  }
  return dx;
}

}  // namespace ps::models::cpu
