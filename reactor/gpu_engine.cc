#include "reactor/gpu_engine.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "cuda/copy.h"
#include "cuda/device_buffer.h"
#include "cuda/driver.h"
#include "models/gpu/link_probe.h"
#include "models/gpu/pipelined_run.h"
#include "models/package_reader.h"
#include "onnx_loader/package_writer.h"
#include "reactor/fresh_process.h"
#include "reactor/log.h"
#include "reactor/model_source.h"
#include "reactor/output_summary.h"
#include "reactor/synthetic_input.h"

namespace ps::reactor {
namespace {

using Clock = std::chrono::steady_clock;
using models::gpu::CopyGroup;
using models::gpu::GroupingChoice;

constexpr uint64_t kDefaultPoolCap = uint64_t{8} << 30;
constexpr uint64_t kProbeBytes = uint64_t{64} << 20;
constexpr int kProfileRuns = 3;

uint64_t micros(Clock::duration d) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  return us < 0 ? 0 : static_cast<uint64_t>(us);
}

std::string gib(uint64_t bytes) {
  return str_cat(static_cast<double>(bytes * 10 / (uint64_t{1} << 30)) / 10, " GiB");
}

uint64_t event_us(const cuda::Event& start, const cuda::Event& end) {
  auto ms = cuda::Event::elapsed_ms(start, end);
  return ms.ok() && *ms > 0 ? static_cast<uint64_t>(*ms * 1000.0f) : 0;
}

}  // namespace

struct GpuEngine::Model {
  ModelInfo info;
  std::string package_path;   // empty for zoo models (unless written for kill-restart)
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

  std::optional<models::gpu::Plan> plan;
  cuda::PoolRange arena;
  std::optional<cuda::PoolRange> workspace;
  // Where the weights are on the device while resident (a pool slot), or during a no-pool
  // switch (a driver allocation).
  std::optional<cuda::PoolRange> slot;
  cuda::DeviceBuffer driver_weights;

  std::vector<CopyGroup> groups;
  std::vector<cuda::Event> group_events;
  std::vector<double> layer_us;
  double compute_us = 0;    // sum of layer_us
  double predicted_us = 0;  // pipelined finish predicted for `groups`

  cuda::PinnedBuffer input_staging, output_staging;
  std::map<uint32_t, std::string> synthetic;  // synthetic inputs by batch

  // CUDA graphs, with the weight address each was captured for: the whole native-batch request
  // of a resident model (graph_for), and one per copy group for switches into the switch
  // region (group_graphs_for; nullopt for a group that queues no work).
  std::optional<models::gpu::CudaGraph> resident_graph;
  CUdeviceptr resident_graph_weights = 0;
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
};

GpuEngine::~GpuEngine() {
  // Nothing may still run on memory about to be freed.
  // (A failed open() destroys an engine with only some members made.)
  if (!compute_stream_.empty()) (void)compute_stream_.synchronize();
  if (!copy_stream_.empty()) (void)copy_stream_.synchronize();
  for (auto& [name, model] : models_) {
    if (model->slot) (void)pool_->free(*model->slot);
    (void)pool_->free(model->arena);
    if (model->workspace) (void)pool_->free(*model->workspace);
  }
  models_.clear();
  if (switch_region_) (void)pool_->free(*switch_region_);
  if (!package_dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove(package_dir_, ec);
  }
}

Result<std::unique_ptr<GpuEngine>> GpuEngine::open(int ordinal, const BackendOptions& options,
                                                   SwitchPolicy policy) {
  std::unique_ptr<GpuEngine> e(new GpuEngine());
  e->ordinal_ = ordinal;
  e->policy_ = std::move(policy);
  e->self_exe_ = options.self_exe;
  e->graphs_ = options.graphs;
  PS_ASSIGN_OR_RETURN(e->grouping_, models::gpu::parse_grouping_choice(options.grouping));
  if (e->policy_.whole_model_copy) e->grouping_ = GroupingChoice::kWhole;
  PS_ASSIGN_OR_RETURN(e->precision_, models::gpu::parse_precision(options.precision));
  PS_ASSIGN_OR_RETURN(e->runtime_, models::gpu::GpuRuntime::create(ordinal));
  const cuda::Device& device = e->runtime_->device();

  uint64_t pool_bytes = options.pool_bytes;
  if (pool_bytes == 0) {
    PS_ASSIGN_OR_RETURN(auto memory, device.memory_info());
    pool_bytes = std::min<uint64_t>(kDefaultPoolCap, memory.first / 10 * 8);
  }
  auto pool = cuda::DevicePool::create(device, pool_bytes);
  if (!pool.ok()) return pool.status().with_context("--pool-size");
  e->pool_.emplace(std::move(*pool));

  PS_ASSIGN_OR_RETURN(e->copy_stream_, cuda::Stream::create(cuda::StreamPriority::kHigh));
  PS_ASSIGN_OR_RETURN(e->compute_stream_, cuda::Stream::create(cuda::StreamPriority::kHigh));
  for (cuda::Event* ev : {&e->start_event_, &e->end_event_, &e->copy_start_event_,
                          &e->copy_end_event_, &e->first_layer_event_}) {
    PS_ASSIGN_OR_RETURN(*ev, cuda::Event::create(true));
  }
  for (cuda::Event* ev : {&e->fork_event_, &e->join_event_}) {
    PS_ASSIGN_OR_RETURN(*ev, cuda::Event::create(false));
  }

  // The link, measured on the copy stream into pool memory.
  PS_ASSIGN_OR_RETURN(cuda::PinnedBuffer probe_host, cuda::PinnedBuffer::allocate(kProbeBytes));
  std::memset(probe_host.data(), 0x5a, kProbeBytes);
  auto probe_device = e->pool_->allocate(kProbeBytes, "link probe");
  if (!probe_device.ok()) return probe_device.status().with_context("measuring the link");
  auto link =
      models::gpu::probe_link(e->copy_stream_, probe_host.data(), probe_device->ptr, kProbeBytes);
  PS_TRY(e->pool_->free(*probe_device));
  if (!link.ok()) return link.status().with_context("measuring the link");
  e->link_ = *link;
  return e;
}

std::string GpuEngine::describe() const {
  const cuda::Device& d = runtime_->device();
  return str_cat("gpu ", ordinal_, ": ", d.name(), " (", gib(d.total_memory()), ", cc ",
                 d.cc_major(), ".", d.cc_minor(), "); ", models::gpu::precision_name(precision_),
                 "; pool ", gib(pool_->capacity()), "; grouping ",
                 models::gpu::grouping_choice_name(grouping_), "; link ",
                 static_cast<int>(link_.bytes_per_us / 100) / 10.0, " GB/s + ",
                 static_cast<int>(link_.copy_fixed_us * 10) / 10.0, " us/copy");
}

Completion GpuEngine::load(uint64_t ticket, const ModelSource& source) {
  const auto start = Clock::now();
  Completion c;
  c.kind = CompletionKind::kLoad;
  c.ticket = ticket;
  auto model = register_model(source);
  if (!model.ok()) {
    c.status = model.status();
  } else {
    c.model = (*model)->info;
    models_[source.name] = std::move(*model);
  }
  c.load_us = micros(Clock::now() - start);
  return c;
}

Result<std::unique_ptr<GpuEngine::Model>> GpuEngine::register_model(const ModelSource& source) {
  auto m = std::make_unique<Model>();
  const bool zoo = !source.zoo_model.empty();
  const std::string label = zoo ? "zoo:" + source.zoo_model : source.package_path;

  // 1. The weights into their host home, straight from the file for a package.
  auto place = [&](uint64_t bytes) -> Result<uint8_t*> {
    m->weights_bytes = bytes;
    const uint64_t n = std::max<uint64_t>(bytes, 1);
    switch (policy_.home) {
      case WeightHome::kPinned: {
        PS_ASSIGN_OR_RETURN(m->pinned, cuda::PinnedBuffer::allocate(n));
        return m->pinned.as<uint8_t>();
      }
      case WeightHome::kPageable:
        m->pageable.resize(n);
        return m->pageable.data();
      case WeightHome::kManaged: {
        PS_ASSIGN_OR_RETURN(auto memory, runtime_->device().memory_info());
        if (n > memory.first / 2) {
          return out_of_memory("managed memory for ", n, " bytes of weights: the GPU has ",
                               memory.first,
                               " bytes free; the managed ablation asks for at "
                               "most half of that");
        }
        PS_ASSIGN_OR_RETURN(m->managed, cuda::DeviceBuffer::allocate_managed(n));
        return m->managed.as<uint8_t>();
      }
    }
    return internal_error("unknown weight home");
  };
  if (zoo) {
    PS_ASSIGN_OR_RETURN(HostModel host,
                        import_zoo_model(source.zoo_model, source.zoo_batch, source.zoo_seq));
    m->manifest = std::move(host.manifest);
    PS_ASSIGN_OR_RETURN(uint8_t * dst, place(host.weights.size()));
    if (policy_.home == WeightHome::kPageable) {
      m->pageable = std::move(host.weights);
      if (m->pageable.empty()) m->pageable.resize(1);
      dst = m->pageable.data();
    } else if (!host.weights.empty()) {
      std::memcpy(dst, host.weights.data(), host.weights.size());
    }
    m->host_weights = dst;
  } else {
    PS_ASSIGN_OR_RETURN(models::Package package, models::Package::open(source.package_path));
    m->manifest = package.manifest();
    m->package_path = source.package_path;
    PS_ASSIGN_OR_RETURN(uint8_t * dst, place(package.weights_bytes()));
    if (package.weights_bytes() > 0) {
      Status read = package.read_weights(dst, package.weights_bytes());
      if (!read.ok()) return read.with_context(source.package_path);
    }
    m->host_weights = dst;
  }
  PS_ASSIGN_OR_RETURN(m->info, describe_model(source.name, label, m->manifest));
  if (policy_.fresh_process && m->package_path.empty()) {
    // The fresh process reads a package: write the zoo model as one, once.
    if (package_dir_.empty()) {
      const char* tmp = std::getenv("TMPDIR");
      package_dir_ =
          str_cat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/pipeswitchd-", ::getpid());
      std::error_code ec;
      std::filesystem::create_directories(package_dir_, ec);
      if (ec) return io_error("creating ", package_dir_, ": ", ec.message());
    }
    m->package_path = str_cat(package_dir_, "/", source.name, ".psm");
    m->owns_package = true;
    PS_TRY(onnx_loader::write_package(m->package_path, m->manifest,
                                      std::span<const uint8_t>(m->host_weights, m->weights_bytes)));
  }

  // 2. The plan: descriptors, algorithm choices, kernels, one warm-up pass.
  models::gpu::PlanOptions plan_options;
  plan_options.precision = precision_;
  auto plan = models::gpu::Plan::build(m->manifest,
                                       std::span<const uint8_t>(m->host_weights, m->weights_bytes),
                                       *runtime_, plan_options);
  runtime_->release_plan_scratch();
  if (!plan.ok()) return plan.status().with_context(str_cat("model '", source.name, "'"));
  m->plan.emplace(std::move(*plan));

  // 3. Its arena and workspace, kept for its lifetime.
  PS_ASSIGN_OR_RETURN(m->arena, pool_->allocate(std::max<uint64_t>(m->p().arena_bytes(), 256),
                                                "arena " + source.name));
  if (m->p().workspace_bytes() > 0) {
    auto ws = pool_->allocate(m->p().workspace_bytes(), "workspace " + source.name);
    if (!ws.ok()) {
      (void)pool_->free(m->arena);
      return ws.status();
    }
    m->workspace = *ws;
  }
  Status rest = [&]() -> Status {
    PS_TRY(ensure_staging(*m, 1));
    PS_TRY(choose_groups(*m));
    m->group_events.resize(m->groups.size());
    for (cuda::Event& ev : m->group_events) {
      PS_ASSIGN_OR_RETURN(ev, cuda::Event::create(false));
    }
    return Status::OK();
  }();
  if (!rest.ok()) {
    if (m->slot) (void)pool_->free(*m->slot);
    (void)pool_->free(m->arena);
    if (m->workspace) (void)pool_->free(*m->workspace);
    return rest.with_context(str_cat("model '", source.name, "'"));
  }
  // 4. The ready policy keeps the weights resident from now on.
  if (policy_.residency == Residency::kAlways && m->slot) {
    resident_.add(source.name, /*pinned=*/true);
  } else if (m->slot) {
    (void)pool_->free(*m->slot);
    m->slot.reset();
  }
  // 5. The switch region grows to hold it; its graphs are captured and run once now, on the
  // synthetic input choose_groups staged (so the first request pays neither the captures nor
  // the graphs' upload).
  Status ready = [&]() -> Status {
    if (uses_switch_region()) {
      PS_ASSIGN_OR_RETURN(const bool moved, grow_switch_region(m->weights_bytes));
      // The other models' graphs pointed into the old region: measure them again.
      if (moved && graphs_) {
        for (auto& [name, other] : models_) PS_TRY(choose_switch_mode(*other));
      }
    }
    if (!graphs_ || policy_.fresh_process) return Status::OK();
    if (m->slot || policy_.home == WeightHome::kManaged) {
      const CUdeviceptr weights = m->slot ? m->slot->ptr : m->managed.ptr();
      PS_ASSIGN_OR_RETURN(const models::gpu::CudaGraph* graph, graph_for(*m, weights));
      if (graph != nullptr) PS_TRY(graph->launch(compute_stream_));
    } else if (uses_switch_region()) {
      PS_TRY(choose_switch_mode(*m));
    }
    PS_TRY(compute_stream_.synchronize());
    if (policy_.home == WeightHome::kManaged) release_weights(*m);
    return Status::OK();
  }();
  if (!ready.ok()) {
    if (m->slot) (void)pool_->free(*m->slot);
    (void)pool_->free(m->arena);
    if (m->workspace) (void)pool_->free(*m->workspace);
    resident_.remove(source.name);
    return ready.with_context(str_cat("model '", source.name, "'"));
  }
  if (uses_switch_region()) {
    log_info(source.name, ": switch as ", switch_mode_name(m->switch_mode), " (measured: enqueue ",
             m->switch_mode_us[0], " us, group graphs ", m->switch_mode_us[1],
             " us, request graph ", m->switch_mode_us[2], " us; 0 = not possible)");
  }
  log_info("registered ", source.name, ": ", m->p().layer_count(), " layers, ",
           models::gpu::describe_groups(m->groups), " (",
           models::gpu::grouping_choice_name(grouping_), "); compute ",
           static_cast<int>(m->compute_us), " us, predicted pipelined ",
           static_cast<int>(m->predicted_us), " us, transfer floor ",
           static_cast<int>(static_cast<double>(m->weights_bytes) / link_.bytes_per_us), " us");
  return m;
}

Status GpuEngine::choose_groups(Model& m) {
  // Profile every layer on the device with the weights in a pool slot and a synthetic input.
  PS_ASSIGN_OR_RETURN(
      m.slot, pool_->allocate(std::max<uint64_t>(m.weights_bytes, 256), "weights " + m.info.name));
  PS_TRY(cuda::copy_to_device_async(m.slot->ptr, m.host_weights, m.weights_bytes, compute_stream_));
  const std::string input = synthetic_input(m.info, m.info.batch);
  uint64_t offset = 0;
  for (const models::gpu::IoSpec& io : m.p().inputs()) {
    std::memcpy(m.input_staging.as<uint8_t>() + offset, input.data() + offset, io.bytes);
    PS_TRY(cuda::copy_to_device_async(m.arena.ptr + io.arena_offset,
                                      m.input_staging.as<uint8_t>() + offset, io.bytes,
                                      compute_stream_));
    offset += io.bytes;
  }
  const models::gpu::Bindings b{m.slot->ptr, m.arena.ptr, m.workspace ? m.workspace->ptr : 0,
                                m.workspace ? m.workspace->size() : 0};
  std::vector<std::vector<double>> runs;
  for (int r = 0; r < kProfileRuns; ++r) {
    PS_ASSIGN_OR_RETURN(std::vector<double> ms, m.p().profile_layers(compute_stream_, b));
    runs.push_back(std::move(ms));
  }
  m.layer_us.assign(m.p().layer_count(), 0.0);
  for (size_t l = 0; l < m.layer_us.size(); ++l) {
    std::vector<double> v;
    for (const auto& run : runs) v.push_back(run[l] * 1000.0);
    std::sort(v.begin(), v.end());
    m.layer_us[l] = v[v.size() / 2];
  }
  m.compute_us = 0;
  for (double us : m.layer_us) m.compute_us += us;

  PS_ASSIGN_OR_RETURN(std::vector<CopyGroup> units, models::gpu::package_groups(m.manifest));
  switch (grouping_) {
    case GroupingChoice::kPackage:
    case GroupingChoice::kPerLayer:
      m.groups = units;
      break;
    case GroupingChoice::kWhole:
      m.groups = models::gpu::whole_model_group(m.manifest);
      break;
    case GroupingChoice::kBlocks: {
      PS_ASSIGN_OR_RETURN(m.groups, models::gpu::block_groups(m.manifest, units));
      break;
    }
    case GroupingChoice::kOptimal: {
      const auto grouping_units = models::gpu::grouping_units(units, m.layer_us);
      PS_ASSIGN_OR_RETURN(models::GroupStarts starts,
                          models::optimal_grouping(grouping_units, link_));
      PS_ASSIGN_OR_RETURN(m.groups, models::gpu::merge_groups(units, starts));
      break;
    }
  }
  // The prediction for the chosen groups (each one unit of the timeline model).
  const auto chosen = models::gpu::grouping_units(m.groups, m.layer_us);
  models::GroupStarts all(chosen.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint32_t>(i);
  PS_ASSIGN_OR_RETURN(models::GroupingPrediction prediction,
                      models::predict_grouping(chosen, link_, all));
  m.predicted_us = prediction.finish_us;
  return Status::OK();
}

Status GpuEngine::ensure_staging(Model& m, uint32_t chunks) {
  uint64_t in = 0, out = 0;
  for (const models::gpu::IoSpec& io : m.p().inputs()) in += io.bytes;
  for (const models::gpu::IoSpec& io : m.p().outputs()) out += io.bytes;
  in = std::max<uint64_t>(in * chunks, 1);
  out = std::max<uint64_t>(out * chunks, 1);
  if (m.input_staging.size() < in || m.output_staging.size() < out) {
    // The graphs copy from and to the old buffers: capture them again when next used.
    m.resident_graph.reset();
    m.switch_graph.reset();
    if (m.switch_mode == SwitchMode::kRequestGraph) m.switch_mode = SwitchMode::kGroupGraphs;
    m.staged_synthetic = 0;
  }
  if (m.input_staging.size() < in) {
    PS_ASSIGN_OR_RETURN(m.input_staging, cuda::PinnedBuffer::allocate(in));
  }
  if (m.output_staging.size() < out) {
    PS_ASSIGN_OR_RETURN(m.output_staging, cuda::PinnedBuffer::allocate(out));
  }
  return Status::OK();
}

Completion GpuEngine::unload(uint64_t ticket, const std::string& name) {
  Completion c;
  c.kind = CompletionKind::kUnload;
  c.ticket = ticket;
  auto it = models_.find(name);
  if (it == models_.end()) {
    c.status = not_found("no model '", name, "'");
    return c;
  }
  Model& m = *it->second;
  (void)compute_stream_.synchronize();
  if (m.slot) (void)pool_->free(*m.slot);
  (void)pool_->free(m.arena);
  if (m.workspace) (void)pool_->free(*m.workspace);
  resident_.remove(name);
  models_.erase(it);
  if (models_.empty() && switch_region_) {  // the last model gone: nothing left to switch in
    (void)pool_->free(*switch_region_);
    switch_region_.reset();
  }
  return c;
}

Result<CUdeviceptr> GpuEngine::weights_for_switch(Model& m) {
  const uint64_t bytes = std::max<uint64_t>(m.weights_bytes, 256);
  if (policy_.home == WeightHome::kManaged) return m.managed.ptr();
  if (uses_switch_region()) return switch_region_->ptr;
  if (policy_.memory == DeviceMemory::kDriver) {
    PS_ASSIGN_OR_RETURN(m.driver_weights, cuda::DeviceBuffer::allocate(bytes));
    return m.driver_weights.ptr();
  }
  Status placed = resident_.place_evicting(
      m.info.name,
      [&]() -> Status {
        PS_ASSIGN_OR_RETURN(m.slot, pool_->allocate(bytes, "weights " + m.info.name));
        return Status::OK();
      },
      [&](const std::string& victim) {
        Model& v = *models_.at(victim);
        (void)pool_->free(*v.slot);
        v.slot.reset();
      });
  if (!placed.ok()) return placed.with_context(str_cat("switching '", m.info.name, "' in"));
  return m.slot->ptr;
}

void GpuEngine::release_weights(Model& m) {
  if (policy_.home == WeightHome::kManaged) {
    // Push the pages back to the host so the next request faults them in again.
    CUmemLocation host{};
    host.type = CU_MEM_LOCATION_TYPE_HOST;
    (void)cuda::api().cuMemPrefetchAsync(m.managed.ptr(), m.managed.size(), host, 0,
                                         compute_stream_.get());
    (void)compute_stream_.synchronize();
    return;
  }
  if (policy_.memory == DeviceMemory::kDriver) {
    m.driver_weights = cuda::DeviceBuffer();
    return;
  }
  // In the switch region the next model's copies simply overwrite these weights.
  if (m.slot) (void)pool_->free(*m.slot);
  m.slot.reset();
}

bool GpuEngine::uses_switch_region() const {
  return policy_.residency == Residency::kEvictAfterTask && policy_.memory == DeviceMemory::kPool &&
         policy_.home == WeightHome::kPinned && !policy_.fresh_process;
}

Result<bool> GpuEngine::grow_switch_region(uint64_t bytes) {
  bytes = std::max<uint64_t>(bytes, 256);
  if (switch_region_ && switch_region_->size() >= bytes) return false;
  if (switch_region_) {
    PS_TRY(pool_->free(*switch_region_));
    switch_region_.reset();
  }
  auto region = pool_->allocate(bytes, "switch region");
  if (!region.ok()) return region.status().with_context("the switch region");
  switch_region_ = *region;
  // Every captured switch graph wrote to the old region.
  for (auto& [name, model] : models_) {
    model->group_graphs.clear();
    model->switch_graph.reset();
    model->switch_mode = SwitchMode::kEnqueue;  // until measured again for the new region
  }
  return true;
}

Status GpuEngine::enqueue_request(Model& m, CUdeviceptr weights, bool switch_in, uint32_t k,
                                  uint32_t chunks, bool group_graphs) {
  const models::gpu::Plan& plan = m.p();
  const models::gpu::Bindings b{weights, m.arena.ptr, m.workspace ? m.workspace->ptr : 0,
                                m.workspace ? m.workspace->size() : 0};
  // Group g's layers: its graph's replay, or layer by layer from the host.
  auto run_group = [&](size_t g) -> Status {
    if (group_graphs && m.group_graphs[g]) return m.group_graphs[g]->launch(compute_stream_);
    return plan.enqueue_layers(m.groups[g].first_layer, m.groups[g].layer_count, compute_stream_,
                               b);
  };
  if (switch_in) {
    // The copy stream starts after the work before it on the compute stream (the previous
    // request, which read the memory the copies overwrite), before the input copies, so the
    // weights start moving at once; the compute stream rejoins it after the last copy.
    PS_TRY(fork_event_.record(compute_stream_));
    PS_TRY(copy_stream_.wait(fork_event_));
  }
  // Input i of the request starts after inputs 0..i-1 (each at the request's batch).
  uint64_t offset = 0;
  for (const models::gpu::IoSpec& io : plan.inputs()) {
    PS_TRY(cuda::copy_to_device_async(m.arena.ptr + io.arena_offset,
                                      m.input_staging.as<uint8_t>() + offset + k * io.bytes,
                                      io.bytes, compute_stream_));
    offset += io.bytes * chunks;
  }
  if (switch_in) {
    PS_TRY(copy_start_event_.record_timestamp(copy_stream_));
    const models::gpu::WeightSource source{m.host_weights};
    PS_TRY(models::gpu::enqueue_pipelined(plan, m.groups, source, b, copy_stream_, compute_stream_,
                                          m.group_events, &first_layer_event_, run_group));
    PS_TRY(copy_end_event_.record_timestamp(copy_stream_));
    PS_TRY(join_event_.record(copy_stream_));
    PS_TRY(compute_stream_.wait(join_event_));
  } else {
    if (k == 0) PS_TRY(first_layer_event_.record_timestamp(compute_stream_));
    for (size_t g = 0; g < m.groups.size(); ++g) PS_TRY(run_group(g));
  }
  offset = 0;
  for (const models::gpu::IoSpec& io : plan.outputs()) {
    PS_TRY(cuda::copy_to_host_async(m.output_staging.as<uint8_t>() + offset + k * io.bytes,
                                    m.arena.ptr + io.arena_offset, io.bytes, compute_stream_));
    offset += io.bytes * chunks;
  }
  return Status::OK();
}

Result<const models::gpu::CudaGraph*> GpuEngine::graph_for(Model& m, CUdeviceptr weights) {
  if (!graphs_ || m.graphs_failed) return nullptr;
  if (!m.resident_graph || m.resident_graph_weights != weights) {
    m.resident_graph.reset();
    auto g = models::gpu::CudaGraph::capture(
        compute_stream_, [&] { return enqueue_request(m, weights, false, 0, 1, false); });
    if (!g.ok()) {
      // Not fatal: this model runs layer by layer from now on. (Errors that break the
      // context end the process in the driver wrappers before they get here.)
      log_warn("model '", m.info.name, "': no CUDA graph (", g.status().message(),
               "); running it layer by layer");
      m.graphs_failed = true;
      return nullptr;
    }
    m.resident_graph = std::move(*g);
    m.resident_graph_weights = weights;
  }
  return &*m.resident_graph;
}

bool GpuEngine::group_graphs_for(Model& m, CUdeviceptr weights) {
  // Pageable copies and weight addresses that change every switch (no-pool, cache slots)
  // would need a capture per request, which costs more than it saves.
  if (!graphs_ || m.graphs_failed || policy_.home == WeightHome::kPageable || !switch_region_ ||
      weights != switch_region_->ptr) {
    return false;
  }
  if (m.group_graph_weights == weights && m.group_graphs.size() == m.groups.size()) return true;
  const models::gpu::Bindings b{weights, m.arena.ptr, m.workspace ? m.workspace->ptr : 0,
                                m.workspace ? m.workspace->size() : 0};
  m.group_graphs.clear();
  for (const CopyGroup& g : m.groups) {
    auto graph = models::gpu::CudaGraph::capture(compute_stream_, [&] {
      return m.p().enqueue_layers(g.first_layer, g.layer_count, compute_stream_, b);
    });
    // A group whose layers queue no work (views only) has no graph: it runs from the host,
    // at no cost.
    if (graph.ok()) {
      m.group_graphs.emplace_back(std::move(*graph));
    } else {
      m.group_graphs.emplace_back(std::nullopt);
    }
  }
  m.group_graph_weights = weights;
  return true;
}

const char* switch_mode_name(SwitchMode mode) {
  switch (mode) {
    case SwitchMode::kEnqueue:
      return "enqueue";
    case SwitchMode::kGroupGraphs:
      return "group graphs";
    case SwitchMode::kRequestGraph:
      return "request graph";
  }
  return "?";
}

Status GpuEngine::launch_switch(Model& m, SwitchMode mode) {
  const CUdeviceptr region = switch_region_->ptr;
  switch (mode) {
    case SwitchMode::kEnqueue:
      return enqueue_request(m, region, true, 0, 1, false);
    case SwitchMode::kGroupGraphs:
      return enqueue_request(m, region, true, 0, 1, true);
    case SwitchMode::kRequestGraph:
      return m.switch_graph->launch(compute_stream_);
  }
  return internal_error("unknown switch mode");
}

Status GpuEngine::choose_switch_mode(Model& m) {
  // Three ways to enqueue a switch, each right on some model and slow on another on the H200
  // (docs/switching.md): layer by layer from the host (host-bound where cuDNN's calls are
  // slow), one graph per group behind host-enqueued copies, or the whole request as one graph.
  // Each is timed on the device (median of 3, after one warm run) and the fastest kept.
  std::vector<SwitchMode> modes = {SwitchMode::kEnqueue};
  if (group_graphs_for(m, switch_region_->ptr)) {
    modes.push_back(SwitchMode::kGroupGraphs);
    // (Layer by layer inside the capture: a graph launch cannot itself be captured.)
    auto g = models::gpu::CudaGraph::capture(compute_stream_, [&] {
      return enqueue_request(m, switch_region_->ptr, true, 0, 1, false);
    });
    if (g.ok()) {
      m.switch_graph = std::move(*g);
      modes.push_back(SwitchMode::kRequestGraph);
    }
  }
  double best = 0;
  for (SwitchMode mode : modes) {
    std::vector<double> us;
    for (int run = 0; run < 4; ++run) {
      PS_TRY(start_event_.record(compute_stream_));
      PS_TRY(launch_switch(m, mode));
      PS_TRY(end_event_.record(compute_stream_));
      PS_TRY(end_event_.synchronize());
      if (run > 0) us.push_back(static_cast<double>(event_us(start_event_, end_event_)));
    }
    std::sort(us.begin(), us.end());
    m.switch_mode_us[static_cast<int>(mode)] = us[1];
    if (best == 0 || us[1] < best) {
      best = us[1];
      m.switch_mode = mode;
    }
  }
  if (m.switch_mode != SwitchMode::kRequestGraph) m.switch_graph.reset();
  if (m.switch_mode != SwitchMode::kGroupGraphs && m.switch_mode != SwitchMode::kRequestGraph) {
    m.group_graphs.clear();
  }
  return Status::OK();
}

Completion GpuEngine::infer(const InferTask& task) {
  const auto started = Clock::now();
  Completion c;
  c.kind = CompletionKind::kInfer;
  c.ticket = task.ticket;
  c.timings.queue_us = micros(started - task.accepted);
  auto it = models_.find(task.model);
  if (it == models_.end()) {
    c.status = not_found("model '", task.model, "' was unloaded");
    return c;
  }
  Model& m = *it->second;
  const std::string* input = &task.input;
  if (task.synthetic && batch_supported(m.info, task.batch)) {
    auto s = m.synthetic.find(task.batch);
    if (s == m.synthetic.end()) {
      s = m.synthetic.emplace(task.batch, synthetic_input(m.info, task.batch)).first;
    }
    input = &s->second;
  }
  c.status = check_infer_input(m.info, task.batch, input->size());
  if (!c.status.ok()) return c;
  Status s =
      policy_.fresh_process ? run_fresh_process(m, task, *input, &c) : run(m, task, *input, &c);
  if (!s.ok()) c.status = s.with_context(str_cat("model '", m.info.name, "'"));
  return c;
}

Status GpuEngine::run(Model& m, const InferTask& task, const std::string& input, Completion* c) {
  const uint32_t chunks = task.batch / m.info.batch;
  PS_TRY(ensure_staging(m, chunks));
  // A synthetic input stays staged for the next request of the same batch.
  if (!task.synthetic || m.staged_synthetic != task.batch) {
    std::memcpy(m.input_staging.data(), input.data(), input.size());
    m.staged_synthetic = task.synthetic ? task.batch : 0;
  }

  const bool resident = m.slot.has_value() && resident_.contains(m.info.name);
  CUdeviceptr weights = 0;
  if (resident) {
    weights = m.slot->ptr;
    resident_.touch(m.info.name);
  } else {
    PS_ASSIGN_OR_RETURN(weights, weights_for_switch(m));
  }
  const bool copies = !resident && policy_.home != WeightHome::kManaged;
  uint64_t out_total = 0;
  for (const models::gpu::IoSpec& io : m.p().outputs()) out_total += io.bytes;

  // Resident (or managed): the whole request as one graph. Switching in: the copies from the
  // host, each group's layers as one graph (graphs holding the copies too kept BERT-base's and
  // Inception v3's layers from overlapping the copies on the H200; docs/switching.md).
  const models::gpu::CudaGraph* graph = nullptr;
  const bool in_region = copies && switch_region_ && weights == switch_region_->ptr;
  if (!copies && chunks == 1) {
    PS_ASSIGN_OR_RETURN(graph, graph_for(m, weights));
  }
  const bool group_graphs =
      in_region && m.switch_mode != SwitchMode::kEnqueue && group_graphs_for(m, weights);
  const auto enqueue_started = Clock::now();
  PS_TRY(start_event_.record(compute_stream_));
  if (graph != nullptr) {
    PS_TRY(graph->launch(compute_stream_));
  } else if (in_region && chunks == 1 && m.switch_mode == SwitchMode::kRequestGraph &&
             m.switch_graph) {
    PS_TRY(m.switch_graph->launch(compute_stream_));
  } else {
    for (uint32_t k = 0; k < chunks; ++k) {
      PS_TRY(enqueue_request(m, weights, copies && k == 0, k, chunks, group_graphs));
    }
  }
  PS_TRY(end_event_.record(compute_stream_));
  PS_TRY(end_event_.synchronize());

  c->timings.compute_us = event_us(start_event_, end_event_);
  c->timings.switch_us = copies ? event_us(copy_start_event_, copy_end_event_) : 0;
  // Host time from the enqueue to the output, less the GPU time from the first layer to the
  // output: when the first layer started, on the host's clock.
  const uint64_t wall_us = micros(Clock::now() - enqueue_started);
  const uint64_t running_us = event_us(first_layer_event_, end_event_);
  c->timings.startup_us = c->timings.queue_us + (wall_us > running_us ? wall_us - running_us : 0);
  // The reply's checksum and sum, here on the device thread, from the pinned output; the bytes
  // themselves only when the client asked for them.
  c->outputs = specs_at_batch(m.info.outputs, m.info.batch, task.batch);
  const std::string_view output(m.output_staging.as<const char>(), out_total * chunks);
  const OutputSummary summary = summarize_output(c->outputs, output);
  c->summarized = true;
  c->checksum = summary.checksum;
  c->sum = summary.sum;
  if (task.want_output) c->output.assign(output);
  if (!resident) {
    ++switches_;
    if (policy_.residency == Residency::kEvictAfterTask) {
      evict_after_reply_ = &m;
    } else {
      resident_.add(m.info.name, policy_.residency == Residency::kAlways);
    }
  }
  return Status::OK();
}

Status GpuEngine::run_fresh_process(Model& m, const InferTask& task, const std::string& input,
                                    Completion* c) {
  const auto start = Clock::now();
  OneshotRequest request;
  request.exe = self_exe_;
  request.device = ordinal_;
  request.package = m.package_path;
  request.precision = std::string(models::gpu::precision_name(precision_));
  request.batch = task.batch;
  PS_ASSIGN_OR_RETURN(c->output, run_in_fresh_process(request, input));
  uint64_t out_bytes = 0;
  for (const TensorSpec& spec : m.info.outputs) out_bytes += spec.bytes();
  if (c->output.size() != out_bytes * (task.batch / m.info.batch)) {
    return internal_error("the fresh process returned ", c->output.size(), " output bytes");
  }
  c->outputs = specs_at_batch(m.info.outputs, m.info.batch, task.batch);
  // Everything in the new process is the switch: context, libraries, package, copy, compute.
  c->timings.compute_us = micros(Clock::now() - start);
  c->timings.switch_us = c->timings.compute_us;
  ++switches_;
  return Status::OK();
}

void GpuEngine::after_reply() {
  if (evict_after_reply_ != nullptr) release_weights(*evict_after_reply_);
  evict_after_reply_ = nullptr;
}

BackendStats GpuEngine::stats() const {
  BackendStats s;
  s.switches = switches_;
  s.pool_bytes = pool_->capacity();
  s.pool_used_bytes = pool_->stats().allocator.used_bytes;
  for (const auto& [name, model] : models_) {
    if (resident_.contains(name)) s.resident.push_back(name);
  }
  return s;
}

}  // namespace ps::reactor
