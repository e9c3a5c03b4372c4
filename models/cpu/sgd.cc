#include "models/cpu/sgd.h"

#include "models/cpu/grad_util.h"

namespace ps::models::cpu {

Status sgd_update(const SgdOptions& options, Tensor& param, const Tensor& grad,
                  Tensor& momentum_buffer) {
  if (options.learning_rate < 0 || options.momentum < 0 || options.weight_decay < 0) {
    return invalid_argument("SGD: learning rate ", options.learning_rate, ", momentum ",
                            options.momentum, ", weight decay ", options.weight_decay,
                            " must not be negative");
  }
  PS_TRY(require_f64(param, "SGD: parameter"));
  PS_TRY(require_f64(grad, "SGD: gradient"));
  if (param.shape() != grad.shape()) {
    return invalid_argument("SGD: parameter ", param.description(), " and gradient ",
                            grad.description(), " differ");
  }
  const bool first = momentum_buffer.dtype() == DType::kUndefined;
  if (options.momentum != 0) {
    if (first) {
      PS_ASSIGN_OR_RETURN(momentum_buffer, zeros_f64(param.shape()));
    } else if (momentum_buffer.dtype() != DType::kFloat64 ||
               momentum_buffer.shape() != param.shape()) {
      return invalid_argument("SGD: momentum buffer ", momentum_buffer.description(),
                              " does not fit parameter ", param.description());
    }
  }
  double* p = param.mutable_data<double>();
  const double* g = grad.data<double>();
  double* buf = options.momentum != 0 ? momentum_buffer.mutable_data<double>() : nullptr;
  for (int64_t i = 0; i < param.numel(); ++i) {
    const double d_p = g[i] + options.weight_decay * p[i];
    double step = d_p;
    if (buf != nullptr) {
      buf[i] = first ? d_p : options.momentum * buf[i] + d_p;
      step = buf[i];
    }
    p[i] = p[i] - options.learning_rate * step;
  }
  return Status::OK();
}

}  // namespace ps::models::cpu
