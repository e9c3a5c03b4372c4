// Faults end to end, against a real pipeswitchd on 127.0.0.1:0: clients that vanish while their
// replies are being written, a flood of connections beyond --max-connections, corrupt and
// truncated packages offered to LOAD, LOAD paths that try to leave the models directory
// (symbolic links included), and SIGTERM with many kinds of clients connected at once. After
// each, the server still answers correctly, and it still exits 0 on SIGTERM (pipeswitchd checks
// uv_loop_close == 0, so a leaked connection handle fails it; so does a leak under ASan).
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include "onnx_loader/package_writer.h"
#include "reactor/synthetic_input.h"
#include "tests/e2e/e2e_support.h"
#include "tests/onnx_loader/temp_dir.h"

namespace ps::e2e {
namespace {

// A fresh client gets correct answers from both models.
void check_alive(const ServerProcess& server) {
  psnc::Client client = server.connect();
  CHECK(request(client, "INFER resnet_tiny\n").field("checksum") ==
        reference_checksum("resnet_tiny", 1));
  CHECK(request(client, "INFER bert_tiny batch=2\n").field("checksum") ==
        reference_checksum("bert_tiny", 2));
}

// Closes the `open` clients (so the server need not linger for them), then SIGTERM; the server
// must exit 0 (every handle closed, nothing leaked).
template <typename... Clients>
void check_clean_exit(ServerProcess& server, Clients&... open) {
  (psnc::Client(std::move(open)), ...);
  auto code = server.stop(SIGTERM);
  REQUIRE(code.ok());
  CHECK(*code == 0);
}

// Closes with a reset (SO_LINGER 0): whatever the server still writes fails at once.
void reset(psnc::Client& client) {
  linger hard{1, 0};
  ::setsockopt(client.fd(), SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
}

TEST_CASE("e2e faults: clients that vanish mid-reply or with replies still computing",
          "[e2e][faults]") {
  ServerProcess server = start_cpu_server();
  psnc::Client other = server.connect();
  CHECK(request(other, "PING\n").line == "OK pong");
  // Replies of ~0.5 MB each, raw outputs: read a piece of the first, then go.
  const std::string big = "INFER bert_tiny batch=128 output=raw\n";
  for (bool hard : {false, true}) {
    psnc::Client client = server.connect();
    std::string burst;
    for (int i = 0; i < 6; ++i) burst += big;
    for (int i = 0; i < 500; ++i) burst += "HELP\n";
    REQUIRE(client.send(burst).ok());
    auto head = client.read_exact(1000);
    REQUIRE(head.ok());
    CHECK(head->starts_with("OK model=bert_tiny"));
    if (hard) reset(client);
  }
  // Gone before any reply was ready: the completions find no connection.
  for (bool hard : {false, true}) {
    psnc::Client client = server.connect();
    REQUIRE(client.send(big + big + "INFER resnet_tiny batch=64\n").ok());
    if (hard) reset(client);
  }
  // Gone in the middle of a payload of a pipelined request, after earlier ones.
  {
    const size_t input = reactor::input_bytes(reference("resnet_tiny").info, 1);
    psnc::Client client = server.connect();
    REQUIRE(client
                .send("INFER resnet_tiny batch=16\nINFER resnet_tiny bytes=" +
                      std::to_string(input) + "\n" + std::string(input / 2, 'x'))
                .ok());
    reset(client);
  }
  CHECK(request(other, "PING\n").line == "OK pong");
  check_alive(server);
  check_clean_exit(server, other);
}

TEST_CASE("e2e faults: a flood of connections beyond --max-connections", "[e2e][faults]") {
  constexpr int kLimit = 8;
  constexpr int kFlood = 150;
  ServerProcess server = start_cpu_server({"--max-connections", std::to_string(kLimit)});
  // Every client sends at once, without waiting to see whether it was let in: each gets its
  // answer or ERR BUSY, never a reset that loses the ERR line.
  std::vector<psnc::Client> clients;
  for (int i = 0; i < kFlood; ++i) {
    clients.push_back(server.connect());
    REQUIRE(clients.back().send("PING\n").ok());
  }
  int busy = 0;
  std::vector<psnc::Client> served;
  for (psnc::Client& client : clients) {
    auto reply = client.read_reply();
    INFO(reply.status().message());
    REQUIRE(reply.ok());
    if (reply->line == "OK pong") {
      served.push_back(std::move(client));
    } else {
      CHECK(reply->code == "BUSY");
      CHECK(client.wait_closed(std::chrono::seconds(5)).value());
      ++busy;
    }
  }
  CHECK(served.size() == kLimit);
  CHECK(busy == kFlood - kLimit);
  clients.clear();
  // The ones let in are still served.
  for (psnc::Client& client : served) CHECK(request(client, "PING\n").line == "OK pong");
  served.clear();
  // Once they are gone, new clients are let in again: each attempt is answered at once, BUSY
  // until the server has seen the closes.
  bool let_in = false;
  for (int attempt = 0; attempt < 10000 && !let_in; ++attempt) {
    psnc::Client client = server.connect();
    let_in = request(client, "PING\n").line == "OK pong";
  }
  CHECK(let_in);
  check_alive(server);
  psnc::Client stats_client = server.connect();
  const psnc::Reply stats = request(stats_client, "STATS\n");
  CHECK(stats.payload.find("connections_refused=") != std::string::npos);
  CHECK(stats.payload.find("connections_refused=0 ") == std::string::npos);
  check_clean_exit(server, stats_client);
}

// True when models `a` and `b` give the same output for the same input (the synthetic input
// depends on the model's name, so send one).
bool same_output(psnc::Client& client, const std::string& a, const std::string& b) {
  const std::string input(reactor::input_bytes(reference("resnet_tiny").info, 1), '\x01');
  const std::string rest = " bytes=" + std::to_string(input.size()) + "\n" + input;
  const psnc::Reply ra = request(client, "INFER " + a + rest);
  const psnc::Reply rb = request(client, "INFER " + b + rest);
  INFO(ra.line << "\n" << rb.line);
  return ra.ok && rb.ok && ra.field("checksum") == rb.field("checksum");
}

// A package that imports and serves: resnet_tiny as the server builds it.
std::string good_package(const onnx_loader::testing::TempDir& dir, const std::string& name) {
  const Reference& ref = reference("resnet_tiny");
  const std::string path = dir.file(name);
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  REQUIRE(onnx_loader::write_package(path, ref.host.manifest, ref.host.weights).ok());
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST_CASE("e2e faults: corrupt and truncated packages offered to LOAD", "[e2e][faults]") {
  onnx_loader::testing::TempDir dir;
  const std::string bytes = good_package(dir, "models/good.psm");
  REQUIRE(bytes.size() > 4096);
  std::string flipped = bytes;
  flipped[flipped.size() / 2] ^= 0x40;  // one bit in the weights
  dir.write("models/flipped.psm", flipped);
  std::string header = bytes;
  header[20] ^= 0x01;  // one bit in the header
  dir.write("models/header.psm", header);
  dir.write("models/half.psm", bytes.substr(0, bytes.size() / 2));
  dir.write("models/stub.psm", bytes.substr(0, 100));  // shorter than the header
  dir.write("models/empty.psm", "");

  // Start-up skips the bad ones (reported) and serves the good one.
  ServerProcess server = start_cpu_server({"--models", dir.file("models")});
  CHECK(server.output().find("loaded good") != std::string::npos);
  psnc::Client client = server.connect();
  const std::string models_before = request(client, "MODELS\n").field("models");
  for (const std::string& name :
       std::vector<std::string>{"flipped", "header", "half", "stub", "empty"}) {
    const psnc::Reply r = request(client, "LOAD bad_" + name + " " + name + ".psm\n");
    INFO(name << ": " << r.line);
    CHECK_FALSE(r.ok);
    CHECK(r.message.find(name + ".psm") != std::string::npos);  // says which package
    CHECK(r.code != "INTERNAL");
    CHECK(request(client, "INFER bad_" + name + "\n").code == "UNKNOWN_MODEL");
  }
  CHECK(request(client, "MODELS\n").field("models") == models_before);
  // The good one still loads and serves the same outputs as the zoo model it was made from.
  REQUIRE(request(client, "LOAD again good.psm\n").ok);
  CHECK(same_output(client, "again", "resnet_tiny"));
  check_alive(server);
  check_clean_exit(server, client);
}

TEST_CASE("e2e faults: LOAD paths cannot leave the models directory", "[e2e][faults]") {
  namespace fs = std::filesystem;
  onnx_loader::testing::TempDir dir;
  good_package(dir, "outside/real.psm");
  good_package(dir, "models/inside.psm");
  fs::create_directories(dir.path() / "models" / "sub");
  fs::create_symlink(dir.path() / "outside" / "real.psm", dir.path() / "models" / "out.psm");
  fs::create_symlink("../outside/real.psm", dir.path() / "models" / "rel.psm");
  fs::create_symlink(dir.path() / "outside", dir.path() / "models" / "outdir");
  fs::create_symlink("inside.psm", dir.path() / "models" / "alias.psm");  // stays inside
  fs::create_symlink(dir.path() / "models", dir.path() / "outside" / "back");

  ServerProcess server = start_cpu_server({"--models", dir.file("models")});
  psnc::Client client = server.connect();
  const std::string outside = dir.file("outside/real.psm");
  for (const std::string& path :
       {std::string("../outside/real.psm"), std::string("sub/../../outside/real.psm"),
        std::string("./../outside/real.psm"), outside, std::string("/etc/passwd"),
        std::string("//etc/passwd"), std::string("out.psm"), std::string("rel.psm"),
        std::string("outdir/real.psm"), std::string("sub/../out.psm"), std::string(".."),
        std::string("."), std::string("/"), dir.file("models/../outside/real.psm")}) {
    const psnc::Reply r = request(client, "LOAD x " + path + "\n");
    INFO(path << ": " << r.line);
    CHECK(r.code == "FORBIDDEN");
  }
  // The model name is the default package name: it cannot escape either.
  CHECK(request(client, "LOAD ..\n").code != "");
  CHECK(request(client, "INFER x\n").code == "UNKNOWN_MODEL");
  // Links that stay inside, and a path through a link that leads back inside, are fine.
  CHECK(request(client, "LOAD a alias.psm\n").ok);
  CHECK(request(client, "LOAD b sub/../inside.psm\n").ok);
  CHECK(request(client, "LOAD c " + dir.file("outside/back/inside.psm") + "\n").ok);
  CHECK(same_output(client, "a", "resnet_tiny"));
  check_clean_exit(server, client);
}

TEST_CASE("e2e faults: SIGTERM with busy, idle, mid-payload and non-reading clients",
          "[e2e][faults]") {
  ServerProcess server = start_cpu_server({"--shutdown-timeout", "3"});
  constexpr int kBusy = 6;
  constexpr int kRequests = 30;
  const std::string resnet = reference_checksum("resnet_tiny", 8);
  const std::string bert = reference_checksum("bert_tiny", 8);
  // Idle, cut off inside a payload, cut off inside a line.
  std::vector<psnc::Client> quiet;
  quiet.push_back(server.connect());
  CHECK(request(quiet.back(), "PING\n").line == "OK pong");
  quiet.push_back(server.connect());
  REQUIRE(quiet.back().send("INFER resnet_tiny bytes=12288\n" + std::string(100, 'x')).ok());
  quiet.push_back(server.connect());
  REQUIRE(quiet.back().send("INFER resnet_t").ok());
  // One that never reads: HELP replies pile up until the server stops reading it.
  psnc::Client greedy = server.connect();
  greedy.set_timeout(std::chrono::milliseconds(200));
  std::string helps;
  for (int i = 0; i < 256; ++i) helps += "HELP\n";
  for (int i = 0; i < 400 && greedy.send(helps).ok(); ++i) {
  }
  // Busy ones last, so that the signal finds their requests queued.
  std::vector<psnc::Client> busy;
  for (int i = 0; i < kBusy; ++i) {
    busy.push_back(server.connect());
    std::string burst;
    for (int r = 0; r < kRequests; ++r) {
      burst += r % 2 ? "INFER bert_tiny batch=8\n" : "INFER resnet_tiny batch=8\n";
    }
    REQUIRE(busy.back().send(burst).ok());
  }
  for (psnc::Client& c : busy) {  // every busy client has work running now
    auto first = c.read_reply();
    REQUIRE(first.ok());
    CHECK(first->field("checksum") == resnet);
  }

  std::optional<Result<int>> exit_code;
  std::thread stopper([&] { exit_code = server.stop(SIGTERM, std::chrono::seconds(30)); });
  // Busy clients: every request answered (the ones that ran with the right output, the queued
  // ones UNAVAILABLE; the two models' queues are served round-robin, so an UNAVAILABLE may come
  // before an OK on one connection), then a clean close.
  int unavailable = 0;
  for (psnc::Client& c : busy) {
    for (int r = 1; r < kRequests; ++r) {
      auto reply = c.read_reply();
      INFO("reply " << r << ": " << reply.status().message());
      REQUIRE(reply.ok());
      if (reply->ok) {
        CHECK(reply->field("checksum") == (r % 2 ? bert : resnet));
      } else {
        CHECK(reply->code == "UNAVAILABLE");
        ++unavailable;
      }
    }
    CHECK(c.wait_closed(std::chrono::seconds(10)).value());
  }
  CHECK(unavailable > 0);  // the signal came while requests were queued
  busy.clear();            // our close ends the server's linger on them
  // The idle and the cut-off ones are closed with nothing more said.
  for (psnc::Client& c : quiet) CHECK(c.wait_closed(std::chrono::seconds(10)).value());
  quiet.clear();
  stopper.join();
  REQUIRE(exit_code.has_value());
  REQUIRE(exit_code->ok());
  CHECK(**exit_code == 0);  // the non-reading client was closed at --shutdown-timeout at worst
}

TEST_CASE("e2e faults: SIGTERM while training and inference run leaves a loadable checkpoint",
          "[e2e][faults]") {
  onnx_loader::testing::TempDir dir;
  const std::string checkpoints = dir.file("ckpt");
  ServerProcess server = start_cpu_server({"--zoo-batch", "2", "--checkpoints", checkpoints});
  psnc::Client admin = server.connect();
  const psnc::Reply job = request(admin, "TRAIN resnet_tiny checkpoint=run every=3\n");
  REQUIRE(job.ok);
  // Inference requests in flight while the job runs (and parks for them).
  std::vector<psnc::Client> busy;
  for (int i = 0; i < 3; ++i) {
    busy.push_back(server.connect());
    std::string burst;
    for (int r = 0; r < 10; ++r) burst += "INFER resnet_tiny\n";
    REQUIRE(busy.back().send(burst).ok());
  }
  for (psnc::Client& c : busy) REQUIRE(c.read_reply().ok());  // work is running
  admin = psnc::Client(server.connect());
  std::optional<Result<int>> exit_code;
  std::thread stopper([&] { exit_code = server.stop(SIGTERM, std::chrono::seconds(30)); });
  for (psnc::Client& c : busy) {
    for (int r = 1; r < 10; ++r) {
      auto reply = c.read_reply();
      REQUIRE(reply.ok());  // an answer for each: a result or UNAVAILABLE
      CHECK((reply->ok || reply->code == "UNAVAILABLE"));
    }
    CHECK(c.wait_closed(std::chrono::seconds(10)).value());
  }
  busy.clear();
  { psnc::Client closing = std::move(admin); }
  stopper.join();
  REQUIRE(exit_code.has_value());
  REQUIRE(exit_code->ok());
  CHECK(**exit_code == 0);

  // The checkpoint is intact: a new server resumes from it and trains on.
  REQUIRE(std::filesystem::is_regular_file(checkpoints + "/run"));
  CHECK_FALSE(std::filesystem::exists(checkpoints + "/run.tmp"));
  ServerProcess again = start_cpu_server({"--zoo-batch", "2", "--checkpoints", checkpoints});
  psnc::Client client = again.connect();
  const psnc::Reply resumed = request(client, "TRAIN resnet_tiny resume=run steps=2\n");
  INFO(resumed.line);
  REQUIRE(resumed.ok);
  for (int i = 0; i < 3000; ++i) {
    const psnc::Reply jobs = request(client, "JOBS\n");
    if (jobs.payload.find("state=running") == std::string::npos) {
      INFO(jobs.payload);
      CHECK(jobs.payload.find("state=finished") != std::string::npos);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  check_clean_exit(again, client);
}

}  // namespace
}  // namespace ps::e2e
