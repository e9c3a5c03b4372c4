// The original PipeSwitch binary protocol end to end, and IPv6.
#include <catch2/catch.hpp>

#include "net/binary_protocol.h"
#include "reactor/synthetic_input.h"
#include "tests/e2e/e2e_support.h"

namespace ps::e2e {
namespace {

TEST_CASE("e2e binary: requests answered FNSH in order, several per connection, u32 0 closes",
          "[e2e]") {
  ServerProcess server = start_cpu_server();
  psnc::Client client = server.connect();
  const reactor::ModelInfo& resnet = reference("resnet_tiny").info;
  const reactor::ModelInfo& bert = reference("bert_tiny").info;
  // Inputs of batch 8 and 2 (the batch follows from the data size), and no data (synthetic).
  std::string pipelined =
      net::encode_request("resnet_tiny_inference", reactor::synthetic_input(resnet, 8)) +
      net::encode_request("bert_tiny_inference", reactor::synthetic_input(bert, 2)) +
      net::encode_request("resnet_tiny_inference", "");
  REQUIRE(client.send(pipelined).ok());
  auto replies = client.read_exact(12);
  REQUIRE(replies.ok());
  CHECK(*replies == "FNSHFNSHFNSH");
  CHECK(psnc::binary_request(client, "bert_tiny_inference", "").ok());
  REQUIRE(client.send(net::encode_close()).ok());
  CHECK(client.wait_closed(std::chrono::seconds(5)).value());

  // The binary requests were served like text ones.
  psnc::Client text = server.connect();
  REQUIRE(text.send("STATS\n").ok());
  auto stats = text.read_reply();
  REQUIRE(stats.ok());
  CHECK(stats->payload.find("model=resnet_tiny ok=2") != std::string::npos);
  CHECK(stats->payload.find("model=bert_tiny ok=2") != std::string::npos);
}

TEST_CASE("e2e binary: MODEL_training starts the model's job once, inference preempts it",
          "[e2e]") {
  ServerProcess server = start_cpu_server({"--zoo-batch", "2"});  // BatchNorm training needs N > 1
  psnc::Client client = server.connect();
  // The original client's experiment: start training, then send inference requests.
  CHECK(psnc::binary_request(client, "resnet_tiny_training", "").ok());
  CHECK(psnc::binary_request(client, "resnet_tiny_training", "").ok());  // already running
  for (int i = 0; i < 5; ++i) CHECK(psnc::binary_request(client, "resnet_tiny_inference", "").ok());
  psnc::Client text = server.connect();
  REQUIRE(text.send("JOBS\n").ok());
  auto jobs = text.read_reply();
  REQUIRE(jobs.ok());
  INFO(jobs->payload);
  CHECK(jobs->line == "OK jobs=1 bytes=" + std::to_string(jobs->payload.size()));
  CHECK(jobs->payload.find("model=resnet_tiny batch=2 state=running") != std::string::npos);
}

TEST_CASE("e2e binary: errors close the connection (the protocol has no error reply)", "[e2e]") {
  ServerProcess server = start_cpu_server();
  auto closes_after = [&](const std::string& bytes) {
    psnc::Client client = server.connect();
    REQUIRE(client.send(bytes).ok());
    auto closed = client.wait_closed(std::chrono::seconds(5));
    return closed.ok() && *closed;
  };
  CHECK(closes_after(net::encode_request("nosuch_inference", "")));
  CHECK(closes_after(net::encode_request("resnet_tiny_fly", "")));
  CHECK(closes_after(net::encode_request("resnet_tiny_inference", std::string(100, 'x'))));
  CHECK(closes_after(std::string("\x01\x1f\x00\x00", 4)));  // name_len 7937: over the limit
  // A request before the bad one is still answered.
  psnc::Client client = server.connect();
  REQUIRE(client
              .send(net::encode_request("resnet_tiny_inference", "") +
                    net::encode_request("nosuch_inference", ""))
              .ok());
  CHECK(client.read_exact(4).value() == "FNSH");
  CHECK(client.wait_closed(std::chrono::seconds(5)).value());
}

TEST_CASE("e2e: IPv6 and IPv4 listeners side by side", "[e2e]") {
  auto server = ServerProcess::start(
      {"--device", "cpu", "--zoo=resnet_tiny", "--listen", "[::1]:0", "--listen", "127.0.0.1:0"});
  if (!server.ok() && server.status().message().find("::1") != std::string::npos) {
    WARN("no IPv6 loopback here: " << server.status().message());
    return;
  }
  REQUIRE(server.ok());
  CHECK(server->address().host == "::1");
  psnc::Client v6 = server->connect();
  REQUIRE(v6.send("PING\n").ok());
  CHECK(v6.read_reply()->line == "OK pong");
  const size_t at = server->output().find("listening on 127.0.0.1:");
  REQUIRE(at != std::string::npos);
  auto v4_address = psnc::parse_host_port(
      server->output().substr(at + 13, server->output().find('\n', at) - at - 13));
  REQUIRE(v4_address.ok());
  auto v4 = psnc::Client::connect(*v4_address);
  REQUIRE(v4.ok());
  REQUIRE(v4->send("PING\n").ok());
  CHECK(v4->read_reply()->line == "OK pong");
}

}  // namespace
}  // namespace ps::e2e
