#include "tools/psbench/parallel_bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>

#include "cuda/context.h"
#include "cuda/copy.h"
#include "cuda/device.h"
#include "cuda/device_buffer.h"
#include "cuda/event.h"
#include "cuda/host_memory.h"
#include "cuda/peer.h"
#include "cuda/stream.h"
#include "models/gpu/copy_groups.h"
#include "models/gpu/cuda_lanes.h"
#include "models/gpu/link_probe.h"
#include "models/gpu/parallel_run.h"
#include "models/gpu/plan.h"
#include "models/gpu/runtime.h"
#include "models/package_reader.h"
#include "models/parallel_transfer.h"
#include "tools/psbench/cli.h"
#include "tools/psbench/infer_bench.h"

namespace ps::psbench {
namespace {

using Clock = std::chrono::steady_clock;
using models::gpu::CopyGroup;
using models::gpu::CudaLanes;
using models::gpu::LinkStreams;
using models::gpu::Plan;

Result<std::vector<int64_t>> parse_list(std::string_view option, std::string_view text,
                                        int64_t min, int64_t max) {
  std::vector<int64_t> out;
  while (!text.empty()) {
    const size_t comma = text.find(',');
    PS_ASSIGN_OR_RETURN(int64_t v, parse_int(option, text.substr(0, comma), min, max));
    out.push_back(v);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  if (out.empty()) return invalid_argument(option, ": an empty list");
  return out;
}

// One link's streams and staging, in its device's context.
struct Link {
  int device = 0;           // the GPU ordinal
  bool loopback = false;    // an extra link on the target itself
  cuda::Stream in, hop;
  cuda::DeviceBuffer staging;
  LinkStreams streams;
};

struct Timing {
  double median = 0, p90 = 0;
};
Timing timing(const std::vector<double>& v) { return {median(v), percentile(v, 0.9)}; }

// The measured result of one link count.
struct Row {
  uint32_t links = 0;
  std::vector<uint64_t> bytes_per_link;
  double predicted_transfer_us = 0, predicted_finish_us = 0;
  Timing transfer_ms, switch_ms;
  bool identical = false;  // the switch's outputs are the resident run's, bit for bit
};

}  // namespace

void print_parallel_help(std::FILE* out) {
  std::fprintf(
      out,
      "usage: psbench parallel PACKAGE.psm [--devices 0,1,...] [--loopback N] [--links 1,2,...]\n"
      "                        [--max-piece SIZE] [--slots N] [--grouping optimal|package]\n"
      "                        [--precision fp32|tf32] [--runs N] [--warmup N] [--json]\n"
      "\n"
      "A model switch through several host links at once (parallel transmission, as DeepPlan):\n"
      "the target GPU (the first of --devices) copies some pieces of the weights over its own\n"
      "PCIe link, every other device copies others into staging slots of its own memory and\n"
      "forwards them over NVLink. The layers run on the target as each group arrives. For each\n"
      "link count it checks the outputs against the resident model's (bit for bit), then times\n"
      "the transfer alone and the whole switch (transfer and layers; host wall time from the\n"
      "first enqueue to the last layer), median and p90 in ms, beside the plan's prediction,\n"
      "the resident model (ready) and the one-link switch.\n"
      "\n"
      "options:\n"
      "  --devices LIST    GPU ordinals, the target first (default 0); peer access is enabled\n"
      "                    between the target and each peer, or the run stops saying why\n"
      "  --loopback N      N more links on the target GPU itself (own streams and staging): no\n"
      "                    extra bandwidth; checks the path and its overhead on one GPU\n"
      "  --links LIST      link counts to measure (default: 1 up to all)\n"
      "  --max-piece SIZE  groups are cut into pieces of at most SIZE (default 8M; 0: never)\n"
      "  --slots N         staging slots per peer link (default 2: double buffered)\n"
      "  --grouping G      optimal (default; the one-link optimal groups over the measured\n"
      "                    layer times and link) or package (the package's groups)\n"
      "  --precision P     fp32 or tf32 (default)\n"
      "  --runs N          timed switches per link count (default 20)\n"
      "  --warmup N        untimed switches first (default 5)\n"
      "  --json            one JSON object instead of the table\n"
      "\n"
      "exit status: 0 ok, 1 error, 2 bad command line, 3 a switch's outputs differ from the\n"
      "resident model's.\n");
}

Result<ParallelOptions> parse_parallel_options(const std::vector<std::string_view>& args,
                                               bool* help) {
  ParallelOptions o;
  *help = false;
  OptionReader r(args);
  while (r.next()) {
    if (r.is_help()) {
      *help = true;
      return o;
    }
    if (r.is_positional()) {
      PS_TRY(r.take_package(o.package));
    } else if (r.is("--devices")) {
      PS_ASSIGN_OR_RETURN(auto v, r.value());
      PS_ASSIGN_OR_RETURN(auto list, parse_list("--devices", v, 0, 1023));
      o.devices.assign(list.begin(), list.end());
      for (size_t i = 0; i < o.devices.size(); ++i) {
        if (std::count(o.devices.begin(), o.devices.end(), o.devices[i]) > 1) {
          return invalid_argument("--devices: GPU ", o.devices[i], " twice");
        }
      }
    } else if (r.is("--loopback")) {
      PS_ASSIGN_OR_RETURN(auto n, r.int_value(0, 15));
      o.loopback = static_cast<uint32_t>(n);
    } else if (r.is("--links")) {
      PS_ASSIGN_OR_RETURN(auto v, r.value());
      PS_ASSIGN_OR_RETURN(auto list, parse_list("--links", v, 1, 16));
      o.links.assign(list.begin(), list.end());
    } else if (r.is("--max-piece")) {
      PS_ASSIGN_OR_RETURN(auto v, r.value());
      if (v == "0") {
        o.max_piece_bytes = 0;
      } else {
        PS_ASSIGN_OR_RETURN(o.max_piece_bytes, parse_size("--max-piece", v));
      }
    } else if (r.is("--slots")) {
      PS_ASSIGN_OR_RETURN(auto n, r.int_value(1, 16));
      o.slots = static_cast<uint32_t>(n);
    } else if (r.is("--grouping")) {
      PS_ASSIGN_OR_RETURN(auto v, r.value());
      if (v != "optimal" && v != "package") {
        return invalid_argument("--grouping: '", v, "' (optimal or package)");
      }
      o.optimal = v == "optimal";
    } else if (r.is("--precision")) {
      PS_ASSIGN_OR_RETURN(auto v, r.value());
      PS_ASSIGN_OR_RETURN(o.precision, models::gpu::parse_precision(v));
    } else if (r.is("--runs")) {
      PS_ASSIGN_OR_RETURN(auto n, r.int_value(1, 100'000));
      o.runs = static_cast<int>(n);
    } else if (r.is("--warmup")) {
      PS_ASSIGN_OR_RETURN(auto n, r.int_value(0, 100'000));
      o.warmup = static_cast<int>(n);
    } else if (r.is("--json")) {
      o.json = true;
    } else {
      return invalid_argument("unknown option '", r.name(), "'");
    }
  }
  if (o.package.empty()) return invalid_argument("no package given (psbench parallel MODEL.psm)");
  const uint32_t available = static_cast<uint32_t>(o.devices.size()) + o.loopback;
  if (available > 16) return invalid_argument("more than 16 links");
  for (uint32_t k : o.links) {
    if (k > available) {
      return invalid_argument("--links ", k, ": only ", available,
                              " links (--devices and --loopback)");
    }
  }
  if (o.links.empty()) {
    o.links.resize(available);
    std::iota(o.links.begin(), o.links.end(), 1u);
  }
  return o;
}

namespace {

Result<int> run_parallel(const ParallelOptions& o) {
  PS_ASSIGN_OR_RETURN(models::Package package, models::Package::open(o.package));
  const auto& manifest = package.manifest();
  PS_ASSIGN_OR_RETURN(std::unique_ptr<models::gpu::GpuRuntime> runtime,
                      models::gpu::GpuRuntime::create(o.devices[0]));
  const cuda::Device& target = runtime->device();

  // The peers, each with peer access to and from the target.
  std::vector<cuda::Device> peers;
  for (size_t i = 1; i < o.devices.size(); ++i) {
    PS_ASSIGN_OR_RETURN(cuda::Device d, cuda::Device::open(o.devices[i]));
    PS_TRY(cuda::enable_peer_access(d, target));
    PS_TRY(cuda::enable_peer_access(target, d));
    peers.push_back(std::move(d));
  }
  PS_TRY(target.make_current());

  // Weights: pinned host copy (the switch's source) and the target's copy.
  const uint64_t weight_bytes = std::max<uint64_t>(package.weights_bytes(), 1);
  PS_ASSIGN_OR_RETURN(cuda::PinnedBuffer host, cuda::PinnedBuffer::allocate(weight_bytes));
  PS_TRY(package.read_weights(host.data(), host.size()));
  const std::span<const uint8_t> blob(static_cast<const uint8_t*>(host.data()),
                                      package.weights_bytes());
  PS_ASSIGN_OR_RETURN(cuda::Stream compute, cuda::Stream::create(cuda::StreamPriority::kHigh));
  PS_ASSIGN_OR_RETURN(cuda::DeviceBuffer weights, cuda::DeviceBuffer::allocate(weight_bytes));
  PS_TRY(cuda::copy_to_device_async(weights.ptr(), blob.data(), blob.size(), compute));
  models::gpu::PlanOptions plan_options;
  plan_options.precision = o.precision;
  PS_ASSIGN_OR_RETURN(Plan plan, Plan::build(manifest, blob, *runtime, plan_options));
  runtime->release_plan_scratch();
  PS_ASSIGN_OR_RETURN(cuda::DeviceBuffer arena,
                      cuda::DeviceBuffer::allocate(std::max<uint64_t>(plan.arena_bytes(), 256)));
  cuda::DeviceBuffer workspace;
  if (plan.workspace_bytes() > 0) {
    PS_ASSIGN_OR_RETURN(workspace, cuda::DeviceBuffer::allocate(plan.workspace_bytes()));
  }
  const models::gpu::Bindings bindings{weights.ptr(), arena.ptr(), workspace.ptr(),
                                       workspace.size()};
  std::vector<std::vector<uint8_t>> inputs;
  for (size_t i = 0; i < plan.inputs().size(); ++i) {
    inputs.push_back(random_input(plan.inputs()[i], 1234 + i));
  }
  auto load_inputs = [&]() -> Status {
    for (size_t i = 0; i < inputs.size(); ++i) {
      PS_TRY(cuda::copy_to_device_async(arena.ptr() + plan.inputs()[i].arena_offset,
                                        inputs[i].data(), inputs[i].size(), compute));
    }
    return compute.synchronize();
  };
  auto read_outputs = [&]() -> Result<std::vector<uint8_t>> {
    std::vector<uint8_t> out;
    for (const models::gpu::IoSpec& s : plan.outputs()) {
      const size_t at = out.size();
      out.resize(at + s.bytes);
      PS_TRY(cuda::copy_to_host_async(out.data() + at, arena.ptr() + s.arena_offset, s.bytes,
                                      compute));
    }
    PS_TRY(compute.synchronize());
    return out;
  };

  // The resident model: reference outputs and the ready latency.
  PS_TRY(load_inputs());
  PS_TRY(plan.enqueue(compute, bindings));
  PS_ASSIGN_OR_RETURN(std::vector<uint8_t> resident, read_outputs());
  std::vector<double> ready_ms;
  for (int i = 0; i < o.warmup + o.runs; ++i) {
    PS_TRY(load_inputs());
    const auto t0 = Clock::now();
    PS_TRY(plan.enqueue(compute, bindings));
    PS_TRY(compute.synchronize());
    if (i >= o.warmup) {
      ready_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
  }
  PS_ASSIGN_OR_RETURN(std::vector<double> layer_ms, plan.profile_layers(compute, bindings));

  // The groups: the package's, or the optimal ones for one link.
  PS_ASSIGN_OR_RETURN(std::vector<CopyGroup> units, models::gpu::package_groups(manifest));
  constexpr uint64_t kProbeBytes = uint64_t{64} << 20;
  PS_ASSIGN_OR_RETURN(cuda::PinnedBuffer probe_host, cuda::PinnedBuffer::allocate(kProbeBytes));
  models::TransferModel link;
  {
    PS_ASSIGN_OR_RETURN(cuda::Stream probe, cuda::Stream::create());
    PS_ASSIGN_OR_RETURN(cuda::DeviceBuffer probe_device, cuda::DeviceBuffer::allocate(kProbeBytes));
    PS_ASSIGN_OR_RETURN(link, models::gpu::probe_link(probe, probe_host.data(),
                                                      probe_device.ptr(), kProbeBytes));
  }
  std::vector<double> layer_us(layer_ms.size());
  for (size_t i = 0; i < layer_ms.size(); ++i) layer_us[i] = layer_ms[i] * 1000.0;
  std::vector<CopyGroup> groups = units;
  if (o.optimal) {
    const auto grouping_units = models::gpu::grouping_units(units, layer_us);
    PS_ASSIGN_OR_RETURN(models::GroupStarts starts,
                        models::optimal_grouping(grouping_units, link));
    PS_ASSIGN_OR_RETURN(groups, models::gpu::merge_groups(units, starts));
  }
  std::vector<uint64_t> group_bytes;
  std::vector<double> group_us;
  for (const models::GroupingUnit& u : models::gpu::grouping_units(groups, layer_us)) {
    group_bytes.push_back(u.bytes);
    group_us.push_back(u.compute_us);
  }
  uint64_t largest = 256;
  for (uint64_t b : group_bytes) largest = std::max(largest, b);
  const uint64_t slot_bytes =
      o.max_piece_bytes == 0 ? largest : std::min<uint64_t>(largest, o.max_piece_bytes);

  // The links: the target's own, the peers', then the loopback ones.
  std::vector<std::unique_ptr<Link>> links;
  auto add_link = [&](const cuda::Device& d, bool loopback, bool own) -> Status {
    PS_TRY(d.make_current());
    auto k = std::make_unique<Link>();
    k->device = d.ordinal();
    k->loopback = loopback;
    PS_ASSIGN_OR_RETURN(k->in, cuda::Stream::create());
    k->streams.context = d.context();
    k->streams.in = &k->in;
    if (!own) {
      PS_ASSIGN_OR_RETURN(k->hop, cuda::Stream::create());
      PS_ASSIGN_OR_RETURN(k->staging, cuda::DeviceBuffer::allocate(o.slots * slot_bytes));
      k->streams.hop = &k->hop;
      k->streams.staging = k->staging.ptr();
      k->streams.slots = o.slots;
      k->streams.slot_bytes = slot_bytes;
    }
    links.push_back(std::move(k));
    return target.make_current();
  };
  PS_TRY(add_link(target, false, true));
  for (const cuda::Device& p : peers) PS_TRY(add_link(p, false, false));
  for (uint32_t i = 0; i < o.loopback; ++i) PS_TRY(add_link(target, true, false));

  // The forwarding rate for the plan: one slot copied from link 1's staging into the target.
  double hop_bytes_per_us = 0;
  if (links.size() > 1) {
    const Link& k = *links[1];
    PS_ASSIGN_OR_RETURN(cuda::DeviceBuffer scratch, cuda::DeviceBuffer::allocate(slot_bytes));
    std::vector<double> us;
    for (int i = 0; i < 6; ++i) {
      cuda::ScopedContext in_context(k.streams.context);
      const auto t0 = Clock::now();
      PS_TRY(cuda::copy_peer_async(scratch.ptr(), target.context(), k.staging.ptr(),
                                   k.streams.context, slot_bytes, k.hop));
      PS_TRY(k.hop.synchronize());
      if (i > 0) us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    hop_bytes_per_us = static_cast<double>(slot_bytes) / std::max(median(us), 1e-3);
  }

  // The host links together: 64 MiB from the same pinned buffer into each of the first k
  // links' devices at once (median of 3), for every k. Whether k links deliver k times one
  // link's bandwidth is the question parallel transmission depends on (GPUs behind one PCIe
  // switch share its uplink; the host's memory bandwidth is shared by all).
  std::vector<double> together_gb_per_s;
  {
    std::vector<cuda::DeviceBuffer> sinks;
    for (const auto& k : links) {
      cuda::ScopedContext in_context(k->streams.context);
      PS_ASSIGN_OR_RETURN(cuda::DeviceBuffer b, cuda::DeviceBuffer::allocate(kProbeBytes));
      sinks.push_back(std::move(b));
    }
    for (size_t n = 1; n <= links.size(); ++n) {
      std::vector<double> ms;
      for (int rep = 0; rep < 4; ++rep) {
        const auto t0 = Clock::now();
        for (size_t i = 0; i < n; ++i) {
          cuda::ScopedContext in_context(links[i]->streams.context);
          PS_TRY(cuda::copy_to_device_async(sinks[i].ptr(), probe_host.data(), kProbeBytes,
                                            links[i]->in));
        }
        for (size_t i = 0; i < n; ++i) {
          cuda::ScopedContext in_context(links[i]->streams.context);
          PS_TRY(links[i]->in.synchronize());
        }
        if (rep > 0) ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      }
      together_gb_per_s.push_back(static_cast<double>(n * kProbeBytes) / median(ms) / 1e6);
    }
    PS_TRY(target.make_current());
  }

  std::vector<Row> rows;
  bool all_identical = true;
  for (uint32_t k : o.links) {
    models::LinkSet set;
    set.links = k;
    set.host = link;
    set.nvlink_bytes_per_us = hop_bytes_per_us > 0 ? hop_bytes_per_us : link.bytes_per_us;
    set.hop_fixed_us = link.copy_fixed_us;
    set.max_piece_bytes = o.max_piece_bytes;
    PS_ASSIGN_OR_RETURN(models::ParallelPlan route, models::plan_parallel_transfer(group_bytes, set));
    PS_ASSIGN_OR_RETURN(models::GroupingPrediction predicted,
                        models::predict_parallel(route, group_us));
    std::vector<LinkStreams> streams;
    std::vector<std::vector<cuda::Event>> events(k);
    for (uint32_t l = 0; l < k; ++l) {
      streams.push_back(links[l]->streams);
      PS_ASSIGN_OR_RETURN(events[l], models::gpu::create_link_events(
                                         streams.back().context,
                                         models::gpu::lane_events_needed(route, l, streams.back().slots)));
      streams.back().events = events[l];
    }
    PS_ASSIGN_OR_RETURN(CudaLanes lanes, CudaLanes::create(streams, target.context(), compute));
    PS_TRY(target.make_current());
    lanes.bind(host.data(), weights.ptr());
    auto sync_links = [&]() -> Status {
      for (uint32_t l = 0; l < k; ++l) {
        PS_TRY(links[l]->in.synchronize());
        if (!links[l]->hop.empty()) PS_TRY(links[l]->hop.synchronize());
      }
      return compute.synchronize();
    };
    auto run_layers = [&](size_t g) {
      return plan.enqueue_layers(groups[g].first_layer, groups[g].layer_count, compute, bindings);
    };
    auto no_layers = [](size_t) { return Status::OK(); };
    // Every switch starts from poisoned weights; the timed ones do not pay for the poison.
    auto one_switch = [&](bool layers) -> Result<double> {
      PS_TRY(cuda::memset_d8_async(weights.ptr(), 0xA5, weights.size(), compute));
      PS_TRY(load_inputs());
      PS_TRY(sync_links());
      const auto t0 = Clock::now();
      PS_TRY(models::gpu::enqueue_parallel(groups, route, {}, lanes,
                                           layers ? models::gpu::GroupRunner(run_layers)
                                                  : models::gpu::GroupRunner(no_layers)));
      PS_TRY(compute.synchronize());
      return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    };
    Row row;
    row.links = k;
    row.bytes_per_link = route.bytes_per_link;
    row.predicted_transfer_us = route.transfer_us;
    row.predicted_finish_us = predicted.finish_us;
    PS_TRY(one_switch(true).status());
    PS_ASSIGN_OR_RETURN(std::vector<uint8_t> switched, read_outputs());
    row.identical = switched == resident;
    all_identical = all_identical && row.identical;
    std::vector<double> transfer, whole;
    for (int i = 0; i < o.warmup + o.runs; ++i) {
      PS_ASSIGN_OR_RETURN(double t, one_switch(false));
      PS_ASSIGN_OR_RETURN(double w, one_switch(true));
      if (i >= o.warmup) {
        transfer.push_back(t);
        whole.push_back(w);
      }
    }
    PS_TRY(sync_links());
    row.transfer_ms = timing(transfer);
    row.switch_ms = timing(whole);
    rows.push_back(std::move(row));
  }

  const Timing ready = timing(ready_ms);
  const char* precision = models::gpu::precision_name(o.precision).data();
  std::string devices;
  for (size_t i = 0; i < o.devices.size(); ++i) devices += str_cat(i ? "," : "", o.devices[i]);
  if (o.json) {
    std::string s = str_cat("{\"model\": ", json_string(manifest.model_name()),
                            ", \"precision\": \"", precision, "\", \"gpu\": ",
                            json_string(target.name()), ", \"devices\": \"", devices,
                            "\", \"loopback\": ", o.loopback,
                            ", \"weights_bytes\": ", package.weights_bytes(),
                            ", \"groups\": ", groups.size(), ", \"max_piece_bytes\": ",
                            o.max_piece_bytes, ", \"host_link\": {\"fixed_us\": ",
                            link.copy_fixed_us, ", \"gb_per_s\": ", link.bytes_per_us / 1000.0,
                            "}, \"hop_gb_per_s\": ", hop_bytes_per_us / 1000.0,
                            ", \"links_together_gb_per_s\": [");
    for (size_t n = 0; n < together_gb_per_s.size(); ++n) {
      s += str_cat(n ? ", " : "", together_gb_per_s[n]);
    }
    s += str_cat("], \"ready_ms\": {\"median\": ", ready.median, ", \"p90\": ", ready.p90,
                 "}, \"rows\": [");
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      s += str_cat(i ? ", " : "", "{\"links\": ", r.links, ", \"bytes_per_link\": [");
      for (size_t l = 0; l < r.bytes_per_link.size(); ++l) {
        s += str_cat(l ? ", " : "", r.bytes_per_link[l]);
      }
      s += str_cat("], \"predicted_transfer_ms\": ", r.predicted_transfer_us / 1000.0,
                   ", \"predicted_switch_ms\": ", r.predicted_finish_us / 1000.0,
                   ", \"transfer_ms\": {\"median\": ", r.transfer_ms.median, ", \"p90\": ",
                   r.transfer_ms.p90, "}, \"switch_ms\": {\"median\": ", r.switch_ms.median,
                   ", \"p90\": ", r.switch_ms.p90, "}, \"identical\": ",
                   r.identical ? "true" : "false", "}");
    }
    s += "]}";
    std::printf("%s\n", s.c_str());
    return all_identical ? 0 : 3;
  }
  std::printf("psbench parallel: %s (%s), %s, GPU %d (%s) target, devices %s, %u loopback links\n",
              manifest.model_name().c_str(), o.package.c_str(), precision, o.devices[0],
              target.name().c_str(), devices.c_str(), o.loopback);
  std::printf("  weights %s in %zu groups (%s), pieces of at most %s, %u staging slots per peer\n",
              size_label(package.weights_bytes()).c_str(), groups.size(),
              o.optimal ? "one-link optimal" : "the package's",
              o.max_piece_bytes ? size_label(o.max_piece_bytes).c_str() : "any size", o.slots);
  std::printf("  host link %.1f GB/s + %.1f us per copy; forwarding %.1f GB/s\n",
              link.bytes_per_us / 1000.0, link.copy_fixed_us, hop_bytes_per_us / 1000.0);
  std::printf("  host links copying at once (GB/s, all together):");
  for (size_t n = 0; n < together_gb_per_s.size(); ++n) {
    std::printf(" %zu: %.1f", n + 1, together_gb_per_s[n]);
  }
  std::printf("\n");
  std::printf("  ready (resident) %.3f ms median, %.3f p90; %d runs after %d warm-up\n",
              ready.median, ready.p90, o.runs, o.warmup);
  std::printf("  %5s %10s %10s %10s %10s %10s %10s %8s %8s  %s\n", "links", "pred.xfer",
              "xfer", "xfer p90", "pred.sw", "switch", "sw p90", "/ready", "/1 link",
              "outputs");
  const double one_link = rows.front().switch_ms.median;
  for (const Row& r : rows) {
    std::printf("  %5u %10.3f %10.3f %10.3f %10.3f %10.3f %10.3f %8.2f %8.2f  %s\n", r.links,
                r.predicted_transfer_us / 1000.0, r.transfer_ms.median, r.transfer_ms.p90,
                r.predicted_finish_us / 1000.0, r.switch_ms.median, r.switch_ms.p90,
                r.switch_ms.median / ready.median, r.switch_ms.median / one_link,
                r.identical ? "identical" : "DIFFER");
  }
  std::printf("  (ms; /1 link compares with the first row; bytes per link:");
  for (const Row& r : rows) {
    std::printf(" [");
    for (size_t l = 0; l < r.bytes_per_link.size(); ++l) {
      std::printf("%s%s", l ? " " : "", size_label(r.bytes_per_link[l]).c_str());
    }
    std::printf("]");
  }
  std::printf(")\n");
  return all_identical ? 0 : 3;
}

}  // namespace

int parallel_main(const std::vector<std::string_view>& args) {
  return subcommand_main("parallel", args, parse_parallel_options, print_parallel_help,
                         run_parallel);
}

}  // namespace ps::psbench
