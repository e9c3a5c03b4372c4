// MultiBackend: one Backend over several child backends, one per device (`--device 0,1,...`,
// `--device all`, or `--device cpu,cpu` to simulate a device set on the CPU); issue 10,
// docs/multi-gpu.md. The scheduler sees one backend; this class decides which device runs what.
//
// Each child is a complete single-device backend with its own threads: a GpuBackend has its
// own device thread, context, pool, streams and executor, so the devices run in parallel
// while the loop thread only routes.
//
// Models are registered on every device: load() fans out and its kLoad completion is reported
// once, after every child answered. If any child failed, the load fails (the first failure,
// naming its device unless every device failed) and the children that succeeded unload the
// model again, so a model is registered everywhere or nowhere. unload() fans out the same way.
//
// Inference goes where reactor/placement.h says: to a device where the model is resident (from
// the children's stats()) or has a task in flight, else to the least loaded device. Residency
// is a hint: a stale one costs a switch, never a wrong answer. max_in_flight() is the sum of
// the healthy children's. A child's completion of kind kInfer whose status is DEVICE (an
// unusable context) takes that device out of service: placement skips it from then on.
//
// Training jobs are pinned to one device (TrainTask::device, else place_training's choice);
// stop and checkpoint go to that device.
//
// Threads. Every member is called on the loop thread, as Backend says. Children post their
// completions to per-child sinks that queue them (with the child's index) in a locked inbox
// and wake the real sink; drain(), on the loop thread, takes the inbox (and each child's own
// drain()), does the bookkeeping and hands on the completions the scheduler should see. So
// all state but the inbox is the loop thread's. Tickets are the scheduler's and unique; the
// unloads this class issues itself use tickets from 2^62 up and are never handed on.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "reactor/backend.h"
#include "reactor/placement.h"

namespace ps::reactor {

class MultiBackend final : public Backend {
 public:
  struct Device {
    std::string name;                  // DeviceStats::name: "0", "1", ... or "cpu0", ...
    std::unique_ptr<Backend> backend;  // not started
  };

  // Precondition: at least one device (one device works, but make_backend returns the plain
  // child then), unique names.
  explicit MultiBackend(std::vector<Device> devices, PlacementRules rules = {});
  ~MultiBackend() override;
  MultiBackend(const MultiBackend&) = delete;
  MultiBackend& operator=(const MultiBackend&) = delete;

  // "2 devices (0, 1)"; each device's own line is in stats().devices[i].description.
  std::string describe() const override;
  // Starts every child; the first error (naming its device) if one cannot start.
  Status start(CompletionSink* sink) override;
  uint32_t max_in_flight() const override;
  void load(uint64_t ticket, ModelSource source) override;
  void unload(uint64_t ticket, std::string model) override;
  void infer(InferTask task) override;
  Status start_training(const TrainTask& task) override;
  Status stop_training(uint64_t job) override;
  Status checkpoint_training(uint64_t job) override;
  void drain(std::vector<Completion>* out) override;
  BackendStats stats() const override;
  void shutdown() override;

  size_t device_count() const { return devices_.size(); }

 private:
  class ChildSink;
  struct Tagged {
    size_t device;
    Completion completion;
  };
  // Loop-thread bookkeeping per device.
  struct Counters {
    bool healthy = true;
    uint64_t requests = 0;
    uint64_t errors = 0;
    uint32_t in_flight = 0;
    uint64_t pending_switch_bytes = 0;
    uint32_t training_jobs = 0;
    std::map<std::string, uint32_t> in_flight_models;  // model -> tasks in flight
  };
  struct Routed {  // an infer task handed to a device
    size_t device;
    std::string model;
    uint64_t switch_bytes;  // counted in pending_switch_bytes
  };
  struct FanOut {  // a load or unload waiting for every device
    size_t remaining = 0;
    std::vector<size_t> succeeded;
    std::optional<Completion> first_ok;
    std::optional<std::pair<size_t, Status>> first_error;
    uint64_t load_us = 0;  // the slowest device's
    std::string model;
  };

  void post_from(size_t device, Completion completion);  // any thread (ChildSink)
  void on_child(size_t device, Completion c, std::vector<Completion>* out);
  void on_load(size_t device, Completion c, std::vector<Completion>* out);
  void on_unload(size_t device, Completion c, std::vector<Completion>* out);
  std::vector<DeviceState> snapshot() const;

  // Declared first so the children (which hold pointers to them) are destroyed before them.
  std::vector<std::unique_ptr<ChildSink>> sinks_;
  std::vector<Device> devices_;
  const PlacementRules rules_;
  CompletionSink* sink_ = nullptr;

  std::mutex inbox_mutex_;  // guards inbox_
  std::vector<Tagged> inbox_;

  // Loop thread only.
  std::vector<Counters> counters_;
  std::map<uint64_t, Routed> routed_;              // infer ticket -> where it went
  std::map<uint64_t, FanOut> loads_;               // load ticket -> answers so far
  std::map<uint64_t, FanOut> unloads_;             // unload ticket -> answers so far
  std::map<uint64_t, size_t> rollback_unloads_;    // own ticket -> devices still to answer
  std::map<uint64_t, size_t> jobs_;                // training job -> device
  std::map<std::string, uint64_t> weights_bytes_;  // registered model -> its weights
  uint64_t next_own_ticket_ = uint64_t{1} << 62;
  bool stopped_ = false;
};

}  // namespace ps::reactor
