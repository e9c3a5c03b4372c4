// psnc load's command line (parsing, the MODELS look-up) and its report; the driver is load.cc.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "net/text_command.h"
#include "tools/psnc/load.h"

namespace ps::psnc {
namespace {

constexpr uint32_t kMaxConnections = 20000;
constexpr uint64_t kMaxRequests = 100'000'000;

double percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

std::string fixed(double v, int digits = 3) {
  char b[48];
  std::snprintf(b, sizeof(b), "%.*f", digits, v);
  return b;
}

Result<uint64_t> number(const std::string& flag, const std::string& text, uint64_t min,
                        uint64_t max) {
  auto v = net::parse_decimal_u64(text);
  if (!v.ok()) return invalid_argument(flag, " '", text, "': ", v.status().message());
  if (*v < min || *v > max) return invalid_argument(flag, " must be in ", min, "..", max);
  return *v;
}

Result<double> probability(const std::string& flag, const std::string& text) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !(v >= 0 && v <= 1)) {
    return invalid_argument(flag, " '", text, "': expected a probability in [0, 1]");
  }
  return v;
}

// "MODEL[:BATCH]" entries, comma-separated; BATCH defaults to `batch`.
Result<std::vector<LoadTarget>> parse_targets(const std::string& text, uint32_t batch) {
  std::vector<LoadTarget> targets;
  std::stringstream list(text);
  std::string item;
  while (std::getline(list, item, ',')) {
    LoadTarget t;
    t.batch = batch;
    const size_t colon = item.find(':');
    t.model = item.substr(0, colon);
    if (colon != std::string::npos) {
      PS_ASSIGN_OR_RETURN(uint64_t b, number("--models batch", item.substr(colon + 1), 1, 4096));
      t.batch = static_cast<uint32_t>(b);
    }
    if (t.model.empty()) return invalid_argument("--models '", text, "': an empty model name");
    targets.push_back(std::move(t));
  }
  if (targets.empty()) return invalid_argument("--models needs at least one MODEL[:BATCH]");
  return targets;
}

// The model names MODELS lists (name=... on each payload line).
Result<std::vector<std::string>> list_models(const LoadOptions& o) {
  PS_ASSIGN_OR_RETURN(Client client, Client::connect(o.server, std::chrono::seconds(5)));
  client.set_timeout(std::chrono::seconds(10));
  if (!o.token.empty()) {
    PS_TRY(client.send("AUTH " + o.token + "\n"));
    PS_ASSIGN_OR_RETURN(Reply auth, client.read_reply());
    if (!auth.ok) return permission_denied("AUTH: ", auth.line);
  }
  PS_TRY(client.send("MODELS\n"));
  PS_ASSIGN_OR_RETURN(Reply reply, client.read_reply());
  if (!reply.ok) return unavailable("MODELS: ", reply.line);
  std::vector<std::string> names;
  std::stringstream lines(reply.payload);
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.starts_with("name=")) continue;
    names.push_back(line.substr(5, line.find(' ') - 5));
  }
  if (names.empty()) return unavailable("the server has no models");
  return names;
}

constexpr const char* kLoadUsage = R"(Usage:
  psnc [--server ADDR] [--token T] load [options]
      Drives a pipeswitchd on loopback with many concurrent connections and checks every reply.
Options:
  --connections N     concurrent connections (default 200)
  --requests N        requests issued at most, INFER, TRAIN and STOP together (default 10000)
  --duration S        no new request after S seconds (default 60)
  --timeout S         a request unanswered for S seconds is lost (default 30)
  --models LIST       MODEL[:BATCH],... picked at random (default: every model MODELS lists)
  --batch N           the batch of entries without one (default 1)
  --depth D           requests in flight per connection (pipelining; default 1)
  --disconnect P      per request, the probability of cutting the connection instead: after
                      half a line, inside a payload, or with replies due (default 0)
  --train P           per request, the probability of TRAIN MODEL steps=--train-steps instead;
                      a started job is stopped with STOP next (default 0). A server without
                      training answers ERR UNSUPPORTED: counted as a proper error
  --train-steps N     (default 10)
  --reference MODEL:BATCH=CHECKSUM   the expected checksum (repeatable); otherwise the first
                      reply for each MODEL:BATCH is the reference
  --server-pid PID    read the server's RSS from /proc/PID/status (else from STATS)
  --seed N            the random choices' seed (default 1)
Only loopback servers (127.0.0.0/8, ::1): this is a load generator.
Exit status: 0 when no request was lost, no checksum differed and every reply was well formed;
1 otherwise; 2 for bad arguments.
)";

}  // namespace

std::string format_load_report(const LoadOptions& o, const LoadReport& r) {
  std::ostringstream s;
  s << "load: " << o.server.host << ":" << o.server.port << ", " << o.connections
    << " connections, depth " << o.depth << ", at most " << o.requests << " requests and "
    << fixed(static_cast<double>(o.duration.count()) / 1000, 1) << " s, targets";
  for (const LoadTarget& t : o.targets) s << " " << t.key();
  s << "\n";
  s << "sent " << r.sent << " (infer " << r.sent_infer << ", train " << r.sent_train << ", stop "
    << r.sent_stop << "), ok " << r.ok << ", failed " << r.failed;
  if (!r.error_codes.empty()) {
    s << " (";
    bool first = true;
    for (const auto& [code, n] : r.error_codes) {
      s << (first ? "" : ", ") << code << " " << n;
      first = false;
    }
    s << ")";
  }
  s << ", abandoned " << r.abandoned << ", lost " << r.lost << ", checksum mismatches "
    << r.mismatches << ", bad replies " << r.bad << "\n";
  std::vector<double> sorted = r.latencies_ms;
  std::sort(sorted.begin(), sorted.end());
  s << "latency (OK inference, send to reply) p50=" << fixed(percentile(sorted, 0.5))
    << " ms p90=" << fixed(percentile(sorted, 0.9)) << " ms p99=" << fixed(percentile(sorted, 0.99))
    << " ms max=" << fixed(sorted.empty() ? 0 : sorted.back()) << " ms; "
    << fixed(r.seconds > 0 ? static_cast<double>(r.ok) / r.seconds : 0, 1) << " ok/s over "
    << fixed(r.seconds, 2) << " s\n";
  s << "connections opened " << r.connections_opened << ", cut on purpose " << r.disconnects
    << ", refused BUSY " << r.refused_busy << ", connect failures " << r.connect_failures << "\n";
  if (r.rss_source == "unknown") {
    s << "server rss unknown (give --server-pid)\n";
  } else {
    s << "server rss start " << r.rss_start / 1024 << " KiB, end " << r.rss_end / 1024 << " KiB ("
      << r.rss_source << ")\n";
  }
  for (const auto& [key, checksum] : r.checksums) {
    s << "checksum " << key << " " << checksum
      << (o.references.count(key) ? " (reference)" : " (first reply)") << "\n";
  }
  for (const std::string& p : r.problems) s << "problem: " << p << "\n";
  if (r.passed()) {
    s << "result: PASS\n";
  } else {
    s << "result: FAIL (";
    std::vector<std::string> why;
    if (r.lost) why.push_back(str_cat(r.lost, " lost"));
    if (r.mismatches) why.push_back(str_cat(r.mismatches, " checksum mismatches"));
    if (r.bad) why.push_back(str_cat(r.bad, " bad replies"));
    if (r.connect_failures) why.push_back(str_cat(r.connect_failures, " connect failures"));
    for (size_t k = 0; k < why.size(); ++k) s << (k ? ", " : "") << why[k];
    s << ")\n";
  }
  return s.str();
}

int load_main(std::string server, std::string token, std::span<const std::string> args,
              std::ostream& out, std::ostream& err) {
  LoadOptions o;
  std::string models;
  uint32_t batch = 1;
  bool help = false;
  auto parse = [&]() -> Status {
    for (size_t i = 0; i < args.size(); ++i) {
      const std::string& arg = args[i];
      auto value = [&]() -> Result<std::string> {
        if (i + 1 >= args.size()) return invalid_argument(arg, " needs a value");
        return args[++i];
      };
      if (arg == "--help" || arg == "-h") {
        help = true;
      } else if (arg == "--server") {
        PS_ASSIGN_OR_RETURN(server, value());
      } else if (arg == "--token") {
        PS_ASSIGN_OR_RETURN(token, value());
      } else if (arg == "--connections") {
        PS_ASSIGN_OR_RETURN(std::string v, value());
        PS_ASSIGN_OR_RETURN(uint64_t n, number(arg, v, 1, kMaxConnections));
        o.connections = static_cast<uint32_t>(n);
      } else if (arg == "--requests") {
        PS_ASSIGN_OR_RETURN(std::string v, value());
        PS_ASSIGN_OR_RETURN(o.requests, number(arg, v, 1, kMaxRequests));
      } else if (arg == "--duration" || arg == "--timeout") {
        PS_ASSIGN_OR_RETURN(std::string v, value());
        PS_ASSIGN_OR_RETURN(uint64_t s, number(arg, v, 1, 86400));
        (arg == "--duration" ? o.duration : o.reply_timeout) = std::chrono::seconds(s);
      } else if (arg == "--models") {
        PS_ASSIGN_OR_RETURN(models, value());
      } else if (arg == "--batch") {
        PS_ASSIGN_OR_RETURN(std::string v, value());
        PS_ASSIGN_OR_RETURN(uint64_t n, number(arg, v, 1, 4096));
        batch = static_cast<uint32_t>(n);
      } else if (arg == "--depth") {
        PS_ASSIGN_OR_RETURN(std::string v, value());
        PS_ASSIGN_OR_RETURN(uint64_t n, number(arg, v, 1, 1024));
        o.depth = static_cast<uint32_t>(n);
      } else if (arg == "--disconnect" || arg == "--train") {
        PS_ASSIGN_OR_RETURN(std::string v, value());
        PS_ASSIGN_OR_RETURN(double p, probability(arg, v));
        (arg == "--disconnect" ? o.disconnect : o.train) = p;
      } else if (arg == "--train-steps") {
        PS_ASSIGN_OR_RETURN(std::string v, value());
        PS_ASSIGN_OR_RETURN(o.train_steps, number(arg, v, 1, 1'000'000'000'000));
      } else if (arg == "--reference") {
        PS_ASSIGN_OR_RETURN(std::string v, value());
        const size_t eq = v.find('=');
        const std::string key = v.substr(0, eq),
                          sum = eq == std::string::npos ? "" : v.substr(eq + 1);
        if (key.find(':') == std::string::npos || !is_checksum(sum)) {
          return invalid_argument("--reference '", v, "': expected MODEL:BATCH=<16 hex digits>");
        }
        o.references[key] = sum;
      } else if (arg == "--server-pid") {
        PS_ASSIGN_OR_RETURN(std::string v, value());
        PS_ASSIGN_OR_RETURN(uint64_t pid, number(arg, v, 1, 1u << 30));
        o.server_pid = static_cast<pid_t>(pid);
      } else if (arg == "--seed") {
        PS_ASSIGN_OR_RETURN(std::string v, value());
        PS_ASSIGN_OR_RETURN(o.seed, number(arg, v, 0, UINT64_MAX));
      } else {
        return invalid_argument("load: unexpected argument '", arg, "'");
      }
    }
    if (o.disconnect + o.train > 1) {
      return invalid_argument("--disconnect and --train add up to more than 1");
    }
    PS_ASSIGN_OR_RETURN(o.server, parse_host_port(server));
    PS_TRY(check_loopback(o.server));
    o.token = token;
    if (!models.empty()) {
      PS_ASSIGN_OR_RETURN(o.targets, parse_targets(models, batch));
    }
    return Status::OK();
  };
  const Status parsed = parse();
  if (help) {
    out << kLoadUsage;
    return 0;
  }
  if (!parsed.ok()) {
    const Status& s = parsed;
    err << "psnc: " << s.message() << "\nTry 'psnc load --help'.\n";
    return 2;
  }
  if (o.targets.empty()) {
    auto names = list_models(o);
    if (!names.ok()) {
      err << "psnc: " << names.status().message() << "\n";
      return 1;
    }
    for (const std::string& name : *names) o.targets.push_back(LoadTarget{name, batch});
  }
  auto report = run_load(o);
  if (!report.ok()) {
    err << "psnc: " << report.status().message() << "\n";
    return 1;
  }
  out << format_load_report(o, *report);
  return report->passed() ? 0 : 1;
}

}  // namespace ps::psnc
