#include "reactor/scheduler.h"

namespace ps::reactor {
namespace {

uint64_t micros_since(Scheduler::Clock::time_point start) {
  const auto us =
      std::chrono::duration_cast<std::chrono::microseconds>(Scheduler::Clock::now() - start)
          .count();
  return us < 0 ? 0 : static_cast<uint64_t>(us);
}

Completion cancelled(uint64_t ticket, Status status) {
  Completion c;
  c.kind = CompletionKind::kInfer;
  c.ticket = ticket;
  c.status = std::move(status);
  return c;
}

}  // namespace

std::string_view job_state_name(JobState state) {
  switch (state) {
    case JobState::kRunning:
      return "running";
    case JobState::kStopping:
      return "stopping";
    case JobState::kStopped:
      return "stopped";
    case JobState::kFinished:
      return "finished";
    case JobState::kFailed:
      return "failed";
  }
  return "unknown";
}

Scheduler::Scheduler(Backend& backend, SchedulerLimits limits)
    : backend_(backend), limits_(limits) {}

const ModelInfo* Scheduler::find_model(std::string_view name) const {
  auto it = models_.find(name);
  if (it == models_.end() || it->second->unloading) return nullptr;
  return &it->second->info;
}

std::vector<const ModelInfo*> Scheduler::models() const {
  std::vector<const ModelInfo*> out;
  for (const auto& [name, state] : models_) {
    if (!state->unloading) out.push_back(&state->info);
  }
  return out;
}

Status Scheduler::submit_infer(const std::string& model, uint32_t batch, std::string input,
                               bool synthetic, Done done, bool want_output) {
  if (shutting_down_) {
    ++rejected_total_;
    return unavailable("the server is shutting down");
  }
  auto it = models_.find(model);
  if (it == models_.end() || it->second->unloading) {
    ++rejected_total_;
    return not_found("no model '", model, "' (MODELS lists them)");
  }
  ModelState& state = *it->second;
  std::string why;
  if (!batch_supported(state.info, batch, &why)) {
    ++rejected_total_;
    return invalid_argument(why);
  }
  if (!synthetic && input.size() != input_bytes(state.info, batch)) {
    ++rejected_total_;
    return invalid_argument("payload of ", input.size(), " bytes, but model '", model,
                            "' at batch ", batch, " takes ", input_bytes(state.info, batch),
                            " bytes of input");
  }
  if (state.queue.size() >= limits_.max_queue_per_model) {
    ++rejected_total_;
    return resource_exhausted("the queue of model '", model, "' is full (",
                              limits_.max_queue_per_model, " requests); retry later");
  }
  Queued q;
  q.ticket = next_ticket_++;
  q.batch = batch;
  q.want_output = want_output;
  q.input = std::move(input);
  q.synthetic = synthetic;
  q.accepted = Clock::now();
  q.done = std::move(done);
  state.queue.push_back(std::move(q));
  state.stats.queued = state.queue.size();
  ++requests_total_;
  return Status::OK();
}

Status Scheduler::load(ModelSource source, Done done) {
  if (shutting_down_) return unavailable("the server is shutting down");
  if (models_.count(source.name) != 0) {
    return make_error(Code::kAlreadyExists, "model '", source.name, "' is already registered",
                      models_.at(source.name)->unloading ? " (being unloaded)" : "");
  }
  if (loading_.count(source.name) != 0) {
    return make_error(Code::kAlreadyExists, "model '", source.name, "' is being loaded");
  }
  const uint64_t ticket = next_ticket_++;
  loading_.emplace(source.name, ticket);
  in_flight_.emplace(ticket,
                     InFlight{CompletionKind::kLoad, source.name, Clock::now(), std::move(done)});
  backend_.load(ticket, std::move(source));
  return Status::OK();
}

Status Scheduler::unload(const std::string& model, Done done) {
  auto it = models_.find(model);
  if (it == models_.end() || it->second->unloading) {
    return not_found("no model '", model, "' (MODELS lists them)");
  }
  ModelState& state = *it->second;
  state.unloading = true;
  state.unload_ticket = next_ticket_++;
  state.unload_done = std::move(done);
  maybe_finish_unload(model);
  return Status::OK();
}

void Scheduler::maybe_finish_unload(const std::string& name) {
  auto it = models_.find(name);
  if (it == models_.end()) return;
  ModelState& state = *it->second;
  if (!state.unloading || !state.queue.empty() || state.stats.in_flight != 0) return;
  if (in_flight_.count(state.unload_ticket) != 0) return;  // already asked
  in_flight_.emplace(state.unload_ticket, InFlight{CompletionKind::kUnload, name, Clock::now(),
                                                   std::move(state.unload_done)});
  backend_.unload(state.unload_ticket, name);
}

Result<uint64_t> Scheduler::start_training(TrainTask task) {
  if (shutting_down_) return unavailable("the server is shutting down");
  if (find_model(task.model) == nullptr) {
    return not_found("no model '", task.model, "' (MODELS lists them)");
  }
  task.job = next_job_;
  PS_TRY(backend_.start_training(task));
  ++next_job_;
  JobInfo job;
  job.id = task.job;
  job.model = task.model;
  job.batch = task.batch;
  job.steps_target = task.steps;
  job.options = task.options;
  jobs_.emplace(job.id, job);
  return job.id;
}

Status Scheduler::stop_training(uint64_t job) {
  auto it = jobs_.find(job);
  if (it == jobs_.end()) return not_found("no training job ", job, " (JOBS lists them)");
  if (it->second.state != JobState::kRunning) return Status::OK();
  PS_TRY(backend_.stop_training(job));
  it->second.state = JobState::kStopping;
  return Status::OK();
}

Status Scheduler::checkpoint_training(uint64_t job, Done done) {
  auto it = jobs_.find(job);
  if (it == jobs_.end()) return not_found("no training job ", job, " (JOBS lists them)");
  if (it->second.state != JobState::kRunning) {
    return invalid_argument("training job ", job, " is ", job_state_name(it->second.state),
                            it->second.progress.checkpoint_path.empty()
                                ? std::string()
                                : str_cat("; its last checkpoint is step ",
                                          it->second.progress.checkpoint_step, " in ",
                                          it->second.progress.checkpoint_path));
  }
  PS_TRY(backend_.checkpoint_training(job));
  checkpoint_waiters_.emplace(job, std::move(done));
  return Status::OK();
}

std::vector<JobInfo> Scheduler::jobs() const {
  std::vector<JobInfo> out;
  for (const auto& [id, job] : jobs_) out.push_back(job);
  return out;
}

void Scheduler::pump() {
  const uint32_t capacity = backend_.max_in_flight();
  while (infer_in_flight_ < capacity) {
    // The first model after the one served last (round-robin) with a queued request.
    ModelState* next = nullptr;
    auto start = models_.upper_bound(round_robin_after_);
    for (auto it = start; it != models_.end() && next == nullptr; ++it) {
      if (!it->second->queue.empty()) next = it->second.get();
    }
    for (auto it = models_.begin(); it != start && next == nullptr; ++it) {
      if (!it->second->queue.empty()) next = it->second.get();
    }
    if (next == nullptr) return;
    round_robin_after_ = next->info.name;
    Queued q = std::move(next->queue.front());
    next->queue.pop_front();
    next->stats.queued = next->queue.size();
    ++next->stats.in_flight;
    ++infer_in_flight_;
    in_flight_.emplace(
        q.ticket, InFlight{CompletionKind::kInfer, next->info.name, q.accepted, std::move(q.done)});
    InferTask task;
    task.ticket = q.ticket;
    task.model = next->info.name;
    task.batch = q.batch;
    task.input = std::move(q.input);
    task.synthetic = q.synthetic;
    task.want_output = q.want_output;
    task.accepted = q.accepted;
    backend_.infer(std::move(task));
  }
}

void Scheduler::on_training(const Completion& c) {
  auto it = jobs_.find(c.ticket);
  if (it == jobs_.end()) return;
  JobInfo& job = it->second;
  job.progress = c.training;
  if (!c.status.ok()) {
    job.state = c.status.code() == Code::kCancelled ? JobState::kStopped : JobState::kFailed;
    job.error = c.status.message();
  } else if (c.finished) {
    job.state = job.state == JobState::kStopping ? JobState::kStopped : JobState::kFinished;
  }
  if (c.training.checkpoint_saved || c.finished || !c.status.ok()) {
    auto [first, last] = checkpoint_waiters_.equal_range(c.ticket);
    std::vector<Done> waiting;
    for (auto w = first; w != last; ++w) waiting.push_back(std::move(w->second));
    checkpoint_waiters_.erase(first, last);
    for (Done& done : waiting) done(c);
  }
}

void Scheduler::on_completion(Completion c) {
  if (c.kind == CompletionKind::kTraining) {
    on_training(c);
    return;
  }
  auto it = in_flight_.find(c.ticket);
  if (it == in_flight_.end()) return;  // not ours (a bug in a backend); nothing to answer
  InFlight flight = std::move(it->second);
  in_flight_.erase(it);

  switch (flight.kind) {
    case CompletionKind::kInfer: {
      --infer_in_flight_;
      auto model = models_.find(flight.model);
      if (model != models_.end()) {
        ModelStats& stats = model->second->stats;
        --stats.in_flight;
        if (c.status.ok()) {
          ++stats.ok;
          if (c.timings.switch_us > 0) ++stats.switches;
          stats.queue_us += c.timings.queue_us;
          stats.switch_us += c.timings.switch_us;
          stats.compute_us += c.timings.compute_us;
          stats.total.add(micros_since(flight.accepted));
        } else {
          ++stats.errors;
        }
      }
      break;
    }
    case CompletionKind::kLoad: {
      loading_.erase(flight.model);
      if (c.status.ok() && c.model && !shutting_down_) {
        auto state = std::make_unique<ModelState>();
        state->info = *c.model;
        models_[flight.model] = std::move(state);
      }
      break;
    }
    case CompletionKind::kUnload:
      models_.erase(flight.model);
      break;
    case CompletionKind::kTraining:
      break;
  }
  if (flight.done) flight.done(std::move(c));
  // done() may have submitted more work or unloaded; an unloading model may now be drained.
  if (flight.kind == CompletionKind::kInfer) maybe_finish_unload(flight.model);
}

void Scheduler::shutdown() {
  if (shutting_down_) return;
  shutting_down_ = true;
  std::vector<Queued> failed;
  for (auto& [name, state] : models_) {
    for (Queued& q : state->queue) failed.push_back(std::move(q));
    state->queue.clear();
    state->stats.queued = 0;
  }
  for (auto& [id, job] : jobs_) {
    if (job.state == JobState::kRunning) {
      if (backend_.stop_training(id).ok()) job.state = JobState::kStopping;
    }
  }
  for (Queued& q : failed) {
    if (q.done) q.done(cancelled(q.ticket, unavailable("the server is shutting down")));
  }
  for (const auto& [name, state] : models_) maybe_finish_unload(name);
}

bool Scheduler::idle() const {
  for (const auto& [id, job] : jobs_) {
    if (job.state == JobState::kStopping) return false;
  }
  return in_flight_.empty() && queued() == 0;
}

size_t Scheduler::queued() const {
  size_t n = 0;
  for (const auto& [name, state] : models_) n += state->queue.size();
  return n;
}

std::vector<std::pair<std::string, const ModelStats*>> Scheduler::model_stats() const {
  std::vector<std::pair<std::string, const ModelStats*>> out;
  for (const auto& [name, state] : models_) {
    if (!state->unloading) out.emplace_back(name, &state->stats);
  }
  return out;
}

}  // namespace ps::reactor
