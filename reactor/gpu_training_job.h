// One training job on the GPU backend's device thread (issue 7, "Driving and preemption").
//
// The device thread runs commands (loads, inference) first and calls advance() only when none
// is waiting. advance() keeps the GpuTrainer's chunks (models/gpu/trainer.h) flowing on a
// LOW-priority stream while inference uses the engine's high-priority streams:
//   - yield (default): at most two chunks of about half a millisecond of GPU time each are
//     queued (two, so the GPU runs one while the host enqueues the next), and none is enqueued
//     while a command waits (a chunk being enqueued stops between two items when one comes:
//     set_interrupt), so an inference request finds at most about a millisecond of training
//     ahead of it, and the GPU's stream priorities let its kernels go first;
//   - co-run: a whole step is enqueued at once; inference runs beside it.
// A step is never cut: STOP, the step target and shutdown take effect at a step boundary, where
// checkpoints are taken too (the state is exported from the device, blocking the device thread
// for the copy; the file is written on a writer thread). Progress is posted after every step.
//
// Paging: when inference needs pool memory the job holds (a LOAD, a cached model's weights),
// the engine calls page_out(): the step in progress is finished at once (its remaining chunks
// enqueued and waited for), then the trainer's state goes to pinned host memory and its pool
// range is returned (models/gpu/trainer.h). While paged out the job runs nothing; a turn
// pages it back in as soon as the pool has room for it (ready() watches), which happens only
// between commands, when inference is idle. STOP and CHECKPOINT work while paged out (the
// state is read from the host copy).
//
// Device thread only (the trainer's CUDA objects belong to its context).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <thread>

#include "cuda/device_pool.h"
#include "cuda/event.h"
#include "cuda/stream.h"
#include "models/gpu/runtime.h"
#include "models/gpu/trainer.h"
#include "reactor/backend.h"
#include "reactor/latency_window.h"

namespace ps::reactor {

class GpuTrainingJob {
 public:
  // What the loop thread asked of the job since the last turn.
  struct Controls {
    bool stop = false;        // STOP or shutdown
    bool checkpoint = false;  // CHECKPOINT
  };

  // Builds the trainer (memory from `pool`), restores task.options.resume_path when given.
  // Errors: the trainer's (UNSUPPORTED layers, OUT_OF_MEMORY with the numbers, ...), the
  // checkpoint's.
  static Result<std::unique_ptr<GpuTrainingJob>> create(
      models::gpu::GpuRuntime& runtime, cuda::DevicePool& pool,
      const pipeswitch::psm::Manifest& manifest, std::span<const uint8_t> weights,
      const TrainTask& task, models::gpu::Precision precision, TrainingPolicy policy,
      CompletionSink* sink);
  // Waits for the job's queued GPU work and its checkpoint writer.
  ~GpuTrainingJob();
  GpuTrainingJob(const GpuTrainingJob&) = delete;
  GpuTrainingJob& operator=(const GpuTrainingJob&) = delete;

  uint64_t id() const { return task_.job; }
  // True when advance() has something to do now: no chunk in flight, or the one in flight is
  // done. False while the GPU is busy with the job's queued work.
  bool ready() const;
  // One turn (see the top). Returns true when the job has ended: its last completion (finished
  // = true, with the reason when it failed) is posted and it may be destroyed.
  bool advance(const Controls& controls);
  // An inference request ran while the job was active: its startup_us (accepted -> its first
  // layer running) is a preemption latency.
  void note_inference(uint64_t startup_us) { preempt_.add(startup_us); }
  // Inference needs the job's pool memory (see the top). Returns true when memory was freed,
  // false when there was nothing to free (paged out already, or ended). An error leaves the
  // job in the pool and is the job's failure too (its next turn reports it).
  Result<bool> page_out();
  // Under yield: asked between the items of a chunk being enqueued; true (an inference command
  // waits) ends the enqueue there, and the chunk's rest follows on the next turn.
  void set_interrupt(std::function<bool()> interrupted) { interrupted_ = std::move(interrupted); }
  // Paged out and the pool has no room for it yet: the device thread may sleep longer between
  // turns (a command, STOP or CHECKPOINT wakes it).
  bool waiting_for_memory() const;

 private:
  GpuTrainingJob(const TrainTask& task, TrainingPolicy policy, CompletionSink* sink)
      : task_(task), policy_(policy), sink_(sink) {}
  Status turn(const Controls& controls, bool* ended);
  // The step's last chunk has finished: complete it, count it, post progress.
  void step_completed();
  // Exports the state and starts its file write (at a step boundary, nothing queued).
  Status save();
  // Waits for the writer and merges its result (an error fails the job).
  Status finish_write();
  void post(bool finished, Status status = Status::OK());
  void fill_progress();

  const TrainTask task_;
  const TrainingPolicy policy_;
  CompletionSink* const sink_;
  std::unique_ptr<models::gpu::GpuTrainer> trainer_;
  // Chunks queued on the low-priority stream and not yet seen finished, oldest first; each
  // with the event recorded after it and whether it ends its step.
  struct Flight {
    size_t event = 0;
    bool step_end = false;
  };
  static constexpr size_t kYieldDepth = 2;
  cuda::Stream stream_;  // low priority
  std::array<cuda::Event, kYieldDepth> events_;
  size_t next_event_ = 0;
  std::deque<Flight> flight_;
  bool step_end_enqueued_ = false;  // the current step's last chunk is queued
  bool checkpoint_asked_ = false;
  TrainingProgress progress_;
  LatencyWindow preempt_;
  std::chrono::steady_clock::time_point start_;
  // The last checkpoint's file write, on its own thread; its result is merged at the next turn.
  struct Written {
    std::atomic<bool> done{false};
    Status status;
    uint64_t step = 0;
  };
  std::thread writer_;
  std::shared_ptr<Written> written_;
  bool ended_ = false;
  Status page_failure_;  // a failed page_out(), reported by the next turn
  std::function<bool()> interrupted_;
  std::chrono::steady_clock::time_point paged_since_;
};

}  // namespace ps::reactor
