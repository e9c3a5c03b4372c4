// One training job of the CPU backend (`TRAIN` with --device cpu): a thread that trains a
// registered model on the CPU trainer (models/cpu/trainer.h, float64) and reports through the
// backend's CompletionSink.
//
// The thread
//   1. gets a training-mode model: the package itself when it was imported with
//      `psimport --mode training`; a zoo model is re-imported for training; an inference
//      package is refused (its BatchNorms are folded into the convolutions);
//   2. builds the Trainer, and restores TrainOptions::resume_path when given;
//   3. runs steps until the task's step count, STOP or shutdown. Between two layers it parks at
//      the PreemptionGate while inference is pending (the yield policy; docs/training.md,
//      "Preemption"). A stop takes effect at the next step boundary: a step is never cut in
//      half, so the state stays one the trajectory passes through;
//   4. saves a checkpoint every checkpoint_every steps, when asked (CHECKPOINT), and at the end
//      (stop, shutdown or the last step) when it has a checkpoint path.
// Completions (kTraining, ticket = job): progress after every step, one with
// checkpoint_saved after each checkpoint, and finished = true last (OK, or why it failed).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>

#include "common/status.h"
#include "reactor/backend.h"
#include "reactor/model_source.h"
#include "reactor/preemption_gate.h"

namespace ps::reactor {

struct CpuTrainingConfig {
  TrainTask task;
  std::shared_ptr<const HostModel> model;  // the registered model's manifest and weights
  ModelSource source;                      // where it came from (a zoo model is re-imported)
  uint32_t native_batch = 1;               // the registered model's batch
  PreemptionGate* gate = nullptr;          // the yield policy; nullptr: co-run (never parks)
  CompletionSink* sink = nullptr;
};

class CpuTrainingJob {
 public:
  // Starts the job's thread.
  explicit CpuTrainingJob(CpuTrainingConfig config);
  // Asks it to stop and joins it.
  ~CpuTrainingJob();
  CpuTrainingJob(const CpuTrainingJob&) = delete;
  CpuTrainingJob& operator=(const CpuTrainingJob&) = delete;

  uint64_t id() const { return config_.task.job; }
  // Stops at the next step boundary (saving a checkpoint when the job has a path).
  void request_stop() { stop_.store(true, std::memory_order_release); }
  // Saves a checkpoint at the next step boundary. INVALID_ARGUMENT without a checkpoint path.
  Status request_checkpoint();
  // The job has finished training and posts (or has posted) its last completion.
  bool ended() const { return ended_.load(std::memory_order_acquire); }

 private:
  void run();
  Status train(TrainingProgress* progress);

  const CpuTrainingConfig config_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> checkpoint_{false};
  std::atomic<bool> ended_{false};
  std::thread thread_;
};

}  // namespace ps::reactor
