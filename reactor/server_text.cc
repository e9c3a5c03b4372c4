// The text protocol's commands (docs/protocol.md, section 2.3).
#include <fcntl.h>

#include <chrono>
#include <filesystem>
#include <system_error>

#include "common/beneath_open.h"
#include "common/unique_fd.h"
#include "net/text_reply.h"
#include "reactor/log.h"
#include "reactor/output_summary.h"
#include "reactor/server.h"
#include "reactor/server_replies.h"

namespace ps::reactor {
namespace {

using net::ErrorCode;
using net::OkLine;
using net::Verb;

std::string tensor_list(const std::vector<TensorSpec>& specs) {
  std::string out;
  for (const TensorSpec& spec : specs) {
    if (!out.empty()) out += ',';
    out += str_cat(spec.name, ":", dtype_name(spec.dtype), ":", output_shapes({spec}));
  }
  return out;
}

}  // namespace

void Server::handle_text(Connection& c, net::TextItem item) {
  if (auto* error = std::get_if<net::ProtocolError>(&item)) {
    ++protocol_errors_;
    if (error->must_close) {
      log_info("connection ", c.id, " from ", c.peer, ": ", net::error_code_name(error->code), " ",
               error->message, "; closing");
    }
    reply_now(c, net::format_error(*error), error->must_close);
    return;
  }
  net::Command command = std::move(std::get<net::Command>(item));
  if (auto refused = c.gate.check(command.verb)) {
    reply_now(c, net::format_error(*refused), refused->must_close);
    return;
  }
  const bool has_payload = command.payload.has_value();
  if (has_payload && command.verb != Verb::kInfer) {
    reply_now(c, error_reply(ErrorCode::kBadArgument, str_cat(net::command_spec(command.verb).name,
                                                              " takes no payload (bytes=)")));
    return;
  }
  switch (command.verb) {
    case Verb::kPing:
      reply_now(c, net::format_ok(OkLine().word("pong")));
      return;
    case Verb::kHelp:
      reply_now(c, net::format_ok_with_payload(OkLine(), net::help_text()));
      return;
    case Verb::kQuit:
      reply_now(c, net::format_ok(OkLine().word("bye")), /*close_after=*/true);
      return;
    case Verb::kAuth: {
      auto result = c.gate.authenticate(command.args[0]);
      if (auto* error = std::get_if<net::ProtocolError>(&result)) {
        log_info("connection ", c.id, " from ", c.peer, ": AUTH failed (", c.gate.failures(), ")");
        reply_now(c, net::format_error(*error), error->must_close);
      } else {
        reply_now(c, net::format_ok(OkLine().add(
                         "auth", net::access_level_name(std::get<net::AccessLevel>(result)))));
      }
      return;
    }
    case Verb::kModels:
      reply_now(c, models_reply());
      return;
    case Verb::kInfer:
      text_infer(c, std::move(command));
      return;
    case Verb::kTrain:
      text_train(c, command);
      return;
    case Verb::kJobs:
      reply_now(c, jobs_reply());
      return;
    case Verb::kStop:
      text_stop(c, command);
      return;
    case Verb::kCheckpoint:
      text_checkpoint(c, command);
      return;
    case Verb::kStats:
      reply_now(c, stats_reply());
      return;
    case Verb::kLoad:
      text_load(c, command);
      return;
    case Verb::kUnload:
      text_unload(c, command);
      return;
  }
  reply_now(c, error_reply(ErrorCode::kInternal, "unhandled command"));
}

std::string Server::models_reply() const {
  std::string body;
  const auto models = scheduler_.models();
  for (const ModelInfo* m : models) {
    OkLine line;
    line.add("name", m->name)
        .add("batch", m->batch)
        .add("inputs", tensor_list(m->inputs))
        .add("outputs", tensor_list(m->outputs))
        .add("params", m->parameters)
        .add("params_bytes", m->weights_bytes)
        .add("source", m->source);
    if (!m->grouping.empty()) line.add("grouping", m->grouping).add("groups", m->groups);
    body += net::format_fields_line(line);
  }
  return net::format_ok_with_payload(OkLine().add("models", uint64_t{models.size()}), body);
}

void Server::text_infer(Connection& c, net::Command command) {
  const std::string model = command.args[0];
  const ModelInfo* info = scheduler_.find_model(model);
  if (info == nullptr) {
    reply_now(c, error_reply(ErrorCode::kUnknownModel,
                             str_cat("no model '", model, "' (MODELS lists them)")));
    return;
  }
  const uint64_t batch = command.number_or("batch", info->batch);
  const bool raw = command.choice_or("output", "none") == "raw";
  const bool synthetic = !command.payload.has_value();
  std::string input = synthetic ? std::string() : std::move(*command.payload);
  const uint64_t seq = reserve_slot(c);
  const uint64_t id = c.id;
  const auto arrived = std::chrono::steady_clock::now();
  Status s = scheduler_.submit_infer(
      model, static_cast<uint32_t>(batch), std::move(input), synthetic,
      [this, id, seq, model, batch, raw, arrived](Completion done) {
        if (!done.status.ok()) {
          fill_slot(id, seq, status_reply(done.status, ErrorCode::kUnknownModel));
          return;
        }
        const OutputSummary summary = done.summarized ? OutputSummary{done.checksum, done.sum}
                                                      : summarize_output(done.outputs, done.output);
        // compute_us includes the switch (which overlaps it): see Timings.
        const uint64_t total = done.timings.queue_us + done.timings.compute_us;
        OkLine line;
        line.add("model", model)
            .add("batch", batch)
            .add("queue_us", done.timings.queue_us)
            .add("switch_us", done.timings.switch_us)
            .add("compute_us", done.timings.compute_us)
            .add("total_us", total)
            .add("startup_us", done.timings.startup_us)
            // The server's whole share: parsed -> this line, on the loop. Less total_us: the
            // host's work after the GPU (output summary, hand-over to the loop).
            .add("server_us", static_cast<uint64_t>(
                                  std::chrono::duration_cast<std::chrono::microseconds>(
                                      std::chrono::steady_clock::now() - arrived)
                                      .count()))
            .add("shape", output_shapes(done.outputs))
            .add("dtype", output_dtypes(done.outputs))
            .add_hex("checksum", summary.checksum)
            .add("sum", summary.sum);
        fill_slot(id, seq,
                  raw ? net::format_ok_with_payload(line, done.output) : net::format_ok(line));
      },
      /*want_output=*/raw);
  if (!s.ok()) {
    ErrorCode code = net::error_code_for(s.code());
    if (s.code() == Code::kNotFound) code = ErrorCode::kUnknownModel;
    if (s.code() == Code::kInvalidArgument) code = ErrorCode::kBadArgument;
    fill_slot(id, seq, error_reply(code, s.message()));
  }
}

Result<ModelSource> Server::open_package_source(const std::string& model,
                                                const std::string* package) const {
  namespace fs = std::filesystem;
  if (options_.models_dir.empty()) {
    return permission_denied("LOAD needs a models directory (start the server with --models DIR)");
  }
  std::error_code ec;
  const fs::path dir = fs::canonical(options_.models_dir, ec);
  if (ec) return not_found("models directory '", options_.models_dir, "': ", ec.message());
  const std::string name = package ? *package : model + ".psm";
  const fs::path requested = fs::path(name).is_absolute() ? fs::path(name) : dir / name;
  // The check by path: symbolic links are resolved first, so a link inside the directory cannot
  // lead out of it, and links or absolute paths that end up inside are accepted. It gives the
  // clear answers; it does not confine by itself, since the tree can change before the open.
  const fs::path resolved = fs::weakly_canonical(requested, ec);
  if (ec) return not_found("package '", name, "': ", ec.message());
  const auto [dir_end, rest] =
      std::mismatch(dir.begin(), dir.end(), resolved.begin(), resolved.end());
  if (dir_end != dir.end() || rest == resolved.end()) {
    return permission_denied("package '", name, "' is outside the models directory");
  }
  fs::path relative;
  for (auto it = rest; it != resolved.end(); ++it) relative /= *it;

  // The open confines: the checked path is opened beneath the directory's descriptor
  // (openat2 RESOLVE_BENEATH), so a component swapped for a link to the outside since the
  // check is refused, and the backend reads this descriptor, never the path again. Opening is
  // cheap (no read), so it happens here, on the loop thread.
  UniqueFd dir_fd(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dir_fd.valid()) {
    return not_found("models directory '", options_.models_dir, "': ", errno_string(errno));
  }
  auto fd = beneath_open(dir_fd.get(), relative.string());
  if (!fd.ok()) {
    switch (fd.status().code()) {
      case Code::kPermissionDenied:
        return permission_denied("package '", name, "' is outside the models directory");
      case Code::kNotFound:
        return not_found("no package '", name, "' in the models directory");
      case Code::kInvalidArgument:
        return not_found("package '", name, "' is not a file");
      default:
        return fd.status().with_context(str_cat("package '", name, "'"));
    }
  }
  ModelSource source;
  source.name = model;
  source.package_path = resolved.string();
  source.package_fd = std::make_shared<const UniqueFd>(std::move(*fd));
  return source;
}

void Server::text_load(Connection& c, const net::Command& command) {
  const std::string& model = command.args[0];
  const std::string* package = command.args.size() > 1 ? &command.args[1] : nullptr;
  auto source = open_package_source(model, package);
  if (!source.ok()) {
    const Status& s = source.status();
    reply_now(c, error_reply(s.code() == Code::kPermissionDenied ? ErrorCode::kForbidden
                                                                 : net::error_code_for(s.code()),
                             s.message()));
    return;
  }
  const uint64_t seq = reserve_slot(c);
  const uint64_t id = c.id;
  Status s = scheduler_.load(std::move(*source), [this, id, seq, model](Completion done) {
    if (!done.status.ok()) {
      log_warn("LOAD ", model, ": ", done.status.message());
      fill_slot(id, seq, status_reply(done.status, ErrorCode::kNotFound));
      return;
    }
    log_info("loaded ", model, " from ", done.model->source, " in ", done.load_us / 1000, " ms");
    fill_slot(id, seq,
              net::format_ok(OkLine()
                                 .add("model", model)
                                 .add("batch", done.model->batch)
                                 .add("load_us", done.load_us)));
  });
  if (!s.ok()) fill_slot(id, seq, status_reply(s, ErrorCode::kNotFound));
}

void Server::text_unload(Connection& c, const net::Command& command) {
  const std::string& model = command.args[0];
  const uint64_t seq = reserve_slot(c);
  const uint64_t id = c.id;
  Status s = scheduler_.unload(model, [this, id, seq, model](Completion done) {
    if (!done.status.ok()) {
      fill_slot(id, seq, status_reply(done.status, ErrorCode::kUnknownModel));
      return;
    }
    log_info("unloaded ", model);
    fill_slot(id, seq, net::format_ok(OkLine().add("model", model)));
  });
  if (!s.ok()) fill_slot(id, seq, status_reply(s, ErrorCode::kUnknownModel));
}

}  // namespace ps::reactor
