// Making the backend that --device names: "cpu" -> CpuBackend; a GPU index -> the GPU backend
// (make_gpu_backend, reactor/gpu_backend.cc).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "reactor/backend.h"

namespace ps::reactor {

// The switching policies of DESIGN.md ("Policies"); a backend may implement a subset.
inline constexpr std::string_view kPolicies[] = {"pipeswitch",     "cache",        "ready",
                                                 "stop-and-start", "kill-restart", "no-pool",
                                                 "pageable",       "managed"};
bool is_known_policy(std::string_view policy);

struct BackendOptions {
  std::string device = "cpu";  // "cpu" or a GPU index "0", "1", ...
  std::string policy = "pipeswitch";
  uint64_t pool_bytes = 0;   // GPU memory pool; 0: the backend's default
  uint32_t cpu_threads = 0;  // CPU backend workers; 0: hardware concurrency (at least 1)
  TrainingPolicy training = TrainingPolicy::kYield;  // --training
  // GPU backend: the plans' precision ("tf32": TF32 for convolutions and matrix products,
  // PyTorch's default for convolutions; "fp32": strict) and the copy groups of a switch
  // (models/gpu/copy_groups.h: optimal, package, per-layer, blocks, whole).
  std::string precision = "tf32";
  std::string grouping = "optimal";
  // Replay each model's request as one CUDA graph where the addresses allow (docs/switching.md).
  bool graphs = true;
  // Pipelined transmission (a group's layers start when its copy is done). Off: every copy,
  // then the layers (the "without pipelining" ablation of figure 7).
  bool pipelining = true;
  // kill-restart: the binary started per request as `EXE --oneshot ...` (pipeswitchd passes
  // its own /proc/self/exe).
  std::string self_exe;
};

// Parses --device: "cpu" or a decimal GPU index. INVALID_ARGUMENT otherwise.
Result<std::string> parse_device(std::string_view text);

// The backend for options.device, not yet started. Errors: an unknown policy
// (INVALID_ARGUMENT), or what make_gpu_backend says (UNAVAILABLE: not built, no GPU, ...).
Result<std::unique_ptr<Backend>> make_backend(const BackendOptions& options);

// The GPU backend for GPU `device_index`, not started (start() opens the GPU and says why it
// cannot). INVALID_ARGUMENT for kill-restart without options.self_exe.
Result<std::unique_ptr<Backend>> make_gpu_backend(int device_index, const BackendOptions& options);

}  // namespace ps::reactor
