// A Backend for tests: records what it is given and completes only when the test says so
// (from any thread), so tests control the order and the timing of completions.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "reactor/backend.h"

namespace ps::reactor::testing {

class FakeBackend final : public Backend {
 public:
  explicit FakeBackend(uint32_t max_in_flight = 4) : max_in_flight_(max_in_flight) {}

  std::string describe() const override { return "fake"; }
  Status start(CompletionSink* sink) override {
    sink_ = sink;
    return Status::OK();
  }
  uint32_t max_in_flight() const override { return max_in_flight_; }
  void load(uint64_t ticket, ModelSource source) override {
    std::lock_guard lock(mutex_);
    loads_.push_back({ticket, std::move(source)});
  }
  void unload(uint64_t ticket, std::string model) override {
    std::lock_guard lock(mutex_);
    unloads_.push_back({ticket, std::move(model)});
  }
  void infer(InferTask task) override {
    std::lock_guard lock(mutex_);
    infers_.push_back(std::move(task));
  }
  Status start_training(const TrainTask& task) override {
    if (!training_) return unsupported("no training in the fake");
    std::lock_guard lock(mutex_);
    trainings_.push_back(task);
    return Status::OK();
  }
  Status stop_training(uint64_t job) override {
    std::lock_guard lock(mutex_);
    stopped_.push_back(job);
    return Status::OK();
  }
  Status checkpoint_training(uint64_t job) override {
    std::lock_guard lock(mutex_);
    checkpoints_.push_back(job);
    return Status::OK();
  }
  BackendStats stats() const override {
    std::lock_guard lock(mutex_);
    BackendStats s;
    s.resident = resident_;
    s.in_switch_region = in_switch_region_;
    s.switches = switches_;
    s.parallel_switches = parallel_switches_;
    return s;
  }
  void shutdown() override {
    std::lock_guard lock(mutex_);
    ++shutdowns_;
  }

  // Test side.
  void enable_training() { training_ = true; }
  // What stats() reports as resident.
  void set_resident(std::vector<std::string> models) {
    std::lock_guard lock(mutex_);
    resident_ = std::move(models);
  }
  // What stats() reports as the switch region's model.
  void set_in_switch_region(std::string model) {
    std::lock_guard lock(mutex_);
    in_switch_region_ = std::move(model);
  }
  // What stats() reports as switches, and of them parallel ones.
  void set_switches(uint64_t switches, uint64_t parallel) {
    std::lock_guard lock(mutex_);
    switches_ = switches;
    parallel_switches_ = parallel;
  }
  int shutdowns() {
    std::lock_guard lock(mutex_);
    return shutdowns_;
  }
  std::vector<TrainTask> trainings() {
    std::lock_guard lock(mutex_);
    return trainings_;
  }
  std::vector<InferTask> infers() {
    std::lock_guard lock(mutex_);
    return infers_;
  }
  std::vector<std::pair<uint64_t, ModelSource>> loads() {
    std::lock_guard lock(mutex_);
    return loads_;
  }
  // Drops the recorded loads (and so the sources' open package descriptors).
  void forget_loads() {
    std::lock_guard lock(mutex_);
    loads_.clear();
  }
  std::vector<std::pair<uint64_t, std::string>> unloads() {
    std::lock_guard lock(mutex_);
    return unloads_;
  }
  std::vector<uint64_t> stopped() {
    std::lock_guard lock(mutex_);
    return stopped_;
  }
  std::vector<uint64_t> checkpoints() {
    std::lock_guard lock(mutex_);
    return checkpoints_;
  }
  // Completes infer `ticket` with `status`; the output is 4 bytes: the ticket as a float.
  void complete_infer(uint64_t ticket, Status status = Status::OK()) {
    Completion c;
    c.kind = CompletionKind::kInfer;
    c.ticket = ticket;
    c.status = std::move(status);
    c.timings = {1, 2, 3};
    TensorSpec out{"y", DType::kFloat32, {1}};
    c.outputs = {out};
    const float value = static_cast<float>(ticket);
    c.output.assign(reinterpret_cast<const char*>(&value), sizeof(value));
    sink_->post(std::move(c));
  }
  void complete_load(uint64_t ticket, ModelInfo info) {
    Completion c;
    c.kind = CompletionKind::kLoad;
    c.ticket = ticket;
    c.model = std::move(info);
    sink_->post(std::move(c));
  }
  void fail_load(uint64_t ticket, Status status) {
    Completion c;
    c.kind = CompletionKind::kLoad;
    c.ticket = ticket;
    c.status = std::move(status);
    sink_->post(std::move(c));
  }
  void complete_unload(uint64_t ticket, Status status = Status::OK()) {
    Completion c;
    c.kind = CompletionKind::kUnload;
    c.ticket = ticket;
    c.status = std::move(status);
    sink_->post(std::move(c));
  }
  // A kTraining completion of `job`: progress, or its end with `finished`.
  void report_training(uint64_t job, bool finished, Status status = Status::OK()) {
    Completion c;
    c.kind = CompletionKind::kTraining;
    c.ticket = job;
    c.finished = finished;
    c.status = std::move(status);
    sink_->post(std::move(c));
  }

 private:
  uint32_t max_in_flight_;
  bool training_ = false;
  CompletionSink* sink_ = nullptr;
  mutable std::mutex mutex_;
  std::vector<std::string> resident_;
  std::string in_switch_region_;
  uint64_t switches_ = 0, parallel_switches_ = 0;
  int shutdowns_ = 0;
  std::vector<InferTask> infers_;
  std::vector<std::pair<uint64_t, ModelSource>> loads_;
  std::vector<std::pair<uint64_t, std::string>> unloads_;
  std::vector<TrainTask> trainings_;
  std::vector<uint64_t> stopped_;
  std::vector<uint64_t> checkpoints_;
};

// A sink that keeps completions for the test to hand to the scheduler.
class ListSink final : public CompletionSink {
 public:
  void post(Completion c) override {
    std::lock_guard lock(mutex_);
    list_.push_back(std::move(c));
  }
  void wake() override {}
  std::vector<Completion> take() {
    std::lock_guard lock(mutex_);
    std::vector<Completion> out;
    out.swap(list_);
    return out;
  }

 private:
  std::mutex mutex_;
  std::vector<Completion> list_;
};

// A model with one float32 input [batch, 2] and one float32 output [batch, 1].
inline ModelInfo tiny_model(const std::string& name, uint32_t batch = 1) {
  ModelInfo info;
  info.name = name;
  info.batch = batch;
  info.inputs = {{"x", DType::kFloat32, {batch, 2}}};
  info.outputs = {{"y", DType::kFloat32, {batch, 1}}};
  info.source = "test";
  return info;
}

}  // namespace ps::reactor::testing
