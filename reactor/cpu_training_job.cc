#include "reactor/cpu_training_job.h"

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <utility>

#include "models/cpu/checkpoint.h"
#include "models/cpu/trainer.h"
#include "reactor/latency_window.h"
#include "reactor/log.h"
#include "reactor/train_options.h"

namespace ps::reactor {
namespace {

using Clock = std::chrono::steady_clock;
namespace psm = pipeswitch::psm;

uint64_t micros(Clock::duration d) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  return us < 0 ? 0 : static_cast<uint64_t>(us);
}

// The model in training mode: see the top of cpu_training_job.h.
Result<std::shared_ptr<const HostModel>> training_model(const CpuTrainingConfig& c) {
  PS_ASSIGN_OR_RETURN(std::optional<HostModel> imported,
                      training_import(c.task.model, c.source, c.model->manifest));
  if (!imported) return c.model;
  return std::make_shared<const HostModel>(std::move(*imported));
}

}  // namespace

CpuTrainingJob::CpuTrainingJob(CpuTrainingConfig config) : config_(std::move(config)) {
  PS_CHECK(config_.sink != nullptr && config_.model != nullptr);
  thread_ = std::thread([this] { run(); });
}

CpuTrainingJob::~CpuTrainingJob() {
  request_stop();
  if (thread_.joinable()) thread_.join();
}

Status CpuTrainingJob::request_checkpoint() {
  if (config_.task.options.checkpoint_path.empty()) {
    return invalid_argument("job ", id(),
                            " has no checkpoint file (start the server with --checkpoints DIR)");
  }
  checkpoint_.store(true, std::memory_order_release);
  return Status::OK();
}

void CpuTrainingJob::run() {
  if (config_.gate == nullptr) {
    // Co-running: training competes with inference for the cores; the kernel's scheduler is
    // told to favour the inference workers (the CPU's low-priority stream).
    setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 10);
  }
  TrainingProgress progress;
  Status status = train(&progress);
  if (!status.ok()) {
    log_warn("training job ", id(), " (", config_.task.model, ") failed: ", status.message());
  }
  Completion c;
  c.kind = CompletionKind::kTraining;
  c.ticket = id();
  c.status = std::move(status);
  c.training = progress;
  c.finished = true;
  ended_.store(true, std::memory_order_release);  // before the post: whoever sees it sees ended
  config_.sink->post(std::move(c));
}

Status CpuTrainingJob::train(TrainingProgress* progress) {
  const TrainTask& task = config_.task;
  const TrainOptions& options = task.options;
  if (task.batch != config_.native_batch) {
    return invalid_argument("model '", task.model, "' trains at its package's batch ",
                            config_.native_batch, ", not ", task.batch, " (import it with --batch ",
                            task.batch, " for that)");
  }
  PS_ASSIGN_OR_RETURN(std::shared_ptr<const HostModel> model, training_model(config_));
  PS_ASSIGN_OR_RETURN(
      std::unique_ptr<models::cpu::Trainer> trainer,
      models::cpu::Trainer::create(model->manifest, model->weights,
                                   trainer_options(options, model->manifest)));
  model.reset();  // the trainer copied what it needs
  if (!options.resume_path.empty()) {
    PS_TRY(models::cpu::load_checkpoint(*trainer, options.resume_path));
    log_info("training job ", id(), ": resumed ", task.model, " at step ", trainer->state().step,
             " from ", options.resume_path);
  }

  LatencyWindow preempt_latency;
  Clock::duration parked{};
  if (config_.gate != nullptr) {
    PreemptionGate* gate = config_.gate;
    trainer->set_layer_hook([gate, &preempt_latency, &parked] {
      if (auto park = gate->park_if_busy()) {
        preempt_latency.add(micros(park->latency));
        parked += park->parked;
      }
    });
  }

  const Clock::time_point start = Clock::now();
  auto fill = [&] {
    progress->step = trainer->state().step;
    const double running_s = std::chrono::duration<double>(Clock::now() - start).count();
    progress->images_per_s =
        running_s > 0 ? static_cast<double>(progress->steps) * task.batch / running_s : 0.0;
    progress->preemptions = preempt_latency.count();
    progress->preempt_p50_us = preempt_latency.percentile(0.5);
    progress->preempt_p99_us = preempt_latency.percentile(0.99);
    progress->preempt_max_us = preempt_latency.percentile(1.0);
    progress->parked_us = micros(parked);
  };
  auto post = [&](bool saved) {
    fill();
    progress->checkpoint_saved = saved;
    Completion c;
    c.kind = CompletionKind::kTraining;
    c.ticket = id();
    c.training = *progress;
    config_.sink->post(std::move(c));
    progress->checkpoint_saved = false;
  };
  auto save = [&]() -> Status {
    Status s = models::cpu::save_checkpoint(*trainer, options.checkpoint_path);
    if (!s.ok()) return s;
    progress->checkpoint_step = trainer->state().step;
    progress->checkpoint_path = options.checkpoint_path;
    post(/*saved=*/true);
    return Status::OK();
  };
  const bool can_save = !options.checkpoint_path.empty();

  progress->step = trainer->state().step;
  while (!stop_.load(std::memory_order_acquire) &&
         (task.steps == 0 || progress->steps < task.steps)) {
    if (checkpoint_.exchange(false, std::memory_order_acq_rel) && can_save) PS_TRY(save());
    PS_ASSIGN_OR_RETURN(progress->loss, trainer->step());
    ++progress->steps;
    const bool periodic =
        options.checkpoint_every != 0 && trainer->state().step % options.checkpoint_every == 0;
    if (can_save && (periodic || checkpoint_.exchange(false, std::memory_order_acq_rel))) {
      PS_TRY(save());
    } else {
      post(/*saved=*/false);
    }
  }
  // The end: stopped, shut down or done. Keep the state unless the last step just saved it.
  if (can_save &&
      (progress->checkpoint_path.empty() || progress->checkpoint_step != trainer->state().step)) {
    PS_TRY(save());
  }
  fill();
  return Status::OK();
}

}  // namespace ps::reactor
