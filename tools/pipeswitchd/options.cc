#include "tools/pipeswitchd/options.h"

#include <charconv>

#include "models/gpu/copy_groups.h"
#include "net/text_command.h"

namespace ps::pipeswitchd {
namespace {

Result<uint64_t> parse_number(std::string_view flag, std::string_view text, uint64_t min,
                              uint64_t max) {
  auto value = net::parse_decimal_u64(text);
  if (!value.ok()) return invalid_argument(flag, " '", text, "': ", value.status().message());
  if (*value < min || *value > max) {
    return invalid_argument(flag, " ", *value, " is outside ", min, "..", max);
  }
  return *value;
}

std::vector<std::string> split_commas(std::string_view text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    const size_t end = comma == std::string_view::npos ? text.size() : comma;
    if (end > start) out.emplace_back(text.substr(start, end - start));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace

std::vector<std::string> default_zoo_models(bool gpu) {
  if (gpu) return {"resnet152", "inception_v3", "bert_base"};
  return {"resnet_tiny", "inception_tiny", "bert_tiny"};
}

Result<uint64_t> parse_size(std::string_view text) {
  if (text.empty()) return invalid_argument("empty size");
  uint64_t scale = 1;
  const char last = text.back();
  const std::string_view suffixes = "KMGT";
  if (const size_t at = suffixes.find(static_cast<char>(last & ~0x20));
      at != std::string_view::npos) {
    scale = uint64_t{1} << (10 * (at + 1));
    text.remove_suffix(1);
  }
  auto value = net::parse_decimal_u64(text);
  if (!value.ok()) return value.status();
  if (*value > UINT64_MAX / scale) return invalid_argument("size too large");
  return *value * scale;
}

std::string usage() {
  return R"(Usage: pipeswitchd [options]

The PipeSwitch server: serves inference requests and training jobs on one device or several,
over a text protocol (try: nc 127.0.0.1 12345, then HELP) and the original PipeSwitch binary
protocol, on the same port.

Models:
  --zoo[=LIST]            build zoo models at start-up (default list: resnet152,inception_v3,
                          bert_base on a GPU; resnet_tiny,inception_tiny,bert_tiny on the CPU)
  --zoo-batch N           native batch of the zoo models (default 1; requests may ask for
                          any multiple)
  --zoo-seq N             sequence length of the BERT zoo models (default 16)
  --models DIR            load every .psm package in DIR (named after the file); LOAD reads
                          packages only from DIR
Device:
  --device D              cpu: the CPU reference executor; N: GPU N; auto: GPU 0 if the GPU
                          backend is built and finds a GPU, else the CPU (default auto);
                          several GPUs: a list (0,1,3) or all (every GPU the driver shows):
                          models are registered on each, a request goes to a GPU where its
                          model is resident, else to the least loaded, a training job to one
                          GPU (TRAIN device=N); cpu,cpu,...: a simulated set of CPU devices,
                          for testing the multi-device path without GPUs
  --policy P              switching policy: pipeswitch, cache, ready, stop-and-start,
                          kill-restart, no-pool, pageable, managed (default pipeswitch)
  --pool-size SIZE        GPU memory pool, e.g. 12G (default: 8G or 80% of the free GPU
                          memory, the smaller)
  --precision P           GPU plans in tf32 (TF32 convolutions and matrix products, PyTorch's
                          default for convolutions) or strict fp32 (default tf32)
  --grouping G            copy groups of a switch: timed (optimal, blocks and per-layer each
                          timed as a switch at registration, the fastest kept; pipeswitch
                          policy, elsewhere optimal), optimal (predicted from per-layer times
                          measured at registration and the measured link), package (as
                          imported), per-layer, blocks (the original PipeSwitch's), whole
                          (default timed)
  --pipelining on|off     a switched-in model's layers start as their group arrives (on), or
                          after every group's copy (off: the ablation of figure 7) (default on)
  --host-read on|off      a switch leaves embedding tables (BERT's word embeddings) in pinned
                          host memory and the GPU reads only the rows a request uses, over
                          PCIe, instead of copying the whole table first; policies that evict
                          after the task with pinned weights (default on)
  --reuse-region on|off   pipeswitch: a request whose model is still in the switch region
                          (nothing switched in since its last request) runs without copying
                          it again; off: every request copies its model, as the original did
                          (default on)
  --parallel-links N      with several GPUs: a switch copies through its own PCIe link and
                          up to N-1 links that idle GPUs lend it (their copy engines stage the
                          pieces and forward them over NVLink), as DeepPlan; policies that
                          copy pinned weights group by group (default 1: off)
  --graphs on|off         replay each request as one CUDA graph (copies, events, layers) where
                          the weights' address is fixed (default on)
  --threads N             CPU backend worker threads, per simulated CPU device (default: one
                          per core, shared among them)
Training:
  --training yield|co-run yield: a training job pauses between two layers while inference
                          requests are pending and resumes by itself; co-run: it keeps running
                          beside them at a lower priority (default yield)
  --checkpoints DIR       training checkpoints are written and read only inside DIR (created
                          if missing): TRAIN ... checkpoint=FILE every=N resume=FILE; a job
                          saves when it stops and on shutdown. Without it jobs keep none
Network:
  --listen ADDR           HOST:PORT, [IPV6]:PORT or PORT; repeatable (default 127.0.0.1:12345);
                          port 0 picks a free port. A non-loopback address needs --token
  --metrics-listen ADDR   serve GET /metrics (Prometheus) and /healthz over HTTP on ADDR
  --token T               clients must send AUTH T first
  --admin-token T         the token LOAD and UNLOAD need (AUTH T)
  --max-payload SIZE      largest request payload (default 64M)
  --max-line N            longest command line in bytes (default 4096)
  --max-connections N     open connections at once (default 1024); more get ERR BUSY
  --shutdown-timeout S    seconds in-flight work gets on SIGINT/SIGTERM (default 10)
  --write-timeout S       close a client whose replies make no progress for S seconds
                          (it does not read them) (default 30)
Other:
  --log-level L           error, warn, info or debug (default info); the log goes to stderr
  --help                  this text
)";
}

Result<Options> parse_args(std::span<const std::string> args) {
  Options o;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i];
    std::optional<std::string> inline_value;
    if (flag.starts_with("--")) {
      if (const size_t eq = flag.find('='); eq != std::string::npos) {
        inline_value = flag.substr(eq + 1);
        flag.resize(eq);
      }
    }
    auto value = [&]() -> Result<std::string> {
      if (inline_value) return *inline_value;
      if (i + 1 >= args.size()) return invalid_argument(flag, " needs a value");
      return args[++i];
    };
    auto on_off = [&]() -> Result<bool> {
      PS_ASSIGN_OR_RETURN(const std::string v, value());
      if (v != "on" && v != "off") return invalid_argument(flag, " '", v, "': expected on or off");
      return v == "on";
    };
    if (flag == "--help" || flag == "-h") {
      o.help = true;
    } else if (flag == "--zoo") {
      o.zoo = true;
      if (inline_value) o.zoo_models = split_commas(*inline_value);
    } else if (flag == "--listen") {
      PS_ASSIGN_OR_RETURN(std::string v, value());
      o.listen.push_back(v);
    } else if (flag == "--metrics-listen") {
      PS_ASSIGN_OR_RETURN(o.metrics_listen, value());
    } else if (flag == "--models") {
      PS_ASSIGN_OR_RETURN(o.models_dir, value());
    } else if (flag == "--checkpoints") {
      PS_ASSIGN_OR_RETURN(o.checkpoints_dir, value());
      if (o.checkpoints_dir.empty()) return invalid_argument("--checkpoints needs a directory");
    } else if (flag == "--training") {
      PS_ASSIGN_OR_RETURN(const std::string v, value());
      PS_ASSIGN_OR_RETURN(o.training, reactor::parse_training_policy(v));
    } else if (flag == "--zoo-batch") {
      PS_ASSIGN_OR_RETURN(std::string v, value());
      PS_ASSIGN_OR_RETURN(uint64_t n, parse_number(flag, v, 1, reactor::kMaxBatch));
      o.zoo_batch = static_cast<uint32_t>(n);
    } else if (flag == "--zoo-seq") {
      PS_ASSIGN_OR_RETURN(std::string v, value());
      PS_ASSIGN_OR_RETURN(uint64_t n, parse_number(flag, v, 1, 512));
      o.zoo_seq = static_cast<uint32_t>(n);
    } else if (flag == "--device") {
      PS_ASSIGN_OR_RETURN(o.device, value());
      if (o.device != "auto") PS_TRY(reactor::parse_device(o.device).status());
    } else if (flag == "--policy") {
      PS_ASSIGN_OR_RETURN(o.policy, value());
      if (!reactor::is_known_policy(o.policy)) {
        return invalid_argument("--policy '", o.policy, "' is not a policy (see --help)");
      }
    } else if (flag == "--precision") {
      PS_ASSIGN_OR_RETURN(o.precision, value());
      if (o.precision != "tf32" && o.precision != "fp32") {
        return invalid_argument("--precision '", o.precision, "': expected tf32 or fp32");
      }
    } else if (flag == "--grouping") {
      PS_ASSIGN_OR_RETURN(o.grouping, value());
      PS_TRY(models::gpu::parse_grouping_choice(o.grouping).status());
    } else if (flag == "--pipelining") {
      PS_ASSIGN_OR_RETURN(o.pipelining, on_off());
    } else if (flag == "--host-read") {
      PS_ASSIGN_OR_RETURN(o.host_read, on_off());
    } else if (flag == "--reuse-region") {
      PS_ASSIGN_OR_RETURN(o.reuse_region, on_off());
    } else if (flag == "--graphs") {
      PS_ASSIGN_OR_RETURN(o.graphs, on_off());
    } else if (flag == "--pool-size") {
      PS_ASSIGN_OR_RETURN(std::string v, value());
      auto size = parse_size(v);
      if (!size.ok()) return invalid_argument("--pool-size '", v, "': ", size.status().message());
      o.pool_bytes = *size;
    } else if (flag == "--parallel-links") {
      PS_ASSIGN_OR_RETURN(std::string v, value());
      PS_ASSIGN_OR_RETURN(uint64_t n, parse_number(flag, v, 1, 16));
      o.parallel_links = static_cast<uint32_t>(n);
    } else if (flag == "--threads") {
      PS_ASSIGN_OR_RETURN(std::string v, value());
      PS_ASSIGN_OR_RETURN(uint64_t n, parse_number(flag, v, 1, 1024));
      o.threads = static_cast<uint32_t>(n);
    } else if (flag == "--token") {
      PS_ASSIGN_OR_RETURN(o.token, value());
    } else if (flag == "--admin-token") {
      PS_ASSIGN_OR_RETURN(o.admin_token, value());
    } else if (flag == "--max-payload") {
      PS_ASSIGN_OR_RETURN(std::string v, value());
      auto size = parse_size(v);
      if (!size.ok()) return invalid_argument("--max-payload '", v, "': ", size.status().message());
      o.max_payload = *size;
    } else if (flag == "--max-line") {
      PS_ASSIGN_OR_RETURN(std::string v, value());
      PS_ASSIGN_OR_RETURN(o.max_line, parse_number(flag, v, 16, 1 << 20));
    } else if (flag == "--max-connections") {
      PS_ASSIGN_OR_RETURN(std::string v, value());
      PS_ASSIGN_OR_RETURN(uint64_t n, parse_number(flag, v, 1, 1 << 20));
      o.max_connections = static_cast<uint32_t>(n);
    } else if (flag == "--shutdown-timeout") {
      PS_ASSIGN_OR_RETURN(std::string v, value());
      PS_ASSIGN_OR_RETURN(uint64_t n, parse_number(flag, v, 1, 3600));
      o.shutdown_timeout_s = static_cast<uint32_t>(n);
    } else if (flag == "--write-timeout") {
      PS_ASSIGN_OR_RETURN(std::string v, value());
      PS_ASSIGN_OR_RETURN(uint64_t n, parse_number(flag, v, 1, 3600));
      o.write_timeout_s = static_cast<uint32_t>(n);
    } else if (flag == "--log-level") {
      PS_ASSIGN_OR_RETURN(std::string v, value());
      PS_ASSIGN_OR_RETURN(o.log_level, reactor::parse_log_level(v));
    } else {
      return invalid_argument("unknown argument '", args[i], "'");
    }
    if (inline_value && flag == "--help") return invalid_argument("--help takes no value");
  }
  if (o.listen.empty()) o.listen.push_back("127.0.0.1:12345");
  return o;
}

}  // namespace ps::pipeswitchd
