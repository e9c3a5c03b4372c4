#include "reactor/gpu_backend.h"

#include "reactor/gpu_engine.h"
#include "reactor/gpu_training_job.h"
#include "reactor/log.h"

namespace ps::reactor {
namespace {

Completion cancelled(CompletionKind kind, uint64_t ticket) {
  return failed_completion(kind, ticket,
                           make_error(Code::kCancelled, "the server is shutting down"));
}

}  // namespace

Result<std::unique_ptr<Backend>> make_gpu_backend(int device_index, const BackendOptions& options) {
  PS_ASSIGN_OR_RETURN(SwitchPolicy policy, policy_named(options.policy));
  if (policy.fresh_process && options.self_exe.empty()) {
    return invalid_argument("--policy kill-restart needs the server's own binary to restart");
  }
  return std::unique_ptr<Backend>(
      std::make_unique<GpuBackend>(device_index, options, std::move(policy)));
}

GpuBackend::GpuBackend(int ordinal, BackendOptions options, SwitchPolicy policy)
    : ordinal_(ordinal), options_(std::move(options)), policy_(std::move(policy)) {
  description_ = str_cat("gpu ", ordinal_, " (not started)");
}

GpuBackend::~GpuBackend() { shutdown(); }

std::string GpuBackend::describe() const {
  std::lock_guard lock(mutex_);
  return description_;
}

Status GpuBackend::start(CompletionSink* sink) {
  PS_CHECK(sink != nullptr && sink_ == nullptr);
  sink_ = sink;
  device_thread_ = std::thread([this] { device_main(); });
  std::unique_lock lock(mutex_);
  ready_.wait(lock, [this] { return started_; });
  return started_status_;
}

void GpuBackend::load(uint64_t ticket, ModelSource source) {
  std::unique_lock lock(mutex_);
  if (stopping_ || !started_status_.ok()) {
    lock.unlock();
    sink_->post(cancelled(CompletionKind::kLoad, ticket));
    return;
  }
  commands_.push_back(LoadCommand{ticket, std::move(source)});
  ready_.notify_all();
}

void GpuBackend::unload(uint64_t ticket, std::string model) {
  std::unique_lock lock(mutex_);
  if (stopping_ || !started_status_.ok()) {
    lock.unlock();
    sink_->post(cancelled(CompletionKind::kUnload, ticket));
    return;
  }
  commands_.push_back(UnloadCommand{ticket, std::move(model)});
  ready_.notify_all();
}

void GpuBackend::infer(InferTask task) {
  std::unique_lock lock(mutex_);
  if (stopping_ || !started_status_.ok()) {
    lock.unlock();
    sink_->post(cancelled(CompletionKind::kInfer, task.ticket));
    return;
  }
  commands_.push_back(std::move(task));
  ready_.notify_all();
}

void GpuBackend::JobSink::post(Completion completion) {
  if (completion.kind == CompletionKind::kTraining && completion.finished) {
    std::lock_guard lock(backend_->mutex_);
    if (backend_->job_.id == completion.ticket) {
      backend_->job_.active = false;
      backend_->job_.stop = false;
      backend_->job_.checkpoint = false;
    }
  }
  backend_->sink_->post(std::move(completion));
}

Status GpuBackend::start_training(const TrainTask& task) {
  std::lock_guard lock(mutex_);
  if (stopping_ || !started_status_.ok()) return unavailable("the backend is shutting down");
  if (job_.active) {
    return make_error(Code::kResourceExhausted, "gpu ", ordinal_, " is running training job ",
                      job_.id, "; one job per GPU (STOP ", job_.id, " first)");
  }
  job_ = JobSlot{task.job, true, !task.options.checkpoint_path.empty(), false, false};
  commands_.push_back(TrainCommand{task});
  ready_.notify_all();
  return Status::OK();
}

Status GpuBackend::stop_training(uint64_t job) {
  std::lock_guard lock(mutex_);
  if (job == 0 || job != job_.id) return not_found("no training job ", job);
  if (job_.active) {
    job_.stop = true;  // nothing to do when it has ended
    ready_.notify_all();
  }
  return Status::OK();
}

Status GpuBackend::checkpoint_training(uint64_t job) {
  std::lock_guard lock(mutex_);
  if (job == 0 || job != job_.id || !job_.active) return not_found("no running training job ", job);
  if (!job_.saves) {
    return invalid_argument("job ", job,
                            " has no checkpoint file (start the server with --checkpoints DIR)");
  }
  job_.checkpoint = true;
  ready_.notify_all();
  return Status::OK();
}

BackendStats GpuBackend::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void GpuBackend::post_cancelled(Command& command) {
  if (auto* load = std::get_if<LoadCommand>(&command)) {
    sink_->post(cancelled(CompletionKind::kLoad, load->ticket));
  } else if (auto* unload = std::get_if<UnloadCommand>(&command)) {
    sink_->post(cancelled(CompletionKind::kUnload, unload->ticket));
  } else if (auto* train = std::get_if<TrainCommand>(&command)) {
    Completion c = cancelled(CompletionKind::kTraining, train->task.job);
    c.finished = true;
    sink_->post(std::move(c));
  } else {
    sink_->post(cancelled(CompletionKind::kInfer, std::get<InferTask>(command).ticket));
  }
}

void GpuBackend::shutdown() {
  std::deque<Command> dropped;
  {
    std::lock_guard lock(mutex_);
    if (stopped_) return;
    stopped_ = true;
    stopping_ = true;
    dropped.swap(commands_);
    ready_.notify_all();
  }
  if (sink_ != nullptr) {
    for (Command& command : dropped) post_cancelled(command);
  }
  if (device_thread_.joinable()) device_thread_.join();
}

void GpuBackend::device_main() {
  auto engine = GpuEngine::open(ordinal_, options_, policy_);
  {
    std::lock_guard lock(mutex_);
    started_ = true;
    if (engine.ok()) {
      engine_ = std::move(*engine);
      description_ = engine_->describe();
      stats_ = engine_->stats();
    } else {
      started_status_ = engine.status().with_context(str_cat("--device ", ordinal_));
    }
    ready_.notify_all();
  }
  if (!engine_) return;

  std::unique_ptr<GpuTrainingJob> job;
  // Inference comes first for pool memory: when a command finds the pool full, the job's state
  // goes to host memory (gpu_training_job.h, "Paging").
  engine_->set_reclaimer([&job]() -> Result<bool> { return job ? job->page_out() : false; });
  for (;;) {
    Command command;
    bool have_command = false;
    GpuTrainingJob::Controls controls;
    {
      std::unique_lock lock(mutex_);
      if (!job) {
        ready_.wait(lock, [this] { return stopping_ || !commands_.empty(); });
      } else if (job->waiting_for_memory()) {
        // Paged out, the pool still full: look again in a millisecond (an UNLOAD frees memory
        // through a command, which wakes us), or at once for a command, STOP or CHECKPOINT.
        ready_.wait_for(lock, std::chrono::milliseconds(1), [this] {
          return stopping_ || !commands_.empty() || job_.stop || job_.checkpoint;
        });
      } else if (!job->ready()) {
        // The job's chunk is on the GPU: look again soon, or at once when a command comes
        // (STOP and CHECKPOINT wait for the step boundary anyway).
        ready_.wait_for(lock, std::chrono::microseconds(50), [this] { return !commands_.empty(); });
      }
      if (!commands_.empty()) {
        command = std::move(commands_.front());
        commands_.pop_front();
        have_command = true;
      } else if (!job && stopping_) {
        break;  // stopping, nothing left
      }
      // The job's controls are taken only on a turn that runs it (a CHECKPOINT that came while
      // a command ran, or while its chunks were busy, waits for the next such turn).
      if (job && !have_command && job->ready()) {
        controls.stop = job_.stop || stopping_;
        controls.checkpoint = job_.checkpoint;
        job_.checkpoint = false;
      }
    }
    if (have_command) {
      if (auto* train = std::get_if<TrainCommand>(&command)) {
        auto started = engine_->start_training(train->task, options_.training, &job_sink_);
        if (started.ok()) {
          job = std::move(*started);
          job->set_interrupt([this] {
            std::lock_guard lock(mutex_);
            return !commands_.empty() || stopping_;
          });
        } else {
          log_warn("training job ", train->task.job, " (", train->task.model,
                   ") failed: ", started.status().message());
          Completion c;
          c.kind = CompletionKind::kTraining;
          c.ticket = train->task.job;
          c.status = started.status();
          c.finished = true;
          job_sink_.post(std::move(c));
        }
        continue;
      }
      Completion c;
      if (auto* load = std::get_if<LoadCommand>(&command)) {
        c = engine_->load(load->ticket, load->source);
      } else if (auto* unload = std::get_if<UnloadCommand>(&command)) {
        c = engine_->unload(unload->ticket, unload->model);
      } else {
        c = engine_->infer(std::get<InferTask>(command));
        if (job && c.status.ok()) job->note_inference(c.timings.startup_us);
      }
      if (c.status.code() == Code::kDevice) log_error("gpu ", ordinal_, ": ", c.status.message());
      sink_->post(std::move(c));
      engine_->after_reply();
      std::lock_guard lock(mutex_);
      stats_ = engine_->stats();
      continue;
    }
    if (job && job->ready() && job->advance(controls)) {
      job.reset();  // its memory goes back to the pool (the slot was freed by its last post)
      std::lock_guard lock(mutex_);
      stats_ = engine_->stats();
    }
  }
  engine_->set_reclaimer(nullptr);
  engine_.reset();  // frees every model, the pool and the context on this thread
}

}  // namespace ps::reactor
