#include "models/gpu/grad_kernel_plan.h"

#include <optional>

#include "common/shape.h"

namespace ps::models::gpu {

Result<ReducePlan> plan_broadcast_backward(const Shape& input, const Shape& dy) {
  const std::optional<Shape> joint = broadcast_shapes(input, dy);
  if (!joint || *joint != dy) {
    return invalid_argument("broadcast backward: ", shape_string(input),
                            " does not broadcast to dY ", shape_string(dy));
  }
  // dY's dimension d is reduced where the input (aligned to the right) lacks it or has 1.
  const size_t lead = dy.size() - input.size();
  std::vector<bool> reduced(dy.size(), false);
  for (size_t d = 0; d < dy.size(); ++d) {
    const int64_t in_dim = d < lead ? 1 : input[d - lead];
    reduced[d] = in_dim == 1 && dy[d] != 1;
  }
  ReducePlan plan;
  PS_ASSIGN_OR_RETURN(plan, plan_reduce(dy, reduced));
  plan.params.op = kernels::kReduceSum;
  return plan;
}

Result<train_kernels::SoftmaxXentParams> plan_softmax_xent(const Shape& logits) {
  if (logits.size() != 2 || logits[0] <= 0) {
    return invalid_argument("softmax cross-entropy: logits ", shape_string(logits),
                            " must be [N, K] with N > 0");
  }
  train_kernels::SoftmaxXentParams p;
  p.rows = logits[0];
  p.classes = logits[1];
  p.grad_scale = static_cast<float>(1.0 / static_cast<double>(logits[0]));
  return p;
}

Result<train_kernels::SgdParams> plan_sgd(const cpu::SgdOptions& options, int64_t count,
                                          bool first_step) {
  if (options.learning_rate < 0 || options.momentum < 0 || options.weight_decay < 0) {
    return invalid_argument("SGD: learning rate ", options.learning_rate, ", momentum ",
                            options.momentum, ", weight decay ", options.weight_decay,
                            " must not be negative");
  }
  train_kernels::SgdParams p;
  p.count = count;
  p.learning_rate = static_cast<float>(options.learning_rate);
  p.momentum = static_cast<float>(options.momentum);
  p.weight_decay = static_cast<float>(options.weight_decay);
  p.first_step = first_step ? 1 : 0;
  return p;
}

}  // namespace ps::models::gpu
