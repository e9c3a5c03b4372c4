// psnc: the netcat-style client of pipeswitchd, behind main() so tests can run its parts.
//
//   psnc [HOST:]PORT                      stdin to the server, replies to stdout (like nc)
//   psnc [options] infer MODEL [...]      inference requests with latencies and a summary
//   psnc [options] train MODEL [...]      starts a training job
//   --pipeswitch                          the original binary protocol instead of the text one
#pragma once

#include <ostream>
#include <span>
#include <string>
#include <vector>

namespace ps::psnc {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // a request failed or the server could not be reached
inline constexpr int kExitUsage = 2;

// Runs psnc with `args` (without the program name). Bare mode reads fd 0 and writes fd 1; the
// subcommands write to `out` and `err`. Returns the exit status.
int run(std::span<const std::string> args, std::ostream& out, std::ostream& err);

// Latency summary of `millis` (non-empty): "mean=.. p50=.. p99=.. min=.. max=.." in ms.
std::string summarize_latencies(std::vector<double> millis);

}  // namespace ps::psnc
