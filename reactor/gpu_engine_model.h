// The GPU engine's per-model state (GpuEngine::Model) and the small helpers its two source
// files share: gpu_engine.cc (the device, memory and requests) and gpu_engine_register.cc
// (registration: reading, planning, profiling, grouping, graphs). Internal to those files.
#pragma once

#include <cuda.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "cuda/device_buffer.h"
#include "cuda/event.h"
#include "cuda/host_memory.h"
#include "models/gpu/copy_groups.h"
#include "models/gpu/graph.h"
#include "models/gpu/plan.h"
#include "models/parallel_transfer.h"
#include "reactor/gpu_engine.h"

namespace ps::reactor {

namespace engine_detail {

using Clock = std::chrono::steady_clock;

inline uint64_t micros(Clock::duration d) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  return us < 0 ? 0 : static_cast<uint64_t>(us);
}

// Microseconds between two completed timing events; 0 when they cannot be read.
inline uint64_t event_us(const cuda::Event& start, const cuda::Event& end) {
  auto ms = cuda::Event::elapsed_ms(start, end);
  return ms.ok() && *ms > 0 ? static_cast<uint64_t>(*ms * 1000.0f) : 0;
}

}  // namespace engine_detail

struct GpuEngine::Model {
  ModelInfo info;
  ModelSource source;  // where it came from (training re-imports a zoo model for training)
  std::string package_path;   // what kill-restart reads: empty for zoo models and LOADed
                              // packages unless a copy was written for it
  bool owns_package = false;  // package_path was written by us: removed with the model
  ~Model() {
    if (owns_package) std::filesystem::remove(package_path);
  }
  pipeswitch::psm::Manifest manifest;
  // The weights on the host, in exactly one of these (the policy's WeightHome).
  cuda::PinnedBuffer pinned;
  std::vector<uint8_t> pageable;
  cuda::DeviceBuffer managed;
  const uint8_t* host_weights = nullptr;
  uint64_t weights_bytes = 0;
  // The pinned weights' device address when a switch reads the plan's host-readable weights
  // (embedding tables: models/gpu/host_read.h) from them instead of copying them; else 0.
  CUdeviceptr host_read = 0;

  std::optional<models::gpu::Plan> plan;
  cuda::PoolRange arena;
  std::optional<cuda::PoolRange> workspace;
  // Where the weights are on the device while resident (a pool slot), or during a no-pool
  // switch (a driver allocation).
  std::optional<cuda::PoolRange> slot;
  cuda::DeviceBuffer driver_weights;

  std::vector<models::gpu::CopyGroup> groups;
  // How `groups` were chosen: the engine's grouping, or under kTimed the candidate kept.
  models::gpu::GroupingChoice grouping = models::gpu::GroupingChoice::kOptimal;
  std::vector<cuda::Event> group_events;
  std::vector<double> layer_us;
  double compute_us = 0;    // sum of layer_us
  double predicted_us = 0;  // pipelined finish predicted for `groups`
  // Parallel transmission: the routes of `groups` over 2, 3, ... links (routes[k - 2] for k
  // links), as many as parallel_links allows and the links' events hold.
  std::vector<models::ParallelPlan> routes;
  // The most borrowed links a switch of this model claims: those of the route with the
  // earliest predicted finish, when it beats one link by kMinParallelGain (0: one link is as
  // good; loopback test links: every route, to exercise them).
  uint32_t max_borrow = 0;

  cuda::PinnedBuffer input_staging, output_staging;
  std::map<uint32_t, std::string> synthetic;  // synthetic inputs by batch

  // CUDA graphs, with the weight address each was captured for: the whole native-batch request
  // of a resident model (graph_for), and one per copy group for switches into the switch
  // region (group_graphs_for; nullopt for a group that queues no work).
  std::optional<models::gpu::CudaGraph> resident_graph;
  CUdeviceptr resident_graph_weights = 0;
  bool resident_graph_host_tables = false;  // captured reading the embedding tables from the host
  std::vector<std::optional<models::gpu::CudaGraph>> group_graphs;
  CUdeviceptr group_graph_weights = 0;
  // The whole switch request (copies, events, layers) as one graph, for the switch region.
  std::optional<models::gpu::CudaGraph> switch_graph;
  // How a switch into the switch region is enqueued: measured at registration (choose_switch).
  SwitchMode switch_mode = SwitchMode::kEnqueue;
  double switch_mode_us[3] = {0, 0, 0};
  // The batch whose synthetic input input_staging holds (0: none), so it is staged once.
  uint32_t staged_synthetic = 0;
  bool graphs_failed = false;

  const models::gpu::Plan& p() const { return *plan; }
  // The weights a switch reads from the host instead of copying (none without host_read).
  std::span<const models::gpu::WeightRange> host_read_ranges() const {
    return host_read != 0 ? p().host_readable() : std::span<const models::gpu::WeightRange>();
  }
};

}  // namespace ps::reactor
