// The GPU backend (`--device N`): the switching engine of PipeSwitch on one GPU.
//
// Threads. The loop thread only queues commands (load, unload, infer) and reads statistics.
// One device thread owns everything CUDA: the GpuRuntime (context, kernels, cuDNN/cuBLAS), the
// device memory pool, the streams and every registered model. It takes commands in order,
// enqueues a request's whole work (input copy, pipelined weight copies, layers, output copy)
// without any host round trip per group, waits for the request's last event and posts its
// completion to the loop (CompletionSink::post). So the loop never calls the driver: neither
// a launch that blocks on a full queue nor a plan build of seconds can stall it. (DESIGN.md had
// the loop enqueue directly; a dedicated device thread costs one condition-variable hand-off
// per request, ~10-30 us, and keeps the loop's latency independent of the GPU.)
//
// Memory. One DevicePool (VMM, mapped at start) holds, per registered model, its activation
// arena and workspace (carved at registration, kept) and its weight slot (carved when the
// model is switched in, returned when the policy evicts it). A switch allocates nothing from
// the driver (except under the no-pool ablation, which exists to show what that costs).
//
// Models. Registration reads the package straight into pinned host memory (or pageable /
// managed memory for those ablations), builds the plan (descriptors, algorithm choices,
// warmed kernels), profiles each layer on the device and picks the copy groups
// (--grouping; default timed: the optimal grouping, from the measured per-layer times and the
// link measured at start, the original's blocks and per-layer groups, each timed as a switch,
// the fastest kept). The banner and the load log print the predicted pipelined latency.
//
// Training (issue 7). One job per GPU (TRAIN); its trainer lives on the device thread
// (reactor/gpu_training_job.h), which runs it in chunks on a low-priority stream whenever no
// command waits, so inference preempts it between chunks (--training yield) or runs beside it
// (co-run).
//
// Requests. A batch that is a multiple of the native batch runs as consecutive native
// batches; the weights are switched in once, with the first. Timings: queue_us is host time
// from acceptance to the start of the enqueue; switch_us is the GPU time of the weight copies
// (they overlap the layers); compute_us is the GPU time from the first input copy to the
// output on the host.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <variant>

#include "reactor/backend.h"
#include "reactor/backend_factory.h"
#include "reactor/switch_policy.h"

namespace ps::reactor {

class GpuEngine;  // the device thread's state (gpu_engine.h)

class GpuBackend final : public Backend {
 public:
  // Nothing touches the GPU until start().
  GpuBackend(int ordinal, BackendOptions options, SwitchPolicy policy);
  ~GpuBackend() override;
  GpuBackend(const GpuBackend&) = delete;
  GpuBackend& operator=(const GpuBackend&) = delete;

  std::string describe() const override;
  // Starts the device thread and waits for it to open the GPU, map the pool and measure the
  // link; returns its error (UNAVAILABLE without a driver or GPU, OUT_OF_MEMORY for a pool the
  // GPU cannot hold).
  Status start(CompletionSink* sink) override;
  uint32_t max_in_flight() const override { return 2; }
  void load(uint64_t ticket, ModelSource source) override;
  void unload(uint64_t ticket, std::string model) override;
  void infer(InferTask task) override;
  Status start_training(const TrainTask& task) override;
  Status stop_training(uint64_t job) override;
  Status checkpoint_training(uint64_t job) override;
  BackendStats stats() const override;
  void shutdown() override;

 private:
  struct LoadCommand {
    uint64_t ticket;
    ModelSource source;
  };
  struct UnloadCommand {
    uint64_t ticket;
    std::string model;
  };
  struct TrainCommand {
    TrainTask task;
  };
  using Command = std::variant<LoadCommand, UnloadCommand, InferTask, TrainCommand>;
  // The GPU's one training job, as the loop thread sees it (guarded by mutex_).
  struct JobSlot {
    uint64_t id = 0;       // the last job started (0: none yet)
    bool active = false;   // accepted and not ended
    bool saves = false;    // it has a checkpoint path
    bool stop = false;     // asked, not yet seen by the device thread
    bool checkpoint = false;
  };

  void device_main();
  void post_cancelled(Command& command);
  // The job's completions go through here: its last one (finished) frees the slot before the
  // loop sees it, so a TRAIN sent on seeing a job end is never refused as "one job per GPU".
  class JobSink final : public CompletionSink {
   public:
    explicit JobSink(GpuBackend* backend) : backend_(backend) {}
    void post(Completion completion) override;
    void wake() override { backend_->sink_->wake(); }

   private:
    GpuBackend* backend_;
  };

  const int ordinal_;
  const BackendOptions options_;
  const SwitchPolicy policy_;
  CompletionSink* sink_ = nullptr;
  JobSink job_sink_{this};

  mutable std::mutex mutex_;  // guards the fields below
  std::condition_variable ready_;
  std::deque<Command> commands_;
  JobSlot job_;
  bool stopping_ = false;
  bool stopped_ = false;
  bool started_ = false;  // the device thread finished its start-up (started_status_ is set)
  Status started_status_;
  std::string description_;
  BackendStats stats_;

  std::unique_ptr<GpuEngine> engine_;  // used by the device thread only
  std::thread device_thread_;
};

}  // namespace ps::reactor
