// Backward of the elementwise unary layers a BERT training manifest holds (Erf and Tanh; Sqrt
// in LayerNorm's pre-opset-17 decomposition; Gelu, Neg, Exp, Cast and Identity for
// completeness): dX = dY * f'(X).
#include <cmath>
#include <numbers>

#include "models/cpu/grad.h"
#include "models/cpu/grad_util.h"

namespace ps::models::cpu {

Result<Tensor> unary_backward(const std::string& op, const Tensor& x, const Tensor& dy) {
  PS_TRY(require_f64(x, op + " backward: X"));
  PS_TRY(require_f64(dy, op + " backward: dY"));
  if (x.shape() != dy.shape()) {
    return invalid_argument(op, " backward: X ", x.description(), " and dY ", dy.description(),
                            " differ");
  }
  double (*derivative)(double) = nullptr;
  if (op == "Erf") {
    derivative = [](double v) { return 2.0 / std::sqrt(std::numbers::pi) * std::exp(-v * v); };
  } else if (op == "Tanh") {
    derivative = [](double v) {
      const double t = std::tanh(v);
      return 1.0 - t * t;
    };
  } else if (op == "Sqrt") {
    derivative = [](double v) { return 0.5 / std::sqrt(v); };
  } else if (op == "Gelu") {
    derivative = [](double v) {
      return 0.5 * (1.0 + std::erf(v / std::numbers::sqrt2)) +
             v * std::exp(-0.5 * v * v) / std::sqrt(2.0 * std::numbers::pi);
    };
  } else if (op == "Neg") {
    derivative = [](double) { return -1.0; };
  } else if (op == "Exp") {
    derivative = [](double v) { return std::exp(v); };
  } else if (op == "Cast" || op == "Identity") {
    derivative = [](double) { return 1.0; };
  } else {
    return invalid_argument("unary backward: no gradient for op ", op);
  }
  PS_ASSIGN_OR_RETURN(Tensor dx, zeros_f64(x.shape()));
  const double* xp = x.data<double>();
  const double* dyp = dy.data<double>();
  double* dxp = dx.mutable_data<double>();
  for (int64_t i = 0; i < x.numel(); ++i) dxp[i] = dyp[i] * derivative(xp[i]);
  return dx;
}

}  // namespace ps::models::cpu
