// MultiBackend over simulated device sets: fake backends whose completions the test orders
// (fan-out load and unload, rollback of a partial load, routing by residency and load, device
// errors, training pinned, statistics, shutdown), and real CpuBackends under the scheduler
// (every request answered, spread over the devices, identical outputs).
#include "reactor/multi_backend.h"

#include <catch2/catch.hpp>
#include <condition_variable>

#include "reactor/backend_factory.h"
#include "reactor/cpu_backend.h"
#include "reactor/scheduler.h"
#include "tests/reactor/fake_backend.h"

namespace ps::reactor {
namespace {

using testing::FakeBackend;
using testing::ListSink;
using testing::tiny_model;

// N fake devices named "0".."N-1" under a started MultiBackend.
struct Fakes {
  explicit Fakes(size_t n, uint32_t capacity = 2, PlacementRules rules = {}) {
    std::vector<MultiBackend::Device> devices;
    for (size_t i = 0; i < n; ++i) {
      auto fake = std::make_unique<FakeBackend>(capacity);
      fake->enable_training();
      fakes.push_back(fake.get());
      devices.push_back({std::to_string(i), std::move(fake)});
    }
    multi = std::make_unique<MultiBackend>(std::move(devices), rules);
    REQUIRE(multi->start(&sink).ok());
  }
  // What the scheduler would receive now: direct posts, then the drained ones.
  std::vector<Completion> take() {
    std::vector<Completion> out = sink.take();
    multi->drain(&out);
    return out;
  }
  // Loads `name` on every fake and completes it everywhere.
  void register_model(const std::string& name, uint64_t ticket) {
    ModelSource source;
    source.name = name;
    multi->load(ticket, source);
    ModelInfo info = tiny_model(name);
    info.weights_bytes = 1000;
    for (FakeBackend* f : fakes) f->complete_load(ticket, info);
    auto done = take();
    REQUIRE(done.size() == 1);
    REQUIRE(done[0].status.ok());
  }
  InferTask task(uint64_t ticket, const std::string& model) {
    InferTask t;
    t.ticket = ticket;
    t.model = model;
    t.synthetic = true;
    return t;
  }
  // The index of the fake that received infer `ticket`, or -1.
  int where(uint64_t ticket) {
    for (size_t i = 0; i < fakes.size(); ++i) {
      for (const InferTask& t : fakes[i]->infers()) {
        if (t.ticket == ticket) return static_cast<int>(i);
      }
    }
    return -1;
  }
  ListSink sink;
  std::vector<FakeBackend*> fakes;
  std::unique_ptr<MultiBackend> multi;
};

TEST_CASE("multi backend: a load is reported once, after every device answered", "[multi]") {
  Fakes f(3);
  ModelSource source;
  source.name = "a";
  f.multi->load(7, source);
  for (FakeBackend* fake : f.fakes) {
    REQUIRE(fake->loads().size() == 1);
    CHECK(fake->loads()[0].first == 7);
    CHECK(fake->loads()[0].second.name == "a");
  }
  f.fakes[2]->complete_load(7, tiny_model("a"));
  f.fakes[0]->complete_load(7, tiny_model("a"));
  CHECK(f.take().empty());
  f.fakes[1]->complete_load(7, tiny_model("a"));
  auto done = f.take();
  REQUIRE(done.size() == 1);
  CHECK(done[0].kind == CompletionKind::kLoad);
  CHECK(done[0].ticket == 7);
  CHECK(done[0].status.ok());
  REQUIRE(done[0].model.has_value());
  CHECK(done[0].model->name == "a");
  CHECK(f.multi->max_in_flight() == 6);
  CHECK(f.multi->describe() == "3 devices (0, 1, 2)");
}

TEST_CASE("multi backend: a load that fails on one device fails and is undone on the others",
          "[multi]") {
  Fakes f(3);
  ModelSource source;
  source.name = "a";
  f.multi->load(9, source);
  f.fakes[0]->complete_load(9, tiny_model("a"));
  f.fakes[1]->fail_load(9, make_error(Code::kOutOfMemory, "pool full"));
  f.fakes[2]->complete_load(9, tiny_model("a"));
  auto done = f.take();
  REQUIRE(done.size() == 1);
  CHECK(done[0].status.code() == Code::kOutOfMemory);
  CHECK(done[0].status.message().find("device 1") != std::string::npos);
  CHECK(done[0].status.message().find("pool full") != std::string::npos);
  // Devices 0 and 2 unload it under a ticket of the backend's own, never handed on.
  for (size_t i : {0u, 2u}) {
    auto unloads = f.fakes[i]->unloads();
    REQUIRE(unloads.size() == 1);
    CHECK(unloads[0].second == "a");
    CHECK(unloads[0].first >= (uint64_t{1} << 62));
    f.fakes[i]->complete_unload(unloads[0].first);
  }
  CHECK(f.fakes[1]->unloads().empty());
  CHECK(f.take().empty());
}

TEST_CASE("multi backend: a load that fails everywhere reports the error as it is", "[multi]") {
  Fakes f(2);
  ModelSource source;
  source.name = "a";
  f.multi->load(3, source);
  for (FakeBackend* fake : f.fakes) fake->fail_load(3, not_found("no package 'a.psm'"));
  auto done = f.take();
  REQUIRE(done.size() == 1);
  CHECK(done[0].status.code() == Code::kNotFound);
  CHECK(done[0].status.message() == "no package 'a.psm'");
  for (FakeBackend* fake : f.fakes) CHECK(fake->unloads().empty());
}

TEST_CASE("multi backend: an unload is reported once and a device error is named", "[multi]") {
  Fakes f(2);
  f.register_model("a", 1);
  f.multi->unload(2, "a");
  f.fakes[0]->complete_unload(2);
  CHECK(f.take().empty());
  f.fakes[1]->complete_unload(2);
  auto done = f.take();
  REQUIRE(done.size() == 1);
  CHECK(done[0].kind == CompletionKind::kUnload);
  CHECK(done[0].status.ok());

  f.register_model("b", 3);
  f.multi->unload(4, "b");
  f.fakes[0]->complete_unload(4, not_found("no model 'b'"));
  f.fakes[1]->complete_unload(4);
  done = f.take();
  REQUIRE(done.size() == 1);
  CHECK(done[0].status.code() == Code::kNotFound);
  CHECK(done[0].status.message().find("device 0") != std::string::npos);
}

TEST_CASE("multi backend: requests go where their model is resident, else to the least loaded",
          "[multi]") {
  Fakes f(3);
  f.register_model("a", 1);
  f.register_model("b", 2);
  f.fakes[2]->set_resident({"a"});
  f.multi->infer(f.task(10, "a"));
  CHECK(f.where(10) == 2);
  f.multi->infer(f.task(11, "b"));
  CHECK(f.where(11) == 0);
  // b is now in flight on device 0: its next request follows it (no second switch).
  f.multi->infer(f.task(12, "b"));
  CHECK(f.where(12) == 0);
  // Device 0 is full (capacity 2): the next b goes to the least loaded other device.
  f.multi->infer(f.task(13, "b"));
  CHECK(f.where(13) == 1);
  // Completions free the devices; a completion is handed on unchanged.
  f.fakes[0]->complete_infer(11);
  f.fakes[0]->complete_infer(12);
  auto done = f.take();
  REQUIRE(done.size() == 2);
  CHECK(done[0].ticket == 11);
  CHECK(done[0].timings.switch_us == 2);
  f.multi->infer(f.task(14, "a"));  // resident on 2, which has room
  CHECK(f.where(14) == 2);
  f.multi->infer(f.task(15, "c"));  // 0 is idle again
  CHECK(f.where(15) == 0);

  const BackendStats s = f.multi->stats();
  REQUIRE(s.devices.size() == 3);
  CHECK(s.devices[0].requests == 3);
  CHECK(s.devices[0].in_flight == 1);
  CHECK(s.devices[1].requests == 1);
  CHECK(s.devices[2].requests == 2);
  CHECK(s.devices[2].resident == std::vector<std::string>{"a"});
  CHECK(s.devices[1].description == "fake");
  CHECK(s.resident == std::vector<std::string>{"a"});
}

TEST_CASE("multi backend: under an evicting policy requests do not queue behind a switch",
          "[multi]") {
  PlacementRules evicting;
  evicting.in_flight_holds = false;
  Fakes f(2, 2, evicting);
  f.register_model("a", 1);
  f.multi->infer(f.task(10, "a"));
  f.multi->infer(f.task(11, "a"));
  CHECK(f.where(10) == 0);
  CHECK(f.where(11) == 1);
}

TEST_CASE("multi backend: a model still in a device's switch region goes back there", "[multi]") {
  PlacementRules evicting;
  evicting.in_flight_holds = false;
  Fakes f(3, 2, evicting);
  f.register_model("a", 1);
  f.register_model("b", 2);
  f.fakes[2]->set_in_switch_region("a");  // its last switch was a's (pipeswitch, --reuse-region)
  f.multi->infer(f.task(10, "a"));
  CHECK(f.where(10) == 2);  // no switch there, none of the idle devices holds it
  f.multi->infer(f.task(11, "b"));
  CHECK(f.where(11) == 0);  // b is in no region: the least loaded device
  f.fakes[2]->complete_infer(10);
  f.take();
  f.fakes[2]->set_in_switch_region("b");  // another model switched in over a
  f.multi->infer(f.task(12, "a"));
  CHECK(f.where(12) == 1);
  f.multi->infer(f.task(13, "b"));
  CHECK(f.where(13) == 2);
}

TEST_CASE("multi backend: a device error takes the device out of service", "[multi]") {
  Fakes f(2);
  f.register_model("a", 1);
  f.multi->infer(f.task(10, "a"));
  REQUIRE(f.where(10) == 0);
  f.fakes[0]->complete_infer(10, make_error(Code::kDevice, "CUDA_ERROR_ILLEGAL_ADDRESS"));
  auto done = f.take();
  REQUIRE(done.size() == 1);
  CHECK(done[0].status.code() == Code::kDevice);
  CHECK(f.multi->max_in_flight() == 2);
  for (uint64_t t = 11; t < 14; ++t) {
    f.multi->infer(f.task(t, "a"));
    CHECK(f.where(t) == 1);
  }
  const BackendStats s = f.multi->stats();
  CHECK_FALSE(s.devices[0].healthy);
  CHECK(s.devices[0].errors == 1);
  // Training avoids it too.
  TrainTask job;
  job.job = 1;
  job.model = "a";
  CHECK(f.multi->start_training(job).ok());
  CHECK(f.fakes[1]->trainings().size() == 1);
  job.job = 2;
  job.device = "0";
  CHECK(f.multi->start_training(job).code() == Code::kUnavailable);
  // With every device out, a request is answered UNAVAILABLE at once.
  f.fakes[1]->complete_infer(11, make_error(Code::kDevice, "launch failure"));
  f.take();
  f.multi->infer(f.task(20, "a"));
  done = f.take();
  REQUIRE(done.size() == 1);
  CHECK(done[0].ticket == 20);
  CHECK(done[0].status.code() == Code::kUnavailable);
  CHECK(f.multi->max_in_flight() == 1);
}

TEST_CASE("multi backend: training jobs are pinned to a device", "[multi]") {
  Fakes f(3);
  f.register_model("a", 1);
  TrainTask job;
  job.model = "a";
  job.job = 1;
  job.device = "2";
  REQUIRE(f.multi->start_training(job).ok());
  REQUIRE(f.fakes[2]->trainings().size() == 1);
  job.job = 2;
  job.device.clear();
  REQUIRE(f.multi->start_training(job).ok());
  CHECK(f.fakes[0]->trainings().size() == 1);  // least loaded without a job
  job.job = 3;
  REQUIRE(f.multi->start_training(job).ok());
  CHECK(f.fakes[1]->trainings().size() == 1);
  job.job = 4;
  job.device = "cpu9";
  Status bad = f.multi->start_training(job);
  CHECK(bad.code() == Code::kInvalidArgument);
  CHECK(bad.message().find("0, 1, 2") != std::string::npos);

  CHECK(f.multi->stop_training(1).ok());
  CHECK(f.fakes[2]->stopped() == std::vector<uint64_t>{1});
  CHECK(f.multi->checkpoint_training(2).ok());
  CHECK(f.fakes[0]->checkpoints() == std::vector<uint64_t>{2});
  CHECK(f.multi->stop_training(99).code() == Code::kNotFound);
  CHECK(f.multi->stats().devices[2].jobs == std::vector<uint64_t>{1});

  // Progress is handed on; the end frees the device for the next job.
  f.fakes[2]->report_training(1, false);
  f.fakes[2]->report_training(1, true);
  auto done = f.take();
  REQUIRE(done.size() == 2);
  CHECK(done[1].finished);
  CHECK(f.multi->stats().devices[2].jobs.empty());
  CHECK(f.multi->stop_training(1).code() == Code::kNotFound);
  job.job = 5;
  job.device.clear();
  REQUIRE(f.multi->start_training(job).ok());
  CHECK(f.fakes[2]->trainings().size() == 2);
  // Requests avoid devices with a job when others are as loaded: all three have one now.
  f.fakes[0]->report_training(2, true, make_error(Code::kInternal, "diverged"));
  f.take();
  f.multi->infer(f.task(10, "a"));
  CHECK(f.where(10) == 0);
}

TEST_CASE("multi backend: stats sum the devices and shutdown reaches every device once",
          "[multi]") {
  Fakes f(2);
  f.fakes[0]->set_resident({"b", "a"});
  f.fakes[1]->set_resident({"a", "c"});
  f.fakes[0]->set_switches(5, 2);
  f.fakes[1]->set_switches(7, 3);
  const BackendStats s = f.multi->stats();
  CHECK(s.resident == std::vector<std::string>{"a", "b", "c"});
  CHECK(s.switches == 12);
  CHECK(s.parallel_switches == 5);
  REQUIRE(s.devices.size() == 2);
  CHECK(s.devices[0].name == "0");
  CHECK(s.devices[1].resident.size() == 2);
  CHECK(s.devices[1].switches == 7);
  CHECK(s.devices[1].parallel_switches == 3);
  f.multi->shutdown();
  f.multi->shutdown();
  for (FakeBackend* fake : f.fakes) CHECK(fake->shutdowns() == 1);
}

// A sink the CPU backends' threads post to; the test waits on it.
class WaitingSink final : public CompletionSink {
 public:
  void post(Completion c) override {
    std::lock_guard lock(mutex_);
    posted_.push_back(std::move(c));
    ++wakes_;
    cv_.notify_all();
  }
  void wake() override {
    std::lock_guard lock(mutex_);
    ++wakes_;
    cv_.notify_all();
  }
  // Waits for a wake-up since the last call, then returns what was posted directly.
  std::vector<Completion> wait() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [this] { return wakes_ != seen_; });
    seen_ = wakes_;
    std::vector<Completion> out;
    out.swap(posted_);
    return out;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  uint64_t wakes_ = 0;
  uint64_t seen_ = 0;
  std::vector<Completion> posted_;
};

TEST_CASE("multi backend: three CPU devices under the scheduler serve every request alike",
          "[multi][cpu]") {
  BackendOptions options;
  options.device = "cpu,cpu,cpu";
  options.cpu_threads = 1;
  WaitingSink sink;  // outlives the backend, whose shutdown may still post to it
  auto made = make_backend(options);
  REQUIRE(made.ok());
  auto* multi = dynamic_cast<MultiBackend*>(made->get());
  REQUIRE(multi != nullptr);
  REQUIRE(multi->device_count() == 3);
  CHECK(multi->describe() == "3 devices (cpu0, cpu1, cpu2)");
  REQUIRE(multi->start(&sink).ok());
  Scheduler scheduler(*multi);
  auto deliver = [&] {
    std::vector<Completion> batch = sink.wait();
    multi->drain(&batch);
    for (Completion& c : batch) scheduler.on_completion(std::move(c));
    scheduler.pump();
  };

  ModelSource source;
  source.name = "resnet_tiny";
  source.zoo_model = "resnet_tiny";
  bool loaded = false;
  REQUIRE(scheduler
              .load(source,
                    [&](Completion c) {
                      REQUIRE(c.status.ok());
                      loaded = true;
                    })
              .ok());
  while (!loaded) deliver();
  CHECK(scheduler.find_model("resnet_tiny") != nullptr);
  CHECK(multi->max_in_flight() == 3);

  std::vector<Completion> answers;
  for (int i = 0; i < 9; ++i) {
    REQUIRE(scheduler
                .submit_infer("resnet_tiny", 1, "", true,
                              [&](Completion c) { answers.push_back(std::move(c)); })
                .ok());
  }
  scheduler.pump();
  CHECK(scheduler.in_flight() == 3);
  while (answers.size() < 9) deliver();
  for (const Completion& c : answers) {
    REQUIRE(c.status.ok());
    CHECK(c.output == answers[0].output);
  }
  const BackendStats s = multi->stats();
  REQUIRE(s.devices.size() == 3);
  uint64_t total = 0;
  for (const DeviceStats& d : s.devices) {
    CHECK(d.requests >= 1);  // the first three went to three idle devices
    CHECK(d.in_flight == 0);
    CHECK(d.resident == std::vector<std::string>{"resnet_tiny"});
    total += d.requests;
  }
  CHECK(total == 9);

  bool unloaded = false;
  REQUIRE(scheduler
              .unload("resnet_tiny",
                      [&](Completion c) {
                        CHECK(c.status.ok());
                        unloaded = true;
                      })
              .ok());
  while (!unloaded) deliver();
  CHECK(multi->stats().resident.empty());
  multi->shutdown();
}

TEST_CASE("device lists: parse, expand, and what one device makes", "[multi][factory]") {
  for (const char* ok : {"cpu", "0", "12", "all", "0,1", "3,1,2", "cpu,cpu", "cpu,cpu,cpu,cpu"}) {
    CHECK(parse_device(ok).ok());
  }
  for (const char* bad : {"", "gpu0", "0,", ",1", "0,0", "0,cpu", "cpu,1", "1234", "all,0", "-1"}) {
    INFO(bad);
    CHECK(parse_device(bad).status().code() == Code::kInvalidArgument);
  }
  CHECK(parse_device("1,1").status().message().find("twice") != std::string::npos);
  CHECK(*expand_devices("2,0") == std::vector<std::string>{"2", "0"});
  CHECK(*expand_devices("cpu,cpu") == std::vector<std::string>{"cpu", "cpu"});
  CHECK(*expand_devices("all", [] { return Result<int>(3); }) ==
        std::vector<std::string>{"0", "1", "2"});
  auto none = expand_devices("all", [] { return Result<int>(0); });
  CHECK(none.status().code() == Code::kUnavailable);
  CHECK(none.status().message().find("no GPU") != std::string::npos);
  auto no_driver =
      expand_devices("all", [] { return Result<int>(unavailable("libcuda.so.1 not found")); });
  CHECK(no_driver.status().code() == Code::kUnavailable);
  CHECK(no_driver.status().message().find("CUDA driver") != std::string::npos);
  CHECK(no_driver.status().message().find("libcuda.so.1") != std::string::npos);

  // One device: the plain backend, exactly as before.
  BackendOptions options;
  options.device = "cpu";
  options.cpu_threads = 1;
  auto one = make_backend(options);
  REQUIRE(one.ok());
  CHECK(dynamic_cast<CpuBackend*>(one->get()) != nullptr);
  CHECK((*one)->stats().devices.empty());
  options.device = "cpu,cpu";
  auto two = make_backend(options);
  REQUIRE(two.ok());
  CHECK(dynamic_cast<MultiBackend*>(two->get()) != nullptr);
}

}  // namespace
}  // namespace ps::reactor
