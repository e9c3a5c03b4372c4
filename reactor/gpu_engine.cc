#include "reactor/gpu_engine.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "cuda/context.h"
#include "cuda/copy.h"
#include "cuda/device_buffer.h"
#include "cuda/driver.h"
#include "models/gpu/link_probe.h"
#include "models/gpu/parallel_run.h"
#include "models/gpu/pipelined_run.h"
#include "reactor/fresh_process.h"
#include "reactor/gpu_engine_model.h"
#include "reactor/log.h"
#include "reactor/model_source.h"
#include "reactor/output_summary.h"
#include "reactor/synthetic_input.h"

namespace ps::reactor {
namespace {

using engine_detail::Clock;
using engine_detail::event_us;
using engine_detail::micros;
using models::gpu::GroupingChoice;

constexpr uint64_t kDefaultPoolCap = uint64_t{8} << 30;
constexpr uint64_t kProbeBytes = uint64_t{64} << 20;

// Parallel transmission: the pieces a group is cut into and a lent link's staging (two slots of
// one piece: the hop of one overlaps the host copy of the next), its events (two per piece it
// can carry in one switch, plus the slots'), and the forwarding rate the routes assume
// (conservative for NVLink 4; the routes only compare links, all of which forward alike).
constexpr uint64_t kPieceBytes = uint64_t{8} << 20;
constexpr uint32_t kSlots = 2;
constexpr uint32_t kLinkEvents = 1024;
constexpr double kForwardBytesPerUs = 150000.0;
// Borrowing links costs the switch's host some enqueue work (a context switch per operation on
// a peer's streams): a route must beat one link's predicted finish by this share to be used.
constexpr double kMinParallelGain = 0.03;

std::string gib(uint64_t bytes) {
  return str_cat(static_cast<double>(bytes * 10 / (uint64_t{1} << 30)) / 10, " GiB");
}

}  // namespace

GpuEngine::~GpuEngine() {
  // This GPU's lent links first: no other switch may hold them once they are gone.
  if (peer_links_ && !lent_links_.empty()) peer_links_->remove(lend_owner_);
  for (auto& link : lent_links_) {
    if (!link->in.empty()) (void)link->in.synchronize();
    if (!link->hop.empty()) (void)link->hop.synchronize();
    if (link->staging.size() > 0) (void)pool_->free(link->staging);
  }
  lent_links_.clear();
  // Nothing may still run on memory about to be freed.
  // (A failed open() destroys an engine with only some members made.)
  if (!compute_stream_.empty()) (void)compute_stream_.synchronize();
  if (!copy_stream_.empty()) (void)copy_stream_.synchronize();
  for (auto& [name, model] : models_) free_model_memory(*model);
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
  e->pipelining_ = options.pipelining;
  // Reading a table from the host is for switches only: a model that stays resident after it
  // (cache) would keep a slot without the table, and the baselines (stop-and-start,
  // kill-restart) and the host-memory ablations copy as the paper's did.
  e->host_read_ = options.host_read && e->policy_.home == WeightHome::kPinned &&
                  e->policy_.residency == Residency::kEvictAfterTask &&
                  !e->policy_.whole_model_copy && !e->policy_.fresh_process;
  if (options.host_read_min_bytes != 0) e->host_read_min_bytes_ = options.host_read_min_bytes;
  // The baseline that copies the whole model every time (stop-and-start) keeps doing so.
  e->reuse_region_ =
      options.reuse_region && e->uses_switch_region() && !e->policy_.whole_model_copy;
  PS_ASSIGN_OR_RETURN(e->grouping_, models::gpu::parse_grouping_choice(options.grouping));
  if (e->policy_.whole_model_copy) e->grouping_ = GroupingChoice::kWhole;
  // Timing a grouping times switches into the switch region: under the other policies (models
  // resident, or weights elsewhere) the predicted optimum stands.
  if (e->grouping_ == GroupingChoice::kTimed && !e->uses_switch_region()) {
    e->grouping_ = GroupingChoice::kOptimal;
  }
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
  for (cuda::Event* ev : {&e->fork_event_, &e->join_event_, &e->input_event_}) {
    PS_ASSIGN_OR_RETURN(*ev, cuda::Event::create(false));
  }

  // The link, measured on the copy stream into pool memory: 64 MiB copies, or half a small
  // pool's (in whole MiB, at least the probe's 1 MiB), so that a small --pool-size starts.
  constexpr uint64_t kMiB = uint64_t{1} << 20;
  const uint64_t probe_bytes = std::clamp<uint64_t>(pool_bytes / 2 / kMiB * kMiB, kMiB, kProbeBytes);
  PS_ASSIGN_OR_RETURN(cuda::PinnedBuffer probe_host, cuda::PinnedBuffer::allocate(probe_bytes));
  std::memset(probe_host.data(), 0x5a, probe_bytes);
  auto probe_device = e->pool_->allocate(probe_bytes, "link probe");
  if (!probe_device.ok()) {
    return probe_device.status().with_context("measuring the link (--pool-size too small?)");
  }
  auto link =
      models::gpu::probe_link(e->copy_stream_, probe_host.data(), probe_device->ptr, probe_bytes);
  PS_TRY(e->pool_->free(*probe_device));
  if (!link.ok()) return link.status().with_context("measuring the link");
  e->link_ = *link;
  PS_TRY(e->open_parallel(options));
  return e;
}

Status GpuEngine::open_parallel(const BackendOptions& options) {
  // Pinned weights copied group by group into the pool (peers are granted access to the pool,
  // not to no-pool's driver allocations).
  const bool policy_allows = policy_.home == WeightHome::kPinned &&
                             policy_.memory == DeviceMemory::kPool && !policy_.whole_model_copy &&
                             !policy_.fresh_process && pipelining_;
  if (options.parallel_links <= 1 || !policy_allows ||
      (!options.peer_links && options.parallel_loopback == 0)) {
    return Status::OK();
  }
  const cuda::Device& device = runtime_->device();
  peer_links_ = options.peer_links;
  lend_owner_ = ordinal_;
  uint32_t to_lend = 1;
  if (options.parallel_loopback > 0) {  // tests: links of this GPU to itself
    if (!peer_links_) peer_links_ = std::make_shared<PeerLinks>(std::vector<int>{ordinal_});
    lend_owner_ = PeerLinks::kLoopback;
    to_lend = options.parallel_loopback;
  } else {
    // Every other GPU of the server may forward pieces into this pool.
    for (int other : peer_links_->devices()) {
      Status granted = pool_->grant_access(other);
      if (!granted.ok()) {
        log_warn("gpu ", ordinal_, ": no parallel transmission (GPU ", other,
                 " cannot write into this GPU's pool: ", granted.message(), ")");
        peer_links_.reset();
        return Status::OK();
      }
    }
  }
  for (uint32_t i = 0; i < to_lend; ++i) {
    auto link = std::make_unique<LentLink>();
    PS_ASSIGN_OR_RETURN(link->in, cuda::Stream::create(cuda::StreamPriority::kHigh));
    PS_ASSIGN_OR_RETURN(link->hop, cuda::Stream::create(cuda::StreamPriority::kHigh));
    auto staging = pool_->allocate(kSlots * kPieceBytes, "parallel transmission staging");
    if (!staging.ok()) return staging.status().with_context("--parallel-links");
    link->staging = *staging;
    PS_ASSIGN_OR_RETURN(link->events, models::gpu::create_link_events(device.context(), kLinkEvents));
    models::gpu::LinkStreams streams;
    streams.context = device.context();
    streams.in = &link->in;
    streams.hop = &link->hop;
    streams.staging = link->staging.ptr;
    streams.slots = kSlots;
    streams.slot_bytes = kPieceBytes;
    streams.events = link->events;
    lent_links_.push_back(std::move(link));
    peer_links_->add(lend_owner_, streams);
  }
  PS_ASSIGN_OR_RETURN(own_link_events_,
                      models::gpu::create_link_events(device.context(), kLinkEvents));
  parallel_links_ = std::min<uint32_t>(options.parallel_links, PeerLinks::kMaxClaim + 1);
  return Status::OK();
}

Status GpuEngine::plan_routes(Model& m) {
  m.routes.clear();
  m.max_borrow = 0;
  if (!peer_links_ || parallel_links_ <= 1) return Status::OK();
  std::vector<uint64_t> group_bytes;
  std::vector<double> group_us;
  for (const models::GroupingUnit& u : models::gpu::grouping_units(m.groups, m.layer_us)) {
    group_bytes.push_back(u.bytes);
    group_us.push_back(u.compute_us);
  }
  // The tables a switch reads from the host are not copied: the routes time what is.
  const std::span<const models::gpu::WeightRange> skip = m.host_read_ranges();
  const models::CopiedBytes copied = [&](uint32_t g, uint64_t offset, uint64_t bytes) {
    return bytes - models::gpu::bytes_inside(m.groups[g].blob_offset + offset, bytes, skip);
  };
  models::LinkSet links;
  links.host = link_;
  links.nvlink_bytes_per_us = kForwardBytesPerUs;
  links.hop_fixed_us = link_.copy_fixed_us;
  links.max_piece_bytes = kPieceBytes;
  PS_ASSIGN_OR_RETURN(m.routes, models::gpu::plan_routes(group_bytes, links, parallel_links_,
                                                         kSlots, kLinkEvents, copied));
  if (m.routes.empty()) return Status::OK();
  double best = 0;
  uint32_t best_borrow = 0;
  for (size_t i = 0; i < m.routes.size(); ++i) {
    PS_ASSIGN_OR_RETURN(models::GroupingPrediction p,
                        models::predict_parallel(m.routes[i], group_us));
    if (i == 0 || p.finish_us < best) {
      best = p.finish_us;
      best_borrow = static_cast<uint32_t>(i + 1);
    }
  }
  const bool worth_it = best <= m.predicted_us * (1 - kMinParallelGain);
  m.max_borrow = worth_it ? best_borrow : 0;
  if (lend_owner_ == PeerLinks::kLoopback) m.max_borrow = static_cast<uint32_t>(m.routes.size());
  log_info(m.info.name, ": parallel transmission predicted ", static_cast<int>(best), " us over ",
           best_borrow + 1, " links against ", static_cast<int>(m.predicted_us),
           " us over one: ",
           m.max_borrow == 0 ? std::string("one link is used")
                             : str_cat("borrows up to ", m.max_borrow, " link(s)"));
  return Status::OK();
}

bool GpuEngine::parallel_for(const Model& m) const {
  return peer_links_ && m.max_borrow > 0;
}

std::string GpuEngine::describe() const {
  const cuda::Device& d = runtime_->device();
  return str_cat("gpu ", ordinal_, ": ", d.name(), " (", gib(d.total_memory()), ", cc ",
                 d.cc_major(), ".", d.cc_minor(), "); ", models::gpu::precision_name(precision_),
                 "; pool ", gib(pool_->capacity()), "; grouping ",
                 models::gpu::grouping_choice_name(grouping_),
                 pipelining_ ? "" : " without pipelining", host_read_ ? "; tables read from the host" : "",
                 peer_links_ ? str_cat("; parallel transmission over up to ", parallel_links_,
                                       " links", lend_owner_ == PeerLinks::kLoopback ? " (loopback)" : "")
                             : std::string(),
                 "; link ",
                 static_cast<int>(link_.bytes_per_us / 100) / 10.0, " GB/s + ",
                 static_cast<int>(link_.copy_fixed_us * 10) / 10.0, " us/copy");
}

Completion GpuEngine::load(uint64_t ticket, const ModelSource& source) {
  const auto start = Clock::now();
  Completion c;
  c.kind = CompletionKind::kLoad;
  c.ticket = ticket;
  region_model_ = nullptr;  // registration times switches of the new model in the region
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
  if (region_model_ == &m) region_model_ = nullptr;
  free_model_memory(m);
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
  // Least recently used models are evicted first; the training job's memory only when that
  // is not enough (inference comes first, and an evicted cached model costs only a later
  // switch, a paged-out job a step and two copies).
  auto place = [&]() {
    return resident_.place_evicting(
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
  };
  Status placed = place();
  if (placed.code() == Code::kOutOfMemory && reclaimer_) {
    PS_ASSIGN_OR_RETURN(const bool freed, reclaimer_());
    if (freed) placed = place();
  }
  if (!placed.ok()) return placed.with_context(str_cat("switching '", m.info.name, "' in"));
  return m.slot->ptr;
}

Result<cuda::PoolRange> GpuEngine::allocate(uint64_t bytes, const std::string& tag) {
  Result<cuda::PoolRange> range = pool_->allocate(bytes, tag);
  if (range.ok() || range.status().code() != Code::kOutOfMemory || !reclaimer_) return range;
  PS_ASSIGN_OR_RETURN(const bool freed, reclaimer_());
  if (!freed) return range;
  return pool_->allocate(bytes, tag);
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

void GpuEngine::free_model_memory(Model& m) {
  if (m.slot) (void)pool_->free(*m.slot);
  m.slot.reset();
  if (m.arena.size() > 0) (void)pool_->free(m.arena);
  m.arena = {};
  if (m.workspace) (void)pool_->free(*m.workspace);
  m.workspace.reset();
  resident_.remove(m.info.name);
}

bool GpuEngine::uses_switch_region() const {
  return policy_.residency == Residency::kEvictAfterTask && policy_.memory == DeviceMemory::kPool &&
         policy_.home == WeightHome::kPinned && !policy_.fresh_process;
}

Result<bool> GpuEngine::grow_switch_region(uint64_t bytes) {
  bytes = std::max<uint64_t>(bytes, 256);
  if (switch_region_ && switch_region_->size() >= bytes) return false;
  region_model_ = nullptr;
  if (switch_region_) {
    PS_TRY(pool_->free(*switch_region_));
    switch_region_.reset();
  }
  auto region = allocate(bytes, "switch region");
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
                                  uint32_t chunks, bool group_graphs, bool switched,
                                  models::gpu::CudaLanes* lanes,
                                  const models::ParallelPlan* route) {
  const models::gpu::Plan& plan = m.p();
  const models::gpu::Bindings b{weights, m.arena.ptr, m.workspace ? m.workspace->ptr : 0,
                                m.workspace ? m.workspace->size() : 0,
                                switched ? m.host_read : 0};
  // Group g's layers: its graph's replay, or layer by layer from the host.
  auto run_group = [&](size_t g) -> Status {
    if (group_graphs && m.group_graphs[g]) return m.group_graphs[g]->launch(compute_stream_);
    return plan.enqueue_layers(m.groups[g].first_layer, m.groups[g].layer_count, compute_stream_,
                               b);
  };
  if (switch_in) {
    // The copy stream starts after the work before it on the compute stream (the previous
    // request, which read the memory the copies overwrite); the compute stream rejoins it
    // after the last copy.
    PS_TRY(fork_event_.record(compute_stream_));
    PS_TRY(copy_stream_.wait(fork_event_));
  }
  // Input i of the request starts after inputs 0..i-1 (each at the request's batch). In a
  // switch the inputs go first on the copy stream, ahead of the weights: on the compute stream
  // they shared the link with the first groups' copies and arrived later (the first layer
  // needs both); the weights lose nothing, every byte crossing the link either way.
  const cuda::Stream& input_stream = switch_in ? copy_stream_ : compute_stream_;
  uint64_t offset = 0;
  for (const models::gpu::IoSpec& io : plan.inputs()) {
    PS_TRY(cuda::copy_to_device_async(m.arena.ptr + io.arena_offset,
                                      m.input_staging.as<uint8_t>() + offset + k * io.bytes,
                                      io.bytes, input_stream));
    offset += io.bytes * chunks;
  }
  if (switch_in) {
    PS_TRY(input_event_.record(copy_stream_));
    PS_TRY(compute_stream_.wait(input_event_));
    PS_TRY(copy_start_event_.record_timestamp(copy_stream_));
    if (lanes != nullptr) {
      // Parallel transmission: link 0 is the copy stream (which waited for the fork above);
      // the peers' forwards wait for it too, as they write into the same weights.
      PS_TRY(lanes->hold_forwards(fork_event_));
      const std::span<const models::gpu::WeightRange> skip =
          b.host_weights != 0 ? plan.host_readable() : std::span<const models::gpu::WeightRange>();
      PS_TRY(models::gpu::enqueue_parallel(m.groups, *route, skip, *lanes, [&](size_t g) -> Status {
        if (g == 0) PS_TRY(first_layer_event_.record_timestamp(compute_stream_));
        return run_group(g);
      }));
    } else {
      const models::gpu::WeightSource source{m.host_weights};
      PS_TRY(models::gpu::enqueue_pipelined(plan, m.groups, source, b, copy_stream_,
                                            compute_stream_, m.group_events, &first_layer_event_,
                                            run_group, pipelining_));
    }
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
  const uint64_t captures = graph_captures_;
  Status s =
      policy_.fresh_process ? run_fresh_process(m, task, *input, &c) : run(m, task, *input, &c);
  request_captures_ += graph_captures_ - captures;
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
  // The switch region still holds this model's weights (nothing was switched in since its
  // last request): it runs there without copying them again.
  const bool region_hit = !resident && reuse_region_ && region_model_ == &m;
  CUdeviceptr weights = 0;
  if (resident) {
    weights = m.slot->ptr;
    resident_.touch(m.info.name);
  } else if (region_hit) {
    weights = switch_region_->ptr;
  } else {
    region_model_ = nullptr;  // this switch overwrites the region
    PS_ASSIGN_OR_RETURN(weights, weights_for_switch(m));
  }
  const bool copies = !resident && !region_hit && policy_.home != WeightHome::kManaged;
  uint64_t out_total = 0;
  for (const models::gpu::IoSpec& io : m.p().outputs()) out_total += io.bytes;

  // Resident (or managed, or still in the region): the whole request as one graph. Switching
  // into the region: the way measured fastest for this model at registration
  // (m.switch_mode). Otherwise layer by layer.
  const models::gpu::CudaGraph* graph = nullptr;
  const bool in_region = (copies || region_hit) && switch_region_ && weights == switch_region_->ptr;
  if (!copies && chunks == 1) {
    PS_ASSIGN_OR_RETURN(graph, graph_for(m, weights, region_hit));
  }
  const bool group_graphs =
      in_region && m.switch_mode != SwitchMode::kEnqueue && group_graphs_for(m, weights);

  // Parallel transmission: this GPU is busy (not lent) while it runs; a switch borrows the
  // links of idle GPUs (at most as many as the model has routes for) and gives them back below.
  struct BusyScope {
    PeerLinks* links;
    int device;
    BusyScope(PeerLinks* l, int d) : links(l), device(d) {
      if (links) links->set_busy(device, true);
    }
    ~BusyScope() {
      if (links) links->set_busy(device, false);
    }
  } busy(peer_links_.get(), ordinal_);
  PeerLinks::Claim claim;
  if (copies && parallel_for(m)) {
    claim = peer_links_->claim(ordinal_, m.max_borrow);
  }
  std::array<models::gpu::LinkStreams, PeerLinks::kMaxClaim + 1> link_streams{};
  std::optional<models::gpu::CudaLanes> lanes;
  const models::ParallelPlan* route = nullptr;
  if (claim.count > 0) {
    models::gpu::LinkStreams& own = link_streams[0];
    own.context = runtime_->device().context();
    own.in = &copy_stream_;
    own.events = own_link_events_;
    for (uint32_t i = 0; i < claim.count; ++i) link_streams[i + 1] = claim.links[i];
    auto made = models::gpu::CudaLanes::create(
        std::span<const models::gpu::LinkStreams>(link_streams.data(), claim.count + 1),
        own.context, compute_stream_);
    if (!made.ok()) {
      peer_links_->release(claim);
      return made.status();
    }
    lanes.emplace(std::move(*made));
    lanes->bind(m.host_weights, weights);
    route = &m.routes[claim.count - 1];
  }
  // Gives the borrowed links back once nothing queued on them can still run.
  auto give_back = [&](bool drained) {
    if (claim.count == 0) return;
    if (!drained) {
      for (uint32_t i = 0; i < claim.count; ++i) {
        cuda::ScopedContext in_context(claim.links[i].context);
        (void)claim.links[i].in->synchronize();
        (void)claim.links[i].hop->synchronize();
      }
    }
    peer_links_->release(claim);
  };
  const auto enqueue_started = Clock::now();
  const Status ran = [&]() -> Status {
    PS_TRY(start_event_.record(compute_stream_));
    if (graph != nullptr) {
      PS_TRY(graph->launch(compute_stream_));
    } else if (copies && in_region && chunks == 1 && m.switch_mode == SwitchMode::kRequestGraph &&
               m.switch_graph && !lanes) {
      PS_TRY(m.switch_graph->launch(compute_stream_));
    } else {
      for (uint32_t k = 0; k < chunks; ++k) {
        PS_TRY(enqueue_request(m, weights, copies && k == 0, k, chunks, group_graphs,
                               copies || region_hit, lanes ? &*lanes : nullptr, route));
      }
    }
    PS_TRY(end_event_.record(compute_stream_));
    return end_event_.synchronize();
  }();
  // On success the compute stream has waited for every piece's arrival; the links' last
  // records (the slots' "read" events) may still be queued, which the next claimer's waits
  // order after. On failure, the links are drained first.
  give_back(ran.ok());
  if (!ran.ok()) {
    // Whatever was queued has run (the stream is synchronised); the memory taken for this
    // switch goes back rather than staying with a model that is not resident.
    (void)compute_stream_.synchronize();
    if (!resident) release_weights(m);
    region_model_ = nullptr;
    return ran;
  }

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
  if (region_hit) {
    ++region_hits_;
  } else if (!resident) {
    ++switches_;
    if (claim.count > 0) ++parallel_switches_;
    if (reuse_region_ && in_region) region_model_ = &m;
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
  s.region_hits = region_hits_;
  s.request_captures = request_captures_;
  if (region_model_ != nullptr) s.in_switch_region = region_model_->info.name;
  s.parallel_switches = parallel_switches_;
  s.pool_bytes = pool_->capacity();
  s.pool_used_bytes = pool_->stats().allocator.used_bytes;
  for (const auto& [name, model] : models_) {
    if (resident_.contains(name)) s.resident.push_back(name);
  }
  return s;
}

}  // namespace ps::reactor
