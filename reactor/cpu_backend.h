// The CPU backend (`--device cpu`): runs every model on the CPU reference executor
// (models/cpu/executor.h), so the whole server works, and is tested, on any machine.
//
// Threads: one loader thread reads packages and builds zoo models; `threads` compute workers
// each run one inference at a time with cpu::run_model; one thread per training job
// (reactor/cpu_training_job.h). The loop thread only queues tasks. Models stay in host memory
// (every model is "resident"; there is nothing to switch). A batch that is a multiple of the
// native batch runs as consecutive native batches.
//
// Training and inference: with TrainingPolicy::kYield a job parks between two layers while any
// inference is pending (PreemptionGate); with kCoRun it keeps running at a lower CPU priority.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "reactor/backend.h"
#include "reactor/cpu_training_job.h"
#include "reactor/model_source.h"
#include "reactor/preemption_gate.h"

namespace ps::reactor {

class CpuBackend final : public Backend {
 public:
  // threads >= 1 compute workers.
  explicit CpuBackend(uint32_t threads, TrainingPolicy training = TrainingPolicy::kYield);
  ~CpuBackend() override;
  CpuBackend(const CpuBackend&) = delete;
  CpuBackend& operator=(const CpuBackend&) = delete;

  std::string describe() const override;
  Status start(CompletionSink* sink) override;
  uint32_t max_in_flight() const override;
  void load(uint64_t ticket, ModelSource source) override;
  void unload(uint64_t ticket, std::string model) override;
  void infer(InferTask task) override;
  Status start_training(const TrainTask& task) override;
  Status stop_training(uint64_t job) override;
  Status checkpoint_training(uint64_t job) override;
  BackendStats stats() const override;
  void shutdown() override;

 private:
  struct Model {
    HostModel host;
    ModelInfo info;
    ModelSource source;
  };
  struct LoadJob {
    uint64_t ticket;
    ModelSource source;
  };

  void loader_main();
  void worker_main();
  Completion run_infer(const InferTask& task);
  std::shared_ptr<const Model> find(const std::string& name) const;

  // Job `job` (running or ended, until reaped), or nullptr. Loop thread.
  CpuTrainingJob* find_job(uint64_t job);

  const uint32_t threads_;
  const TrainingPolicy training_policy_;
  CompletionSink* sink_ = nullptr;
  PreemptionGate gate_;
  // Training jobs by id; loop thread only (shutdown() joins them). Ended ones are reaped when
  // the next job starts.
  std::map<uint64_t, std::unique_ptr<CpuTrainingJob>> jobs_;

  mutable std::shared_mutex models_mutex_;
  std::map<std::string, std::shared_ptr<const Model>> models_;

  std::mutex mutex_;  // guards the queues and stopping_
  std::condition_variable work_ready_;
  std::condition_variable load_ready_;
  std::deque<InferTask> infer_queue_;
  std::deque<LoadJob> load_queue_;
  bool stopping_ = false;
  bool stopped_ = false;

  std::thread loader_;
  std::vector<std::thread> workers_;
};

}  // namespace ps::reactor
