// GpuEngine: the GPU backend's device-thread state (gpu_backend.h explains the threads). It
// owns the runtime, the pool, the streams and every registered model, and turns one command
// into one Completion, blocking the device thread (never the loop) until the GPU is done.
// Not thread-safe: only the device thread that created it uses it, and destroys it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cuda/device_pool.h"
#include "cuda/event.h"
#include "cuda/host_memory.h"
#include "cuda/stream.h"
#include "models/gpu/copy_groups.h"
#include "models/gpu/cuda_lanes.h"
#include "models/gpu/graph.h"
#include "models/gpu/plan.h"
#include "models/gpu/runtime.h"
#include "reactor/backend.h"
#include "reactor/backend_factory.h"
#include "reactor/peer_links.h"
#include "reactor/switch_policy.h"

namespace ps::reactor {

class GpuTrainingJob;  // reactor/gpu_training_job.h

// How a switch into the switch region is enqueued (GpuEngine::choose_switch_mode).
enum class SwitchMode : uint8_t { kEnqueue, kGroupGraphs, kRequestGraph };
const char* switch_mode_name(SwitchMode mode);

class GpuEngine {
 public:
  // Opens GPU `ordinal` on the calling thread: runtime, pool (options.pool_bytes, or the
  // default: 8 GiB or 80% of free memory, the smaller), streams, and the link measurement.
  static Result<std::unique_ptr<GpuEngine>> open(int ordinal, const BackendOptions& options,
                                                 SwitchPolicy policy);
  ~GpuEngine();
  GpuEngine(const GpuEngine&) = delete;
  GpuEngine& operator=(const GpuEngine&) = delete;

  // "gpu 0: NVIDIA H200 (139.8 GiB, cc 9.0); tf32; pool 8.0 GiB; link 52.1 GB/s + 2.4 us/copy".
  std::string describe() const;

  Completion load(uint64_t ticket, const ModelSource& source);
  Completion unload(uint64_t ticket, const std::string& model);
  Completion infer(const InferTask& task);
  // Builds training job task.job on a registered model (re-imported for training when it came
  // from the zoo; a training-mode package is trained as it is), with its memory from the pool.
  // Errors: NOT_FOUND, a batch that is not the model's, the trainer's and the checkpoint's.
  Result<std::unique_ptr<GpuTrainingJob>> start_training(const TrainTask& task,
                                                         TrainingPolicy policy,
                                                         CompletionSink* sink);
  // Work a request leaves for after its reply is posted: the pipeswitch-style policies evict
  // the model here (a pool slot returned, a driver allocation freed, managed pages pushed back
  // to the host), off the request's latency. Call after every infer().
  void after_reply();
  BackendStats stats() const;
  // Frees pool memory held by work that yields to inference (the training job's state, paged
  // out to host memory: gpu_training_job.h) and says whether it freed any. Called when an
  // inference command (a LOAD, a cached model's weights) finds the pool full; the command then
  // tries once more. Empty: nothing to reclaim.
  void set_reclaimer(std::function<Result<bool>()> reclaimer) { reclaimer_ = std::move(reclaimer); }

 private:
  struct Model;

  GpuEngine() = default;
  Result<std::unique_ptr<Model>> register_model(const ModelSource& source);
  // Profiles the model's layers and gives it the groups of grouping_ (kTimed: kOptimal's until
  // choose_timed_groups runs).
  Status choose_groups(Model& model);
  // The copy groups of `choice` for `model` (after choose_groups' profile). kTimed: kOptimal's.
  Result<std::vector<models::gpu::CopyGroup>> groups_of(const Model& model,
                                                        models::gpu::GroupingChoice choice) const;
  // Makes `groups` the model's: an event per group, the predicted finish, and no graph captured
  // for the previous groups.
  Status set_groups(Model& model, std::vector<models::gpu::CopyGroup> groups);
  // kTimed (registration, after the switch region holds the model): times a switch with the
  // optimal, block and per-layer groups, each in its fastest mode (choose_switch_mode), keeps
  // the fastest with its mode, and plans its routes.
  Status choose_timed_groups(Model& model);
  // Makes room for and returns the device address of `model`'s weights for this request
  // (a pool slot, evicting least recently used models under the cache policy; a driver
  // allocation under no-pool; the managed memory itself under managed).
  Result<CUdeviceptr> weights_for_switch(Model& model);
  // pool_->allocate for inference: when the pool is full, once more after the reclaimer freed
  // memory.
  Result<cuda::PoolRange> allocate(uint64_t bytes, const std::string& tag);
  void release_weights(Model& model);
  // Returns everything `model` holds in the pool (slot, arena, workspace) and forgets its
  // residency. For unload, failed registrations and shutdown.
  void free_model_memory(Model& model);
  Status run(Model& model, const InferTask& task, const std::string& input, Completion* c);
  Status ensure_staging(Model& model, uint32_t chunks);
  // Enqueues one native-batch request on the compute stream (and the copy stream when
  // `switch_in`): input copies, the pipelined weights or the resident pass, output copies,
  // with the timing events. The body of both the plain path and the graph captures.
  // `switched`: the weights at `weights` came with this request (switch_in is its first chunk),
  // so the model's host-readable weights are read from the host (Model::host_read).
  // `lanes` (with the model's route for their count): the switch's copies go through several
  // links (parallel transmission) instead of the copy stream alone.
  Status enqueue_request(Model& model, CUdeviceptr weights, bool switch_in, uint32_t chunk,
                         uint32_t chunks, bool group_graphs, bool switched,
                         models::gpu::CudaLanes* lanes = nullptr,
                         const models::ParallelPlan* route = nullptr);
  // Parallel transmission: lends this GPU's link (or, in tests, makes loopback links), grants
  // the other GPUs access to the pool. Off when options.parallel_links <= 1.
  Status open_parallel(const BackendOptions& options);
  // The model's routes over 2..parallel_links links (Model::routes), after its groups.
  Status plan_routes(Model& model);
  // Whether switches of `model` may borrow links now (policy, pipelining, routes).
  bool parallel_for(const Model& model) const;
  // The graph of a resident model's whole native-batch request with the weights at `weights`
  // (captured on first use or when `weights` moved, then replayed), or null when graphs are off
  // or the capture failed (then the model runs layer by layer).
  // `host_tables`: the model's embedding tables are read from the host (the weights at
  // `weights` are the switch region's, which lacks them).
  Result<const models::gpu::CudaGraph*> graph_for(Model& model, CUdeviceptr weights,
                                                  bool host_tables = false);
  // CudaGraph::capture on the compute stream, counted in graph_captures_ (run() reports those
  // made while serving a request as request_captures_).
  Result<models::gpu::CudaGraph> capture(const std::function<Status()>& enqueue);
  // Pipeswitch with reuse_region_: captures the graph a region hit of `model` replays (the
  // whole request on the region, tables from the host) and runs it once (the upload), so the
  // first hit pays neither. Registration only: overwrites the model's arena and outputs.
  Status prepare_region_hit(Model& model);
  // Makes sure model's per-group graphs exist for weights at `weights` (the switch region);
  // false when this switch cannot use them (graphs off, pageable copies, another address).
  bool group_graphs_for(Model& model, CUdeviceptr weights);
  // The switch region (policies that evict after the task, pool memory, pinned weights): one
  // pool range as large as the largest registered model's weights, where every switched-in
  // model's weights go, so its address is fixed and the whole pipelined request can be a
  // graph (the original's 1 GiB parameter region, sized to fit).
  bool uses_switch_region() const;
  // Times a switch of `model` into the switch region in each SwitchMode it can use and keeps
  // the fastest (registration only: blocks, and overwrites the region).
  Status choose_switch_mode(Model& model);
  Status launch_switch(Model& model, SwitchMode mode);
  // Grows the region to at least `bytes`; true when it moved (every switch graph is dropped).
  Result<bool> grow_switch_region(uint64_t bytes);

  Status run_fresh_process(Model& model, const InferTask& task, const std::string& input,
                           Completion* c);

  int ordinal_ = 0;
  SwitchPolicy policy_;
  std::string self_exe_;     // kill-restart: the binary to start per request
  std::string package_dir_;  // kill-restart: where zoo models are written as packages
  models::gpu::GroupingChoice grouping_ = models::gpu::GroupingChoice::kOptimal;
  models::gpu::Precision precision_ = models::gpu::Precision::kTf32;
  std::unique_ptr<models::gpu::GpuRuntime> runtime_;
  std::optional<cuda::DevicePool> pool_;
  cuda::Stream copy_stream_;
  cuda::Stream compute_stream_;
  cuda::Event start_event_, end_event_, copy_start_event_, copy_end_event_, first_layer_event_;
  cuda::Event fork_event_, join_event_;  // the copy stream joining a graph capture and back
  cuda::Event input_event_;              // a switch's inputs on the device (copy stream)
  bool graphs_ = true;
  bool pipelining_ = true;
  bool host_read_ = true;  // BackendOptions::host_read, where the policy allows it
  bool reuse_region_ = false;  // BackendOptions::reuse_region, where the policy allows it
  uint64_t host_read_min_bytes_ = models::gpu::kHostReadMinBytes;
  std::optional<cuda::PoolRange> switch_region_;
  models::TransferModel link_;
  std::map<std::string, std::unique_ptr<Model>> models_;
  ResidentSet resident_;
  uint64_t switches_ = 0;
  uint64_t region_hits_ = 0;
  uint64_t graph_captures_ = 0;    // every CudaGraph this engine captured
  uint64_t request_captures_ = 0;  // of which while serving a request
  // The model whose weights the switch region holds, complete, from its last switch; null when
  // the region holds none (a switch in progress or failed, registration's timing switches, a
  // grown region, an unloaded model). Only with reuse_region_.
  Model* region_model_ = nullptr;
  Model* evict_after_reply_ = nullptr;
  std::function<Result<bool>()> reclaimer_;

  // Parallel transmission (docs/multi-gpu.md). A lent link: its streams, staging slots from
  // this GPU's pool and its events, in this GPU's context.
  struct LentLink {
    cuda::Stream in, hop;
    cuda::PoolRange staging;
    std::vector<cuda::Event> events;
  };
  uint32_t parallel_links_ = 1;  // at most this many links per switch (1: off)
  std::shared_ptr<PeerLinks> peer_links_;
  int lend_owner_ = 0;  // this GPU's ordinal, or PeerLinks::kLoopback for test links
  std::vector<std::unique_ptr<LentLink>> lent_links_;
  std::vector<cuda::Event> own_link_events_;  // link 0 (the copy stream) of this GPU's switches
  uint64_t parallel_switches_ = 0;
};

}  // namespace ps::reactor
