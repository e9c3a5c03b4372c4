// The scheduler front: the table of registered models, a FIFO queue of inference requests per
// model, the registry of training jobs, and per-model statistics. Loop thread only; no libuv.
//
// Requests are accepted (validated, queued) by submit_*; pump(), called once per loop turn,
// hands queued requests to the Backend while it has room (Backend::max_in_flight), taking the
// models round-robin so one busy model cannot starve another. Completions come back through
// on_completion() (the loop's completion bridge calls it) and each accepted request's `done` is
// called exactly once, on the loop thread, with its Completion, also when it fails or the
// server shuts down.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "reactor/backend.h"
#include "reactor/latency_window.h"

namespace ps::reactor {

struct SchedulerLimits {
  size_t max_queue_per_model = 1024;  // queued (not yet submitted) inferences per model: BUSY
};

using Done = std::function<void(Completion)>;

enum class JobState : uint8_t { kRunning, kStopping, kStopped, kFinished, kFailed };
std::string_view job_state_name(JobState state);  // "running", "stopping", ...

struct JobInfo {
  uint64_t id = 0;
  std::string model;
  uint32_t batch = 1;
  uint64_t steps_target = 0;  // 0: until stopped
  TrainOptions options;
  TrainingProgress progress;  // the latest the backend reported
  JobState state = JobState::kRunning;
  std::string error;  // kFailed: why
};

struct ModelStats {
  uint64_t ok = 0;
  uint64_t errors = 0;
  uint64_t switches = 0;  // requests that had to make the model resident (switch_us > 0)
  uint64_t queue_us = 0;  // sums over the ok requests
  uint64_t switch_us = 0;
  uint64_t compute_us = 0;
  LatencyWindow total;     // total_us = accepted -> completion on the loop
  size_t queued = 0;       // now
  uint32_t in_flight = 0;  // now
};

class Scheduler {
 public:
  using Clock = std::chrono::steady_clock;

  // `backend` was started and outlives the scheduler.
  Scheduler(Backend& backend, SchedulerLimits limits = {});
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // The registered model `name` (not one being unloaded), or nullptr.
  const ModelInfo* find_model(std::string_view name) const;
  // Registered models, by name.
  std::vector<const ModelInfo*> models() const;

  // Queues an inference. Returns an error at once, and never calls `done`, for: an unknown model
  // (NOT_FOUND), an unsupported batch or an input of the wrong size (INVALID_ARGUMENT; `input`
  // is ignored when synthetic), a full queue (RESOURCE_EXHAUSTED), shutdown (UNAVAILABLE).
  // Otherwise `done` gets the kInfer completion later.
  // `want_output` false: the caller needs the output's checksum and sum only (the backend may
  // then leave Completion::output empty and fill Completion::summary).
  Status submit_infer(const std::string& model, uint32_t batch, std::string input, bool synthetic,
                      Done done, bool want_output = true);

  // Loads source.name. ALREADY_EXISTS when registered or loading; UNAVAILABLE in shutdown.
  // Otherwise `done` gets the kLoad completion, after which the model is registered (if OK).
  Status load(ModelSource source, Done done);

  // Unregisters `model`: it disappears from find_model() at once; queued and running requests
  // finish first, then the backend unloads it and `done` gets the kUnload completion.
  // NOT_FOUND for an unknown model.
  Status unload(const std::string& model, Done done);

  // Starts a training job on a registered model (task.job is ignored: the scheduler numbers
  // jobs); returns its id. NOT_FOUND for an unknown model, the backend's error (UNSUPPORTED,
  // ...) when it cannot start; UNAVAILABLE in shutdown. A job that starts and then fails (a
  // model it cannot train) shows as failed in jobs(), with the reason.
  Result<uint64_t> start_training(TrainTask task);
  // Asks job `job` to stop. NOT_FOUND for an unknown job; OK (nothing to do) if it ended.
  Status stop_training(uint64_t job);
  // Asks running job `job` for a checkpoint; `done` gets the kTraining completion that reports
  // it saved (training.checkpoint_saved), or the job's last one if it ends first. NOT_FOUND
  // for an unknown job, INVALID_ARGUMENT for one that is not running, the backend's error.
  Status checkpoint_training(uint64_t job, Done done);
  // All jobs, by id (ended ones included).
  std::vector<JobInfo> jobs() const;

  // Hands queued requests to the backend while it has room. Once per loop turn.
  void pump();

  // A completion from the backend (loop thread).
  void on_completion(Completion completion);

  // Refuses new work from now on; queued (not submitted) inferences complete with UNAVAILABLE;
  // running training jobs are asked to stop. In-flight work still completes.
  void shutdown();
  bool shutting_down() const { return shutting_down_; }

  // Nothing submitted to the backend is outstanding, nothing is queued, and no training job is
  // stopping (so a shutdown waits for the jobs' last checkpoints).
  bool idle() const;
  size_t in_flight() const { return in_flight_.size(); }
  size_t queued() const;

  // Per-model statistics, by name (registered models only).
  std::vector<std::pair<std::string, const ModelStats*>> model_stats() const;
  uint64_t requests_total() const { return requests_total_; }
  uint64_t rejected_total() const { return rejected_total_; }

  Backend& backend() { return backend_; }

 private:
  struct Queued {
    uint64_t ticket = 0;
    uint32_t batch = 1;
    std::string input;
    bool synthetic = false;
    bool want_output = true;
    Clock::time_point accepted;
    Done done;
  };
  struct ModelState {
    ModelInfo info;
    std::deque<Queued> queue;
    ModelStats stats;
    bool unloading = false;
    uint64_t unload_ticket = 0;
    Done unload_done;
  };
  struct InFlight {
    CompletionKind kind;
    std::string model;
    Clock::time_point accepted;
    Done done;
  };

  void maybe_finish_unload(const std::string& name);
  void on_training(const Completion& c);

  Backend& backend_;
  SchedulerLimits limits_;
  std::map<std::string, std::unique_ptr<ModelState>, std::less<>> models_;
  std::map<std::string, uint64_t, std::less<>> loading_;  // name -> ticket
  std::map<uint64_t, InFlight> in_flight_;
  uint32_t infer_in_flight_ = 0;
  std::map<uint64_t, JobInfo> jobs_;
  std::multimap<uint64_t, Done> checkpoint_waiters_;  // by job
  uint64_t next_ticket_ = 1;
  uint64_t next_job_ = 1;
  std::string round_robin_after_;  // the model served last by pump()
  bool shutting_down_ = false;
  uint64_t requests_total_ = 0;
  uint64_t rejected_total_ = 0;
};

}  // namespace ps::reactor
