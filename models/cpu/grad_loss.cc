// Softmax cross-entropy over logits [N, K], mean over the batch, and its gradient.
#include <algorithm>
#include <cmath>

#include "models/cpu/grad.h"
#include "models/cpu/grad_util.h"

namespace ps::models::cpu {

Result<double> softmax_cross_entropy(const Tensor& logits, std::span<const int64_t> labels,
                                     Tensor* dlogits) {
  PS_TRY(require_f64(logits, "softmax cross-entropy: logits"));
  if (logits.rank() != 2 || logits.dim(0) == 0 ||
      logits.dim(0) != static_cast<int64_t>(labels.size())) {
    return invalid_argument("softmax cross-entropy: logits ", logits.description(), " need [N, K]",
                            " with N = ", labels.size(), " labels, N > 0");
  }
  const int64_t batch = logits.dim(0), classes = logits.dim(1);
  PS_ASSIGN_OR_RETURN(*dlogits, zeros_f64(logits.shape()));
  const double* lp = logits.data<double>();
  double* gp = dlogits->mutable_data<double>();
  double loss = 0;
  for (int64_t n = 0; n < batch; ++n) {
    const int64_t label = labels[static_cast<size_t>(n)];
    if (label < 0 || label >= classes) {
      return out_of_range("softmax cross-entropy: label ", label, " of sample ", n,
                          " is outside [0, ", classes, ")");
    }
    const double* row = lp + n * classes;
    const double max = *std::max_element(row, row + classes);
    double sum = 0;
    for (int64_t k = 0; k < classes; ++k) sum += std::exp(row[k] - max);
    const double log_sum = std::log(sum);
    loss += -(row[label] - max - log_sum);
    for (int64_t k = 0; k < classes; ++k) {
      gp[n * classes + k] = (std::exp(row[k] - max - log_sum) - (k == label ? 1.0 : 0.0)) /
                            static_cast<double>(batch);
    }
  }
  return loss / static_cast<double>(batch);
}

}  // namespace ps::models::cpu
