// The scheduler front: model table, per-model queues, round-robin dispatch bounded by the
// backend's max_in_flight, completion routing, unload draining, training registry, shutdown.
#include "reactor/scheduler.h"

#include <catch2/catch.hpp>

#include "tests/reactor/fake_backend.h"

namespace ps::reactor {
namespace {

using testing::FakeBackend;
using testing::ListSink;
using testing::tiny_model;

struct Fixture {
  explicit Fixture(uint32_t in_flight = 2, SchedulerLimits limits = {})
      : backend(in_flight), scheduler(backend, limits) {
    REQUIRE(backend.start(&sink).ok());
  }
  // Loads `info` through the scheduler and delivers the completion.
  void register_model(const ModelInfo& info) {
    ModelSource source;
    source.name = info.name;
    source.zoo_model = info.name;
    bool done = false;
    REQUIRE(scheduler.load(source, [&](Completion c) { done = c.status.ok(); }).ok());
    backend.complete_load(backend.loads().back().first, info);
    deliver();
    REQUIRE(done);
  }
  void deliver() {
    for (Completion& c : sink.take()) scheduler.on_completion(std::move(c));
  }
  FakeBackend backend;
  ListSink sink;
  Scheduler scheduler;
};

TEST_CASE("scheduler: a loaded model is registered, a second load of the name is refused",
          "[scheduler]") {
  Fixture f;
  CHECK(f.scheduler.find_model("a") == nullptr);
  f.register_model(tiny_model("a"));
  REQUIRE(f.scheduler.find_model("a") != nullptr);
  CHECK(f.scheduler.models().size() == 1);
  ModelSource again;
  again.name = "a";
  Status s = f.scheduler.load(again, [](Completion) { FAIL("must not be called"); });
  CHECK(s.code() == Code::kAlreadyExists);
}

TEST_CASE("scheduler: submissions are validated before queueing", "[scheduler]") {
  Fixture f;
  f.register_model(tiny_model("a", 2));
  auto never = [](Completion) { FAIL("must not be called"); };
  CHECK(f.scheduler.submit_infer("nope", 2, "", true, never).code() == Code::kNotFound);
  CHECK(f.scheduler.submit_infer("a", 3, "", true, never).code() == Code::kInvalidArgument);
  CHECK(f.scheduler.submit_infer("a", 2, std::string(15, 'x'), false, never).code() ==
        Code::kInvalidArgument);
  CHECK(f.scheduler.submit_infer("a", 4, std::string(32, 'x'), false, [](Completion) {}).ok());
  CHECK(f.scheduler.rejected_total() == 3);
  CHECK(f.scheduler.requests_total() == 1);
}

TEST_CASE("scheduler: pump hands out at most max_in_flight, models in turn", "[scheduler]") {
  Fixture f(/*in_flight=*/3);
  f.register_model(tiny_model("a"));
  f.register_model(tiny_model("b"));
  std::vector<uint64_t> done;
  for (int i = 0; i < 4; ++i) {
    REQUIRE(
        f.scheduler.submit_infer("a", 1, "", true, [&](Completion c) { done.push_back(c.ticket); })
            .ok());
  }
  REQUIRE(
      f.scheduler.submit_infer("b", 1, "", true, [&](Completion c) { done.push_back(c.ticket); })
          .ok());
  f.scheduler.pump();
  auto infers = f.backend.infers();
  REQUIRE(infers.size() == 3);
  // Round-robin: b's only request is not stuck behind a's four.
  CHECK(infers[0].model == "a");
  CHECK(infers[1].model == "b");
  CHECK(infers[2].model == "a");
  CHECK(f.scheduler.queued() == 2);
  CHECK(f.scheduler.in_flight() == 3);

  f.scheduler.pump();  // full: nothing more
  CHECK(f.backend.infers().size() == 3);

  f.backend.complete_infer(infers[1].ticket);
  f.deliver();
  REQUIRE(done == std::vector<uint64_t>{infers[1].ticket});
  f.scheduler.pump();
  CHECK(f.backend.infers().size() == 4);
  for (const InferTask& t : f.backend.infers()) {
    if (t.ticket != infers[1].ticket) f.backend.complete_infer(t.ticket);
  }
  f.deliver();
  f.scheduler.pump();
  for (size_t i = 4; i < f.backend.infers().size(); ++i)
    f.backend.complete_infer(f.backend.infers()[i].ticket);
  f.deliver();
  CHECK(done.size() == 5);
  CHECK(f.scheduler.idle());
  const auto stats = f.scheduler.model_stats();
  REQUIRE(stats.size() == 2);
  CHECK(stats[0].second->ok == 4);
  CHECK(stats[1].second->ok == 1);
  CHECK(stats[0].second->total.count() == 4);
}

TEST_CASE("scheduler: a full queue answers RESOURCE_EXHAUSTED", "[scheduler]") {
  SchedulerLimits limits;
  limits.max_queue_per_model = 2;
  Fixture f(1, limits);
  f.register_model(tiny_model("a"));
  CHECK(f.scheduler.submit_infer("a", 1, "", true, [](Completion) {}).ok());
  CHECK(f.scheduler.submit_infer("a", 1, "", true, [](Completion) {}).ok());
  CHECK(f.scheduler.submit_infer("a", 1, "", true, [](Completion) {}).code() ==
        Code::kResourceExhausted);
  f.scheduler.pump();  // one leaves the queue for the backend: room again
  CHECK(f.scheduler.submit_infer("a", 1, "", true, [](Completion) {}).ok());
}

TEST_CASE("scheduler: failed completions are counted as errors and still answered", "[scheduler]") {
  Fixture f;
  f.register_model(tiny_model("a"));
  Status got;
  REQUIRE(f.scheduler.submit_infer("a", 1, "", true, [&](Completion c) { got = c.status; }).ok());
  f.scheduler.pump();
  f.backend.complete_infer(f.backend.infers()[0].ticket, device_error("boom"));
  f.deliver();
  CHECK(got.code() == Code::kDevice);
  CHECK(f.scheduler.model_stats()[0].second->errors == 1);
}

TEST_CASE("scheduler: unload waits for queued and running requests", "[scheduler]") {
  Fixture f(1);
  f.register_model(tiny_model("a"));
  int answered = 0;
  REQUIRE(f.scheduler.submit_infer("a", 1, "", true, [&](Completion) { ++answered; }).ok());
  REQUIRE(f.scheduler.submit_infer("a", 1, "", true, [&](Completion) { ++answered; }).ok());
  f.scheduler.pump();
  bool unloaded = false;
  REQUIRE(f.scheduler.unload("a", [&](Completion c) { unloaded = c.status.ok(); }).ok());
  CHECK(f.scheduler.find_model("a") == nullptr);  // no new requests
  CHECK(f.scheduler.submit_infer("a", 1, "", true, [](Completion) {}).code() == Code::kNotFound);
  CHECK(f.backend.unloads().empty());  // two requests still to run
  f.backend.complete_infer(f.backend.infers()[0].ticket);
  f.deliver();
  f.scheduler.pump();
  CHECK(f.backend.unloads().empty());
  f.backend.complete_infer(f.backend.infers()[1].ticket);
  f.deliver();
  REQUIRE(f.backend.unloads().size() == 1);
  f.backend.complete_unload(f.backend.unloads()[0].first);
  f.deliver();
  CHECK(unloaded);
  CHECK(answered == 2);
  CHECK(f.scheduler.models().empty());
  CHECK(f.scheduler.idle());
}

TrainTask train_task(const std::string& model, uint64_t steps = 0) {
  TrainTask task;
  task.model = model;
  task.steps = steps;
  return task;
}

Completion training_completion(uint64_t job, uint64_t steps, bool finished, bool saved = false) {
  Completion c;
  c.kind = CompletionKind::kTraining;
  c.ticket = job;
  c.training.steps = steps;
  c.training.checkpoint_saved = saved;
  if (saved) {
    c.training.checkpoint_step = steps;
    c.training.checkpoint_path = "/ckpt/a.ckpt";
  }
  c.finished = finished;
  return c;
}

TEST_CASE("scheduler: training jobs are registered only when the backend starts them",
          "[scheduler]") {
  Fixture f;
  f.register_model(tiny_model("a"));
  auto refused = f.scheduler.start_training(train_task("a", 10));
  CHECK(refused.status().code() == Code::kUnsupported);
  CHECK(f.scheduler.jobs().empty());
  CHECK(f.scheduler.start_training(train_task("nope")).status().code() == Code::kNotFound);

  f.backend.enable_training();
  auto job = f.scheduler.start_training(train_task("a"));
  REQUIRE(job.ok());
  REQUIRE(f.scheduler.jobs().size() == 1);
  CHECK(f.scheduler.jobs()[0].state == JobState::kRunning);
  CHECK(f.scheduler.stop_training(*job + 100).code() == Code::kNotFound);
  REQUIRE(f.scheduler.stop_training(*job).ok());
  CHECK(f.scheduler.jobs()[0].state == JobState::kStopping);
  CHECK_FALSE(f.scheduler.idle());  // a stopping job is still saving its state
  f.scheduler.on_completion(training_completion(*job, 7, /*finished=*/true));
  CHECK(f.scheduler.jobs()[0].state == JobState::kStopped);
  CHECK(f.scheduler.jobs()[0].progress.steps == 7);
  CHECK(f.scheduler.idle());
}

TEST_CASE("scheduler: a checkpoint request is answered by the job's next saved checkpoint",
          "[scheduler]") {
  Fixture f;
  f.register_model(tiny_model("a"));
  f.backend.enable_training();
  auto job = f.scheduler.start_training(train_task("a"));
  REQUIRE(job.ok());
  std::vector<Completion> answers;
  auto record = [&](Completion c) { answers.push_back(std::move(c)); };
  CHECK(f.scheduler.checkpoint_training(*job + 1, record).code() == Code::kNotFound);
  REQUIRE(f.scheduler.checkpoint_training(*job, record).ok());
  REQUIRE(f.scheduler.checkpoint_training(*job, record).ok());
  CHECK(f.backend.checkpoints() == std::vector<uint64_t>{*job, *job});
  // Progress without a checkpoint answers nobody.
  f.scheduler.on_completion(training_completion(*job, 3, false));
  CHECK(answers.empty());
  f.scheduler.on_completion(training_completion(*job, 4, false, /*saved=*/true));
  REQUIRE(answers.size() == 2);  // both waiters, once
  CHECK(answers[0].training.checkpoint_step == 4);
  f.scheduler.on_completion(training_completion(*job, 5, false, /*saved=*/true));
  CHECK(answers.size() == 2);
  // A waiter whose job ends first gets the last completion.
  REQUIRE(f.scheduler.checkpoint_training(*job, record).ok());
  f.scheduler.on_completion(training_completion(*job, 6, /*finished=*/true));
  REQUIRE(answers.size() == 3);
  CHECK(answers[2].finished);
  // An ended job takes no more requests.
  CHECK(f.scheduler.checkpoint_training(*job, record).code() == Code::kInvalidArgument);
}

TEST_CASE("scheduler: shutdown fails queued requests and refuses new ones", "[scheduler]") {
  Fixture f(1);
  f.register_model(tiny_model("a"));
  std::vector<Code> codes;
  for (int i = 0; i < 3; ++i) {
    REQUIRE(
        f.scheduler
            .submit_infer("a", 1, "", true, [&](Completion c) { codes.push_back(c.status.code()); })
            .ok());
  }
  f.scheduler.pump();  // one runs
  f.scheduler.shutdown();
  CHECK(codes == std::vector<Code>{Code::kUnavailable, Code::kUnavailable});
  CHECK_FALSE(f.scheduler.idle());  // the running one
  CHECK(f.scheduler.submit_infer("a", 1, "", true, [](Completion) {}).code() == Code::kUnavailable);
  f.backend.complete_infer(f.backend.infers()[0].ticket);
  f.deliver();
  CHECK(codes.size() == 3);
  CHECK(codes[2] == Code::kOk);
  CHECK(f.scheduler.idle());
}

}  // namespace
}  // namespace ps::reactor
