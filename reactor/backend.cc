#include "reactor/backend.h"

namespace ps::reactor {

uint64_t TensorSpec::bytes() const {
  return static_cast<uint64_t>(element_count(shape)) * dtype_size(dtype);
}

bool batch_supported(const ModelInfo& model, uint64_t batch, std::string* why) {
  std::string reason;
  if (batch < 1 || batch > kMaxBatch) {
    reason = str_cat("batch ", batch, " is outside 1..", kMaxBatch);
  } else if (batch % model.batch != 0) {
    reason = str_cat("model '", model.name, "' runs batches that are multiples of ", model.batch,
                     ", not ", batch);
  }
  if (reason.empty()) return true;
  if (why) *why = std::move(reason);
  return false;
}

std::vector<TensorSpec> specs_at_batch(const std::vector<TensorSpec>& specs, uint32_t native,
                                       uint32_t batch) {
  std::vector<TensorSpec> scaled = specs;
  for (TensorSpec& spec : scaled) spec.shape[0] = spec.shape[0] / native * batch;
  return scaled;
}

uint64_t input_bytes(const ModelInfo& model, uint32_t batch) {
  uint64_t total = 0;
  for (const TensorSpec& spec : model.inputs) total += spec.bytes() / model.batch * batch;
  return total;
}

Status check_infer_input(const ModelInfo& model, uint32_t batch, uint64_t input_size) {
  std::string why;
  if (!batch_supported(model, batch, &why)) return invalid_argument(why);
  if (input_size != input_bytes(model, batch)) {
    return invalid_argument("input of ", input_size, " bytes; model '", model.name, "' at batch ",
                            batch, " takes ", input_bytes(model, batch));
  }
  return Status::OK();
}

std::string_view training_policy_name(TrainingPolicy policy) {
  return policy == TrainingPolicy::kYield ? "yield" : "co-run";
}

Result<TrainingPolicy> parse_training_policy(std::string_view text) {
  if (text == "yield") return TrainingPolicy::kYield;
  if (text == "co-run") return TrainingPolicy::kCoRun;
  return invalid_argument("--training '", text, "': expected yield or co-run");
}

Completion failed_completion(CompletionKind kind, uint64_t ticket, Status status) {
  Completion c;
  c.kind = kind;
  c.ticket = ticket;
  c.status = std::move(status);
  return c;
}

}  // namespace ps::reactor
