// The text protocol's training commands (docs/protocol.md, section 2.3; docs/training.md):
// TRAIN, JOBS, STOP, CHECKPOINT.
#include <algorithm>
#include <filesystem>

#include "net/text_reply.h"
#include "reactor/server.h"
#include "reactor/server_replies.h"

namespace ps::reactor {

using net::ErrorCode;
using net::OkLine;

OkLine job_fields(const JobInfo& job, const BackendStats& backend) {
  const TrainingProgress& p = job.progress;
  OkLine line;
  line.add("job", job.id)
      .add("model", job.model)
      .add("batch", job.batch)
      .add("state", job_state_name(job.state))
      .add("step", p.step)
      .add("steps", p.steps)
      .add("target", job.steps_target)
      .add("loss", p.loss)
      .add("images_per_s", p.images_per_s)
      .add("preemptions", p.preemptions)
      .add("preempt_p50_us", p.preempt_p50_us)
      .add("preempt_p99_us", p.preempt_p99_us)
      .add("preempt_max_us", p.preempt_max_us)
      .add("parked_us", p.parked_us)
      .add("page_outs", p.page_outs)
      .add("paged", p.paged ? 1 : 0)
      .add("paged_us", p.paged_us)
      .add("checkpoint_step", p.checkpoint_step)
      .add("checkpoint", std::filesystem::path(p.checkpoint_path).filename().string());
  if (!job.error.empty()) line.add("error", job.error);
  for (const DeviceStats& d : backend.devices) {
    if (std::find(d.jobs.begin(), d.jobs.end(), job.id) != d.jobs.end()) line.add("gpu", d.name);
  }
  return line;
}

Result<std::string> Server::checkpoint_path(std::string_view name) const {
  if (options_.checkpoints_dir.empty()) {
    return invalid_argument("checkpoints need a directory (start the server with --checkpoints DIR)");
  }
  // The name was checked by the parser (net::OptionKind::kName): no '/', no leading '.'.
  return (std::filesystem::path(options_.checkpoints_dir) / std::string(name)).string();
}

void Server::text_train(Connection& c, const net::Command& command) {
  const std::string& model = command.args[0];
  const ModelInfo* info = scheduler_.find_model(model);
  if (info == nullptr) {
    reply_now(c, error_reply(ErrorCode::kUnknownModel,
                             str_cat("no model '", model, "' (MODELS lists them)")));
    return;
  }
  TrainTask task;
  task.model = model;
  task.batch = static_cast<uint32_t>(command.number_or("batch", info->batch));
  task.steps = command.number_or("steps", 0);
  TrainOptions& o = task.options;
  o.learning_rate = command.real_or("lr", o.learning_rate);
  o.momentum = command.real_or("momentum", o.momentum);
  o.weight_decay = command.real_or("wd", o.weight_decay);
  o.seed = command.number_or("seed", o.seed);
  o.classes = static_cast<uint32_t>(command.number_or("classes", o.classes));
  o.noise = command.real_or("noise", o.noise);
  o.single_image = command.choice_or("data", "patterns") == "single";
  o.checkpoint_every = command.number_or("every", 0);
  // device=NAME pins the job to one device of several (docs/multi-gpu.md); one device has no
  // names to choose from.
  task.device = std::string(command.name_or("device", ""));
  if (!task.device.empty() && scheduler_.backend().stats().devices.empty()) {
    reply_now(c, error_reply(ErrorCode::kBadArgument,
                             "device= chooses among several devices; this server drives one "
                             "(start it with --device 0,1,... or all)"));
    return;
  }

  // Checkpoints: checkpoint=FILE, else resume's file (continuing in place), else <model>.ckpt,
  // all inside --checkpoints DIR. Without a directory a job keeps none, and asking is an error.
  const std::string_view resume = command.name_or("resume", "");
  const std::string fallback = model + ".ckpt";
  std::string_view file = command.name_or("checkpoint", resume);
  const bool asked = !file.empty() || o.checkpoint_every != 0;
  if (options_.checkpoints_dir.empty()) {
    if (asked) {
      reply_now(c, error_reply(ErrorCode::kBadArgument,
                               "checkpoint=, resume= and every= need a checkpoint directory "
                               "(start the server with --checkpoints DIR)"));
      return;
    }
  } else {
    if (file.empty()) file = fallback;
    auto path = checkpoint_path(file);
    PS_CHECK(path.ok());
    o.checkpoint_path = *path;
    if (!resume.empty()) {
      o.resume_path = *checkpoint_path(resume);
      std::error_code ec;
      if (!std::filesystem::is_regular_file(o.resume_path, ec)) {
        reply_now(c, error_reply(ErrorCode::kNotFound,
                                 str_cat("no checkpoint '", resume, "' in ",
                                         options_.checkpoints_dir)));
        return;
      }
    }
    for (const JobInfo& job : scheduler_.jobs()) {
      const bool live = job.state == JobState::kRunning || job.state == JobState::kStopping;
      if (live && job.options.checkpoint_path == o.checkpoint_path) {
        reply_now(c, error_reply(ErrorCode::kAlreadyExists,
                                 str_cat("job ", job.id, " writes checkpoint '", file,
                                         "'; give this one another (checkpoint=FILE)")));
        return;
      }
    }
  }

  OkLine line;
  const bool saves = !o.checkpoint_path.empty();
  const std::string checkpoint_file(file);
  const uint64_t batch = task.batch;
  auto job = scheduler_.start_training(std::move(task));
  if (!job.ok()) {
    reply_now(c, status_reply(job.status(), ErrorCode::kUnknownModel));
    return;
  }
  line.add("job", *job).add("model", model).add("batch", batch);
  if (saves) line.add("checkpoint", checkpoint_file);
  reply_now(c, net::format_ok(line));
}

std::string Server::jobs_reply() const {
  std::string body;
  const auto jobs = scheduler_.jobs();
  const BackendStats backend = scheduler_.backend().stats();
  for (const JobInfo& job : jobs) body += net::format_fields_line(job_fields(job, backend));
  return net::format_ok_with_payload(OkLine().add("jobs", uint64_t{jobs.size()}), body);
}

void Server::text_stop(Connection& c, const net::Command& command) {
  const uint64_t job = command.arg_number(0);
  Status s = scheduler_.stop_training(job);
  if (!s.ok()) {
    reply_now(c, status_reply(s, ErrorCode::kUnknownJob));
    return;
  }
  for (const JobInfo& info : scheduler_.jobs()) {
    if (info.id == job) {
      reply_now(c, net::format_ok(OkLine()
                                      .add("job", job)
                                      .add("state", job_state_name(info.state))
                                      .add("steps", info.progress.steps)));
      return;
    }
  }
  reply_now(c, error_reply(ErrorCode::kUnknownJob, str_cat("no training job ", job)));
}

void Server::text_checkpoint(Connection& c, const net::Command& command) {
  const uint64_t job = command.arg_number(0);
  const uint64_t seq = reserve_slot(c);
  const uint64_t id = c.id;
  Status s = scheduler_.checkpoint_training(job, [this, id, seq, job](Completion done) {
    if (!done.status.ok()) {
      fill_slot(id, seq, status_reply(done.status, ErrorCode::kUnknownJob));
      return;
    }
    const TrainingProgress& p = done.training;
    if (p.checkpoint_path.empty()) {
      fill_slot(id, seq, error_reply(ErrorCode::kInternal,
                                     str_cat("job ", job, " ended without a checkpoint")));
      return;
    }
    fill_slot(id, seq,
              net::format_ok(OkLine()
                                 .add("job", job)
                                 .add("step", p.checkpoint_step)
                                 .add("checkpoint", std::filesystem::path(p.checkpoint_path)
                                                        .filename()
                                                        .string())));
  });
  if (!s.ok()) fill_slot(id, seq, status_reply(s, ErrorCode::kUnknownJob));
}

}  // namespace ps::reactor
