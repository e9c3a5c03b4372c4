// Training jobs on the GPU backend (reactor/gpu_training_job.h) [gpu]: a job's losses follow the
// CPU trainer's; inference requests preempt it between chunks and their startup (arrival to
// the first layer running) is reported as the preemption latency; a checkpoint-resume continues
// the GPU's own uninterrupted trajectory bit for bit; a second job on the same GPU is refused;
// a LOAD that needs the job's memory pages the job out to host memory, and it comes back.
// Skipped without a GPU.
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <thread>
#include <vector>

#include "models/cpu/trainer.h"
#include "reactor/backend_factory.h"
#include "reactor/model_source.h"
#include "tests/reactor/recording_sink.h"
#include "tests/reactor/training_reference.h"
#include "tests/support/gpu.h"

namespace ps::reactor {
namespace {

using testing::RecordingSink;
constexpr uint32_t kBatch = 4;

TrainOptions options() {
  TrainOptions o;
  o.learning_rate = 0.01;  // the ResNet152 rate: float32 tracks float64 closely at it
  o.momentum = 0.9;
  o.weight_decay = 1e-4;
  o.seed = 11;
  return o;
}

// The CPU trainer (float64) on the zoo model imported for training: the reference.
std::vector<double> cpu_losses(int steps) {
  return testing::reference_losses("resnet_tiny", kBatch, options(), steps);
}

struct GpuHarness {
  RecordingSink sink;
  std::unique_ptr<Backend> backend;
  uint64_t next_ticket = 1000;

  explicit GpuHarness(TrainingPolicy policy = TrainingPolicy::kYield) {
    BackendOptions o;
    o.device = "0";
    o.policy = "pipeswitch";
    o.precision = "fp32";
    o.pool_bytes = uint64_t{2} << 30;
    o.training = policy;
    auto b = make_backend(o);
    PS_CHECK(b.ok());
    backend = std::move(*b);
    PS_CHECK(backend->start(&sink).ok());
    ModelSource s;
    s.name = "resnet_tiny";
    s.zoo_model = "resnet_tiny";
    s.zoo_batch = kBatch;
    backend->load(1, s);
    PS_CHECK(sink.wait_for_ticket(CompletionKind::kLoad, 1).status.ok());
  }
  ~GpuHarness() { backend->shutdown(); }

  TrainTask task(uint64_t job, uint64_t steps, TrainOptions o = options()) {
    TrainTask t;
    t.job = job;
    t.model = "resnet_tiny";
    t.batch = kBatch;
    t.steps = steps;
    t.options = std::move(o);
    return t;
  }
  Completion infer() {
    InferTask t;
    t.ticket = next_ticket++;
    t.model = "resnet_tiny";
    t.batch = kBatch;
    t.synthetic = true;
    t.want_output = false;
    t.accepted = std::chrono::steady_clock::now();
    const uint64_t ticket = t.ticket;
    backend->infer(std::move(t));
    return sink.wait_for_ticket(CompletionKind::kInfer, ticket);
  }
};

TEST_CASE("GPU training: a job's losses follow the CPU trainer's", "[gpu][gpu_training]") {
  PS_REQUIRE_GPU();
  GpuHarness h;
  REQUIRE(h.backend->start_training(h.task(1, 6)).ok());
  Completion end = h.sink.wait_for_ticket(CompletionKind::kTraining, 1);
  INFO(end.status.to_string());
  REQUIRE(end.status.ok());
  CHECK(end.training.step == 6);
  const auto losses = h.sink.losses(1);
  const std::vector<double> reference = cpu_losses(6);
  REQUIRE(losses.size() == 6);
  double worst = 0;
  for (uint64_t s = 1; s <= 6; ++s) {
    worst = std::max(worst, std::abs(losses.at(s) - reference[s - 1]) / std::abs(reference[s - 1]));
  }
  std::printf(
      "[gpu_training] resnet_tiny batch %u, 6 steps fp32: worst loss error %.3g "
      "relative to the CPU trainer; %.1f images/s\n",
      kBatch, worst, end.training.images_per_s);
  // float32 on the GPU against float64 on the CPU, six steps of momentum SGD.
  CHECK(worst < 1e-3);
}

TEST_CASE("GPU training: inference preempts the job between chunks", "[gpu][gpu_training]") {
  PS_REQUIRE_GPU();
  GpuHarness h;
  REQUIRE(h.backend->start_training(h.task(1, 0)).ok());
  h.sink.wait_until([](const std::vector<Completion>& all) {
    for (const Completion& c : all) {
      if (c.kind == CompletionKind::kTraining && c.training.steps >= 2) return true;
    }
    return false;
  });
  std::vector<uint64_t> startup;
  std::vector<uint64_t> queue;  // the host's part: accepted -> the device thread takes it
  for (int i = 0; i < 50; ++i) {
    Completion c = h.infer();
    REQUIRE(c.status.ok());
    startup.push_back(c.timings.startup_us);
    queue.push_back(c.timings.queue_us);
  }
  REQUIRE(h.backend->stop_training(1).ok());
  Completion end = h.sink.wait_for_ticket(CompletionKind::kTraining, 1);
  REQUIRE(end.status.ok());
  std::sort(startup.begin(), startup.end());
  std::sort(queue.begin(), queue.end());
  std::printf(
      "[gpu_training] 50 inferences while training: startup p50 %llu us, p99 %llu us "
      "(of it queued on the host: p50 %llu us, p99 %llu us); "
      "job: %llu preemptions, p99 %llu us, %llu steps\n",
      static_cast<unsigned long long>(startup[25]), static_cast<unsigned long long>(startup[49]),
      static_cast<unsigned long long>(queue[25]), static_cast<unsigned long long>(queue[49]),
      static_cast<unsigned long long>(end.training.preemptions),
      static_cast<unsigned long long>(end.training.preempt_p99_us),
      static_cast<unsigned long long>(end.training.steps));
  CHECK(end.training.preemptions == 50);
  CHECK(end.training.steps >= 2);
  // One job per GPU: a second is refused while the first runs.
  REQUIRE(h.backend->start_training(h.task(2, 0)).ok());
  CHECK(h.backend->start_training(h.task(3, 1)).code() == Code::kResourceExhausted);
  REQUIRE(h.backend->stop_training(2).ok());
  CHECK(h.sink.wait_for_ticket(CompletionKind::kTraining, 2).status.ok());
}

TEST_CASE("GPU training: checkpoint and resume continue the uninterrupted trajectory",
          "[gpu][gpu_training]") {
  PS_REQUIRE_GPU();
  const auto dir = std::filesystem::temp_directory_path() / "ps_gpu_training_ckpt";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  GpuHarness h;
  REQUIRE(h.backend->start_training(h.task(1, 6)).ok());
  REQUIRE(h.sink.wait_for_ticket(CompletionKind::kTraining, 1).status.ok());
  TrainOptions first = options();
  first.checkpoint_path = (dir / "half").string();
  REQUIRE(h.backend->start_training(h.task(2, 3, first)).ok());
  Completion saved = h.sink.wait_for_ticket(CompletionKind::kTraining, 2);
  REQUIRE(saved.status.ok());
  CHECK(saved.training.checkpoint_step == 3);
  TrainOptions second = options();
  second.resume_path = first.checkpoint_path;
  REQUIRE(h.backend->start_training(h.task(3, 3, second)).ok());
  Completion end = h.sink.wait_for_ticket(CompletionKind::kTraining, 3);
  INFO(end.status.to_string());
  REQUIRE(end.status.ok());
  CHECK(end.training.step == 6);
  const auto whole = h.sink.losses(1);
  const auto resumed = h.sink.losses(3);
  REQUIRE(resumed.size() == 3);
  // Deterministic algorithms: the same bits as the uninterrupted run.
  for (const auto& [step, loss] : resumed) CHECK(loss == whole.at(step));
  std::filesystem::remove_all(dir);
}

// Paging (gpu_training_job.h): a job on resnet50 holds several hundred MiB; the pool is sized to
// hold it and half of what registering resnet18 keeps (its arena and workspace; its weights go
// to the switch region, which resnet50's already covers), so the LOAD fits only once the job's
// state is out of the pool (registration also profiles resnet18 with its weights in a
// temporary slot: more than it keeps). The sizes are measured first on a roomy pool.
struct PagingBackend {
  RecordingSink sink;
  std::unique_ptr<Backend> backend;
  explicit PagingBackend(uint64_t pool_bytes) {
    BackendOptions o;
    o.device = "0";
    o.policy = "pipeswitch";
    o.precision = "fp32";
    o.pool_bytes = pool_bytes;
    auto b = make_backend(o);
    PS_CHECK(b.ok());
    backend = std::move(*b);
    PS_CHECK(backend->start(&sink).ok());
  }
  ~PagingBackend() { backend->shutdown(); }
  Status load(uint64_t ticket, const std::string& zoo) {
    ModelSource s;
    s.name = zoo;
    s.zoo_model = zoo;
    s.zoo_batch = kBatch;
    backend->load(ticket, s);
    return sink.wait_for_ticket(CompletionKind::kLoad, ticket).status;
  }
  Status infer(uint64_t ticket, const std::string& model) {
    InferTask t;
    t.ticket = ticket;
    t.model = model;
    t.batch = kBatch;
    t.synthetic = true;
    t.want_output = false;
    t.accepted = std::chrono::steady_clock::now();
    backend->infer(std::move(t));
    return sink.wait_for_ticket(CompletionKind::kInfer, ticket).status;
  }
  uint64_t used() { return backend->stats().pool_used_bytes; }
  TrainingProgress latest(uint64_t job) {
    TrainingProgress p;
    sink.wait_until([&](const std::vector<Completion>& all) {
      for (const Completion& c : all) {
        if (c.kind == CompletionKind::kTraining && c.ticket == job) p = c.training;
      }
      return true;
    });
    return p;
  }
  void wait_steps(uint64_t job, uint64_t steps) {
    sink.wait_until([&](const std::vector<Completion>& all) {
      for (const Completion& c : all) {
        if (c.kind == CompletionKind::kTraining && c.ticket == job && c.training.steps >= steps)
          return true;
      }
      return false;
    });
  }
};

TrainTask resnet50_task(uint64_t job) {
  TrainTask t;
  t.job = job;
  t.model = "resnet50";
  t.batch = kBatch;
  t.steps = 0;  // until stopped
  t.options = options();
  return t;
}

TEST_CASE("GPU training: a LOAD that needs the job's memory pages it out, UNLOAD lets it back",
          "[gpu][gpu_training]") {
  PS_REQUIRE_GPU();
  // 1. Sizes and the uninterrupted trajectory, on a roomy pool.
  uint64_t base = 0, job_bytes = 0, small_bytes = 0;
  std::map<uint64_t, double> reference;
  {
    PagingBackend roomy(uint64_t{8} << 30);
    REQUIRE(roomy.load(1, "resnet50").ok());
    REQUIRE(roomy.infer(2, "resnet50").ok());
    base = roomy.used();
    REQUIRE(roomy.load(3, "resnet18").ok());
    REQUIRE(roomy.infer(4, "resnet18").ok());
    small_bytes = roomy.used() - base;
    roomy.backend->unload(5, "resnet18");
    REQUIRE(roomy.sink.wait_for_ticket(CompletionKind::kUnload, 5).status.ok());
    REQUIRE(roomy.backend->start_training(resnet50_task(10)).ok());
    roomy.wait_steps(10, 1);
    REQUIRE(roomy.infer(6, "resnet50").ok());
    job_bytes = roomy.used() - base;
    roomy.wait_steps(10, 40);
    REQUIRE(roomy.backend->stop_training(10).ok());
    REQUIRE(roomy.sink.wait_for_ticket(CompletionKind::kTraining, 10).status.ok());
    reference = roomy.sink.losses(10);
  }
  std::printf("[gpu_training] paging sizes: base %llu MiB, job %llu MiB, resnet18 keeps %llu MiB\n",
              static_cast<unsigned long long>(base >> 20),
              static_cast<unsigned long long>(job_bytes >> 20),
              static_cast<unsigned long long>(small_bytes >> 20));
  REQUIRE(small_bytes >= (uint64_t{8} << 20));  // half of it well above the pool's granularity
  REQUIRE(job_bytes >= 2 * small_bytes + (uint64_t{64} << 20));

  // 2. A pool that holds the base and the job, or the base and resnet18, not all three.
  PagingBackend tight(base + job_bytes + small_bytes / 2);
  REQUIRE(tight.load(1, "resnet50").ok());
  REQUIRE(tight.backend->start_training(resnet50_task(20)).ok());
  tight.wait_steps(20, 2);
  // The LOAD finds the pool full: the job finishes its step and goes to host memory.
  Status loaded = tight.load(5, "resnet18");
  INFO(loaded.to_string());
  REQUIRE(loaded.ok());
  TrainingProgress out = tight.latest(20);
  CHECK(out.page_outs == 1);
  CHECK(out.paged);
  REQUIRE(tight.infer(6, "resnet18").ok());
  REQUIRE(tight.infer(7, "resnet50").ok());
  // It stays out while resnet18 holds the room.
  const uint64_t steps_out = out.steps;
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK(tight.latest(20).steps == steps_out);
  // UNLOAD makes room: the job comes back by itself and goes on.
  tight.backend->unload(8, "resnet18");
  REQUIRE(tight.sink.wait_for_ticket(CompletionKind::kUnload, 8).status.ok());
  tight.wait_steps(20, steps_out + 3);
  TrainingProgress back = tight.latest(20);
  CHECK_FALSE(back.paged);
  CHECK(back.page_outs == 1);
  CHECK(back.paged_us >= 200'000);
  REQUIRE(tight.backend->stop_training(20).ok());
  REQUIRE(tight.sink.wait_for_ticket(CompletionKind::kTraining, 20).status.ok());
  // The trajectory is the uninterrupted one, bit for bit, across the page-out and page-in.
  const std::map<uint64_t, double> losses = tight.sink.losses(20);
  int compared = 0;
  for (const auto& [step, loss] : losses) {
    if (reference.count(step) == 0) continue;
    INFO("step " << step);
    CHECK(std::memcmp(&loss, &reference.at(step), sizeof loss) == 0);
    ++compared;
  }
  std::printf("[gpu_training] paged out at step %llu for %llu us; %d steps compared bit for bit\n",
              static_cast<unsigned long long>(steps_out),
              static_cast<unsigned long long>(back.paged_us), compared);
  REQUIRE_FALSE(reference.empty());
  CHECK(compared >= static_cast<int>(std::min<uint64_t>(reference.rbegin()->first, steps_out + 3)));
}

TEST_CASE("GPU training: a model the trainer cannot train fails the job, not the server",
          "[gpu][gpu_training]") {
  PS_REQUIRE_GPU();
  GpuHarness h;
  ModelSource bert;
  bert.name = "bert_tiny";
  bert.zoo_model = "bert_tiny";
  bert.zoo_batch = kBatch;
  h.backend->load(2, bert);
  REQUIRE(h.sink.wait_for_ticket(CompletionKind::kLoad, 2).status.ok());
  TrainTask task = h.task(1, 2);
  task.model = "bert_tiny";
  task.options.classes = 5;  // its classifier has 2 outputs: the trainer refuses
  REQUIRE(h.backend->start_training(task).ok());
  Completion end = h.sink.wait_for_ticket(CompletionKind::kTraining, 1);
  INFO(end.status.to_string());
  CHECK_FALSE(end.status.ok());
  CHECK_THAT(end.status.message(), Catch::Contains("5 classes"));
  CHECK(end.finished);
  // The backend goes on: inference, and another job.
  CHECK(h.infer().status.ok());
  REQUIRE(h.backend->start_training(h.task(2, 1)).ok());
  CHECK(h.sink.wait_for_ticket(CompletionKind::kTraining, 2).status.ok());
}

}  // namespace
}  // namespace ps::reactor
