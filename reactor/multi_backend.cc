#include "reactor/multi_backend.h"

#include <algorithm>
#include <set>

#include "reactor/log.h"

namespace ps::reactor {

// A child's sink: tags each completion with the child's index (any thread).
class MultiBackend::ChildSink final : public CompletionSink {
 public:
  ChildSink(MultiBackend* owner, size_t device) : owner_(owner), device_(device) {}
  void post(Completion completion) override { owner_->post_from(device_, std::move(completion)); }
  void wake() override { owner_->sink_->wake(); }

 private:
  MultiBackend* owner_;
  size_t device_;
};

MultiBackend::MultiBackend(std::vector<Device> devices, PlacementRules rules)
    : devices_(std::move(devices)), rules_(rules), counters_(devices_.size()) {
  PS_CHECK(!devices_.empty());
  for (size_t i = 0; i < devices_.size(); ++i) {
    PS_CHECK(devices_[i].backend != nullptr);
    for (size_t j = 0; j < i; ++j) PS_CHECK(devices_[j].name != devices_[i].name);
    sinks_.push_back(std::make_unique<ChildSink>(this, i));
  }
}

MultiBackend::~MultiBackend() { shutdown(); }

std::string MultiBackend::describe() const {
  std::string names;
  for (const Device& d : devices_) names += str_cat(names.empty() ? "" : ", ", d.name);
  return str_cat(devices_.size(), " devices (", names, ")");
}

Status MultiBackend::start(CompletionSink* sink) {
  PS_CHECK(sink != nullptr && sink_ == nullptr);
  sink_ = sink;
  for (size_t i = 0; i < devices_.size(); ++i) {
    Status s = devices_[i].backend->start(sinks_[i].get());
    if (!s.ok()) return s.with_context(str_cat("device ", devices_[i].name));
  }
  return Status::OK();
}

uint32_t MultiBackend::max_in_flight() const {
  uint32_t sum = 0;
  for (size_t i = 0; i < devices_.size(); ++i) {
    if (counters_[i].healthy) sum += devices_[i].backend->max_in_flight();
  }
  return std::max<uint32_t>(sum, 1);
}

void MultiBackend::post_from(size_t device, Completion completion) {
  {
    std::lock_guard lock(inbox_mutex_);
    inbox_.push_back(Tagged{device, std::move(completion)});
  }
  sink_->wake();
}

void MultiBackend::load(uint64_t ticket, ModelSource source) {
  FanOut& f = loads_[ticket];
  f.remaining = devices_.size();
  f.model = source.name;
  for (size_t i = 0; i < devices_.size(); ++i) devices_[i].backend->load(ticket, source);
}

void MultiBackend::unload(uint64_t ticket, std::string model) {
  FanOut& f = unloads_[ticket];
  f.remaining = devices_.size();
  f.model = model;
  for (size_t i = 0; i < devices_.size(); ++i) devices_[i].backend->unload(ticket, model);
}

std::vector<DeviceState> MultiBackend::snapshot() const {
  std::vector<DeviceState> out(devices_.size());
  for (size_t i = 0; i < devices_.size(); ++i) {
    const Counters& k = counters_[i];
    DeviceState& d = out[i];
    d.name = devices_[i].name;
    d.healthy = k.healthy;
    d.capacity = devices_[i].backend->max_in_flight();
    d.in_flight = k.in_flight;
    d.pending_switch_bytes = k.pending_switch_bytes;
    d.training_jobs = k.training_jobs;
    const BackendStats stats = devices_[i].backend->stats();
    d.resident = stats.resident;
    // A model still in the device's switch region runs there without a switch: placement
    // treats it as resident.
    if (!stats.in_switch_region.empty() && std::find(d.resident.begin(), d.resident.end(),
                                                     stats.in_switch_region) == d.resident.end()) {
      d.resident.push_back(stats.in_switch_region);
    }
    for (const auto& [model, n] : k.in_flight_models) d.in_flight_models.push_back(model);
  }
  return out;
}

void MultiBackend::infer(InferTask task) {
  const std::vector<DeviceState> devices = snapshot();
  const std::optional<size_t> at = place_inference(devices, task.model, rules_);
  if (!at) {
    sink_->post(
        failed_completion(CompletionKind::kInfer, task.ticket,
                          unavailable("no device is in service (every one had a device error)")));
    return;
  }
  const DeviceState& d = devices[*at];
  // Whether this task will switch its model in (an estimate, as placement's).
  const bool holds =
      std::find(d.resident.begin(), d.resident.end(), task.model) != d.resident.end() ||
      (rules_.in_flight_holds && counters_[*at].in_flight_models.count(task.model) != 0);
  uint64_t switch_bytes = 0;
  if (!holds) {
    auto w = weights_bytes_.find(task.model);
    if (w != weights_bytes_.end()) switch_bytes = w->second;
  }
  Counters& k = counters_[*at];
  ++k.requests;
  ++k.in_flight;
  ++k.in_flight_models[task.model];
  k.pending_switch_bytes += switch_bytes;
  routed_[task.ticket] = Routed{*at, task.model, switch_bytes};
  devices_[*at].backend->infer(std::move(task));
}

Status MultiBackend::start_training(const TrainTask& task) {
  PS_ASSIGN_OR_RETURN(const size_t at, place_training(snapshot(), task.device));
  PS_TRY(devices_[at].backend->start_training(task));
  jobs_[task.job] = at;
  ++counters_[at].training_jobs;
  return Status::OK();
}

Status MultiBackend::stop_training(uint64_t job) {
  auto it = jobs_.find(job);
  if (it == jobs_.end()) return not_found("no training job ", job);
  return devices_[it->second].backend->stop_training(job);
}

Status MultiBackend::checkpoint_training(uint64_t job) {
  auto it = jobs_.find(job);
  if (it == jobs_.end()) return not_found("no running training job ", job);
  return devices_[it->second].backend->checkpoint_training(job);
}

void MultiBackend::drain(std::vector<Completion>* out) {
  std::vector<Tagged> batch;
  {
    std::lock_guard lock(inbox_mutex_);
    batch.swap(inbox_);
  }
  for (size_t i = 0; i < devices_.size(); ++i) {
    std::vector<Completion> own;
    devices_[i].backend->drain(&own);
    for (Completion& c : own) batch.push_back(Tagged{i, std::move(c)});
  }
  for (Tagged& t : batch) on_child(t.device, std::move(t.completion), out);
}

void MultiBackend::on_child(size_t device, Completion c, std::vector<Completion>* out) {
  Counters& k = counters_[device];
  switch (c.kind) {
    case CompletionKind::kInfer: {
      auto it = routed_.find(c.ticket);
      if (it != routed_.end()) {
        --k.in_flight;
        auto m = k.in_flight_models.find(it->second.model);
        if (m != k.in_flight_models.end() && --m->second == 0) k.in_flight_models.erase(m);
        k.pending_switch_bytes -= it->second.switch_bytes;
        routed_.erase(it);
      }
      if (!c.status.ok()) ++k.errors;
      if (c.status.code() == Code::kDevice && k.healthy) {
        k.healthy = false;
        log_error("device ", devices_[device].name,
                  " is out of service after a device error; the others carry on");
      }
      out->push_back(std::move(c));
      return;
    }
    case CompletionKind::kLoad:
      on_load(device, std::move(c), out);
      return;
    case CompletionKind::kUnload:
      on_unload(device, std::move(c), out);
      return;
    case CompletionKind::kTraining: {
      if (c.finished || !c.status.ok()) {
        auto it = jobs_.find(c.ticket);
        if (it != jobs_.end() && it->second == device) {
          --k.training_jobs;
          jobs_.erase(it);
        }
      }
      out->push_back(std::move(c));
      return;
    }
  }
}

void MultiBackend::on_load(size_t device, Completion c, std::vector<Completion>* out) {
  const uint64_t ticket = c.ticket;
  auto it = loads_.find(ticket);
  if (it == loads_.end()) {
    out->push_back(std::move(c));  // not a fan-out of ours; the scheduler ignores strays
    return;
  }
  FanOut& f = it->second;
  f.load_us = std::max(f.load_us, c.load_us);
  if (c.status.ok()) {
    f.succeeded.push_back(device);
    if (!f.first_ok) f.first_ok = std::move(c);
  } else if (!f.first_error) {
    f.first_error.emplace(device, c.status);
  }
  if (--f.remaining > 0) return;

  FanOut done = std::move(f);
  loads_.erase(it);
  if (!done.first_error) {
    Completion ok = std::move(*done.first_ok);
    ok.load_us = done.load_us;
    if (ok.model) weights_bytes_[done.model] = ok.model->weights_bytes;
    out->push_back(std::move(ok));
    return;
  }
  // Registered everywhere or nowhere: the devices that have it drop it again.
  if (!done.succeeded.empty()) {
    const uint64_t own = next_own_ticket_++;
    rollback_unloads_[own] = done.succeeded.size();
    for (size_t d : done.succeeded) devices_[d].backend->unload(own, done.model);
  }
  auto [bad_device, status] = *done.first_error;
  if (!done.succeeded.empty()) {
    status = status.with_context(str_cat("device ", devices_[bad_device].name));
  }
  Completion error = failed_completion(CompletionKind::kLoad, ticket, std::move(status));
  error.load_us = done.load_us;
  out->push_back(std::move(error));
}

void MultiBackend::on_unload(size_t device, Completion c, std::vector<Completion>* out) {
  if (auto own = rollback_unloads_.find(c.ticket); own != rollback_unloads_.end()) {
    if (!c.status.ok()) {
      log_warn("device ", devices_[device].name, ": undoing a failed load: ", c.status.message());
    }
    if (--own->second == 0) rollback_unloads_.erase(own);
    return;  // ours, not the scheduler's
  }
  auto it = unloads_.find(c.ticket);
  if (it == unloads_.end()) {
    out->push_back(std::move(c));
    return;
  }
  FanOut& f = it->second;
  if (!c.status.ok() && !f.first_error) f.first_error.emplace(device, c.status);
  if (--f.remaining > 0) return;
  FanOut done = std::move(f);
  unloads_.erase(it);
  weights_bytes_.erase(done.model);
  Completion reply;
  reply.kind = CompletionKind::kUnload;
  reply.ticket = c.ticket;
  if (done.first_error) {
    reply.status = done.first_error->second.with_context(
        str_cat("device ", devices_[done.first_error->first].name));
  }
  out->push_back(std::move(reply));
}

BackendStats MultiBackend::stats() const {
  BackendStats total;
  std::set<std::string> resident;
  for (size_t i = 0; i < devices_.size(); ++i) {
    const BackendStats child = devices_[i].backend->stats();
    const Counters& k = counters_[i];
    DeviceStats d;
    d.name = devices_[i].name;
    d.description = devices_[i].backend->describe();
    d.healthy = k.healthy;
    d.requests = k.requests;
    d.errors = k.errors;
    d.in_flight = k.in_flight;
    for (const auto& [job, at] : jobs_) {
      if (at == i) d.jobs.push_back(job);
    }
    d.switches = child.switches;
    d.parallel_switches = child.parallel_switches;
    d.region_hits = child.region_hits;
    d.request_captures = child.request_captures;
    d.pool_bytes = child.pool_bytes;
    d.pool_used_bytes = child.pool_used_bytes;
    d.resident = child.resident;
    total.switches += child.switches;
    total.parallel_switches += child.parallel_switches;
    total.region_hits += child.region_hits;
    total.request_captures += child.request_captures;
    total.pool_bytes += child.pool_bytes;
    total.pool_used_bytes += child.pool_used_bytes;
    resident.insert(child.resident.begin(), child.resident.end());
    total.devices.push_back(std::move(d));
  }
  total.resident.assign(resident.begin(), resident.end());
  return total;
}

void MultiBackend::shutdown() {
  if (stopped_) return;
  stopped_ = true;
  // Each child cancels what it has not started and joins its threads; their last completions
  // are in the inbox for the loop's next drain().
  for (Device& d : devices_) d.backend->shutdown();
}

}  // namespace ps::reactor
