// Training jobs on the CPU backend (reactor/cpu_training_job.h) and the preemption gate
// (reactor/preemption_gate.h): a job's losses are the CPU trainer's, step for step; inference
// that preempts it, a stop, and a checkpoint-resume all leave the trajectory exactly as an
// uninterrupted run; a job that cannot train fails with the reason.
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "models/cpu/checkpoint.h"
#include "models/cpu/trainer.h"
#include "reactor/cpu_backend.h"
#include "reactor/model_source.h"
#include "reactor/preemption_gate.h"
#include "tests/reactor/recording_sink.h"
#include "tests/reactor/training_reference.h"

namespace ps::reactor {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using testing::RecordingSink;

constexpr uint32_t kBatch = 2;

TrainOptions options() {
  TrainOptions o;
  o.learning_rate = 0.05;
  o.momentum = 0.9;
  o.weight_decay = 1e-4;
  o.seed = 7;
  return o;
}

// The uninterrupted trajectory of this file's jobs.
std::vector<double> reference_losses(int steps) {
  return testing::reference_losses("resnet_tiny", kBatch, options(), steps);
}

struct Harness {
  RecordingSink sink;
  CpuBackend backend;
  uint64_t next_ticket = 100;

  explicit Harness(TrainingPolicy policy = TrainingPolicy::kYield) : backend(2, policy) {
    PS_CHECK(backend.start(&sink).ok());
    ModelSource s;
    s.name = "resnet_tiny";
    s.zoo_model = "resnet_tiny";
    s.zoo_batch = kBatch;
    backend.load(1, s);
    PS_CHECK(sink.wait_for_ticket(CompletionKind::kLoad, 1).status.ok());
  }
  ~Harness() { backend.shutdown(); }

  TrainTask task(uint64_t job, uint64_t steps, TrainOptions o = options()) {
    TrainTask t;
    t.job = job;
    t.model = "resnet_tiny";
    t.batch = kBatch;
    t.steps = steps;
    t.options = std::move(o);
    return t;
  }
  uint64_t infer() {
    InferTask t;
    t.ticket = next_ticket++;
    t.model = "resnet_tiny";
    t.batch = kBatch;
    t.synthetic = true;
    t.accepted = Clock::now();
    const uint64_t ticket = t.ticket;
    backend.infer(std::move(t));
    return ticket;
  }
};

std::filesystem::path temp_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             ("ps_cpu_training_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

TEST_CASE("preemption gate: parks while inference is pending and measures how late", "[training]") {
  PreemptionGate gate;
  CHECK_FALSE(gate.park_if_busy().has_value());  // nothing pending: never waits
  gate.inference_arrived();
  gate.inference_arrived();
  CHECK(gate.pending() == 2);
  std::optional<PreemptionGate::Park> park;
  std::thread trainer([&] { park = gate.park_if_busy(); });
  std::this_thread::sleep_for(30ms);
  gate.inference_finished();  // one still pending: stays parked
  std::this_thread::sleep_for(30ms);
  gate.inference_finished();
  trainer.join();
  REQUIRE(park.has_value());
  CHECK(park->parked >= 50ms);
  CHECK(park->latency < park->parked);  // it parked right away, long before it woke

  gate.inference_arrived();
  std::thread stuck([&] { park = gate.park_if_busy(); });
  std::this_thread::sleep_for(10ms);
  gate.release();  // shutdown: nobody stays parked
  stuck.join();
  CHECK_FALSE(gate.park_if_busy().has_value());
  gate.inference_finished();
}

TEST_CASE("CPU backend training: a job's losses are the CPU trainer's, step for step",
          "[training]") {
  Harness h;
  REQUIRE(h.backend.start_training(h.task(1, 5)).ok());
  Completion end = h.sink.wait_for_ticket(CompletionKind::kTraining, 1);
  REQUIRE(end.status.ok());
  CHECK(end.training.steps == 5);
  CHECK(end.training.step == 5);
  CHECK(end.training.images_per_s > 0);
  const auto losses = h.sink.losses(1);
  REQUIRE(losses.size() == 5);
  const std::vector<double> reference = reference_losses(5);
  for (uint64_t step = 1; step <= 5; ++step) CHECK(losses.at(step) == reference[step - 1]);
  // The loss moves: a job that did not train would repeat its first loss.
  CHECK(losses.at(5) != losses.at(1));
}

TEST_CASE("CPU backend training: inference preempts the job without changing its trajectory",
          "[training]") {
  Harness h;
  REQUIRE(h.backend.start_training(h.task(1, 8)).ok());
  // Inference requests while the job runs, one after another, until it has parked for some.
  std::vector<uint64_t> tickets;
  for (int i = 0; i < 40; ++i) {
    bool ended = false, parked = false;
    h.sink.wait_until([&](const std::vector<Completion>& all) {
      for (const Completion& c : all) {
        if (c.kind != CompletionKind::kTraining) continue;
        ended |= c.finished;
        parked |= c.training.preemptions >= 3;
      }
      return true;
    });
    if (ended || parked) break;
    tickets.push_back(h.infer());
    CHECK(h.sink.wait_for_ticket(CompletionKind::kInfer, tickets.back()).status.ok());
  }
  Completion end = h.sink.wait_for_ticket(CompletionKind::kTraining, 1);
  REQUIRE(end.status.ok());
  INFO("preemptions " << end.training.preemptions << ", p50 " << end.training.preempt_p50_us
                      << " us, p99 " << end.training.preempt_p99_us << " us");
  CHECK(end.training.preemptions >= 1);
  CHECK(end.training.parked_us > 0);
  CHECK(end.training.preempt_max_us >= end.training.preempt_p50_us);
  const auto losses = h.sink.losses(1);
  REQUIRE(losses.size() == 8);
  const std::vector<double> reference = reference_losses(8);
  for (uint64_t step = 1; step <= 8; ++step) CHECK(losses.at(step) == reference[step - 1]);
}

TEST_CASE("CPU backend training: checkpoint, stop and resume continue the identical trajectory",
          "[training]") {
  const auto dir = temp_dir("resume");
  const std::string path = (dir / "resnet.ckpt").string();
  Harness h;
  TrainOptions o = options();
  o.checkpoint_path = path;
  o.checkpoint_every = 2;
  // Until stopped: stop it after its third step; it ends at a step boundary and saves there.
  REQUIRE(h.backend.start_training(h.task(1, 0, o)).ok());
  h.sink.wait_until([](const std::vector<Completion>& all) {
    for (const Completion& c : all) {
      if (c.kind == CompletionKind::kTraining && c.training.steps >= 3) return true;
    }
    return false;
  });
  REQUIRE(h.backend.stop_training(1).ok());
  Completion stopped = h.sink.wait_for_ticket(CompletionKind::kTraining, 1);
  REQUIRE(stopped.status.ok());
  const uint64_t done = stopped.training.step;
  REQUIRE(done >= 3);  // wherever the stop found it: the next boundary
  CHECK(stopped.training.checkpoint_step == done);
  CHECK(stopped.training.checkpoint_path == path);
  CHECK(h.backend.stop_training(1).ok());  // it ended: nothing to do
  CHECK(h.backend.checkpoint_training(1).code() == Code::kNotFound);

  // Resume from the file: the next steps are the uninterrupted run's.
  TrainOptions r = options();
  r.resume_path = path;
  r.checkpoint_path = path;
  REQUIRE(h.backend.start_training(h.task(2, 3, r)).ok());
  Completion end = h.sink.wait_for_ticket(CompletionKind::kTraining, 2);
  REQUIRE(end.status.ok());
  CHECK(end.training.step == done + 3);
  const auto first = h.sink.losses(1);
  const auto second = h.sink.losses(2);
  const std::vector<double> reference = reference_losses(static_cast<int>(done + 3));
  for (const auto& [step, loss] : first) CHECK(loss == reference[step - 1]);
  REQUIRE(second.size() == 3);
  for (const auto& [step, loss] : second) CHECK(loss == reference[step - 1]);
  std::filesystem::remove_all(dir);
}

TEST_CASE("CPU backend training: CHECKPOINT saves at the next step boundary", "[training]") {
  const auto dir = temp_dir("request");
  Harness h;
  TrainOptions o = options();
  o.checkpoint_path = (dir / "job.ckpt").string();
  REQUIRE(h.backend.start_training(h.task(1, 0, o)).ok());
  REQUIRE(h.backend.checkpoint_training(1).ok());
  uint64_t saved_step = 0;
  h.sink.wait_until([&](const std::vector<Completion>& all) {
    for (const Completion& c : all) {
      if (c.kind == CompletionKind::kTraining && c.training.checkpoint_saved) {
        saved_step = c.training.checkpoint_step;
        return true;
      }
    }
    return false;
  });
  CHECK(std::filesystem::is_regular_file(o.checkpoint_path));
  REQUIRE(h.backend.stop_training(1).ok());
  Completion end = h.sink.wait_for_ticket(CompletionKind::kTraining, 1);
  CHECK(end.training.checkpoint_step >= saved_step);

  // A job without a checkpoint path refuses the request.
  REQUIRE(h.backend.start_training(h.task(2, 0)).ok());
  CHECK(h.backend.checkpoint_training(2).code() == Code::kInvalidArgument);
  CHECK(h.backend.checkpoint_training(99).code() == Code::kNotFound);
  REQUIRE(h.backend.stop_training(2).ok());
  std::filesystem::remove_all(dir);
}

TEST_CASE("CPU backend training: a job that cannot train fails and says why", "[training]") {
  Harness h;
  TrainTask wrong_batch = h.task(1, 3);
  wrong_batch.batch = kBatch * 2;
  REQUIRE(h.backend.start_training(wrong_batch).ok());
  Completion end = h.sink.wait_for_ticket(CompletionKind::kTraining, 1);
  CHECK(end.status.code() == Code::kInvalidArgument);
  CHECK_THAT(end.status.message(), Catch::Contains("trains at its package's batch 2"));

  TrainOptions missing = options();
  missing.resume_path = "/nonexistent/ckpt";
  REQUIRE(h.backend.start_training(h.task(2, 3, missing)).ok());
  end = h.sink.wait_for_ticket(CompletionKind::kTraining, 2);
  CHECK_FALSE(end.status.ok());
  CHECK(end.training.steps == 0);

  TrainTask unknown = h.task(3, 3);
  unknown.model = "nope";
  CHECK(h.backend.start_training(unknown).code() == Code::kNotFound);
}

TEST_CASE("CPU backend training: co-run keeps training beside inference", "[training]") {
  Harness h(TrainingPolicy::kCoRun);
  REQUIRE(h.backend.start_training(h.task(1, 4)).ok());
  for (int i = 0; i < 3; ++i)
    CHECK(h.sink.wait_for_ticket(CompletionKind::kInfer, h.infer()).status.ok());
  Completion end = h.sink.wait_for_ticket(CompletionKind::kTraining, 1);
  REQUIRE(end.status.ok());
  CHECK(end.training.preemptions == 0);  // it never parks
  const auto losses = h.sink.losses(1);
  const std::vector<double> reference = reference_losses(4);
  for (const auto& [step, loss] : losses) CHECK(loss == reference[step - 1]);
}

}  // namespace
}  // namespace ps::reactor
