// pipeswitchd's command line.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "reactor/backend_factory.h"
#include "reactor/log.h"
#include "reactor/server.h"

namespace ps::pipeswitchd {

struct Options {
  bool help = false;
  std::vector<std::string> listen;  // default {"127.0.0.1:12345"}
  std::optional<std::string> metrics_listen;
  std::string models_dir;
  std::string checkpoints_dir;  // training checkpoints (created at start-up); empty: none
  reactor::TrainingPolicy training = reactor::TrainingPolicy::kYield;
  bool zoo = false;
  std::vector<std::string> zoo_models;  // empty with zoo: the device's default set
  uint32_t zoo_batch = 1;
  uint32_t zoo_seq = 16;
  // auto: GPU 0 when a GPU backend is built, else cpu; else reactor::parse_device's syntax.
  std::string device = "auto";
  std::string policy = "pipeswitch";
  uint64_t pool_bytes = 0;
  std::string precision = "tf32";
  std::string grouping = "timed";
  bool graphs = true;
  bool pipelining = true;
  bool host_read = true;
  bool reuse_region = true;
  uint32_t parallel_links = 1;  // parallel transmission over up to N GPUs' links (1: off)
  uint32_t threads = 0;
  std::optional<std::string> token;
  std::optional<std::string> admin_token;
  uint64_t max_payload = 64ull << 20;
  uint64_t max_line = 4096;
  uint32_t max_connections = 1024;
  uint32_t shutdown_timeout_s = 10;
  uint32_t write_timeout_s = 30;
  reactor::LogLevel log_level = reactor::LogLevel::kInfo;
};

// Parses the arguments (without the program name). INVALID_ARGUMENT names the flag and why.
Result<Options> parse_args(std::span<const std::string> args);

// The --help text.
std::string usage();

// "64M" -> 67108864; K, M, G, T are powers of 1024; plain digits are bytes.
Result<uint64_t> parse_size(std::string_view text);

// The zoo models --zoo loads when no list is given: the full models on a GPU, tiny ones on the CPU.
std::vector<std::string> default_zoo_models(bool gpu);

}  // namespace ps::pipeswitchd
