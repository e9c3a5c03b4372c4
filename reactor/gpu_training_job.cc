#include "reactor/gpu_training_job.h"

#include <utility>

#include "models/cpu/checkpoint.h"
#include "reactor/log.h"
#include "reactor/train_options.h"

namespace ps::reactor {
namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

Result<std::unique_ptr<GpuTrainingJob>> GpuTrainingJob::create(
    models::gpu::GpuRuntime& runtime, cuda::DevicePool& pool,
    const pipeswitch::psm::Manifest& manifest, std::span<const uint8_t> weights,
    const TrainTask& task, models::gpu::Precision precision, TrainingPolicy policy,
    CompletionSink* sink) {
  std::unique_ptr<GpuTrainingJob> job(new GpuTrainingJob(task, policy, sink));
  models::gpu::GpuTrainerOptions options;
  const models::cpu::TrainerOptions common = trainer_options(task.options, manifest);
  options.sgd = common.sgd;
  options.data = common.data;
  options.precision = precision;
  // Under yield two chunks may be queued (see turn()): half a millisecond each keeps what an
  // inference request can find ahead of it at about a millisecond.
  options.chunk_budget_ms = policy == TrainingPolicy::kYield ? 0.5 : 1.0;
  Result<std::unique_ptr<models::gpu::GpuTrainer>> trainer =
      models::gpu::GpuTrainer::create(runtime, pool, manifest, weights, options);
  // The algorithm searches' scratch (up to kConvGradWorkspaceCap and the largest layer's
  // tensors) lives outside the pool: give it back now, as model registration does.
  runtime.release_plan_scratch();
  if (!trainer.ok()) return trainer.status();
  job->trainer_ = std::move(trainer).value();
  PS_ASSIGN_OR_RETURN(job->stream_, cuda::Stream::create(cuda::StreamPriority::kLow));
  for (cuda::Event& event : job->events_) {
    PS_ASSIGN_OR_RETURN(event, cuda::Event::create(false));
  }
  if (!task.options.resume_path.empty()) {
    PS_ASSIGN_OR_RETURN(models::cpu::TrainingState current, job->trainer_->export_state());
    PS_ASSIGN_OR_RETURN(
        models::cpu::TrainingState resumed,
        models::cpu::read_checkpoint(job->trainer_->manifest(), current, task.options.resume_path));
    PS_TRY(job->trainer_->import_state(resumed));
    log_info("training job ", task.job, ": resumed ", task.model, " at step ",
             job->trainer_->step_count(), " from ", task.options.resume_path);
  }
  job->progress_.step = job->trainer_->step_count();
  job->start_ = Clock::now();
  log_info("training job ", task.job, " (", task.model, ", batch ", task.batch,
           "): ", job->trainer_->chunks_per_step(), " chunks per step, ",
           job->trainer_->device_bytes() >> 20, " MiB of the pool, ", training_policy_name(policy));
  return job;
}

GpuTrainingJob::~GpuTrainingJob() {
  // create() may have failed before the stream existed (a model it cannot train).
  if (!stream_.empty()) (void)stream_.synchronize();
  if (writer_.joinable()) writer_.join();
}

bool GpuTrainingJob::ready() const {
  if (!page_failure_.ok()) return true;  // to report it
  if (trainer_->paged_out()) return true;  // a turn pages it in, or handles STOP, or waits
  if (flight_.empty()) return true;
  const size_t depth = policy_ == TrainingPolicy::kCoRun ? 1 : kYieldDepth;
  if (flight_.size() < depth && !step_end_enqueued_ && trainer_->mid_step()) return true;
  auto done = events_[flight_.front().event].is_done();
  return !done.ok() || *done;  // an error is reported by the next turn
}

bool GpuTrainingJob::advance(const Controls& controls) {
  if (ended_) return true;
  bool ended = false;
  Status s = turn(controls, &ended);
  if (!s.ok()) {
    log_warn("training job ", id(), " (", task_.model, ") failed: ", s.message());
    if (!stream_.empty()) (void)stream_.synchronize();
    flight_.clear();
    (void)finish_write();
    post(/*finished=*/true, std::move(s));
    ended_ = true;
  } else if (ended) {
    post(/*finished=*/true);
    ended_ = true;
  }
  return ended_;
}

void GpuTrainingJob::step_completed() {
  step_end_enqueued_ = false;
  progress_.loss = trainer_->complete_step();
  ++progress_.steps;
  const uint64_t step = trainer_->step_count();
  const bool periodic =
      task_.options.checkpoint_every != 0 && step % task_.options.checkpoint_every == 0;
  if (periodic && !task_.options.checkpoint_path.empty()) checkpoint_asked_ = true;
  post(/*finished=*/false);
}

bool GpuTrainingJob::waiting_for_memory() const {
  return !ended_ && page_failure_.ok() && trainer_->paged_out() && !trainer_->can_page_in();
}

Result<bool> GpuTrainingJob::page_out() {
  if (ended_ || trainer_->paged_out()) return false;
  Status s = [&]() -> Status {
    // Finish the step in progress: its remaining chunks at once, then wait for all.
    bool step_end = step_end_enqueued_;
    while (trainer_->mid_step() && !step_end) {
      PS_ASSIGN_OR_RETURN(step_end, trainer_->enqueue_next_chunk(stream_));
    }
    PS_TRY(stream_.synchronize());
    flight_.clear();
    if (step_end) step_completed();
    return trainer_->page_out(stream_);
  }();
  if (!s.ok()) {
    page_failure_ = s;
    return s;
  }
  ++progress_.page_outs;
  progress_.paged = true;
  paged_since_ = Clock::now();
  log_info("training job ", id(), " (", task_.model, "): paged out at step ",
           trainer_->step_count(), " (", trainer_->paged_bytes() >> 20,
           " MiB to host memory), the pool is needed for inference");
  post(/*finished=*/false);
  return true;
}

Status GpuTrainingJob::turn(const Controls& controls, bool* ended) {
  PS_TRY(page_failure_);
  checkpoint_asked_ |= controls.checkpoint;
  if (written_ && written_->done.load(std::memory_order_acquire)) PS_TRY(finish_write());
  // Reap the chunks the GPU has finished, oldest first.
  while (!flight_.empty()) {
    PS_ASSIGN_OR_RETURN(const bool done, events_[flight_.front().event].is_done());
    if (!done) break;
    const bool step_end = flight_.front().step_end;
    flight_.pop_front();
    if (step_end) step_completed();
  }
  if (!trainer_->mid_step() && flight_.empty()) {
    // A step boundary with nothing of the job queued.
    const bool can_save = !task_.options.checkpoint_path.empty();
    const bool last = controls.stop || (task_.steps != 0 && progress_.steps >= task_.steps);
    if (last) {
      PS_TRY(finish_write());
      if (can_save && (progress_.checkpoint_path.empty() ||
                       progress_.checkpoint_step != trainer_->step_count())) {
        PS_TRY(save());
        PS_TRY(finish_write());
      }
      *ended = true;
      return Status::OK();
    }
    if (checkpoint_asked_ && can_save) {
      checkpoint_asked_ = false;
      PS_TRY(save());
    }
  }
  // Paged out: back into the pool when it has room (between commands: inference is idle).
  if (trainer_->paged_out()) {
    if (!trainer_->can_page_in()) return Status::OK();
    PS_TRY(trainer_->page_in(stream_));
    progress_.paged = false;
    progress_.paged_us += static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - paged_since_).count());
    log_info("training job ", id(), " (", task_.model, "): paged in at step ",
             trainer_->step_count());
    post(/*finished=*/false);
  }
  // Enqueue while there is room: under yield up to kYieldDepth chunks (so the GPU has the next
  // one while the host enqueues, and inference finds at most about kYieldDepth x the chunk
  // budget ahead of it); under co-run the rest of the step as one entry. A step's first chunk
  // waits until the previous step is complete (its batch depends on the data position).
  // Under yield a waiting command also ends the enqueueing, between two items of a chunk
  // (GpuTrainer::enqueue_next_chunk) or before the next chunk.
  const size_t depth = policy_ == TrainingPolicy::kCoRun ? 1 : kYieldDepth;
  static const std::function<bool()> kNever;
  const std::function<bool()>& interrupted =
      policy_ == TrainingPolicy::kYield ? interrupted_ : kNever;
  while (flight_.size() < depth && !step_end_enqueued_ &&
         (trainer_->mid_step() || flight_.empty()) && !(interrupted && interrupted())) {
    bool step_end = false;
    do {
      PS_ASSIGN_OR_RETURN(step_end, trainer_->enqueue_next_chunk(stream_, interrupted));
    } while (policy_ == TrainingPolicy::kCoRun && !step_end);
    const size_t event = next_event_;
    next_event_ = (next_event_ + 1) % events_.size();
    PS_TRY(events_[event].record(stream_));
    flight_.push_back(Flight{event, step_end});
    step_end_enqueued_ = step_end;
  }
  return Status::OK();
}

Status GpuTrainingJob::save() {
  PS_TRY(finish_write());  // one file write at a time
  PS_ASSIGN_OR_RETURN(models::cpu::TrainingState state, trainer_->export_state());
  fill_progress();
  auto written = std::make_shared<Written>();
  written->step = trainer_->step_count();
  written_ = written;
  TrainingProgress snapshot = progress_;
  writer_ = std::thread([this, written, snapshot, state = std::move(state)]() mutable {
    written->status =
        models::cpu::save_checkpoint(trainer_->manifest(), state, task_.options.checkpoint_path);
    if (written->status.ok()) {
      snapshot.checkpoint_step = written->step;
      snapshot.checkpoint_path = task_.options.checkpoint_path;
      snapshot.checkpoint_saved = true;
      Completion c;
      c.kind = CompletionKind::kTraining;
      c.ticket = task_.job;
      c.training = snapshot;
      sink_->post(std::move(c));
    }
    written->done.store(true, std::memory_order_release);
  });
  return Status::OK();
}

Status GpuTrainingJob::finish_write() {
  if (writer_.joinable()) writer_.join();
  if (!written_) return Status::OK();
  std::shared_ptr<Written> written = std::move(written_);
  written_.reset();
  PS_TRY(written->status);
  progress_.checkpoint_step = written->step;
  progress_.checkpoint_path = task_.options.checkpoint_path;
  return Status::OK();
}

void GpuTrainingJob::fill_progress() {
  progress_.step = trainer_->step_count();
  const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
  progress_.images_per_s =
      seconds > 0 ? static_cast<double>(progress_.steps) * task_.batch / seconds : 0.0;
  progress_.preemptions = preempt_.count();
  progress_.preempt_p50_us = preempt_.percentile(0.5);
  progress_.preempt_p99_us = preempt_.percentile(0.99);
  progress_.preempt_max_us = preempt_.percentile(1.0);
}

void GpuTrainingJob::post(bool finished, Status status) {
  fill_progress();
  Completion c;
  c.kind = CompletionKind::kTraining;
  c.ticket = task_.job;
  c.status = std::move(status);
  c.training = progress_;
  c.finished = finished;
  sink_->post(std::move(c));
}

}  // namespace ps::reactor
