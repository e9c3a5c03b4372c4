// psnc load: a bounded load and soak driver for a pipeswitchd on loopback. Many concurrent
// text-protocol connections send INFER (and optionally TRAIN/STOP) requests; every reply is
// checked (status line, echoed model and batch, the output checksum against the first reply for
// the same model and batch or a given reference), and every request must be answered: a request
// whose connection the server closes, or that stays unanswered past the reply timeout, is lost.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "tools/psnc/client.h"

namespace ps::psnc {

// One kind of inference request: INFER <model> batch=<batch>.
struct LoadTarget {
  std::string model;
  uint32_t batch = 1;
  std::string key() const { return model + ":" + std::to_string(batch); }
};

struct LoadOptions {
  HostPort server;
  std::string token;                          // AUTH first on every connection when not empty
  uint32_t connections = 200;                 // concurrent connections (each slot reconnects)
  uint64_t requests = 10000;                  // requests issued at most (INFER, TRAIN and STOP)
  std::chrono::milliseconds duration{60000};  // no new request after this
  std::chrono::milliseconds reply_timeout{30000};  // unanswered this long: lost
  std::vector<LoadTarget> targets;                 // cycled at random; not empty
  uint32_t depth = 1;                              // requests in flight per connection (pipelining)
  double disconnect = 0;  // per issued request: abandon the connection instead
  double train = 0;       // per issued request: TRAIN (then STOP its job) instead
  uint64_t train_steps = 10;
  std::map<std::string, std::string> references;  // LoadTarget::key() -> checksum (16 hex)
  pid_t server_pid = 0;                           // > 0: RSS from /proc/PID/status, else from STATS
  uint64_t seed = 1;
};

struct LoadReport {
  uint64_t sent = 0;  // requests written (or queued to be written) on a connection
  uint64_t sent_infer = 0, sent_train = 0, sent_stop = 0;
  uint64_t ok = 0;      // answered OK (and, for INFER, checked)
  uint64_t failed = 0;  // answered with a well-formed ERR <CODE> of the protocol's list
  std::map<std::string, uint64_t> error_codes;
  uint64_t abandoned = 0;   // in flight on a connection the driver cut on purpose
  uint64_t lost = 0;        // never answered: must be 0
  uint64_t mismatches = 0;  // INFER checksum differs from the reference: must be 0
  uint64_t bad = 0;         // an unparsable, unexpected or inconsistent reply: must be 0
  uint64_t connections_opened = 0, disconnects = 0, refused_busy = 0, connect_failures = 0;
  std::vector<double> latencies_ms;  // OK INFER replies, send to reply
  double seconds = 0;
  uint64_t rss_start = 0, rss_end = 0;           // bytes; 0 when unknown
  std::string rss_source;                        // "/proc/PID/status", "STATS" or "unknown"
  std::map<std::string, std::string> checksums;  // LoadTarget::key() -> checksum used
  std::vector<std::string> problems;             // the first few lost/mismatch/bad, described

  bool passed() const { return lost == 0 && mismatches == 0 && bad == 0 && connect_failures == 0; }
};

// Runs the load. Preconditions: options.server is a loopback address (check_loopback),
// options.targets is not empty, 1 <= depth, 1 <= connections. Errors only when the run cannot
// start (no file descriptors for that many connections); everything found while it runs is in
// the report.
Result<LoadReport> run_load(const LoadOptions& options);

// True for a checksum as replies carry it: 16 hex digits.
bool is_checksum(std::string_view text);

// INVALID_ARGUMENT unless `address` is 127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104.
Status check_loopback(const HostPort& address);

// The report as text, ending with "result: PASS" or "result: FAIL (...)".
std::string format_load_report(const LoadOptions& options, const LoadReport& report);

// `psnc load ...`: parses `args` (what follows "load"; --server and --token given before it
// arrive in server/token), runs, prints the report on `out`. Exit status: 0 when passed, 1 when
// not, 2 for bad arguments (a non-loopback server included).
int load_main(std::string server, std::string token, std::span<const std::string> args,
              std::ostream& out, std::ostream& err);

}  // namespace ps::psnc
