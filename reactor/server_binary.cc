// The PipeSwitch binary protocol (docs/protocol.md, section 3): "<model>_inference" with the raw
// input, "<model>_training" without data; each answered "FNSH". The protocol has no error
// reply, so every error is logged and closes the connection after the replies before it.
#include "reactor/log.h"
#include "reactor/server.h"

namespace ps::reactor {

void Server::handle_binary(Connection& c, net::BinaryItem item) {
  if (auto* error = std::get_if<net::ProtocolError>(&item)) {
    ++protocol_errors_;
    log_info("connection ", c.id, " from ", c.peer,
             " (binary): ", net::error_code_name(error->code), " ", error->message, "; closing");
    reply_now(c, std::string(), /*close_after=*/true);
    return;
  }
  if (std::holds_alternative<net::BinaryClose>(item)) {
    log_debug("connection ", c.id, " (binary): the client is done");
    reply_now(c, std::string(), /*close_after=*/true);
    return;
  }
  net::BinaryRequest request = std::move(std::get<net::BinaryRequest>(item));
  auto fail = [this, &c](std::string_view why) {
    ++protocol_errors_;
    log_info("connection ", c.id, " from ", c.peer, " (binary): ", why, "; closing");
    reply_now(c, std::string(), /*close_after=*/true);
  };
  auto task = net::parse_task_name(request.name);
  if (!task.ok()) return fail(task.status().message());
  const ModelInfo* info = scheduler_.find_model(task->model);
  if (info == nullptr) return fail(str_cat("no model '", task->model, "'"));

  if (task->kind == net::TaskKind::kTraining) {
    if (!request.data.empty()) return fail("a training request carries no data");
    // The original's client sends this once per experiment; a repeat while the model's job
    // runs finds it running (one job per model from this protocol).
    bool running = false;
    for (const JobInfo& job : scheduler_.jobs()) {
      running |= job.model == task->model && job.state == JobState::kRunning;
    }
    if (!running) {
      TrainTask train;
      train.model = task->model;
      train.batch = info->batch;
      auto job = scheduler_.start_training(std::move(train));
      if (!job.ok()) return fail(str_cat("training ", task->model, ": ", job.status().message()));
    }
    reply_now(c, std::string(net::kFinishReply));
    return;
  }

  // The batch follows from the data size: whole native batches of the model's inputs.
  const bool synthetic = request.data.empty();
  uint32_t batch = info->batch;
  if (!synthetic) {
    const uint64_t per_native = input_bytes(*info, info->batch);
    if (request.data.size() % per_native != 0 ||
        request.data.size() / per_native * info->batch > kMaxBatch) {
      return fail(str_cat(request.data.size(), " bytes of data for '", task->model,
                          "', which takes a multiple of ", per_native, " bytes (batch ",
                          info->batch, ")"));
    }
    batch = static_cast<uint32_t>(request.data.size() / per_native * info->batch);
  }
  const uint64_t seq = reserve_slot(c);
  const uint64_t id = c.id;
  const std::string model = task->model;
  Status s = scheduler_.submit_infer(
      model, batch, std::move(request.data), synthetic,
      [this, id, seq, model](Completion done) {
        if (!done.status.ok()) {
          log_info("connection ", id, " (binary): ", model, ": ", done.status.message(),
                   "; closing");
          fill_slot(id, seq, std::string(), /*close_after=*/true);
          return;
        }
        fill_slot(id, seq, std::string(net::kFinishReply));
      },
      /*want_output=*/false);
  if (!s.ok()) {
    log_info("connection ", id, " (binary): ", model, ": ", s.message(), "; closing");
    fill_slot(id, seq, std::string(), /*close_after=*/true);
    c.draining = true;
    update_reading(c);
  }
}

}  // namespace ps::reactor
