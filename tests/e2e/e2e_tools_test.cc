// psnc against a real server (bare nc mode, infer, train, --pipeswitch, --help), the HTTP
// metrics port, and graceful shutdown on SIGTERM / SIGINT with requests in flight.
#include <catch2/catch.hpp>
#include <fstream>
#include <optional>
#include <thread>

#include "cuda/driver.h"
#include "reactor/synthetic_input.h"
#include "tests/e2e/e2e_support.h"
#include "tests/onnx_loader/temp_dir.h"

namespace ps::e2e {
namespace {

TEST_CASE("e2e psnc: --help everywhere, bad arguments exit 2", "[e2e]") {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--help"}, {"infer", "--help"}, {"--pipeswitch", "--help"}}) {
    const ToolResult r = run_tool(psnc_path(), args);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("psnc [HOST:]PORT") != std::string::npos);
  }
  CHECK(run_tool(psnc_path(), {}).exit_code == 2);
  CHECK(run_tool(psnc_path(), {"infer"}).exit_code == 2);
  CHECK(run_tool(psnc_path(), {"infer", "m", "--repeat", "0"}).exit_code == 2);
  CHECK(run_tool(psnc_path(), {"--pipeswitch", "infer", "m", "--batch", "2"}).exit_code == 2);
  const ToolResult help = run_tool(pipeswitchd_path(), {"--help"});
  CHECK(help.exit_code == 0);
  for (const char* flag :
       {"--listen", "--models", "--zoo", "--device", "--policy", "--pool-size", "--token",
        "--max-payload", "--max-connections", "--log-level", "--metrics-listen", "--training",
        "--checkpoints", "--parallel-links", "--reuse-region", "--host-read"}) {
    CHECK(help.out.find(flag) != std::string::npos);
  }
  CHECK(run_tool(pipeswitchd_path(), {"--bogus"}).exit_code == 2);
  CHECK(run_tool(pipeswitchd_path(), {"--parallel-links", "0"}).exit_code == 2);
  CHECK(run_tool(pipeswitchd_path(), {"--parallel-links", "17"}).exit_code == 2);
  CHECK(run_tool(pipeswitchd_path(), {"--policy", "fastest"}).exit_code == 2);
  CHECK(run_tool(pipeswitchd_path(), {"--training", "sometimes"}).exit_code == 2);
  for (const char* flag : {"--reuse-region", "--host-read", "--pipelining", "--graphs"}) {
    const ToolResult bad = run_tool(pipeswitchd_path(), {flag, "maybe"});
    CHECK(bad.exit_code == 2);
    CHECK(bad.err.find(std::string(flag) + " 'maybe': expected on or off") != std::string::npos);
  }
  // Without a GPU, --device 0 refuses to start and says why (on a GPU machine it would serve).
  if (!cuda::load_driver().ok() || !cuda::gpu_available()) {
    const ToolResult gpu =
        run_tool(pipeswitchd_path(), {"--device", "0", "--listen", "127.0.0.1:0"});
    CHECK(gpu.exit_code == 1);
    CHECK(gpu.err.find("--device 0") != std::string::npos);
  }
}

TEST_CASE("e2e psnc: bare mode pipes stdin to the server and replies to stdout", "[e2e]") {
  ServerProcess server = start_cpu_server();
  const ToolResult r =
      run_tool(psnc_path(), {server.address_text()}, "PING\nINFER resnet_tiny\nFROB\nQUIT\n");
  CHECK(r.exit_code == 0);
  CHECK(r.out.starts_with("OK pong\nOK model=resnet_tiny batch=1 "));
  CHECK(r.out.find("checksum=" + reference_checksum("resnet_tiny", 1)) != std::string::npos);
  CHECK(r.out.find("ERR UNKNOWN_COMMAND") != std::string::npos);
  CHECK(r.out.ends_with("OK bye\n"));
  // Without QUIT: end of stdin half-closes; the replies still come, then psnc exits.
  const ToolResult eof = run_tool(psnc_path(), {server.address_text()}, "PING\nPING\n");
  CHECK(eof.exit_code == 0);
  CHECK(eof.out == "OK pong\nOK pong\n");
}

TEST_CASE("e2e psnc: infer prints latencies and a summary, train reports the backend's answer",
          "[e2e]") {
  ServerProcess server = start_cpu_server();
  const ToolResult r =
      run_tool(psnc_path(), {"--server", server.address_text(), "infer", "bert_tiny", "--batch",
                             "2", "--repeat", "6", "--concurrency", "3"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  size_t lines = 0;
  for (size_t at = r.out.find("request "); at != std::string::npos;
       at = r.out.find("request ", at + 1))
    ++lines;
  CHECK(lines == 6);
  CHECK(r.out.find("checksum=" + reference_checksum("bert_tiny", 2)) != std::string::npos);
  CHECK(r.out.find("summary: 6 ok, 0 failed, 3 connections, mean=") != std::string::npos);
  CHECK(r.out.find("p50=") != std::string::npos);
  CHECK(r.out.find("p99=") != std::string::npos);

  onnx_loader::testing::TempDir dir;
  const std::string input(reactor::input_bytes(reference("resnet_tiny").info, 1), '\x02');
  const std::string in_file = dir.write("in.bin", input);
  const ToolResult raw =
      run_tool(psnc_path(), {"--server", server.address_text(), "infer", "resnet_tiny", "--input",
                             in_file, "--output", dir.file("out.bin")});
  CHECK(raw.exit_code == 0);
  std::ifstream out(dir.file("out.bin"), std::ios::binary);
  const std::string output((std::istreambuf_iterator<char>(out)), std::istreambuf_iterator<char>());
  CHECK(output == reference_output("resnet_tiny", 1, input));

  const ToolResult missing =
      run_tool(psnc_path(), {"--server", server.address_text(), "infer", "nosuch"});
  CHECK(missing.exit_code == 1);
  CHECK(missing.out.find("ERR UNKNOWN_MODEL") != std::string::npos);

}

TEST_CASE("e2e psnc: train --wait follows a job to its end", "[e2e]") {
  // Batch 2: BatchNormalization in training mode needs more than one value per channel.
  ServerProcess server = start_cpu_server({"--zoo-batch", "2"});
  const ToolResult train =
      run_tool(psnc_path(), {"--server", server.address_text(), "train", "resnet_tiny", "--steps",
                             "3", "lr=0.05", "momentum=0.5", "--wait"});
  INFO(train.out << train.err);
  CHECK(train.exit_code == 0);
  CHECK(train.out.find("OK job=1 model=resnet_tiny batch=2") != std::string::npos);
  CHECK(train.out.find("job 1 finished step 3 loss ") != std::string::npos);
  const ToolResult bad = run_tool(
      psnc_path(), {"--server", server.address_text(), "train", "resnet_tiny", "lr=fast"});
  CHECK(bad.exit_code == 1);
  CHECK(bad.out.find("ERR BAD_ARGUMENT lr='fast'") != std::string::npos);
  // More classes than BERT's classifier outputs: the job fails, and --wait says so.
  const ToolResult failing = run_tool(
      psnc_path(), {"--server", server.address_text(), "train", "bert_tiny", "classes=5", "--wait"});
  CHECK(failing.exit_code == 1);
  CHECK(failing.err.find("failed") != std::string::npos);
}

TEST_CASE("e2e psnc: --pipeswitch speaks the original binary protocol", "[e2e]") {
  ServerProcess server = start_cpu_server();
  onnx_loader::testing::TempDir dir;
  const std::string in_file =
      dir.write("bert.bin", reactor::synthetic_input(reference("bert_tiny").info, 8));
  const ToolResult r =
      run_tool(psnc_path(), {"--pipeswitch", "--server", server.address_text(), "infer",
                             "bert_tiny", "--input", in_file, "--repeat", "3"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("request 3: ") != std::string::npos);
  CHECK(r.out.find("FNSH") != std::string::npos);
  CHECK(r.out.find("summary: 3 ok, 0 failed") != std::string::npos);
  const ToolResult train = run_tool(
      psnc_path(), {"--pipeswitch", "--server", server.address_text(), "train", "resnet_tiny"});
  CHECK(train.exit_code == 0);
  CHECK(train.out.find("FNSH: training resnet_tiny started") != std::string::npos);
}

TEST_CASE("e2e metrics: Prometheus text and the health check over HTTP", "[e2e]") {
  ServerProcess server = start_cpu_server({"--metrics-listen", "127.0.0.1:0"});
  REQUIRE(server.metrics());
  psnc::Client client = server.connect();
  REQUIRE(client.send("INFER resnet_tiny\nINFER resnet_tiny\nINFER resnet_tiny bytes=3\nabc").ok());
  for (int i = 0; i < 3; ++i) REQUIRE(client.read_reply().ok());

  auto http = [&](const std::string& request) {
    auto c = psnc::Client::connect(*server.metrics());
    REQUIRE(c.ok());
    REQUIRE(c->send(request).ok());
    std::string all;
    for (;;) {
      auto chunk = c->read_exact(1);
      if (!chunk.ok()) break;
      all += *chunk;
    }
    return all;
  };
  const std::string metrics = http("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(metrics.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(metrics.find("text/plain; version=0.0.4") != std::string::npos);
  CHECK(metrics.find("ps_inference_requests_total{model=\"resnet_tiny\",outcome=\"ok\"} 2") !=
        std::string::npos);
  CHECK(metrics.find("ps_inference_latency_seconds_count{model=\"resnet_tiny\"} 2") !=
        std::string::npos);
  CHECK(metrics.find("ps_requests_rejected_total 1") != std::string::npos);
  CHECK(http("GET /healthz HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 200 OK"));
  CHECK(http("GET /nope HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 404"));
  CHECK(http("POST /metrics HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 405"));
  CHECK(http("garbage\r\n\r\n").starts_with("HTTP/1.1 400"));
}

TEST_CASE("e2e shutdown: SIGTERM answers every request, then exits 0", "[e2e]") {
  const int signal = GENERATE(SIGTERM, SIGINT);
  ServerProcess server = start_cpu_server({"--threads", "1"});
  std::optional<psnc::Client> connection(server.connect());
  psnc::Client& client = *connection;
  std::string burst;
  constexpr int kRequests = 40;
  for (int i = 0; i < kRequests; ++i) burst += "INFER bert_tiny batch=4\n";
  REQUIRE(client.send(burst).ok());
  auto first = client.read_reply();  // the server is busy with them now
  REQUIRE(first.ok());
  CHECK(first->ok);
  // The stopper only records the exit code: Catch2's assertions are not thread-safe (a CHECK
  // here raced with the main thread's on Catch's counters under ThreadSanitizer).
  std::optional<Result<int>> exit_code;
  std::thread stopper([&] { exit_code = server.stop(signal); });
  // Every request gets a reply: the ones that ran OK, the queued ones UNAVAILABLE; none is lost.
  int ok = 1, unavailable = 0;
  for (int i = 1; i < kRequests; ++i) {
    auto r = client.read_reply();
    INFO("reply " << i << ": " << r.status().message());
    REQUIRE(r.ok());
    if (r->ok) {
      CHECK(unavailable == 0);  // in order: the OK ones come first
      ++ok;
    } else {
      CHECK(r->code == "UNAVAILABLE");
      ++unavailable;
    }
  }
  CHECK(ok + unavailable == kRequests);
  CHECK(client.wait_closed(std::chrono::seconds(10)).value());
  connection.reset();  // our close ends the server's linger on this connection
  stopper.join();
  REQUIRE(exit_code.has_value());
  REQUIRE(exit_code->ok());
  CHECK(**exit_code == 0);
  CHECK(server.output().find("bye") != std::string::npos);
  // New connections are refused once it is gone.
  CHECK_FALSE(psnc::Client::connect(server.address()).ok());
}

}  // namespace
}  // namespace ps::e2e
