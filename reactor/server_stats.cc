// STATS (text protocol) and GET /metrics (Prometheus text): the same numbers, two formats.
#include <cstdio>
#include <cstring>

#include "net/metrics_text.h"
#include "net/text_reply.h"
#include "reactor/server.h"
#include "reactor/server_replies.h"

namespace ps::reactor {
namespace {

uint64_t mean(uint64_t sum, uint64_t count) { return count == 0 ? 0 : sum / count; }

// The process's resident set size in bytes (VmRSS of /proc/self/status), 0 where that file
// cannot be read. A few hundred bytes of procfs read: cheap enough for STATS and /metrics.
uint64_t resident_bytes() {
  std::FILE* file = std::fopen("/proc/self/status", "r");
  if (file == nullptr) return 0;
  char line[256];
  unsigned long long kib = 0;
  while (std::fgets(line, sizeof(line), file) != nullptr) {
    if (std::strncmp(line, "VmRSS:", 6) == 0 && std::sscanf(line + 6, "%llu", &kib) == 1) break;
  }
  std::fclose(file);
  return static_cast<uint64_t>(kib) * 1024;
}

// Per-device families, gpu-labelled, when the backend drives several devices; the unlabelled
// ps_backend_switches_total and ps_pool_* above are their sums.
void device_metrics(net::MetricsWriter& w, const std::vector<DeviceStats>& devices) {
  w.family("ps_gpu_up", net::MetricType::kGauge,
           "1 while the device is in service, 0 after a device error took it out.");
  for (const DeviceStats& d : devices) w.sample({{"gpu", d.name}}, d.healthy ? 1.0 : 0.0);
  w.family("ps_gpu_inference_requests_total", net::MetricType::kCounter,
           "Inference requests placed on each device, by outcome so far.");
  for (const DeviceStats& d : devices) {
    w.sample({{"gpu", d.name}, {"outcome", "placed"}}, d.requests);
    w.sample({{"gpu", d.name}, {"outcome", "error"}}, d.errors);
  }
  w.family("ps_gpu_in_flight", net::MetricType::kGauge,
           "Inference requests running on each device.");
  for (const DeviceStats& d : devices) {
    w.sample({{"gpu", d.name}}, static_cast<double>(d.in_flight));
  }
  w.family("ps_gpu_training_jobs", net::MetricType::kGauge, "Training jobs pinned to each device.");
  for (const DeviceStats& d : devices) {
    w.sample({{"gpu", d.name}}, static_cast<double>(d.jobs.size()));
  }
  w.family("ps_gpu_switches_total", net::MetricType::kCounter, "Model switches on each device.");
  for (const DeviceStats& d : devices) w.sample({{"gpu", d.name}}, d.switches);
  w.family("ps_gpu_parallel_switches_total", net::MetricType::kCounter,
           "Model switches on each device that borrowed other GPUs' links.");
  for (const DeviceStats& d : devices) w.sample({{"gpu", d.name}}, d.parallel_switches);
  w.family("ps_gpu_pool_bytes", net::MetricType::kGauge, "Each device's memory pool size.");
  for (const DeviceStats& d : devices) {
    w.sample({{"gpu", d.name}}, static_cast<double>(d.pool_bytes));
  }
  w.family("ps_gpu_pool_used_bytes", net::MetricType::kGauge, "Each device's memory pool in use.");
  for (const DeviceStats& d : devices) {
    w.sample({{"gpu", d.name}}, static_cast<double>(d.pool_used_bytes));
  }
  w.family("ps_gpu_resident_models", net::MetricType::kGauge, "Models resident on each device.");
  for (const DeviceStats& d : devices) {
    w.sample({{"gpu", d.name}}, static_cast<double>(d.resident.size()));
  }
}

}  // namespace

bool Server::healthy() const { return !shutting_down_; }

std::string Server::stats_reply() const {
  using net::OkLine;
  const BackendStats backend = scheduler_.backend().stats();
  const auto uptime =
      std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - started_).count();
  std::string body;
  auto add_line = [&body](const OkLine& line) { body += net::format_fields_line(line); };
  add_line(OkLine()
               .add("uptime_s", static_cast<uint64_t>(uptime))
               .add("device", options_.device)
               .add("connections", uint64_t{connections_.size()})
               .add("connections_total", connections_total_)
               .add("connections_refused", connections_refused_)
               .add("protocol_errors", protocol_errors_)
               .add("rss_bytes", resident_bytes()));
  add_line(OkLine()
               .add("requests_total", scheduler_.requests_total())
               .add("rejected_total", scheduler_.rejected_total())
               .add("queued", uint64_t{scheduler_.queued()})
               .add("in_flight", uint64_t{scheduler_.in_flight()}));
  add_line(OkLine()
               .add("switches", backend.switches)
               .add("region_hits", backend.region_hits)
               .add("request_captures", backend.request_captures)
               .add("pool_bytes", backend.pool_bytes)
               .add("pool_used_bytes", backend.pool_used_bytes)
               .add("resident", uint64_t{backend.resident.size()}));
  // Several devices (reactor/multi_backend.h): one line each; the line above is their sum.
  for (const DeviceStats& d : backend.devices) {
    add_line(OkLine()
                 .add("gpu", d.name)
                 .add("healthy", uint64_t{d.healthy ? 1u : 0u})
                 .add("requests", d.requests)
                 .add("errors", d.errors)
                 .add("in_flight", uint64_t{d.in_flight})
                 .add("training_jobs", uint64_t{d.jobs.size()})
                 .add("switches", d.switches)
                 .add("parallel_switches", d.parallel_switches)
                 .add("region_hits", d.region_hits)
                 .add("request_captures", d.request_captures)
                 .add("pool_bytes", d.pool_bytes)
                 .add("pool_used_bytes", d.pool_used_bytes)
                 .add("resident", uint64_t{d.resident.size()}));
  }
  for (const auto& [name, s] : scheduler_.model_stats()) {
    add_line(OkLine()
                 .add("model", name)
                 .add("ok", s->ok)
                 .add("errors", s->errors)
                 .add("switches", s->switches)
                 .add("p50_us", s->total.percentile(0.5))
                 .add("p90_us", s->total.percentile(0.9))
                 .add("p99_us", s->total.percentile(0.99))
                 .add("mean_us", mean(s->total.sum_us(), s->total.count()))
                 .add("queue_us_mean", mean(s->queue_us, s->ok))
                 .add("switch_us_mean", mean(s->switch_us, s->ok))
                 .add("compute_us_mean", mean(s->compute_us, s->ok))
                 .add("queued", uint64_t{s->queued})
                 .add("in_flight", uint64_t{s->in_flight}));
  }
  for (const JobInfo& job : scheduler_.jobs()) add_line(job_fields(job, backend));
  return net::format_ok_with_payload(OkLine(), body);
}

std::string Server::metrics_text() const {
  net::MetricsWriter w;
  const BackendStats backend = scheduler_.backend().stats();
  const auto stats = scheduler_.model_stats();
  w.gauge("ps_up", "1 while the server serves, 0 while it shuts down.", healthy() ? 1.0 : 0.0);
  w.gauge("ps_resident_memory_bytes", "Resident set size of the server process (VmRSS).",
          static_cast<double>(resident_bytes()));
  w.gauge("ps_connections", "Open client connections.", static_cast<double>(connections_.size()));
  w.counter("ps_connections_total", "Client connections accepted.", connections_total_);
  w.counter("ps_connections_refused_total", "Connections refused over --max-connections.",
            connections_refused_);
  w.counter("ps_protocol_errors_total", "Requests answered with a protocol error.",
            protocol_errors_);
  w.counter("ps_requests_rejected_total", "Inference requests refused before queueing.",
            scheduler_.rejected_total());
  w.family("ps_inference_requests_total", net::MetricType::kCounter,
           "Inference requests served, by model and outcome.");
  for (const auto& [name, s] : stats) {
    w.sample({{"model", name}, {"outcome", "ok"}}, s->ok);
    w.sample({{"model", name}, {"outcome", "error"}}, s->errors);
  }
  w.family("ps_inference_latency_seconds", net::MetricType::kSummary,
           "Server-side inference latency (accepted to completion), recent window.");
  for (const auto& [name, s] : stats) {
    const net::Label labels[] = {{"model", name}};
    const net::Quantile quantiles[] = {{0.5, s->total.percentile(0.5) / 1e6},
                                       {0.9, s->total.percentile(0.9) / 1e6},
                                       {0.99, s->total.percentile(0.99) / 1e6}};
    w.summary(labels, quantiles, static_cast<double>(s->total.sum_us()) / 1e6, s->total.count());
  }
  w.family("ps_queue_depth", net::MetricType::kGauge, "Requests queued in the scheduler.");
  for (const auto& [name, s] : stats) {
    w.sample({{"model", name}}, static_cast<double>(s->queued));
  }
  w.family("ps_model_switches_total", net::MetricType::kCounter,
           "Requests that had to make their model resident.");
  for (const auto& [name, s] : stats) w.sample({{"model", name}}, s->switches);
  w.counter("ps_backend_switches_total", "Model switches done by the backend.", backend.switches);
  w.counter("ps_backend_region_hits_total",
            "Requests whose model was still in the switch region: no switch needed.",
            backend.region_hits);
  w.counter("ps_backend_request_captures_total",
            "CUDA graphs captured while serving a request (a few ms each; registration "
            "captures the usual ones).",
            backend.request_captures);
  w.gauge("ps_pool_bytes", "Device memory pool size.", static_cast<double>(backend.pool_bytes));
  w.gauge("ps_pool_used_bytes", "Device memory pool in use.",
          static_cast<double>(backend.pool_used_bytes));
  if (!backend.devices.empty()) device_metrics(w, backend.devices);
  w.family("ps_training_steps", net::MetricType::kGauge, "Steps done by each training job.");
  for (const JobInfo& job : scheduler_.jobs()) {
    const std::string id = std::to_string(job.id);
    w.sample({{"job", id}, {"model", job.model}, {"state", job_state_name(job.state)}},
             job.progress.steps);
  }
  w.family("ps_training_preemptions_total", net::MetricType::kCounter,
           "Times each training job paused for inference.");
  for (const JobInfo& job : scheduler_.jobs()) {
    w.sample({{"job", std::to_string(job.id)}, {"model", job.model}}, job.progress.preemptions);
  }
  return w.take();
}

}  // namespace ps::reactor
