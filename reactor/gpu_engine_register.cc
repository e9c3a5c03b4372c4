// GpuEngine's registration of a model (gpu_engine.h): its weights into their host home, the
// plan, the per-layer profile and the copy groups, the switch mode measured on the device, and
// the CUDA graphs of its requests.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "cuda/copy.h"
#include "models/package_reader.h"
#include "onnx_loader/package_writer.h"
#include "reactor/gpu_engine.h"
#include "reactor/gpu_engine_model.h"
#include "reactor/log.h"
#include "reactor/model_source.h"
#include "reactor/synthetic_input.h"

namespace ps::reactor {
namespace {

using engine_detail::event_us;
using models::gpu::CopyGroup;
using models::gpu::GroupingChoice;

constexpr int kProfileRuns = 3;

}  // namespace

Result<std::unique_ptr<GpuEngine::Model>> GpuEngine::register_model(const ModelSource& source) {
  auto m = std::make_unique<Model>();
  m->source = source;
  m->source.package_fd.reset();  // the package is read below and not needed again
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
    PS_ASSIGN_OR_RETURN(models::Package package, open_package(source));
    m->manifest = package.manifest();
    // A package LOAD opened confined to the models directory is never opened by its path again:
    // kill-restart's fresh processes read a copy of it, written below like a zoo model's.
    if (!source.package_fd) m->package_path = source.package_path;
    PS_ASSIGN_OR_RETURN(uint8_t * dst, place(package.weights_bytes()));
    if (package.weights_bytes() > 0) {
      Status read = package.read_weights(dst, package.weights_bytes());
      if (!read.ok()) return read.with_context(source.package_path);
    }
    m->host_weights = dst;
  }
  PS_ASSIGN_OR_RETURN(m->info, describe_model(source.name, label, m->manifest));
  if (policy_.fresh_process && m->package_path.empty()) {
    // The fresh process reads a package: write the zoo model (or the LOADed package) as one,
    // once.
    if (package_dir_.empty()) {
      // A fresh directory only this user can enter (mkdtemp: mode 0700, a name nobody could
      // have prepared), since every request's process reads the packages from it.
      const char* tmp = std::getenv("TMPDIR");
      std::string dir = str_cat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/pipeswitchd-XXXXXX");
      if (::mkdtemp(dir.data()) == nullptr) {
        return io_error("creating a directory for the fresh processes' packages (", dir,
                        "): ", std::strerror(errno));
      }
      package_dir_ = std::move(dir);
    }
    m->package_path = str_cat(package_dir_, "/", source.name, ".psm");
    m->owns_package = true;
    PS_TRY(onnx_loader::write_package(m->package_path, m->manifest,
                                      std::span<const uint8_t>(m->host_weights, m->weights_bytes)));
  }

  // 2. The plan: descriptors, algorithm choices, kernels, one warm-up pass.
  models::gpu::PlanOptions plan_options;
  plan_options.precision = precision_;
  plan_options.host_read_min_bytes = host_read_min_bytes_;
  auto plan = models::gpu::Plan::build(m->manifest,
                                       std::span<const uint8_t>(m->host_weights, m->weights_bytes),
                                       *runtime_, plan_options);
  runtime_->release_plan_scratch();
  if (!plan.ok()) return plan.status().with_context(str_cat("model '", source.name, "'"));
  m->plan.emplace(std::move(*plan));

  // 3. Its arena and workspace, kept for its lifetime.
  PS_ASSIGN_OR_RETURN(m->arena, allocate(std::max<uint64_t>(m->p().arena_bytes(), 256),
                                          "arena " + source.name));
  if (m->p().workspace_bytes() > 0) {
    auto ws = allocate(m->p().workspace_bytes(), "workspace " + source.name);
    if (!ws.ok()) {
      free_model_memory(*m);
      return ws.status();
    }
    m->workspace = *ws;
  }
  Status rest = [&]() -> Status {
    PS_TRY(ensure_staging(*m, 1));
    if (host_read_ && !m->p().host_readable().empty()) {
      PS_ASSIGN_OR_RETURN(m->host_read, m->pinned.device_address());
    }
    PS_TRY(choose_groups(*m));
    PS_TRY(plan_routes(*m));
    return Status::OK();
  }();
  if (!rest.ok()) {
    free_model_memory(*m);
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
        for (auto& [name, other] : models_) {
          PS_TRY(choose_switch_mode(*other));
          PS_TRY(prepare_region_hit(*other));
        }
      }
      if (grouping_ == GroupingChoice::kTimed) PS_TRY(choose_timed_groups(*m));
    }
    if (!graphs_ || policy_.fresh_process) return Status::OK();
    if (m->slot || policy_.home == WeightHome::kManaged) {
      const CUdeviceptr weights = m->slot ? m->slot->ptr : m->managed.ptr();
      PS_ASSIGN_OR_RETURN(const models::gpu::CudaGraph* graph, graph_for(*m, weights));
      if (graph != nullptr) PS_TRY(graph->launch(compute_stream_));
    } else if (uses_switch_region()) {
      // (kTimed chose the mode with the groups.)
      if (grouping_ != GroupingChoice::kTimed) PS_TRY(choose_switch_mode(*m));
      PS_TRY(prepare_region_hit(*m));
    }
    PS_TRY(compute_stream_.synchronize());
    if (policy_.home == WeightHome::kManaged) release_weights(*m);
    return Status::OK();
  }();
  if (!ready.ok()) {
    free_model_memory(*m);
    return ready.with_context(str_cat("model '", source.name, "'"));
  }
  m->info.grouping = str_cat(grouping_ == GroupingChoice::kTimed ? "timed:" : "",
                             models::gpu::grouping_choice_name(m->grouping));
  m->info.groups = static_cast<uint32_t>(m->groups.size());
  if (uses_switch_region()) {
    log_info(source.name, ": switch as ", switch_mode_name(m->switch_mode), " (measured: enqueue ",
             m->switch_mode_us[0], " us, group graphs ", m->switch_mode_us[1],
             " us, request graph ", m->switch_mode_us[2], " us; 0 = not possible)");
  }
  log_info("registered ", source.name, ": ", m->p().layer_count(), " layers, ",
           models::gpu::describe_groups(m->groups), " (",
           models::gpu::grouping_choice_name(m->grouping),
           grouping_ == GroupingChoice::kTimed ? ", timed" : "", "); compute ",
           static_cast<int>(m->compute_us), " us, predicted pipelined ",
           static_cast<int>(m->predicted_us), " us, transfer floor ",
           static_cast<int>(static_cast<double>(m->weights_bytes) / link_.bytes_per_us), " us");
  if (m->host_read != 0) {
    uint64_t bytes = 0;
    for (const models::gpu::WeightRange& r : m->p().host_readable()) bytes += r.bytes;
    log_info(source.name, ": ", m->p().host_readable().size(), " embedding table(s), ",
             bytes >> 20, " MiB, read from host memory during a switch (--host-read)");
  }
  return m;
}

Status GpuEngine::choose_groups(Model& m) {
  // Profile every layer on the device with the weights in a pool slot and a synthetic input.
  PS_ASSIGN_OR_RETURN(m.slot,
                      allocate(std::max<uint64_t>(m.weights_bytes, 256), "weights " + m.info.name));
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

  const GroupingChoice first =
      grouping_ == GroupingChoice::kTimed ? GroupingChoice::kOptimal : grouping_;
  PS_ASSIGN_OR_RETURN(std::vector<CopyGroup> groups, groups_of(m, first));
  m.grouping = first;
  return set_groups(m, std::move(groups));
}

Result<std::vector<CopyGroup>> GpuEngine::groups_of(const Model& m, GroupingChoice choice) const {
  PS_ASSIGN_OR_RETURN(std::vector<CopyGroup> units, models::gpu::package_groups(m.manifest));
  switch (choice) {
    case GroupingChoice::kPackage:
    case GroupingChoice::kPerLayer:
      return units;
    case GroupingChoice::kWhole:
      return models::gpu::whole_model_group(m.manifest);
    case GroupingChoice::kBlocks:
      return models::gpu::block_groups(m.manifest, units);
    case GroupingChoice::kOptimal:
    case GroupingChoice::kTimed: {
      // A switch does not copy the weights it reads from the host: the groups are chosen
      // without their bytes.
      const auto grouping_units =
          models::gpu::grouping_units(units, m.layer_us, m.host_read_ranges());
      PS_ASSIGN_OR_RETURN(models::GroupStarts starts,
                          models::optimal_grouping(grouping_units, link_));
      return models::gpu::merge_groups(units, starts);
    }
  }
  return internal_error("unknown grouping");
}

Status GpuEngine::set_groups(Model& m, std::vector<CopyGroup> groups) {
  m.groups = std::move(groups);
  while (m.group_events.size() < m.groups.size()) {
    PS_ASSIGN_OR_RETURN(cuda::Event ev, cuda::Event::create(false));
    m.group_events.push_back(std::move(ev));
  }
  m.group_events.resize(m.groups.size());
  // Graphs captured for other groups wait on other events and enqueue other layer ranges.
  m.group_graphs.clear();
  m.group_graph_weights = 0;
  m.switch_graph.reset();
  // The prediction for these groups (each one unit of the timeline model).
  const auto units = models::gpu::grouping_units(m.groups, m.layer_us, m.host_read_ranges());
  models::GroupStarts all(units.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint32_t>(i);
  PS_ASSIGN_OR_RETURN(models::GroupingPrediction prediction,
                      models::predict_grouping(units, link_, all));
  m.predicted_us = prediction.finish_us;
  return Status::OK();
}

Status GpuEngine::choose_timed_groups(Model& m) {
  struct Timed {
    GroupingChoice choice;
    std::vector<CopyGroup> groups;
    double us = 0;
  };
  std::vector<Timed> timed;
  std::string report;
  for (GroupingChoice choice :
       {GroupingChoice::kOptimal, GroupingChoice::kBlocks, GroupingChoice::kPerLayer}) {
    const char* name = models::gpu::grouping_choice_name(choice);
    auto groups = groups_of(m, choice);
    if (!groups.ok()) {  // blocks, for a graph without module scopes in its layer names
      report +=
          str_cat(report.empty() ? "" : ", ", name, " none (", groups.status().message(), ")");
      continue;
    }
    // The same partition as one already timed (per-layer when the optimum is per-layer, or a
    // package imported with block groups): timed once.
    const auto same = std::find_if(timed.begin(), timed.end(),
                                   [&](const Timed& t) { return t.groups == *groups; });
    if (same != timed.end()) {
      report += str_cat(report.empty() ? "" : ", ", name, " = ",
                        models::gpu::grouping_choice_name(same->choice));
      continue;
    }
    PS_TRY(set_groups(m, *groups));
    PS_TRY(choose_switch_mode(m));
    const double us = m.switch_mode_us[static_cast<int>(m.switch_mode)];
    report += str_cat(report.empty() ? "" : ", ", name, " ", groups->size(), " groups ",
                      static_cast<int>(us), " us (", switch_mode_name(m.switch_mode), ")");
    timed.push_back({choice, std::move(*groups), us});
  }
  if (timed.empty()) return internal_error("no grouping could be timed");
  const auto best = std::min_element(timed.begin(), timed.end(),
                                     [](const Timed& a, const Timed& b) { return a.us < b.us; });
  if (best != timed.end() - 1) {  // the last one timed holds the graphs and mode now
    PS_TRY(set_groups(m, best->groups));
    PS_TRY(choose_switch_mode(m));
  }
  m.grouping = best->choice;
  PS_TRY(plan_routes(m));
  log_info(m.info.name, ": groupings timed as switches: ", report, "; kept ",
           models::gpu::grouping_choice_name(best->choice));
  return Status::OK();
}

Result<const models::gpu::CudaGraph*> GpuEngine::graph_for(Model& m, CUdeviceptr weights,
                                                           bool host_tables) {
  if (!graphs_ || m.graphs_failed) return nullptr;
  if (!m.resident_graph || m.resident_graph_weights != weights ||
      m.resident_graph_host_tables != host_tables) {
    m.resident_graph.reset();
    auto g = capture([&] { return enqueue_request(m, weights, false, 0, 1, false, host_tables); });
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
    m.resident_graph_host_tables = host_tables;
  }
  return &*m.resident_graph;
}

Result<models::gpu::CudaGraph> GpuEngine::capture(const std::function<Status()>& enqueue) {
  ++graph_captures_;
  return models::gpu::CudaGraph::capture(compute_stream_, enqueue);
}

Status GpuEngine::prepare_region_hit(Model& m) {
  if (!reuse_region_ || !switch_region_) return Status::OK();
  PS_ASSIGN_OR_RETURN(const models::gpu::CudaGraph* graph,
                      graph_for(m, switch_region_->ptr, /*host_tables=*/true));
  if (graph != nullptr) PS_TRY(graph->launch(compute_stream_));
  return Status::OK();
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
                                m.workspace ? m.workspace->size() : 0, m.host_read};
  m.group_graphs.clear();
  for (const CopyGroup& g : m.groups) {
    auto graph = capture(
        [&] { return m.p().enqueue_layers(g.first_layer, g.layer_count, compute_stream_, b); });
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
      return enqueue_request(m, region, true, 0, 1, false, true);
    case SwitchMode::kGroupGraphs:
      return enqueue_request(m, region, true, 0, 1, true, true);
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
    auto g =
        capture([&] { return enqueue_request(m, switch_region_->ptr, true, 0, 1, false, true); });
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

}  // namespace ps::reactor
