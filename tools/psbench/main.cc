// psbench: the project's benchmarks, one subcommand each.
//
// Every subcommand starts without a driver or GPU and says so in one line (exit status 1).
#include <cstdio>
#include <string_view>
#include <vector>

#include "tools/psbench/copy_bench.h"
#include "tools/psbench/infer_bench.h"
#include "tools/psbench/parallel_bench.h"
#include "tools/psbench/train_bench.h"

namespace {

struct Subcommand {
  std::string_view name;
  std::string_view summary;
  int (*run)(const std::vector<std::string_view>& args);
};

constexpr Subcommand kSubcommands[] = {
    {"copy", "host<->device copy bandwidth into the device pool, and the fixed cost per copy",
     ps::psbench::copy_main},
    {"infer", "resident-model inference latency of a .psm on the GPU executor (+ profile)",
     ps::psbench::infer_main},
    {"parallel", "a switch through several GPUs' host links at once vs one link and resident",
     ps::psbench::parallel_main},
    {"train", "GpuTrainer steps of a training-mode .psm: loss trajectory, ms per step, chunks",
     ps::psbench::train_main},
};

void print_usage(std::FILE* out) {
  std::fprintf(out,
               "usage: psbench <subcommand> [options]   (psbench <subcommand> --help)\n\n"
               "subcommands:\n");
  for (const Subcommand& s : kSubcommands) {
    std::fprintf(out, "  %-10.*s %.*s\n", static_cast<int>(s.name.size()), s.name.data(),
                 static_cast<int>(s.summary.size()), s.summary.data());
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    print_usage(stderr);
    return 2;
  }
  const std::string_view command = argv[1];
  if (command == "--help" || command == "-h" || command == "help") {
    print_usage(stdout);
    return 0;
  }
  const std::vector<std::string_view> args(argv + 2, argv + argc);
  for (const Subcommand& s : kSubcommands) {
    if (s.name == command) return s.run(args);
  }
  std::fprintf(stderr, "psbench: unknown subcommand '%s' (see psbench --help)\n", argv[1]);
  return 2;
}
