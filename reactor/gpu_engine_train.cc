// GpuEngine::start_training: a training job on a registered model (reactor/gpu_training_job.h).
#include "reactor/gpu_engine_model.h"
#include "reactor/gpu_training_job.h"
#include "reactor/model_source.h"

namespace ps::reactor {

Result<std::unique_ptr<GpuTrainingJob>> GpuEngine::start_training(const TrainTask& task,
                                                                  TrainingPolicy policy,
                                                                  CompletionSink* sink) {
  auto it = models_.find(task.model);
  if (it == models_.end()) return not_found("no model '", task.model, "'");
  const Model& model = *it->second;
  if (task.batch != model.info.batch) {
    return invalid_argument("model '", task.model, "' trains at its package's batch ",
                            model.info.batch, ", not ", task.batch, " (import it with --batch ",
                            task.batch, " for that)");
  }
  PS_ASSIGN_OR_RETURN(std::optional<HostModel> imported,
                      training_import(task.model, model.source, model.manifest));
  if (imported) {
    return GpuTrainingJob::create(*runtime_, *pool_, imported->manifest, imported->weights, task,
                                  precision_, policy, sink);
  }
  if (policy_.home == WeightHome::kManaged) {
    return unsupported("training under --policy managed (the weights live in managed memory)");
  }
  return GpuTrainingJob::create(*runtime_, *pool_, model.manifest,
                                std::span<const uint8_t>(model.host_weights, model.weights_bytes),
                                task, precision_, policy, sink);
}

}  // namespace ps::reactor
