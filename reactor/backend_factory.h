// Making the backend that --device names: "cpu" -> CpuBackend; a GPU index -> the GPU backend
// (make_gpu_backend, reactor/gpu_backend.cc); several devices ("0,1", "all", "cpu,cpu") -> a
// MultiBackend (reactor/multi_backend.h) over one of those per device.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "reactor/backend.h"

namespace ps::reactor {

class PeerLinks;  // reactor/peer_links.h

// The switching policies of DESIGN.md ("Policies"); a backend may implement a subset.
inline constexpr std::string_view kPolicies[] = {"pipeswitch",     "cache",        "ready",
                                                 "stop-and-start", "kill-restart", "no-pool",
                                                 "pageable",       "managed"};
bool is_known_policy(std::string_view policy);

struct BackendOptions {
  std::string device = "cpu";  // as parse_device accepts: "cpu", "0", "0,1", "all", "cpu,cpu"

  std::string policy = "pipeswitch";
  uint64_t pool_bytes = 0;  // GPU memory pool; 0: the backend's default
  // CPU backend workers (per simulated device); 0: hardware concurrency (shared among the
  // simulated devices), at least 1.
  uint32_t cpu_threads = 0;
  TrainingPolicy training = TrainingPolicy::kYield;  // --training
  // GPU backend: the plans' precision ("tf32": TF32 for convolutions and matrix products,
  // PyTorch's default for convolutions; "fp32": strict) and the copy groups of a switch
  // (models/gpu/copy_groups.h: optimal, package, per-layer, blocks, whole).
  std::string precision = "tf32";
  std::string grouping = "timed";
  // Replay each model's request as one CUDA graph where the addresses allow (docs/switching.md).
  bool graphs = true;
  // Pipelined transmission (a group's layers start when its copy is done). Off: every copy,
  // then the layers (the "without pipelining" ablation of figure 7).
  bool pipelining = true;
  // A switch leaves embedding tables on the host and the Gather layers read the rows they need
  // from there (models/gpu/host_read.h; policies that evict after the task, pinned weights).
  bool host_read = true;
  // Smaller tables are copied; 0: the default (models/gpu/host_read.h: 4 MiB). Tests lower it.
  uint64_t host_read_min_bytes = 0;
  // pipeswitch: a request whose model's weights are still in the switch region (nothing was
  // switched in since its last request) runs there without copying them again. Off: every
  // request copies its model, as the original did (a switch per request, for measurements).
  bool reuse_region = true;
  // kill-restart: the binary started per request as `EXE --oneshot ...` (pipeswitchd passes
  // its own /proc/self/exe).
  std::string self_exe;
  // Parallel transmission (docs/multi-gpu.md): a switch copies through its own host link and
  // at most parallel_links - 1 links that idle GPUs of the server lend it, forwarded over
  // NVLink. 1: off (every switch on its own link, as before).
  uint32_t parallel_links = 1;
  // The links the server's GPUs lend each other: made by make_backend for a set of GPUs when
  // parallel_links > 1; each GPU engine adds its own.
  std::shared_ptr<PeerLinks> peer_links;
  // Tests on one GPU: this many extra links on the GPU itself (own streams and staging), lent
  // to its own switches, so the whole path runs without a second GPU (no extra bandwidth).
  uint32_t parallel_loopback = 0;
};

// Parses --device: "cpu", a decimal GPU index, "all" (every visible GPU), or a comma-separated
// list of GPU indices ("0,1,3", each once) or of "cpu" ("cpu,cpu": a simulated set of CPU
// devices, for tests). Returns the text. INVALID_ARGUMENT otherwise (a mix of cpu and GPUs
// too). Pure: "all" is not counted here.
Result<std::string> parse_device(std::string_view text);

// How many GPUs the driver shows (cuda::Device::count by default); UNAVAILABLE without one.
using GpuCounter = Result<int> (*)();

// The devices `device` (parse_device's syntax) names, one per backend: "cpu" or a GPU index.
// "all" asks `count_gpus` (nullptr: the driver): an error that says so without a driver or
// without a GPU.
Result<std::vector<std::string>> expand_devices(std::string_view device,
                                                GpuCounter count_gpus = nullptr);

// The backend for options.device, not yet started: one device's backend itself, or a
// MultiBackend over one per device (named by GPU index, or cpu0, cpu1, ... for a simulated
// set). Errors: an unknown policy (INVALID_ARGUMENT), what expand_devices says, or what
// make_gpu_backend says (UNAVAILABLE: not built, no GPU, ...).
Result<std::unique_ptr<Backend>> make_backend(const BackendOptions& options);

// The GPU backend for GPU `device_index`, not started (start() opens the GPU and says why it
// cannot). INVALID_ARGUMENT for kill-restart without options.self_exe.
Result<std::unique_ptr<Backend>> make_gpu_backend(int device_index, const BackendOptions& options);

}  // namespace ps::reactor
