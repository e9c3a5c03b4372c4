#include "tools/psnc/load.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>

#include "net/text_command.h"
#include "net/wire_error.h"

namespace ps::psnc {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxProblems = 20;
constexpr size_t kReadChunk = 65536;

enum class Kind { kAuth, kInfer, kTrain, kStop };

struct Pending {
  Kind kind;
  size_t target;  // index into options.targets (kInfer, kTrain)
  uint64_t job;   // kStop
  Clock::time_point sent;
};

// One connection slot: reconnects when its connection ends while work remains.
struct Connection {
  int fd = -1;
  bool connecting = false;
  bool replied = false;          // a reply has arrived on this connection
  bool refused = false;          // its first reply was ERR BUSY: the server turns it away
  std::string out;               // bytes not yet written
  std::string in;                // bytes read, not yet a whole reply
  std::deque<Pending> pending;   // requests sent, in order, awaiting replies
  std::deque<uint64_t> to_stop;  // training jobs started here, STOP not yet sent
};

uint64_t rss_from_proc(pid_t pid) {
  std::ifstream file("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(file, line)) {
    if (line.starts_with("VmRSS:")) return std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
  }
  return 0;
}

// rss_bytes= from STATS on a connection of its own; 0 when the server does not report it.
uint64_t rss_from_stats(const LoadOptions& o) {
  auto client = Client::connect(o.server, std::chrono::seconds(5));
  if (!client.ok()) return 0;
  client->set_timeout(std::chrono::seconds(10));
  if (!o.token.empty()) {
    if (!client->send("AUTH " + o.token + "\n").ok()) return 0;
    auto auth = client->read_reply();
    if (!auth.ok() || !auth->ok) return 0;
  }
  if (!client->send("STATS\n").ok()) return 0;
  auto stats = client->read_reply();
  if (!stats.ok() || !stats->ok) return 0;
  const size_t at = stats->payload.find("rss_bytes=");
  if (at == std::string::npos) return 0;
  return std::strtoull(stats->payload.c_str() + at + 10, nullptr, 10);
}

// The driver: one thread, one poll() loop over every connection.
class Driver {
 public:
  explicit Driver(const LoadOptions& o)
      : o_(o), rng_(o.seed), slots_(o.connections), retired_(o.connections, false) {}

  LoadReport run() {
    start_ = Clock::now();
    stop_issuing_ = start_ + o_.duration;
    hard_stop_ = stop_issuing_ + o_.reply_timeout;
    std::vector<pollfd> fds;
    std::vector<size_t> slot_of;
    for (;;) {
      const auto now = Clock::now();
      for (size_t i = 0; i < slots_.size(); ++i) {
        if (slots_[i].fd < 0 && !retired_[i] && can_issue(now)) open(i);
        if (slots_[i].fd >= 0 && !slots_[i].connecting) fill(i, now);
        Connection& c = slots_[i];
        if (c.fd >= 0 && !c.connecting && c.pending.empty() && c.out.empty() && !can_issue(now)) {
          close_fd(i);  // done: nothing due, nothing more to ask
        }
      }
      fds.clear();
      slot_of.clear();
      for (size_t i = 0; i < slots_.size(); ++i) {
        const Connection& c = slots_[i];
        if (c.fd < 0) continue;
        short events = POLLIN;
        if (c.connecting || !c.out.empty()) events |= POLLOUT;
        fds.push_back({c.fd, events, 0});
        slot_of.push_back(i);
      }
      if (fds.empty()) break;  // nothing open and nothing more to issue
      if (now >= hard_stop_) {
        for (size_t i : slot_of) lose_all(i, "still unanswered when the run's time bound ended");
        break;
      }
      const int rc = ::poll(fds.data(), fds.size(), 50);
      if (rc < 0 && errno != EINTR) {
        problem(str_cat("poll: ", std::strerror(errno)));
        for (size_t i : slot_of) lose_all(i, "poll failed");
        break;
      }
      for (size_t k = 0; rc > 0 && k < fds.size(); ++k) {
        if (fds[k].revents != 0) on_event(slot_of[k], fds[k].revents);
      }
      check_timeouts(Clock::now());
    }
    report_.seconds = std::chrono::duration<double>(Clock::now() - start_).count();
    return std::move(report_);
  }

 private:
  bool can_issue(Clock::time_point now) const {
    return report_.sent < o_.requests && now < stop_issuing_;
  }

  void problem(std::string text) {
    if (report_.problems.size() < kMaxProblems) report_.problems.push_back(std::move(text));
  }

  void open(size_t i) {
    Connection& c = slots_[i];
    c = Connection{};
    sockaddr_storage storage{};
    socklen_t size = 0;
    auto* in = reinterpret_cast<sockaddr_in*>(&storage);
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
    if (inet_pton(AF_INET, o_.server.host.c_str(), &in->sin_addr) == 1) {
      in->sin_family = AF_INET;
      in->sin_port = htons(o_.server.port);
      size = sizeof(sockaddr_in);
    } else {
      PS_CHECK(inet_pton(AF_INET6, o_.server.host.c_str(), &in6->sin6_addr) == 1);
      in6->sin6_family = AF_INET6;
      in6->sin6_port = htons(o_.server.port);
      size = sizeof(sockaddr_in6);
    }
    const int fd = ::socket(storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      connect_failed(i, str_cat("socket: ", std::strerror(errno)));
      return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c.fd = fd;
    ++report_.connections_opened;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&storage), size) != 0) {
      if (errno != EINPROGRESS) {
        connect_failed(i, str_cat("connect: ", std::strerror(errno)));
        return;
      }
      c.connecting = true;
    }
    if (!o_.token.empty()) queue(i, Pending{Kind::kAuth, 0, 0, Clock::now()}, "AUTH " + o_.token);
  }

  // The slot is retired: a server that refuses connections is not hammered until the deadline.
  void connect_failed(size_t i, const std::string& why) {
    ++report_.connect_failures;
    retired_[i] = true;
    problem(str_cat("connection slot ", i, ": ", why));
    close_fd(i);
  }

  void close_fd(size_t i) {
    Connection& c = slots_[i];
    if (c.fd >= 0) ::close(c.fd);
    c.fd = -1;
    c.connecting = false;
  }

  void queue(size_t i, Pending p, const std::string& line) {
    Connection& c = slots_[i];
    c.out += line;
    c.out += '\n';
    c.pending.push_back(p);
  }

  // Issues requests on connection i until it has `depth` in flight or the budget is spent.
  void fill(size_t i, Clock::time_point now) {
    Connection& c = slots_[i];
    std::uniform_real_distribution<double> unit(0, 1);
    std::uniform_int_distribution<size_t> pick(0, o_.targets.size() - 1);
    // A started training job is stopped even when the budget is spent.
    while (c.fd >= 0 && c.pending.size() < o_.depth && !c.to_stop.empty()) {
      const uint64_t job = c.to_stop.front();
      c.to_stop.pop_front();
      ++report_.sent;
      ++report_.sent_stop;
      queue(i, Pending{Kind::kStop, 0, job, now}, str_cat("STOP ", job));
    }
    while (c.fd >= 0 && c.pending.size() < o_.depth && can_issue(now)) {
      ++report_.sent;
      const double roll = unit(rng_);
      const size_t t = pick(rng_);
      const LoadTarget& target = o_.targets[t];
      if (roll < o_.disconnect) {
        --report_.sent;  // this request is cut, never whole: not sent
        abandon(i, target);
        return;
      }
      if (roll < o_.disconnect + o_.train) {
        ++report_.sent_train;
        queue(i, Pending{Kind::kTrain, t, 0, now},
              str_cat("TRAIN ", target.model, " batch=", target.batch, " steps=", o_.train_steps));
      } else {
        ++report_.sent_infer;
        queue(i, Pending{Kind::kInfer, t, 0, now},
              str_cat("INFER ", target.model, " batch=", target.batch));
      }
    }
    flush(i);
  }

  // Cuts connection i on purpose, in one of three places: after half a request line, inside a
  // declared payload, or simply with replies still due (mid-reply when some are on the way).
  void abandon(size_t i, const LoadTarget& target) {
    Connection& c = slots_[i];
    std::uniform_int_distribution<int> how(0, 2);
    const std::string line = str_cat("INFER ", target.model, " batch=", target.batch);
    switch (how(rng_)) {
      case 0:
        c.out += line.substr(0, line.size() / 2);
        break;
      case 1:
        c.out += str_cat("INFER ", target.model, " bytes=1000\n", std::string(100, 'x'));
        break;
      default:
        break;
    }
    flush(i);
    report_.abandoned += c.pending.size();
    ++report_.disconnects;
    close_fd(i);
  }

  void flush(size_t i) {
    Connection& c = slots_[i];
    while (c.fd >= 0 && !c.connecting && !c.out.empty()) {
      const ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return;
        closed(i, str_cat("send: ", std::strerror(errno)));
        return;
      }
      c.out.erase(0, static_cast<size_t>(n));
    }
  }

  void on_event(size_t i, short revents) {
    Connection& c = slots_[i];
    if (c.connecting) {
      int error = 0;
      socklen_t len = sizeof(error);
      ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &error, &len);
      if (error != 0) {
        c.pending.clear();  // at most the AUTH, which is not counted as a request
        connect_failed(i, str_cat("connect: ", std::strerror(error)));
        return;
      }
      if (!(revents & POLLOUT)) return;
      c.connecting = false;
    }
    if (revents & POLLOUT) flush(i);
    if (c.fd >= 0 && (revents & (POLLIN | POLLHUP | POLLERR))) read(i);
  }

  void read(size_t i) {
    Connection& c = slots_[i];
    char chunk[kReadChunk];
    const ssize_t n = ::recv(c.fd, chunk, sizeof(chunk), 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) return;
      closed(i, str_cat("recv: ", std::strerror(errno)));
      return;
    }
    if (n == 0) {
      closed(i, "the server closed the connection");
      return;
    }
    c.in.append(chunk, static_cast<size_t>(n));
    parse_replies(i);
  }

  void parse_replies(size_t i) {
    Connection& c = slots_[i];
    for (;;) {
      const size_t newline = c.in.find('\n');
      if (newline == std::string::npos) return;
      auto reply = parse_status_line(std::string_view(c.in).substr(0, newline));
      if (!reply.ok()) {
        ++report_.bad;
        problem(str_cat("connection slot ", i, ": ", reply.status().message()));
        report_.lost += c.pending.size();
        c.pending.clear();
        close_fd(i);
        return;
      }
      size_t total = newline + 1;
      if (const std::string bytes = reply->field("bytes"); reply->ok && !bytes.empty()) {
        auto k = net::parse_decimal_u64(bytes);
        if (!k.ok()) {
          ++report_.bad;
          problem(str_cat("bad bytes= in '", reply->line, "'"));
          report_.lost += c.pending.size();
          c.pending.clear();
          close_fd(i);
          return;
        }
        if (c.in.size() < total + *k) return;  // the payload is not all here yet
        total += *k;
      }
      c.in.erase(0, total);
      on_reply(i, *reply);
      if (c.fd < 0) return;
    }
  }

  void on_reply(size_t i, const Reply& reply) {
    Connection& c = slots_[i];
    const bool first = !c.replied;
    c.replied = true;
    if (c.pending.empty()) {
      if (first && !reply.ok && reply.code == "BUSY") {
        c.refused = true;  // turned away before we asked anything; the server closes next
        return;
      }
      ++report_.bad;
      problem(str_cat("a reply nobody asked for: '", reply.line.substr(0, 120), "'"));
      return;
    }
    const Pending p = c.pending.front();
    c.pending.pop_front();
    // Only a first reply ERR BUSY followed by the close is a refused connection; a BUSY (queue
    // full) that more replies follow is an ordinary answer.
    c.refused = first && !reply.ok && reply.code == "BUSY";
    if (!reply.ok) {
      if (!net::error_code_from_name(reply.code).has_value()) {
        ++report_.bad;
        problem(str_cat("not an error code of the protocol: '", reply.line.substr(0, 120), "'"));
        return;
      }
      if (p.kind == Kind::kAuth) {
        ++report_.bad;
        problem(str_cat("AUTH refused: '", reply.line.substr(0, 120), "'"));
        return;
      }
      ++report_.failed;
      ++report_.error_codes[reply.code];
      return;
    }
    switch (p.kind) {
      case Kind::kAuth:
        return;
      case Kind::kStop:
        ++report_.ok;
        return;
      case Kind::kTrain: {
        auto job = net::parse_decimal_u64(reply.field("job"));
        if (!job.ok()) {
          ++report_.bad;
          problem(str_cat("TRAIN reply without a job id: '", reply.line.substr(0, 120), "'"));
          return;
        }
        ++report_.ok;
        c.to_stop.push_back(*job);
        return;
      }
      case Kind::kInfer:
        check_infer(p, reply);
        return;
    }
  }

  void check_infer(const Pending& p, const Reply& reply) {
    const LoadTarget& target = o_.targets[p.target];
    const std::string checksum = reply.field("checksum");
    if (reply.field("model") != target.model ||
        reply.field("batch") != std::to_string(target.batch) || !is_checksum(checksum)) {
      ++report_.bad;
      problem(str_cat("INFER ", target.key(), " answered '", reply.line.substr(0, 160), "'"));
      return;
    }
    const std::string key = target.key();
    auto [it, inserted] = report_.checksums.emplace(key, checksum);
    if (inserted) {
      if (auto ref = o_.references.find(key); ref != o_.references.end()) it->second = ref->second;
    }
    if (checksum != it->second) {
      ++report_.mismatches;
      problem(str_cat("INFER ", key, ": checksum ", checksum, ", expected ", it->second));
      return;
    }
    ++report_.ok;
    report_.latencies_ms.push_back(
        std::chrono::duration<double, std::milli>(Clock::now() - p.sent).count());
  }

  // The connection ended without the driver cutting it.
  void closed(size_t i, const std::string& why) {
    Connection& c = slots_[i];
    if (c.refused) {
      // ERR BUSY first, then the close: the server turned the connection away, and said so.
      ++report_.refused_busy;
      report_.failed += c.pending.size();
      report_.error_codes["BUSY"] += c.pending.size();
      c.pending.clear();
    }
    lose_all(i, why);
  }

  void lose_all(size_t i, const std::string& why) {
    Connection& c = slots_[i];
    if (!c.pending.empty()) {
      report_.lost += c.pending.size();
      problem(str_cat("connection slot ", i, ": ", c.pending.size(), " request(s) lost: ", why));
      c.pending.clear();
    }
    close_fd(i);
  }

  void check_timeouts(Clock::time_point now) {
    for (size_t i = 0; i < slots_.size(); ++i) {
      const Connection& c = slots_[i];
      if (c.fd >= 0 && !c.pending.empty() && now - c.pending.front().sent > o_.reply_timeout) {
        lose_all(i, str_cat("no reply within ", o_.reply_timeout.count(), " ms"));
      }
    }
  }

  const LoadOptions& o_;
  std::mt19937_64 rng_;
  std::vector<Connection> slots_;
  std::vector<bool> retired_;  // a connect failed in this slot
  LoadReport report_;
  Clock::time_point start_, stop_issuing_, hard_stop_;
};

}  // namespace

bool is_checksum(std::string_view text) {
  return text.size() == 16 &&
         std::all_of(text.begin(), text.end(), [](char c) { return std::isxdigit(c) != 0; });
}

Status check_loopback(const HostPort& address) {
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET, address.host.c_str(), &v4) == 1) {
    if ((ntohl(v4.s_addr) >> 24) == 127) return Status::OK();
  } else if (inet_pton(AF_INET6, address.host.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return Status::OK();
    if (IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127) return Status::OK();
  }
  return invalid_argument("'", address.host,
                          "' is not a loopback address: psnc load drives loopback servers only");
}

Result<LoadReport> run_load(const LoadOptions& options) {
  PS_CHECK(!options.targets.empty() && options.depth >= 1 && options.connections >= 1);
  PS_TRY(check_loopback(options.server));
  // Every connection is a descriptor; raise the soft limit as far as the hard one allows.
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    const rlim_t wanted = options.connections + 64;
    if (limit.rlim_cur < wanted) {
      limit.rlim_cur = std::min(wanted, limit.rlim_max);
      ::setrlimit(RLIMIT_NOFILE, &limit);
    }
    if (limit.rlim_cur < wanted) {
      return resource_exhausted(options.connections, " connections need ", wanted,
                                " file descriptors; the limit is ", limit.rlim_cur);
    }
  }
  auto rss = [&options](std::string* source) -> uint64_t {
    if (options.server_pid > 0) {
      *source = str_cat("/proc/", options.server_pid, "/status");
      return rss_from_proc(options.server_pid);
    }
    *source = "STATS";
    return rss_from_stats(options);
  };
  std::string source;
  const uint64_t rss_start = rss(&source);
  LoadReport report = Driver(options).run();
  report.rss_start = rss_start;
  report.rss_end = rss(&report.rss_source);
  if (report.rss_start == 0 && report.rss_end == 0) report.rss_source = "unknown";
  return report;
}

}  // namespace ps::psnc
