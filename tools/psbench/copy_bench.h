// `psbench copy`: host<->device copy bandwidth into a DevicePool, and the fixed cost of one copy
// plus its event record (the two numbers the layer-grouping transfer model is built from).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace ps::psbench {

struct CopyOptions {
  int device = 0;
  uint64_t min_size = uint64_t{1} << 20;        // 1 MiB
  uint64_t max_size = uint64_t{1} << 30;        // 1 GiB
  uint64_t pageable_max = uint64_t{256} << 20;  // the pageable column stops here
  int repeat = 10;                              // timed copies per size (median reported)
  int tiny_copies = 4096;                       // 4-byte copies for the fixed-cost measurement
};

// The target of the verdict line: pinned host-to-device bandwidth at kTargetSize.
inline constexpr uint64_t kTargetSize = uint64_t{256} << 20;
inline constexpr double kTargetGBps = 45.0;

// Parses the options after "copy"; sets *help when --help (or -h) was given.
// Errors: kInvalidArgument naming the option and the bad value.
Result<CopyOptions> parse_copy_options(const std::vector<std::string_view>& args, bool* help);

void print_copy_help(std::FILE* out);

// Runs the benchmark and prints its table to stdout. Errors (no driver or GPU, out of memory,
// data that does not survive the copy) come back as a Status naming the cause.
Status run_copy(const CopyOptions& options);

// The subcommand's entry point: returns the process exit code (0 ok, 1 error, 2 usage).
int copy_main(const std::vector<std::string_view>& args);

}  // namespace ps::psbench
