// `psbench parallel`: a model switch through several links at once (issue 10; DeepPlan's
// parallel transmission, docs/multi-gpu.md) against the one-link pipelined switch and the
// resident model, on the real executor.
//
// The target GPU (the first of --devices) copies some pieces of the weights over its own PCIe
// link; each further device copies others over its link into staging slots of its own memory
// and forwards them over NVLink (peer copies). --loopback adds links on the target GPU itself
// (its own extra streams and staging): no extra bandwidth, but the whole path runs on a machine
// with one GPU, so its overhead and its outputs can be checked there.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "models/gpu/op.h"

namespace ps::psbench {

struct ParallelOptions {
  std::string package;           // the .psm file
  std::vector<int> devices{0};   // the target first, then the peers
  uint32_t loopback = 0;         // extra links on the target itself
  std::vector<uint32_t> links;   // link counts to measure; empty: 1 to all
  uint64_t max_piece_bytes = uint64_t{8} << 20;
  uint32_t slots = 2;            // staging slots per peer link
  bool optimal = true;           // the one-link optimal grouping (else the package's groups)
  models::gpu::Precision precision = models::gpu::Precision::kTf32;
  int runs = 20;
  int warmup = 5;
  bool json = false;
};

// Parses the options after "parallel"; sets *help when --help (or -h) was given.
// Errors: kInvalidArgument naming the option and the bad value.
Result<ParallelOptions> parse_parallel_options(const std::vector<std::string_view>& args,
                                               bool* help);

void print_parallel_help(std::FILE* out);

// The subcommand's entry point: the process exit code (0 ok, 1 error, 2 usage, 3 a switch's
// outputs differ from the resident model's).
int parallel_main(const std::vector<std::string_view>& args);

}  // namespace ps::psbench
