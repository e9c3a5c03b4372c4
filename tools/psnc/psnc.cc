#include "tools/psnc/psnc.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "net/binary_protocol.h"
#include "net/text_command.h"
#include "tools/psnc/client.h"
#include "tools/psnc/load.h"

namespace ps::psnc {
namespace {

constexpr const char* kUsage = R"(Usage:
  psnc [HOST:]PORT
      Like nc: sends stdin to the server and prints its replies. Type HELP for the commands.
  psnc [--server ADDR] [--token T] infer MODEL [--batch N] [--input FILE] [--repeat N]
       [--concurrency C] [--output FILE]
      Sends N inference requests (default 1) over C connections (default 1), prints each
      request's latency and the server's reply, then mean, p50 and p99. Without --input the
      server makes a deterministic synthetic input; --input sends FILE's bytes as the raw
      input tensor(s). --output FILE writes the last request's raw output there.
  psnc [--server ADDR] [--token T] train MODEL [--batch N] [--steps N] [KEY=VALUE ...] [--wait]
      Starts a training job and prints its id. KEY=VALUE pairs go to TRAIN as they are
      (lr=0.05 momentum=0.9 wd=1e-4 seed=N classes=N noise=X data=single every=N
      checkpoint=FILE resume=FILE; HELP on the server lists them). --wait follows the job
      (JOBS once a second: step, loss, images/s, preemptions) until it ends; the exit status
      is 0 when it finished or was stopped, 1 when it failed.
  psnc --pipeswitch [--server ADDR] infer MODEL [--input FILE] [--repeat N] [--concurrency C]
  psnc --pipeswitch [--server ADDR] train MODEL
      The same over the original PipeSwitch binary protocol (MODEL_inference / MODEL_training,
      FNSH replies). Without --input an inference sends no data (pipeswitchd then makes a
      synthetic input; the original server needs the data).
  psnc [--server ADDR] [--token T] load [--connections N] [--requests N] [--duration S]
       [--models MODEL[:BATCH],...] [--depth D] [--disconnect P] [--train P] ...
      Load and soak test of a server on loopback: many concurrent connections, every reply
      checked, lost replies counted. 'psnc load --help' lists its options.
Options:
  --server ADDR   [HOST:]PORT of the server (default 127.0.0.1:12345)
  --token T       send AUTH T first (text protocol)
  --help          this text
Exit status: 0 when every request succeeded, 1 when one failed, 2 for bad arguments.
)";

struct Args {
  bool pipeswitch = false;
  std::string server = "127.0.0.1:12345";
  std::string token;
  std::string command;                 // "", "infer", "train", "load"
  std::vector<std::string> load_args;  // what follows "load"
  std::string model;
  std::string bare_address;
  uint64_t batch = 0;  // 0: the server's default
  uint64_t steps = 0;
  uint64_t repeat = 1;
  uint64_t concurrency = 1;
  std::string input_file;
  std::string output_file;
  std::vector<std::string> train_options;  // train: KEY=VALUE, passed to TRAIN
  bool wait = false;                       // train: follow the job until it ends
  bool help = false;
};

Result<uint64_t> number(const std::string& flag, const std::string& text, uint64_t min) {
  auto v = net::parse_decimal_u64(text);
  if (!v.ok()) return invalid_argument(flag, " '", text, "': ", v.status().message());
  if (*v < min) return invalid_argument(flag, " must be at least ", min);
  return *v;
}

Result<Args> parse(std::span<const std::string> args) {
  Args a;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    auto value = [&]() -> Result<std::string> {
      if (i + 1 >= args.size()) return invalid_argument(arg, " needs a value");
      return args[++i];
    };
    if (arg == "--help" || arg == "-h") {
      a.help = true;
    } else if (arg == "--pipeswitch") {
      a.pipeswitch = true;
    } else if (arg == "--server") {
      PS_ASSIGN_OR_RETURN(a.server, value());
    } else if (arg == "--token") {
      PS_ASSIGN_OR_RETURN(a.token, value());
    } else if (arg == "--batch") {
      PS_ASSIGN_OR_RETURN(std::string v, value());
      PS_ASSIGN_OR_RETURN(a.batch, number(arg, v, 1));
    } else if (arg == "--steps") {
      PS_ASSIGN_OR_RETURN(std::string v, value());
      PS_ASSIGN_OR_RETURN(a.steps, number(arg, v, 1));
    } else if (arg == "--repeat") {
      PS_ASSIGN_OR_RETURN(std::string v, value());
      PS_ASSIGN_OR_RETURN(a.repeat, number(arg, v, 1));
    } else if (arg == "--concurrency") {
      PS_ASSIGN_OR_RETURN(std::string v, value());
      PS_ASSIGN_OR_RETURN(a.concurrency, number(arg, v, 1));
      if (a.concurrency > 1024) return invalid_argument("--concurrency is at most 1024");
    } else if (arg == "--input") {
      PS_ASSIGN_OR_RETURN(a.input_file, value());
    } else if (arg == "--output") {
      PS_ASSIGN_OR_RETURN(a.output_file, value());
    } else if (arg == "--wait") {
      a.wait = true;
    } else if (arg.starts_with("-")) {
      return invalid_argument("unknown option '", arg, "'");
    } else if (a.command.empty() && a.bare_address.empty() && arg == "load") {
      a.command = arg;  // load parses the rest itself
      a.load_args.assign(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
      return a;
    } else if (a.command.empty() && a.bare_address.empty() && (arg == "infer" || arg == "train")) {
      a.command = arg;
    } else if (!a.command.empty() && a.model.empty()) {
      a.model = arg;
    } else if (a.command == "train" && arg.find('=') != std::string::npos) {
      a.train_options.push_back(arg);
    } else if (a.command.empty() && a.bare_address.empty()) {
      a.bare_address = arg;
    } else {
      return invalid_argument("unexpected argument '", arg, "'");
    }
  }
  if (a.help) return a;
  if (a.command.empty() && a.bare_address.empty()) {
    return invalid_argument("give [HOST:]PORT, or a command (infer, train)");
  }
  if (!a.command.empty() && a.model.empty()) return invalid_argument(a.command, " needs a MODEL");
  if (a.pipeswitch && a.command.empty()) {
    return invalid_argument("--pipeswitch needs a command (infer, train)");
  }
  if (a.command == "train" && (!a.input_file.empty() || a.repeat != 1 || a.concurrency != 1)) {
    return invalid_argument("train takes --batch, --steps, KEY=VALUE options and --wait only");
  }
  if (a.wait && a.command != "train") return invalid_argument("--wait is for train");
  if (a.pipeswitch &&
      (a.batch != 0 || a.steps != 0 || !a.token.empty() || !a.output_file.empty())) {
    return invalid_argument(
        "--pipeswitch takes no --batch, --steps, --token or --output: "
        "the binary protocol has no place for them");
  }
  if (a.concurrency > a.repeat) a.concurrency = a.repeat;
  return a;
}

int bare(const Args& a, std::ostream& err) {
  auto address = parse_host_port(a.bare_address);
  if (!address.ok()) {
    err << "psnc: " << address.status().message() << "\n";
    return kExitUsage;
  }
  auto client = Client::connect(*address);
  if (!client.ok()) {
    err << "psnc: " << client.status().message() << "\n";
    return kExitFailure;
  }
  pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {client->fd(), POLLIN, 0}};
  bool stdin_open = true;
  char buf[65536];
  for (;;) {
    fds[0].fd = stdin_open ? STDIN_FILENO : -1;
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return kExitFailure;
    }
    if (stdin_open && (fds[0].revents & (POLLIN | POLLHUP))) {
      const ssize_t n = ::read(STDIN_FILENO, buf, sizeof(buf));
      if (n <= 0) {
        stdin_open = false;
        client->shutdown_write();  // the server answers what it got, then closes
      } else if (!client->send(std::string_view(buf, static_cast<size_t>(n))).ok()) {
        return kExitFailure;
      }
    }
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      const ssize_t n = ::recv(client->fd(), buf, sizeof(buf), 0);
      if (n <= 0) return kExitOk;  // the server closed
      for (ssize_t done = 0; done < n;) {
        const ssize_t w = ::write(STDOUT_FILENO, buf + done, static_cast<size_t>(n - done));
        if (w <= 0) return kExitFailure;
        done += w;
      }
    }
  }
}

double percentile(std::vector<double>& sorted, double q) {
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

std::string ms(double v) {
  char b[32];
  std::snprintf(b, sizeof(b), "%.3f", v);
  return b;
}

Result<Client> open_client(const Args& a, const HostPort& address) {
  PS_ASSIGN_OR_RETURN(Client client, Client::connect(address));
  if (!a.token.empty() && !a.pipeswitch) {
    PS_TRY(client.send("AUTH " + a.token + "\n"));
    PS_ASSIGN_OR_RETURN(Reply reply, client.read_reply());
    if (!reply.ok) return permission_denied("AUTH: ", reply.line);
  }
  return client;
}

int infer(const Args& a, const HostPort& address, std::ostream& out, std::ostream& err) {
  std::string input;
  if (!a.input_file.empty()) {
    std::ifstream file(a.input_file, std::ios::binary);
    if (!file) {
      err << "psnc: cannot read --input " << a.input_file << "\n";
      return kExitFailure;
    }
    std::ostringstream buffer;
    buffer << file.rdbuf();
    input = buffer.str();
  }
  std::string request;
  if (a.pipeswitch) {
    request = net::encode_request(net::task_name(a.model, net::TaskKind::kInference), input);
  } else {
    request = "INFER " + a.model;
    if (a.batch) request += " batch=" + std::to_string(a.batch);
    if (!a.output_file.empty()) request += " output=raw";
    if (!a.input_file.empty()) request += " bytes=" + std::to_string(input.size());
    request += "\n" + input;
  }

  std::mutex mutex;
  std::vector<double> latencies;
  std::atomic<uint64_t> next{0};
  std::atomic<uint64_t> failures{0};
  std::string last_output;
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto worker = [&](uint64_t connection) {
    auto client = open_client(a, address);
    if (!client.ok()) {
      std::lock_guard lock(mutex);
      err << "psnc: connection " << connection << ": " << client.status().message() << "\n";
      failures += 1;
      return;
    }
    for (uint64_t i = next++; i < a.repeat; i = next++) {
      const auto sent = Clock::now();
      std::string line;
      Status status = client->send(request);
      Reply reply;
      if (status.ok() && a.pipeswitch) {
        auto fnsh = client->read_exact(net::kFinishReply.size());
        if (!fnsh.ok())
          status = fnsh.status();
        else if (*fnsh != net::kFinishReply)
          status = corrupt("expected FNSH, got '", *fnsh, "'");
        line = "FNSH";
      } else if (status.ok()) {
        auto r = client->read_reply();
        if (!r.ok())
          status = r.status();
        else
          reply = std::move(*r);
        line = reply.line;
      }
      const double millis = std::chrono::duration<double, std::milli>(Clock::now() - sent).count();
      std::lock_guard lock(mutex);
      if (!status.ok()) {
        err << "psnc: request " << i + 1 << ": " << status.message() << "\n";
        failures += a.repeat - i;  // this connection is unusable
        return;
      }
      if (!a.pipeswitch && !reply.ok)
        ++failures;
      else
        latencies.push_back(millis);
      if (!reply.payload.empty()) last_output = reply.payload;
      out << "request " << i + 1 << ": " << ms(millis) << " ms  " << line << "\n";
    }
  };
  std::vector<std::thread> threads;
  for (uint64_t c = 0; c < a.concurrency; ++c) threads.emplace_back(worker, c + 1);
  for (std::thread& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();

  if (!a.output_file.empty() && !last_output.empty()) {
    std::ofstream file(a.output_file, std::ios::binary);
    file << last_output;
  }
  out << "summary: " << latencies.size() << " ok, " << failures << " failed, " << a.concurrency
      << " connection" << (a.concurrency == 1 ? "" : "s") << ", "
      << (latencies.empty() ? std::string("no latencies") : summarize_latencies(latencies));
  if (seconds > 0)
    out << " throughput=" << ms(static_cast<double>(latencies.size()) / seconds) << "/s";
  out << "\n";
  return failures == 0 ? kExitOk : kExitFailure;
}

// Polls JOBS once a second and prints job `job`'s progress whenever its step or state changed,
// until it is neither running nor stopping. kExitOk when it finished or was stopped.
int follow_job(Client& client, const std::string& job, std::ostream& out, std::ostream& err) {
  std::string last;
  for (;;) {
    Status s = client.send("JOBS\n");
    auto jobs = s.ok() ? client.read_reply() : Result<Reply>(s);
    if (!jobs.ok() || !jobs->ok) {
      err << "psnc: JOBS: " << (jobs.ok() ? jobs->line : jobs.status().message()) << "\n";
      return kExitFailure;
    }
    std::optional<Reply> mine;
    size_t start = 0;
    while (start < jobs->payload.size()) {
      size_t end = jobs->payload.find('\n', start);
      if (end == std::string::npos) end = jobs->payload.size();
      auto line = parse_status_line("OK " + jobs->payload.substr(start, end - start));
      if (line.ok() && line->field("job") == job) mine = *line;
      start = end + 1;
    }
    if (!mine) {
      err << "psnc: job " << job << " is not in JOBS\n";
      return kExitFailure;
    }
    const std::string state = mine->field("state");
    const std::string now = state + " " + mine->field("step");
    if (now != last) {
      out << "job " << job << " " << state << " step " << mine->field("step") << " loss "
          << mine->field("loss") << " images/s " << mine->field("images_per_s")
          << " preemptions " << mine->field("preemptions") << " (p99 "
          << mine->field("preempt_p99_us") << " us)";
      if (mine->field("checkpoint_step") != "0") {
        out << " checkpoint " << mine->field("checkpoint") << "@" << mine->field("checkpoint_step");
      }
      out << "\n" << std::flush;
      last = now;
    }
    if (state != "running" && state != "stopping") {
      if (state == "failed") err << "psnc: job " << job << " failed: " << mine->field("error") << "\n";
      return state == "failed" ? kExitFailure : kExitOk;
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

int train(const Args& a, const HostPort& address, std::ostream& out, std::ostream& err) {
  auto client = open_client(a, address);
  if (!client.ok()) {
    err << "psnc: " << client.status().message() << "\n";
    return kExitFailure;
  }
  if (a.pipeswitch) {
    Status s = binary_request(*client, net::task_name(a.model, net::TaskKind::kTraining), {});
    if (!s.ok()) {
      err << "psnc: " << s.message() << "\n";
      return kExitFailure;
    }
    out << "FNSH: training " << a.model << " started\n";
    return kExitOk;
  }
  std::string request = "TRAIN " + a.model;
  if (a.batch) request += " batch=" + std::to_string(a.batch);
  if (a.steps) request += " steps=" + std::to_string(a.steps);
  for (const std::string& option : a.train_options) request += " " + option;
  request += "\n";
  Status s = client->send(request);
  auto reply = s.ok() ? client->read_reply() : Result<Reply>(s);
  if (!reply.ok()) {
    err << "psnc: " << reply.status().message() << "\n";
    return kExitFailure;
  }
  out << reply->line << "\n";
  if (!reply->ok || !a.wait) return reply->ok ? kExitOk : kExitFailure;
  return follow_job(*client, reply->field("job"), out, err);
}

}  // namespace

std::string summarize_latencies(std::vector<double> millis) {
  std::sort(millis.begin(), millis.end());
  double sum = 0;
  for (double v : millis) sum += v;
  return str_cat("mean=", ms(sum / static_cast<double>(millis.size())),
                 " ms p50=", ms(percentile(millis, 0.5)), " ms p99=", ms(percentile(millis, 0.99)),
                 " ms min=", ms(millis.front()), " ms max=", ms(millis.back()), " ms");
}

int run(std::span<const std::string> args, std::ostream& out, std::ostream& err) {
  auto parsed = parse(args);
  if (!parsed.ok()) {
    err << "psnc: " << parsed.status().message() << "\nTry 'psnc --help'.\n";
    return kExitUsage;
  }
  if (parsed->help) {
    out << kUsage;
    return kExitOk;
  }
  if (parsed->command.empty()) return bare(*parsed, err);
  if (parsed->command == "load") {
    return load_main(parsed->server, parsed->token, parsed->load_args, out, err);
  }
  auto address = parse_host_port(parsed->server);
  if (!address.ok()) {
    err << "psnc: --server " << address.status().message() << "\n";
    return kExitUsage;
  }
  if (parsed->command == "infer") return infer(*parsed, *address, out, err);
  return train(*parsed, *address, out, err);
}

}  // namespace ps::psnc
