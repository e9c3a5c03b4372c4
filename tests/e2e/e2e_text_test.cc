// The text protocol end to end: a real pipeswitchd (--device cpu, tiny zoo models) on
// 127.0.0.1:0, every command, outputs checked against cpu::run_model computed here, concurrent
// pipelined clients, LOAD/UNLOAD from a models directory.
#include <catch2/catch.hpp>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <functional>
#include <sstream>
#include <thread>

#include "net/text_reply.h"
#include "onnx_loader/package_writer.h"
#include "reactor/synthetic_input.h"
#include "tests/e2e/e2e_support.h"
#include "tests/onnx_loader/temp_dir.h"

namespace ps::e2e {
namespace {

ServerProcess start_server(std::vector<std::string> args = {}) {
  args.insert(args.begin(), {"--device", "cpu", "--threads", "2"});
  bool zoo = false;
  for (const auto& a : args) zoo = zoo || a.starts_with("--zoo");
  if (!zoo) args.push_back("--zoo");
  auto server = ServerProcess::start(args);
  INFO(server.status().message());
  REQUIRE(server.ok());
  return std::move(*server);
}

TEST_CASE("e2e text: start-up banner, PING, HELP, MODELS, QUIT", "[e2e]") {
  ServerProcess server = start_server();
  CHECK(server.output().find("device: cpu") != std::string::npos);
  CHECK(server.output().find("loaded resnet_tiny") != std::string::npos);
  CHECK(server.output().find("loaded bert_tiny") != std::string::npos);
  CHECK(server.output().find("pool: ") != std::string::npos);
  psnc::Client client = server.connect();
  CHECK(request(client, "PING\n").line == "OK pong");
  CHECK(request(client, "ping\r\n").line == "OK pong");
  const psnc::Reply help = request(client, "HELP\n");
  CHECK(help.payload == net::help_text());
  const psnc::Reply models = request(client, "MODELS\n");
  CHECK(models.field("models") == "3");
  CHECK(models.payload.find("name=resnet_tiny batch=1 inputs=input:float32:1x3x32x32 "
                            "outputs=logits:float32:1x1000") != std::string::npos);
  CHECK(models.payload.find("name=bert_tiny batch=1 inputs=input_ids:int64:1x16,"
                            "token_type_ids:int64:1x16") != std::string::npos);
  CHECK(request(client, "QUIT\n").line == "OK bye");
  CHECK(client.wait_closed(std::chrono::seconds(5)).value());
  auto code = server.stop(SIGTERM);
  REQUIRE(code.ok());
  CHECK(*code == 0);
}

TEST_CASE("e2e text: INFER checksums equal the CPU executor's, for synthetic and sent inputs",
          "[e2e]") {
  ServerProcess server = start_server();
  psnc::Client client = server.connect();
  for (const std::string model : {"resnet_tiny", "inception_tiny", "bert_tiny"}) {
    for (uint32_t batch : {1u, 2u}) {
      INFO(model << " batch " << batch);
      const psnc::Reply r =
          request(client, "INFER " + model + " batch=" + std::to_string(batch) + "\n");
      INFO(r.line);
      REQUIRE(r.ok);
      CHECK(r.field("model") == model);
      CHECK(r.field("batch") == std::to_string(batch));
      CHECK(r.field("checksum") == reference_checksum(model, batch));
      for (const char* key : {"queue_us", "switch_us", "compute_us", "total_us", "sum"}) {
        CHECK_FALSE(r.field(key).empty());
      }
      // The server's whole share contains the backend's.
      REQUIRE_FALSE(r.field("server_us").empty());
      CHECK(std::stoull(r.field("server_us")) >= std::stoull(r.field("total_us")));
    }
  }
  CHECK(request(client, "INFER resnet_tiny\n").field("shape") == "1x1000");
  CHECK(request(client, "INFER bert_tiny batch=2\n").field("shape") == "2x16x32,2x32");
  CHECK(request(client, "INFER bert_tiny\n").field("dtype") == "float32,float32");

  // A payload the test makes; output=raw returns exactly the executor's bytes.
  const reactor::ModelInfo& info = reference("resnet_tiny").info;
  std::string input(reactor::input_bytes(info, 2), '\0');
  for (size_t i = 0; i < input.size() / 4; ++i) {
    const float v = static_cast<float>(i % 17) / 17.0f - 0.5f;
    std::memcpy(input.data() + i * 4, &v, 4);
  }
  const psnc::Reply raw =
      request(client, "INFER resnet_tiny batch=2 output=raw bytes=" + std::to_string(input.size()) +
                          "\n" + input);
  REQUIRE(raw.ok);
  const std::string expected = reference_output("resnet_tiny", 2, input);
  CHECK(raw.payload == expected);
  CHECK(raw.field("checksum") == [&] {
    char hex[17];
    std::snprintf(hex, sizeof(hex), "%016llx",
                  static_cast<unsigned long long>(net::payload_checksum(expected)));
    return std::string(hex);
  }());
}

TEST_CASE("e2e text: concurrent clients with pipelined requests all get their own answers",
          "[e2e]") {
  ServerProcess server = start_server({"--zoo=resnet_tiny,bert_tiny"});
  const std::vector<std::pair<std::string, uint32_t>> kinds = {
      {"resnet_tiny", 1}, {"bert_tiny", 2}, {"resnet_tiny", 2}, {"bert_tiny", 1}};
  std::map<std::string, std::string> expected;
  for (const auto& [m, b] : kinds) expected[m + std::to_string(b)] = reference_checksum(m, b);

  constexpr int kClients = 4;
  constexpr int kRequests = 8;
  std::vector<std::vector<std::string>> failures(kClients);
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      psnc::Client client = server.connect();
      std::string all;
      std::vector<std::string> keys;
      for (int i = 0; i < kRequests; ++i) {
        const auto& [m, b] = kinds[static_cast<size_t>(c + i) % kinds.size()];
        all += "INFER " + m + " batch=" + std::to_string(b) + "\nPING\n";
        keys.push_back(m + std::to_string(b));
      }
      if (!client.send(all).ok()) {
        failures[c].push_back("send failed");
        return;
      }
      for (int i = 0; i < kRequests; ++i) {
        auto r = client.read_reply();
        auto pong = client.read_reply();
        if (!r.ok() || !pong.ok()) {
          failures[c].push_back("read failed");
          return;
        }
        if (r->field("checksum") != expected[keys[i]] ||
            r->field("batch") != keys[i].substr(keys[i].size() - 1)) {
          failures[c].push_back(keys[i] + ": " + r->line);
        }
        if (pong->line != "OK pong") failures[c].push_back("expected pong: " + pong->line);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int c = 0; c < kClients; ++c) {
    INFO("client " << c);
    for (const auto& f : failures[c]) FAIL_CHECK(f);
  }
  psnc::Client client = server.connect();
  const psnc::Reply stats = request(client, "STATS\n");
  CHECK(stats.payload.find("model=resnet_tiny ok=16 errors=0") != std::string::npos);
  CHECK(stats.payload.find("model=bert_tiny ok=16 errors=0") != std::string::npos);
  CHECK(stats.payload.find("p99_us=") != std::string::npos);
}

// The JOBS line of job `job` as a Reply (its fields), polled until `done(line)` holds.
psnc::Reply job_line_when(psnc::Client& client, const std::string& job,
                          const std::function<bool(const psnc::Reply&)>& done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  for (;;) {
    const psnc::Reply jobs = request(client, "JOBS\n");
    REQUIRE(jobs.ok);
    std::istringstream lines(jobs.payload);
    for (std::string line; std::getline(lines, line);) {
      auto parsed = psnc::parse_status_line("OK " + line);
      REQUIRE(parsed.ok());
      if (parsed->field("job") == job && done(*parsed)) return *parsed;
    }
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

bool ended(const psnc::Reply& job) {
  const std::string state = job.field("state");
  return state != "running" && state != "stopping";
}

TEST_CASE("e2e text: TRAIN, JOBS, CHECKPOINT, STOP and resume on the CPU backend", "[e2e]") {
  onnx_loader::testing::TempDir dir;
  ServerProcess server = start_server(
      {"--zoo=resnet_tiny,bert_tiny", "--zoo-batch", "2", "--checkpoints", dir.file("ckpt")});
  CHECK(server.output().find("checkpoints " + dir.file("ckpt")) != std::string::npos);
  psnc::Client client = server.connect();

  // A run in two halves: a checkpoint on request, STOP (it ends at a step boundary, wherever
  // that is), then a resumed job for 3 more steps.
  const psnc::Reply first = request(client, "TRAIN resnet_tiny lr=0.05 checkpoint=half\n");
  INFO(first.line);
  REQUIRE(first.ok);
  CHECK(first.field("checkpoint") == "half");
  const std::string id = first.field("job");
  job_line_when(client, id, [](const psnc::Reply& j) { return std::stoull(j.field("step")) >= 1; });
  const psnc::Reply saved = request(client, "CHECKPOINT " + id + "\n");
  INFO(saved.line);
  REQUIRE(saved.ok);
  CHECK(saved.field("checkpoint") == "half");
  CHECK(std::stoull(saved.field("step")) >= 1);
  const psnc::Reply stop = request(client, "STOP " + id + "\n");
  REQUIRE(stop.ok);
  const psnc::Reply stopped = job_line_when(client, id, ended);
  CHECK(stopped.field("state") == "stopped");
  const uint64_t done = std::stoull(stopped.field("step"));
  CHECK(stopped.field("checkpoint_step") == stopped.field("step"));  // saved where it stopped
  CHECK(request(client, "CHECKPOINT " + id + "\n").code == "BAD_ARGUMENT");  // it ended
  const psnc::Reply resumed =
      request(client, "TRAIN resnet_tiny lr=0.05 resume=half steps=3\n");
  INFO(resumed.line);
  REQUIRE(resumed.ok);
  const psnc::Reply end = job_line_when(client, resumed.field("job"), ended);
  CHECK(end.field("state") == "finished");
  CHECK(end.field("step") == std::to_string(done + 3));

  // The reference: the same number of steps without interruption.
  const psnc::Reply whole = request(
      client, str_cat("TRAIN resnet_tiny lr=0.05 checkpoint=whole steps=", done + 3, "\n"));
  INFO(whole.line);
  REQUIRE(whole.ok);
  const psnc::Reply reference = job_line_when(client, whole.field("job"), ended);
  CHECK(reference.field("state") == "finished");
  CHECK(reference.field("checkpoint_step") == std::to_string(done + 3));
  // Bit-identical: the last loss is the uninterrupted run's (shortest round-trip text).
  CHECK(end.field("loss") == reference.field("loss"));

  // Refusals, each with a reason; none disturbs the server.
  CHECK(request(client, "TRAIN nosuch\n").code == "UNKNOWN_MODEL");
  CHECK(request(client, "TRAIN resnet_tiny steps=0\n").code == "BAD_ARGUMENT");
  CHECK(request(client, "TRAIN resnet_tiny resume=missing\n").code == "NOT_FOUND");
  CHECK(request(client, "TRAIN resnet_tiny resume=../whole\n").code == "BAD_ARGUMENT");
  CHECK(request(client, "STOP 99\n").code == "UNKNOWN_JOB");
  CHECK(request(client, "CHECKPOINT 99\n").code == "UNKNOWN_JOB");
  CHECK(request(client, "STOP x\n").code == "BAD_ARGUMENT");
  // Two running jobs may not write one file.
  const psnc::Reply endless = request(client, "TRAIN resnet_tiny checkpoint=busy\n");
  REQUIRE(endless.ok);
  CHECK(request(client, "TRAIN resnet_tiny checkpoint=busy\n").code == "ALREADY_EXISTS");
  // BERT fine-tunes its classifier (2 labels) on token ids; asking for more classes than it
  // outputs fails the job, and JOBS says why.
  const psnc::Reply bert = request(client, "TRAIN bert_tiny steps=2 lr=0.02\n");
  REQUIRE(bert.ok);
  const psnc::Reply trained = job_line_when(client, bert.field("job"), ended);
  INFO(trained.line);
  CHECK(trained.field("state") == "finished");
  CHECK(trained.field("step") == "2");
  CHECK(std::isfinite(std::stod(trained.field("loss"))));
  const psnc::Reply wide = request(client, "TRAIN bert_tiny steps=2 classes=5\n");
  REQUIRE(wide.ok);
  const psnc::Reply failed = job_line_when(client, wide.field("job"), ended);
  CHECK(failed.field("state") == "failed");
  CHECK(failed.field("error").find("5_classes") != std::string::npos);

  // A graceful shutdown stops the endless job at a step boundary and saves it.
  REQUIRE(server.stop(SIGTERM).ok());
  CHECK(std::filesystem::is_regular_file(dir.file("ckpt/busy")));
}

TEST_CASE("e2e text: without --checkpoints a job keeps none and asking for one is refused",
          "[e2e]") {
  ServerProcess server = start_server({"--zoo=resnet_tiny", "--zoo-batch", "2"});
  psnc::Client client = server.connect();
  CHECK(request(client, "TRAIN resnet_tiny checkpoint=a\n").code == "BAD_ARGUMENT");
  CHECK(request(client, "TRAIN resnet_tiny every=5\n").code == "BAD_ARGUMENT");
  const psnc::Reply job = request(client, "TRAIN resnet_tiny steps=2\n");
  REQUIRE(job.ok);
  CHECK(job.field("checkpoint").empty());
  CHECK(request(client, "CHECKPOINT " + job.field("job") + "\n").code != "OK");
  const psnc::Reply end = job_line_when(client, job.field("job"), ended);
  CHECK(end.field("state") == "finished");
  CHECK(end.field("checkpoint") == "-");
  // Inference goes on beside training.
  CHECK(request(client, "INFER resnet_tiny\n").ok);
}

TEST_CASE("e2e text: LOAD and UNLOAD read packages only from the models directory", "[e2e]") {
  onnx_loader::testing::TempDir dir;
  const Reference& ref = reference("resnet_tiny");
  REQUIRE(
      onnx_loader::write_package(dir.file("small.psm"), ref.host.manifest, ref.host.weights).ok());
  std::filesystem::create_directories(dir.path() / "models");
  std::filesystem::rename(dir.file("small.psm"), dir.file("models/small.psm"));
  dir.write("outside.psm", "not a package");
  dir.write("models/broken.psm", "not a package either");

  ServerProcess server =
      start_server({"--zoo=bert_tiny,resnet_tiny", "--models", dir.file("models")});
  // Start-up loaded the good package and reported the broken one without stopping.
  CHECK(server.output().find("loaded small") != std::string::npos);
  CHECK(server.output().find("failed to load broken") != std::string::npos);
  psnc::Client client = server.connect();
  CHECK(request(client, "MODELS\n").field("models") == "3");
  CHECK(request(client, "LOAD small\n").code == "ALREADY_EXISTS");
  CHECK(request(client, "LOAD other ../outside.psm\n").code == "FORBIDDEN");
  CHECK(request(client, "LOAD other " + dir.file("outside.psm") + "\n").code == "FORBIDDEN");
  CHECK(request(client, "LOAD other missing.psm\n").code == "NOT_FOUND");
  const psnc::Reply broken = request(client, "LOAD other broken.psm\n");
  CHECK_FALSE(broken.ok);
  CHECK(broken.message.find("broken.psm") != std::string::npos);

  const psnc::Reply loaded = request(client, "LOAD copy small.psm\n");
  INFO(loaded.line);
  REQUIRE(loaded.ok);
  CHECK(loaded.field("model") == "copy");
  CHECK_FALSE(loaded.field("load_us").empty());
  // The same weights as resnet_tiny: the same output for the same input.
  const std::string input(reactor::input_bytes(ref.info, 1), '\x01');
  const std::string header = " bytes=" + std::to_string(input.size()) + "\n";
  CHECK(request(client, "INFER copy" + header + input).field("checksum") ==
        request(client, "INFER resnet_tiny" + header + input).field("checksum"));
  CHECK(request(client, "UNLOAD copy\n").line == "OK model=copy");
  CHECK(request(client, "INFER copy\n").code == "UNKNOWN_MODEL");
  CHECK(request(client, "UNLOAD copy\n").code == "UNKNOWN_MODEL");
  CHECK(request(client, "MODELS\n").field("models") == "3");
}

}  // namespace
}  // namespace ps::e2e
