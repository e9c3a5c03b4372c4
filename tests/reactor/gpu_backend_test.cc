// The GPU backend (reactor/gpu_backend.h) [gpu]: every policy and grouping returns the same
// outputs, bit for bit, as the resident model; they match the CPU backend (the reference
// executor) on the same inputs; batches that are multiples of the native batch; unload;
// back-to-back switches among models without pool growth; and requests that find their model
// still in the switch region (--reuse-region). Skipped without a GPU.
#include "reactor/gpu_backend.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>

#include "net/text_reply.h"
#include "reactor/backend_factory.h"
#include "reactor/cpu_backend.h"
#include "reactor/synthetic_input.h"
#include "tests/support/float_compare.h"
#include "tests/support/gpu.h"

namespace ps::reactor {
namespace {

// Collects completions; wait_for(ticket) blocks until that one arrives.
class CollectingSink final : public CompletionSink {
 public:
  void post(Completion c) override {
    std::lock_guard lock(mutex_);
    done_[c.ticket] = std::move(c);
    arrived_.notify_all();
  }
  void wake() override {}
  Completion wait_for(uint64_t ticket) {
    std::unique_lock lock(mutex_);
    const bool got =
        arrived_.wait_for(lock, std::chrono::minutes(2), [&] { return done_.count(ticket) > 0; });
    PS_CHECK(got);
    Completion c = std::move(done_.at(ticket));
    done_.erase(ticket);
    return c;
  }

 private:
  std::mutex mutex_;
  std::condition_variable arrived_;
  std::map<uint64_t, Completion> done_;
};

// A started backend with its sink, and helpers that run one command to completion.
struct Harness {
  CollectingSink sink;
  std::unique_ptr<Backend> backend;
  uint64_t next_ticket = 1;

  Completion load(const std::string& zoo, uint32_t batch = 2) {
    ModelSource s;
    s.name = zoo;
    s.zoo_model = zoo;
    s.zoo_batch = batch;
    s.zoo_seq = 8;
    const uint64_t t = next_ticket++;
    backend->load(t, s);
    return sink.wait_for(t);
  }
  Completion infer(const std::string& model, uint32_t batch, std::string input = {}) {
    InferTask task;
    task.ticket = next_ticket++;
    task.model = model;
    task.batch = batch;
    task.synthetic = input.empty();
    task.input = std::move(input);
    task.accepted = std::chrono::steady_clock::now();
    const uint64_t t = task.ticket;
    backend->infer(std::move(task));
    return sink.wait_for(t);
  }
  // The backend's statistics once every command sent so far is fully done: the device thread
  // updates them after posting a completion (and after evicting), so a request for an unknown
  // model, answered in order, is the barrier.
  BackendStats settled_stats() {
    PS_CHECK(infer("(barrier)", 1).status.code() == Code::kNotFound);
    return backend->stats();
  }
};

// host_read_min_bytes: 0 the default (bert_tiny's tables are smaller: copied), 1 every table
// read from the host during a switch, UINT64_MAX none. reuse_region: BackendOptions'.
std::unique_ptr<Harness> gpu_harness(const std::string& policy,
                                     const std::string& grouping = "optimal",
                                     const std::string& precision = "fp32", bool graphs = true,
                                     uint64_t host_read_min_bytes = 0, uint32_t loopback = 0,
                                     bool reuse_region = true) {
  auto h = std::make_unique<Harness>();
  BackendOptions o;
  o.device = "0";
  o.policy = policy;
  o.grouping = grouping;
  o.precision = precision;
  o.graphs = graphs;
  o.host_read_min_bytes = host_read_min_bytes;
  o.reuse_region = reuse_region;
  o.pool_bytes = uint64_t{1} << 30;
  if (loopback > 0) {  // parallel transmission over links of this GPU to itself
    o.parallel_links = loopback + 1;
    o.parallel_loopback = loopback;
  }
  auto b = make_backend(o);
  INFO(b.status().to_string());
  REQUIRE(b.ok());
  h->backend = std::move(*b);
  Status started = h->backend->start(&h->sink);
  INFO(started.to_string());
  REQUIRE(started.ok());
  return h;
}

// The error relative to the output's scale; every value must be finite.
double max_relative_error(const std::string& a, const std::string& b) {
  REQUIRE(a.size() == b.size());
  const double error = testing::max_relative_error_f32(a, b);
  REQUIRE(std::isfinite(error));
  return error;
}

const char* const kModels[] = {"resnet_tiny", "inception_tiny", "bert_tiny"};

// The CPU backend's outputs for every model at batch 2 and 4 (synthetic inputs).
const std::map<std::string, std::string>& cpu_outputs() {
  static const std::map<std::string, std::string> outputs = [] {
    std::map<std::string, std::string> out;
    Harness h;
    h.backend = std::make_unique<CpuBackend>(2);
    PS_CHECK(h.backend->start(&h.sink).ok());
    for (const char* m : kModels) {
      PS_CHECK(h.load(m).status.ok());
      for (uint32_t batch : {2u, 4u}) {
        Completion c = h.infer(m, batch);
        PS_CHECK(c.status.ok());
        out[std::string(m) + "/" + std::to_string(batch)] = c.output;
      }
    }
    h.backend->shutdown();
    return out;
  }();
  return outputs;
}

TEST_CASE("GPU backend: every policy gives the resident model's outputs, bit for bit",
          "[gpu][gpu_backend]") {
  PS_REQUIRE_GPU();
  const auto& cpu = cpu_outputs();
  // The ready policy's outputs are the reference for the others.
  std::map<std::string, std::string> ready;
  for (const char* policy :
       {"ready", "pipeswitch", "cache", "stop-and-start", "no-pool", "pageable", "managed"}) {
    INFO("policy " << policy);
    auto h = gpu_harness(policy);
    for (const char* m : kModels) {
      Completion load = h->load(m);
      INFO(load.status.to_string());
      REQUIRE(load.status.ok());
    }
    // Twice round the models: the second round finds cache/ready models resident.
    for (int round = 0; round < 2; ++round) {
      for (const char* m : kModels) {
        for (uint32_t batch : {2u, 4u}) {
          const std::string key = std::string(m) + "/" + std::to_string(batch);
          INFO(key << " round " << round);
          Completion c = h->infer(m, batch);
          INFO(c.status.to_string());
          REQUIRE(c.status.ok());
          REQUIRE(c.outputs.size() >= 1);
          CHECK(c.outputs[0].shape[0] == batch);
          CHECK(max_relative_error(c.output, cpu.at(key)) <= 1e-4);
          if (std::string(policy) == "ready") {
            if (round == 0) ready[key] = c.output;
            CHECK(c.timings.switch_us == 0);
          } else {
            CHECK(c.output == ready.at(key));
          }
        }
      }
    }
    const BackendStats stats = h->settled_stats();
    if (std::string(policy) == "ready") {
      CHECK(stats.switches == 0);
      CHECK(stats.resident.size() == 3);
    } else if (std::string(policy) == "cache") {
      CHECK(stats.switches == 3);  // each model once; then resident
    } else if (std::string(policy) == "pipeswitch") {
      // Batch 4 follows the same model's batch 2: its weights are still in the switch region.
      CHECK(stats.switches == 6);
      CHECK(stats.region_hits == 6);
      CHECK(stats.resident.empty());
    } else {
      CHECK(stats.switches == 12);  // every request switches its model in
      CHECK(stats.region_hits == 0);
      CHECK(stats.resident.empty());
    }
    h->backend->shutdown();
  }
}

TEST_CASE("GPU backend: every grouping computes the same outputs", "[gpu][gpu_backend]") {
  PS_REQUIRE_GPU();
  std::map<std::string, std::string> first;
  for (const char* grouping : {"optimal", "per-layer", "blocks", "whole", "package", "timed"}) {
    INFO("grouping " << grouping);
    auto h = gpu_harness("pipeswitch", grouping);
    for (const char* m : kModels) {
      Completion loaded = h->load(m);
      REQUIRE(loaded.status.ok());
      REQUIRE(loaded.model);
      CHECK(loaded.model->groups > 0);
      if (std::string(grouping) == "timed") {  // one of the three timed candidates was kept
        CHECK_THAT(loaded.model->grouping, Catch::Matches("timed:(optimal|blocks|per-layer)"));
      } else {
        CHECK(loaded.model->grouping == grouping);
      }
      Completion c = h->infer(m, 2);
      INFO(c.status.to_string());
      REQUIRE(c.status.ok());
      CHECK(c.timings.switch_us > 0);
      auto [it, inserted] = first.emplace(m, c.output);
      if (!inserted) CHECK(c.output == it->second);
    }
    h->backend->shutdown();
  }
}

TEST_CASE("GPU backend: graph replay and layer-by-layer enqueue give the same outputs",
          "[gpu][gpu_backend]") {
  PS_REQUIRE_GPU();
  for (const char* policy : {"pipeswitch", "ready", "managed", "cache"}) {
    INFO("policy " << policy);
    std::map<std::string, std::string> outputs[2];
    for (int graphs = 0; graphs < 2; ++graphs) {
      auto h = gpu_harness(policy, "optimal", "tf32", graphs == 1);
      for (const char* m : kModels) {
        REQUIRE(h->load(m).status.ok());
        for (int round = 0; round < 2; ++round) {  // cache: a switch-in, then a resident hit
          Completion c = h->infer(m, 2);
          INFO(c.status.to_string());
          REQUIRE(c.status.ok());
          CHECK(c.timings.startup_us > 0);
          CHECK(c.timings.startup_us <= c.timings.queue_us + c.timings.compute_us + 1000);
          auto [it, inserted] = outputs[graphs].emplace(m, c.output);
          if (!inserted) CHECK(c.output == it->second);
        }
      }
      h->backend->shutdown();
    }
    // Kernels and library calls are the same either way: bit for bit.
    CHECK(outputs[0] == outputs[1]);
  }
}

TEST_CASE("GPU backend: embedding tables read from host memory give the copied outputs",
          "[gpu][gpu_backend]") {
  PS_REQUIRE_GPU();
  // bert_tiny's tables (word, position, token type) are read by the Gather kernels from the
  // pinned host copy during a switch and not copied; were a table's layer bound to the device
  // slot (which then holds whatever the last switch left there), or a table's bytes copied
  // over its neighbours, the outputs would differ.
  std::map<std::string, std::string> copied;
  for (const uint64_t min_bytes : {UINT64_MAX, uint64_t{1}}) {
    for (const char* grouping : {"optimal", "per-layer", "whole"}) {
      for (const bool graphs : {true, false}) {
        INFO("host_read_min_bytes " << min_bytes << ", grouping " << grouping << ", graphs "
                                    << graphs);
        auto h = gpu_harness("pipeswitch", grouping, "fp32", graphs, min_bytes);
        REQUIRE(h->load("bert_tiny").status.ok());
        REQUIRE(h->load("resnet_tiny").status.ok());
        for (int round = 0; round < 2; ++round) {
          for (uint32_t batch : {2u, 4u}) {  // 4: two chunks of the native batch
            Completion c = h->infer("bert_tiny", batch);
            INFO(c.status.to_string());
            REQUIRE(c.status.ok());
            CHECK(c.timings.switch_us > 0);
            auto [it, inserted] = copied.emplace(std::to_string(batch), c.output);
            if (!inserted) CHECK(c.output == it->second);
            // Another model's switch overwrites the region between two bert_tiny requests.
            REQUIRE(h->infer("resnet_tiny", 2).status.ok());
          }
        }
        h->backend->shutdown();
      }
    }
  }
}

TEST_CASE("GPU backend: a model still in the switch region runs there without a switch",
          "[gpu][gpu_backend]") {
  PS_REQUIRE_GPU();
  // pipeswitch: a request for the model whose weights the switch region still holds runs
  // without copying them (the whole-request graph or, for two chunks, layer by layer), with its
  // embedding tables still read from the host (min_bytes 1: they were never in the region).
  // Another model's switch, or another model's registration (which times switches in the
  // region), makes the next request switch again. Were a hit to run on stale or partial
  // weights, or on tables that are not there, its outputs would differ from the switch's.
  for (const uint64_t min_bytes : {uint64_t{1}, UINT64_MAX}) {
    for (const bool graphs : {true, false}) {
      for (const bool reuse : {true, false}) {
        INFO("host_read_min_bytes " << min_bytes << ", graphs " << graphs << ", reuse " << reuse);
        auto h = gpu_harness("pipeswitch", "optimal", "fp32", graphs, min_bytes, 0, reuse);
        REQUIRE(h->load("bert_tiny").status.ok());
        REQUIRE(h->load("resnet_tiny").status.ok());
        std::map<uint32_t, std::string> first;  // the switched-in outputs, by batch
        auto expect = [&](const std::string& model, uint32_t batch, bool hit) {
          Completion c = h->infer(model, batch);
          INFO(model << " batch " << batch << ": " << c.status.to_string());
          REQUIRE(c.status.ok());
          CHECK((c.timings.switch_us == 0) == hit);
          if (model != "bert_tiny") return;
          auto [it, inserted] = first.emplace(batch, c.output);
          if (!inserted) CHECK(c.output == it->second);
        };
        expect("bert_tiny", 2, false);  // the registrations' timing switches left the region
        expect("bert_tiny", 2, reuse);
        // Registration captured (and ran) the graph a hit replays: the first hit captures none.
        CHECK(h->settled_stats().request_captures == 0);
        expect("bert_tiny", 4, reuse);  // two chunks
        expect("resnet_tiny", 2, false);
        expect("bert_tiny", 4, false);  // resnet_tiny overwrote the region
        expect("bert_tiny", 2, reuse);
        REQUIRE(h->load("inception_tiny").status.ok());
        expect("bert_tiny", 2, false);  // the registration overwrote it
        const BackendStats stats = h->settled_stats();
        CHECK(stats.switches == (reuse ? 4u : 7u));
        CHECK(stats.region_hits == (reuse ? 3u : 0u));
        // Batch 4 grew bert_tiny's staging buffers, which the hit graph copied from: the next
        // batch-2 hit captured it again.
        CHECK(stats.request_captures == (graphs && reuse ? 1u : 0u));
        h->backend->shutdown();
      }
    }
  }
}

TEST_CASE("GPU backend: parallel transmission over loopback links gives the same outputs",
          "[gpu][gpu_backend]") {
  PS_REQUIRE_GPU();
  // Two extra links on the GPU itself (their own streams, staging slots and events, forwards
  // as device copies): every switch borrows them, routes pieces through the staging, and the
  // layers wait for each group's last piece on every link. Any missing wait or a piece put at
  // the wrong offset would change the outputs; host-read tables are left out of the pieces.
  std::map<std::string, std::string> reference;
  for (const uint32_t loopback : {0u, 2u}) {
    for (const char* grouping : {"per-layer", "optimal"}) {
      for (const uint64_t min_bytes : {uint64_t{0}, uint64_t{1}}) {
        for (const bool graphs : {true, false}) {
          INFO("loopback " << loopback << ", grouping " << grouping << ", host_read_min_bytes "
                           << min_bytes << ", graphs " << graphs);
          // Every request switches (no region reuse), so every one borrows the links.
          auto h = gpu_harness("pipeswitch", grouping, "fp32", graphs, min_bytes, loopback, false);
          for (const char* m : kModels) REQUIRE(h->load(m).status.ok());
          for (int round = 0; round < 2; ++round) {
            for (const char* m : kModels) {
              for (uint32_t batch : {2u, 4u}) {
                const std::string key = std::string(m) + "/" + std::to_string(batch);
                INFO(key << " round " << round);
                Completion c = h->infer(m, batch);
                INFO(c.status.to_string());
                REQUIRE(c.status.ok());
                CHECK(c.timings.switch_us > 0);
                auto [it, inserted] = reference.emplace(key, c.output);
                if (!inserted) CHECK(c.output == it->second);
              }
            }
          }
          const BackendStats stats = h->settled_stats();
          CHECK(stats.switches == 12);
          if (loopback > 0) {
            CHECK(stats.parallel_switches == 12);
          } else {
            CHECK(stats.parallel_switches == 0);
          }
          h->backend->shutdown();
        }
      }
    }
  }
  // cache: the switch goes into a model's own pool slot, then the model stays resident.
  auto h = gpu_harness("cache", "per-layer", "fp32", true, 0, 2);
  for (const char* m : kModels) REQUIRE(h->load(m).status.ok());
  for (int round = 0; round < 2; ++round) {
    for (const char* m : kModels) {
      Completion c = h->infer(m, 2);
      INFO(m << " round " << round << ": " << c.status.to_string());
      REQUIRE(c.status.ok());
      CHECK(c.output == reference.at(std::string(m) + "/2"));
    }
  }
  const BackendStats stats = h->settled_stats();
  CHECK(stats.switches == 3);
  CHECK(stats.parallel_switches == 3);
  h->backend->shutdown();
}

TEST_CASE("GPU backend: sent inputs, wrong sizes, unknown and unloaded models",
          "[gpu][gpu_backend]") {
  PS_REQUIRE_GPU();
  auto h = gpu_harness("pipeswitch", "optimal", "tf32");
  Completion load = h->load("resnet_tiny");
  REQUIRE(load.status.ok());
  REQUIRE(load.model.has_value());
  const ModelInfo info = *load.model;
  // A sent input equal to the synthetic one gives the same output.
  const std::string input = synthetic_input(info, 2);
  Completion sent = h->infer("resnet_tiny", 2, input);
  Completion synthetic = h->infer("resnet_tiny", 2);
  REQUIRE(sent.status.ok());
  REQUIRE(synthetic.status.ok());
  CHECK(sent.output == synthetic.output);
  // The backend's own checksum (the reply's) is the protocol's, over the output bytes.
  CHECK(sent.summarized);
  CHECK(sent.checksum == net::payload_checksum(sent.output));
  // Without want_output the bytes stay on the device thread; the summary still comes.
  {
    InferTask task;
    task.ticket = h->next_ticket++;
    task.model = "resnet_tiny";
    task.batch = 2;
    task.synthetic = true;
    task.want_output = false;
    task.accepted = std::chrono::steady_clock::now();
    const uint64_t t = task.ticket;
    h->backend->infer(std::move(task));
    Completion quiet = h->sink.wait_for(t);
    REQUIRE(quiet.status.ok());
    CHECK(quiet.output.empty());
    CHECK(quiet.checksum == sent.checksum);
  }
  CHECK(max_relative_error(sent.output, cpu_outputs().at("resnet_tiny/2")) <= 5e-3);

  Completion wrong = h->infer("resnet_tiny", 2, std::string(input.size() - 4, 'x'));
  CHECK(wrong.status.code() == Code::kInvalidArgument);
  Completion unknown = h->infer("nope", 2);
  CHECK(unknown.status.code() == Code::kNotFound);

  const uint64_t t = h->next_ticket++;
  h->backend->unload(t, "resnet_tiny");
  CHECK(h->sink.wait_for(t).status.ok());
  CHECK(h->infer("resnet_tiny", 2).status.code() == Code::kNotFound);
  // The pool holds nothing of the model any more.
  CHECK(h->settled_stats().pool_used_bytes == 0);
  h->backend->shutdown();
}

TEST_CASE("GPU backend: back-to-back switches among models keep the pool flat",
          "[gpu][gpu_backend]") {
  PS_REQUIRE_GPU();
  for (const char* policy : {"pipeswitch", "cache"}) {
    INFO(policy);
    auto h = gpu_harness(policy);
    std::map<std::string, std::string> first;
    for (const char* m : kModels) {
      REQUIRE(h->load(m).status.ok());
      first[m] = h->infer(m, 2).output;
    }
    const uint64_t used = h->settled_stats().pool_used_bytes;
    for (int i = 0; i < 300; ++i) {
      const char* m = kModels[(i * 7) % 3];
      Completion c = h->infer(m, 2);
      REQUIRE(c.status.ok());
      REQUIRE(c.output == first[m]);
    }
    CHECK(h->settled_stats().pool_used_bytes == used);
    h->backend->shutdown();
  }
}

TEST_CASE("GPU backend: a pool too small for the model fails the load clearly",
          "[gpu][gpu_backend]") {
  PS_REQUIRE_GPU();
  auto h = std::make_unique<Harness>();
  BackendOptions o;
  o.device = "0";
  o.pool_bytes = uint64_t{80} << 20;  // the link probe fits; inception_v3's 91 MiB do not
  auto b = make_backend(o);
  REQUIRE(b.ok());
  h->backend = std::move(*b);
  REQUIRE(h->backend->start(&h->sink).ok());
  Completion load = h->load("inception_v3", 1);
  CHECK(load.status.code() == Code::kOutOfMemory);
  // The server goes on: a small model still loads and runs.
  REQUIRE(h->load("resnet_tiny").status.ok());
  CHECK(h->infer("resnet_tiny", 2).status.ok());
  h->backend->shutdown();
}

}  // namespace
}  // namespace ps::reactor
