// Several devices end to end, simulated on the CPU: `pipeswitchd --device cpu,cpu,cpu` runs
// the whole multi-device path (MultiBackend, placement, per-device STATS and /metrics,
// TRAIN device=) that `--device 0,1,...` runs on GPUs. Also: device= on one device, and
// `--device all` without a GPU.
#include <catch2/catch.hpp>
#include <sstream>
#include <thread>

#include "cuda/driver.h"
#include "tests/e2e/e2e_support.h"

namespace ps::e2e {
namespace {

// The payload lines of `reply` whose first field is `key`, parsed.
std::vector<psnc::Reply> lines_with(const psnc::Reply& reply, const std::string& key) {
  std::vector<psnc::Reply> out;
  std::istringstream lines(reply.payload);
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with(key + "=")) continue;
    auto parsed = psnc::parse_status_line("OK " + line);
    REQUIRE(parsed.ok());
    out.push_back(*parsed);
  }
  return out;
}

std::string http_get(const psnc::HostPort& at, const std::string& path) {
  auto c = psnc::Client::connect(at);
  REQUIRE(c.ok());
  REQUIRE(c->send("GET " + path + " HTTP/1.0\r\n\r\n").ok());
  std::string all;
  for (;;) {
    auto chunk = c->read_exact(1);
    if (!chunk.ok()) break;
    all += *chunk;
  }
  return all;
}

TEST_CASE("e2e multi: three simulated devices serve, place, train and report per device",
          "[e2e][multi]") {
  auto server =
      ServerProcess::start({"--device", "cpu,cpu,cpu", "--threads", "1",
                            "--zoo=resnet_tiny,bert_tiny", "--metrics-listen", "127.0.0.1:0",
                            // Batch 2: BatchNorm in training mode needs more than one value per
                            // channel, so a batch-1 job fails before STOP can reach it.
                            "--zoo-batch", "2"});
  INFO(server.status().message());
  REQUIRE(server.ok());
  const std::string& banner = server->output();
  CHECK(banner.find("device: 3 devices (cpu0, cpu1, cpu2)") != std::string::npos);
  CHECK(banner.find("device cpu2: cpu (reference executor, 1 worker thread") != std::string::npos);
  CHECK(banner.find("loaded bert_tiny") != std::string::npos);

  // Many connections, pipelined, every checksum the CPU executor's.
  const std::string resnet = reference_checksum("resnet_tiny", 2);
  const std::string bert = reference_checksum("bert_tiny", 2);
  const ToolResult load =
      run_tool(psnc_path(),
               {"--server", server->address_text(), "load", "--connections", "12", "--requests",
                "120", "--depth", "2", "--models", "resnet_tiny:2,bert_tiny:2", "--reference",
                "resnet_tiny:2=" + resnet, "--reference", "bert_tiny:2=" + bert},
               "", std::chrono::seconds(120));
  INFO(load.out << load.err);
  CHECK(load.exit_code == 0);
  CHECK(load.out.find("result: PASS") != std::string::npos);

  psnc::Client client = server->connect();
  // A job pinned to cpu2 (it runs until STOP); a device that does not exist is refused with
  // the names.
  const psnc::Reply job = request(client, "TRAIN resnet_tiny device=cpu2\n");
  INFO(job.line);
  REQUIRE(job.ok);
  const psnc::Reply bad = request(client, "TRAIN resnet_tiny device=cpu7\n");
  CHECK(bad.code == "BAD_ARGUMENT");
  CHECK(bad.message.find("cpu0, cpu1, cpu2") != std::string::npos);
  const auto running = lines_with(request(client, "JOBS\n"), "job");
  REQUIRE(running.size() == 1);
  CHECK(running[0].field("gpu") == "cpu2");
  const auto pinned = lines_with(request(client, "STATS\n"), "gpu");
  REQUIRE(pinned.size() == 3);
  CHECK(pinned[2].field("training_jobs") == "1");
  CHECK(pinned[0].field("training_jobs") == "0");
  REQUIRE(request(client, "STOP " + job.field("job") + "\n").ok);
  for (;;) {
    const auto jobs = lines_with(request(client, "JOBS\n"), "job");
    REQUIRE(jobs.size() == 1);
    REQUIRE(jobs[0].field("state") != "failed");
    if (jobs[0].field("state") == "stopped") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }

  const psnc::Reply stats = request(client, "STATS\n");
  REQUIRE(stats.ok);
  const auto devices = lines_with(stats, "gpu");
  REQUIRE(devices.size() == 3);
  uint64_t placed = 0;
  for (size_t i = 0; i < devices.size(); ++i) {
    INFO(devices[i].line);
    CHECK(devices[i].field("gpu") == "cpu" + std::to_string(i));
    CHECK(devices[i].field("healthy") == "1");
    CHECK(devices[i].field("in_flight") == "0");
    CHECK(devices[i].field("training_jobs") == "0");
    CHECK(devices[i].field("resident") == "2");
    CHECK(devices[i].field("parallel_switches") == "0");  // CPU devices lend no links
    CHECK(devices[i].field("request_captures") == "0");   // nor capture graphs
    CHECK(std::stoull(devices[i].field("requests")) > 0);  // the load reached every device
    placed += std::stoull(devices[i].field("requests"));
  }
  const auto totals = lines_with(stats, "requests_total");
  REQUIRE(totals.size() == 1);
  CHECK(placed == std::stoull(totals[0].field("requests_total")));
  CHECK(lines_with(stats, "switches")[0].field("resident") == "2");  // the union

  REQUIRE(server->metrics());
  const std::string metrics = http_get(*server->metrics(), "/metrics");
  CHECK(metrics.find("ps_gpu_up{gpu=\"cpu1\"} 1") != std::string::npos);
  CHECK(metrics.find("ps_gpu_in_flight{gpu=\"cpu2\"} 0") != std::string::npos);
  CHECK(metrics.find("ps_gpu_parallel_switches_total{gpu=\"cpu0\"} 0") != std::string::npos);
  CHECK(metrics.find("ps_backend_request_captures_total 0") != std::string::npos);
  CHECK(metrics.find("ps_gpu_inference_requests_total{gpu=\"cpu0\",outcome=\"placed\"}") !=
        std::string::npos);

  // LOAD and UNLOAD fan out to every device and are answered once.
  CHECK(request(client, "UNLOAD bert_tiny\n").ok);
  const psnc::Reply after = request(client, "STATS\n");
  for (const psnc::Reply& d : lines_with(after, "gpu")) CHECK(d.field("resident") == "1");

  auto code = server->stop(SIGTERM);
  REQUIRE(code.ok());
  CHECK(*code == 0);
}

TEST_CASE("e2e multi: one device refuses device= and bad lists are refused", "[e2e][multi]") {
  auto server = ServerProcess::start({"--device", "cpu", "--zoo=resnet_tiny"});
  REQUIRE(server.ok());
  psnc::Client client = server->connect();
  const psnc::Reply one = request(client, "TRAIN resnet_tiny device=0\n");
  CHECK(one.code == "BAD_ARGUMENT");
  CHECK(one.message.find("this server drives one") != std::string::npos);
  const psnc::Reply stats = request(client, "STATS\n");
  CHECK(lines_with(stats, "gpu").empty());  // one device: STATS as before
  auto code = server->stop(SIGTERM);
  REQUIRE(code.ok());
  CHECK(*code == 0);

  const ToolResult bad = run_tool(pipeswitchd_path(), {"--device", "0,0"});
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("twice") != std::string::npos);
  const ToolResult help = run_tool(pipeswitchd_path(), {"--help"});
  CHECK(help.out.find("cpu,cpu,...") != std::string::npos);
}

TEST_CASE("e2e multi: --device all without a GPU says why", "[e2e][multi]") {
  if (cuda::gpu_available()) {
    WARN("a GPU is visible: --device all would serve; nothing to check here");
    return;
  }
  const ToolResult all =
      run_tool(pipeswitchd_path(), {"--device", "all", "--listen", "127.0.0.1:0"});
  INFO(all.out << all.err);
  CHECK(all.exit_code == 1);
  CHECK(all.err.find("--device all") != std::string::npos);
}

}  // namespace
}  // namespace ps::e2e
