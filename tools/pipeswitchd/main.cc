// pipeswitchd: the server. Parses the command line, makes the backend, loads the models (zoo
// and --models), starts listening, and runs the loop until a graceful shutdown (SIGINT/SIGTERM).
// Start-up lines go to stdout (tests parse "listening on HOST:PORT"); the log goes to stderr.
#include <uv.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "cuda/driver.h"
#include "reactor/backend_factory.h"
#include "reactor/completion_bridge.h"
#include "reactor/fresh_process.h"
#include "reactor/log.h"
#include "reactor/output_summary.h"
#include "reactor/scheduler.h"
#include "reactor/server.h"
#include "tools/pipeswitchd/options.h"

namespace ps::pipeswitchd {
namespace {

constexpr const char* kVersion = "0.1.0";

void say(const std::string& line) {
  std::fputs((line + "\n").c_str(), stdout);
  std::fflush(stdout);
}

std::string mib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return buf;
}

std::string tensors(const std::vector<reactor::TensorSpec>& specs) {
  std::string out;
  for (const auto& s : specs) {
    out += str_cat(out.empty() ? "" : ", ", s.name, " ", dtype_name(s.dtype), " [",
                   reactor::output_shapes({s}), "]");
  }
  return out;
}

Result<std::vector<reactor::ModelSource>> model_sources(const Options& o, bool gpu) {
  std::vector<reactor::ModelSource> sources;
  if (o.zoo) {
    const auto names = o.zoo_models.empty() ? default_zoo_models(gpu) : o.zoo_models;
    for (const std::string& name : names) {
      reactor::ModelSource s;
      s.name = name;
      s.zoo_model = name;
      s.zoo_batch = o.zoo_batch;
      s.zoo_seq = o.zoo_seq;
      sources.push_back(s);
    }
  }
  if (!o.models_dir.empty()) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::is_directory(o.models_dir, ec)) {
      return not_found("--models '", o.models_dir, "' is not a directory");
    }
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(o.models_dir, ec)) {
      if (entry.path().extension() == ".psm" && entry.is_regular_file())
        files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    for (const fs::path& file : files) {
      reactor::ModelSource s;
      s.name = file.stem().string();
      s.package_path = fs::absolute(file).string();
      sources.push_back(s);
    }
  }
  return sources;
}

int serve(const Options& o) {
  reactor::set_log_level(o.log_level);

  // Addresses and auth first: refusing a bad configuration costs nothing.
  reactor::ServerOptions server_options;
  for (const std::string& text : o.listen) {
    auto address = reactor::parse_listen_address(text);
    if (!address.ok()) {
      std::cerr << "pipeswitchd: --listen: " << address.status().message() << "\n";
      return 2;
    }
    // Only --token authenticates every connection: with --admin-token alone a new connection is
    // already a user (docs/protocol.md 2.6), so anyone who can reach the port could infer.
    if (!address->is_loopback() && !o.token) {
      std::cerr << "pipeswitchd: --listen " << text
                << " is reachable from other machines: give --token (clients then AUTH first)\n";
      return 2;
    }
    server_options.listen.push_back(*address);
  }
  if (o.metrics_listen) {
    auto address = reactor::parse_listen_address(*o.metrics_listen);
    if (!address.ok()) {
      std::cerr << "pipeswitchd: --metrics-listen: " << address.status().message() << "\n";
      return 2;
    }
    server_options.metrics_listen = *address;
  }
  for (const auto* pair : {&o.token, &o.admin_token}) {
    if (!*pair) continue;
    auto token = net::Token::create(**pair);
    if (!token.ok()) {
      std::cerr << "pipeswitchd: " << (pair == &o.token ? "--token" : "--admin-token") << ": "
                << token.status().message() << "\n";
      return 2;
    }
    (pair == &o.token ? server_options.auth.user_token : server_options.auth.admin_token) = *token;
  }
  server_options.text_limits.max_payload_bytes = o.max_payload;
  server_options.text_limits.max_line_bytes = o.max_line;
  server_options.binary_limits.max_data_bytes = o.max_payload;
  server_options.max_connections = o.max_connections;
  server_options.models_dir = o.models_dir;
  if (!o.checkpoints_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(o.checkpoints_dir, ec);
    const auto dir = std::filesystem::canonical(o.checkpoints_dir, ec);
    if (ec || !std::filesystem::is_directory(dir)) {
      std::cerr << "pipeswitchd: --checkpoints '" << o.checkpoints_dir
                << "': " << (ec ? ec.message() : "not a directory") << "\n";
      return 2;
    }
    server_options.checkpoints_dir = dir.string();
  }
  server_options.shutdown_timeout = std::chrono::seconds(o.shutdown_timeout_s);
  server_options.write_timeout = std::chrono::seconds(o.write_timeout_s);

  // The backend.
  reactor::BackendOptions backend_options;
  backend_options.device = o.device;
  if (o.device == "auto") {
    // GPU 0 when a driver and a GPU are there, else the CPU.
    auto driver = cuda::load_driver();
    if (driver.ok() && cuda::gpu_available()) {
      backend_options.device = "0";
    } else {
      say(str_cat("no GPU (", driver.ok() ? "no CUDA device visible" : driver.status().message(),
                  "): using the CPU"));
      backend_options.device = "cpu";
    }
  }
  backend_options.policy = o.policy;
  backend_options.pool_bytes = o.pool_bytes;
  backend_options.precision = o.precision;
  backend_options.grouping = o.grouping;
  backend_options.graphs = o.graphs;
  backend_options.pipelining = o.pipelining;
  backend_options.host_read = o.host_read;
  backend_options.reuse_region = o.reuse_region;
  backend_options.parallel_links = o.parallel_links;
  std::error_code exe_error;
  backend_options.self_exe = std::filesystem::read_symlink("/proc/self/exe", exe_error).string();
  backend_options.cpu_threads = o.threads;
  backend_options.training = o.training;
  auto backend = reactor::make_backend(backend_options);
  if (!backend.ok() && o.device == "auto") {
    say(str_cat("no GPU backend (", backend.status().message(), "): using the CPU"));
    backend_options.device = "cpu";
    backend = reactor::make_backend(backend_options);
  }
  if (!backend.ok()) {
    std::cerr << "pipeswitchd: " << backend.status().message() << "\n";
    return 1;
  }
  // A GPU or several; "cpu" and a simulated CPU set ("cpu,cpu") are not.
  const bool gpu = !backend_options.device.starts_with("cpu");
  if (o.parallel_links > 1 && (!gpu || backend_options.device.find(',') == std::string::npos) &&
      backend_options.device != "all") {
    say("--parallel-links: one device, no GPU to borrow links from; every switch uses its own");
  }
  auto sources = model_sources(o, gpu);
  if (!sources.ok()) {
    std::cerr << "pipeswitchd: " << sources.status().message() << "\n";
    return 2;
  }

  uv_loop_t loop;
  uv_loop_init(&loop);
  reactor::CompletionBridge bridge;
  reactor::Scheduler scheduler(**backend);
  int exit_code = 0;
  Status opened = bridge.open(
      &loop, backend->get(), [&](reactor::Completion c) { scheduler.on_completion(std::move(c)); });
  PS_CHECK(opened.ok());
  Status started = (*backend)->start(&bridge);

  say(str_cat("pipeswitchd ", kVersion));
  say(str_cat("device: ", (*backend)->describe()));
  if (started.ok()) {
    const reactor::BackendStats stats = (*backend)->stats();
    for (const reactor::DeviceStats& d : stats.devices) {
      say(str_cat("device ", d.name, ": ", d.description,
                  d.pool_bytes > 0 ? str_cat(", pool ", mib(d.pool_bytes)) : std::string()));
    }
    say(str_cat("policy: ", o.policy,
                gpu ? "" : " (the CPU backend keeps every model in host memory)"));
    say(str_cat("pool: ", stats.pool_bytes > 0 ? mib(stats.pool_bytes) : std::string("none"),
                stats.devices.size() > 1 && stats.pool_bytes > 0 ? " in all" : ""));
    say(str_cat("training: ", reactor::training_policy_name(o.training), ", checkpoints ",
                server_options.checkpoints_dir.empty() ? std::string("off (--checkpoints DIR)")
                                                       : server_options.checkpoints_dir));
    if (!gpu) say("no GPU in use: serving on the CPU reference executor (slow; use small models)");
  }

  // Loads, one after another in the backend, reported as they finish.
  size_t pending = 0;
  bool load_failed = false;
  if (started.ok()) {
    for (reactor::ModelSource& source : *sources) {
      const std::string name = source.name;
      const bool from_zoo = !source.zoo_model.empty();
      say(str_cat("loading ", name,
                  from_zoo ? str_cat(" (zoo, batch ", source.zoo_batch, ")")
                           : str_cat(" from ", source.package_path),
                  "..."));
      Status s = scheduler.load(std::move(source), [&, name, from_zoo](reactor::Completion c) {
        --pending;
        if (!c.status.ok()) {
          say(str_cat("failed to load ", name, ": ", c.status.message()));
          if (from_zoo) load_failed = true;
          return;
        }
        say(str_cat("loaded ", name, ": batch ", c.model->batch, "; inputs ",
                    tensors(c.model->inputs), "; outputs ", tensors(c.model->outputs), "; ",
                    c.model->parameters, " parameters, ", mib(c.model->weights_bytes), " in ",
                    c.load_us / 1000, " ms"));
      });
      if (s.ok()) {
        ++pending;
      } else {
        say(str_cat("failed to load ", name, ": ", s.message()));
        if (from_zoo) load_failed = true;
      }
    }
    // Long loads show progress: a line every 5 s while something is loading.
    uv_timer_t ticker;
    uv_timer_init(&loop, &ticker);
    const auto load_start = std::chrono::steady_clock::now();
    ticker.data = const_cast<std::chrono::steady_clock::time_point*>(&load_start);
    uv_timer_start(
        &ticker,
        [](uv_timer_t* t) {
          const auto* since = static_cast<const std::chrono::steady_clock::time_point*>(t->data);
          const auto s = std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::steady_clock::now() - *since)
                             .count();
          say(str_cat("still loading (", s, " s)..."));
        },
        5000, 5000);
    while (pending > 0) uv_run(&loop, UV_RUN_ONCE);
    uv_close(reinterpret_cast<uv_handle_t*>(&ticker), nullptr);
    uv_run(&loop, UV_RUN_NOWAIT);
  }

  std::unique_ptr<reactor::Server> server;
  if (!started.ok()) {
    std::cerr << "pipeswitchd: " << started.message() << "\n";
    exit_code = 1;
  } else if (load_failed) {
    std::cerr << "pipeswitchd: a zoo model failed to load (see above)\n";
    exit_code = 1;
  } else {
    say(str_cat("models: ", scheduler.models().size()));
    server_options.device = (*backend)->describe();
    server = std::make_unique<reactor::Server>(&loop, scheduler, server_options);
    server->set_on_finished([&] {
      (*backend)->shutdown();
      bridge.close();
    });
    Status listening = server->start();
    if (!listening.ok()) {
      std::cerr << "pipeswitchd: " << listening.message() << "\n";
      exit_code = 1;
    } else {
      for (const std::string& address : server->bound_addresses()) say("listening on " + address);
      if (auto metrics = server->metrics_address()) {
        say("metrics on http://" + *metrics + "/metrics and /healthz");
      }
    }
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  if (!server || !server->finished()) {
    (*backend)->shutdown();
    bridge.close();
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  server.reset();
  const int closed = uv_loop_close(&loop);
  if (closed != 0) {
    std::cerr << "pipeswitchd: uv_loop_close: " << uv_strerror(closed) << " (a handle leaked)\n";
    return 1;
  }
  if (exit_code == 0) say("bye");
  return exit_code;
}

}  // namespace
}  // namespace ps::pipeswitchd

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  // The kill-restart policy's per-request process (reactor/fresh_process.h).
  if (!args.empty() && args[0] == "--oneshot") {
    return ps::reactor::oneshot_main(std::span<const std::string>(args).subspan(1));
  }
  auto options = ps::pipeswitchd::parse_args(args);
  if (!options.ok()) {
    std::cerr << "pipeswitchd: " << options.status().message() << "\nTry 'pipeswitchd --help'.\n";
    return 2;
  }
  if (options->help) {
    std::cout << ps::pipeswitchd::usage();
    return 0;
  }
  // A client that goes away mid-write must not kill the server.
  signal(SIGPIPE, SIG_IGN);
  return ps::pipeswitchd::serve(*options);
}
