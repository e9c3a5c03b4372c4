// Bad input end to end: every case of the issue gets a clear ERR (or a closed connection) and
// nothing else is disturbed; limits; authentication; refusing a non-loopback address without a
// token.
#include <catch2/catch.hpp>
#include <thread>

#include "reactor/synthetic_input.h"
#include "tests/e2e/e2e_support.h"

namespace ps::e2e {
namespace {

ServerProcess start_server(const std::vector<std::string>& extra = {}) {
  return start_cpu_server(extra, /*threads=*/1);
}

// The server still answers a fresh client.
void check_alive(const ServerProcess& server) {
  psnc::Client client = server.connect();
  CHECK(request(client, "INFER resnet_tiny\n").field("checksum") ==
        reference_checksum("resnet_tiny", 1));
}

TEST_CASE("e2e errors: unknown commands and models, malformed numbers, wrong payload sizes",
          "[e2e]") {
  ServerProcess server = start_server();
  psnc::Client client = server.connect();
  CHECK(request(client, "FROB\n").code == "UNKNOWN_COMMAND");
  CHECK(request(client, "INFER nosuch\n").code == "UNKNOWN_MODEL");
  CHECK(request(client, "INFER\n").code == "BAD_ARGUMENT");
  CHECK(request(client, "INFER resnet_tiny batch=-1\n").code == "BAD_ARGUMENT");
  CHECK(request(client, "INFER resnet_tiny batch=0x10\n").code == "BAD_ARGUMENT");
  CHECK(request(client, "INFER resnet_tiny batch=99999999999999999999999\n").code ==
        "BAD_ARGUMENT");
  CHECK(request(client, "INFER resnet_tiny batch=5000\n").code == "BAD_ARGUMENT");
  CHECK(request(client, "INFER resnet_tiny colour=red\n").code == "BAD_ARGUMENT");
  CHECK(request(client, "INFER resnet_tiny output=json\n").code == "BAD_ARGUMENT");
  CHECK(request(client, "INFER resnet_tiny extra\n").code == "BAD_ARGUMENT");
  CHECK(request(client, std::string("PI\x01NG\n")).code == "BAD_REQUEST");
  // A payload of the wrong size is refused, and consumed: the next line is read normally.
  const psnc::Reply wrong = request(client, "INFER resnet_tiny bytes=10\n0123456789");
  CHECK(wrong.code == "BAD_ARGUMENT");
  CHECK(wrong.message.find("12288") != std::string::npos);
  CHECK(request(client, "INFER resnet_tiny batch=2 bytes=12288\n" + std::string(12288, 'x')).code ==
        "BAD_ARGUMENT");
  CHECK(request(client, "PING bytes=3\nabc").code == "BAD_ARGUMENT");
  CHECK(request(client, "FROB bytes=4\nPING").code == "UNKNOWN_COMMAND");
  CHECK(request(client, "PING\n").line == "OK pong");
  // AUTH on a server without a token.
  CHECK(request(client, "AUTH x\n").code == "BAD_REQUEST");
}

TEST_CASE("e2e errors: over-long lines and payloads close the connection, others continue",
          "[e2e]") {
  ServerProcess server = start_server({"--max-line", "128", "--max-payload", "1M"});
  {
    psnc::Client client = server.connect();
    CHECK(request(client, std::string(200, 'P') + "\nPING\n").code == "LINE_TOO_LONG");
    CHECK(client.wait_closed(std::chrono::seconds(5)).value());
  }
  {
    psnc::Client client = server.connect();
    CHECK(request(client, "INFER resnet_tiny bytes=2000000\n").code == "PAYLOAD_TOO_LARGE");
    CHECK(client.wait_closed(std::chrono::seconds(5)).value());
  }
  {
    psnc::Client client = server.connect();
    CHECK(request(client, "INFER resnet_tiny bytes=1x\n").code == "BAD_REQUEST");
    CHECK(client.wait_closed(std::chrono::seconds(5)).value());
  }
  check_alive(server);
}

TEST_CASE("e2e errors: a client that disconnects mid-payload or mid-line disturbs no one",
          "[e2e]") {
  ServerProcess server = start_server();
  psnc::Client other = server.connect();
  CHECK(request(other, "PING\n").line == "OK pong");
  {
    psnc::Client client = server.connect();
    REQUIRE(client.send("INFER resnet_tiny bytes=12288\n" + std::string(5000, 'x')).ok());
  }  // closed here, 7288 bytes short
  {
    psnc::Client client = server.connect();
    REQUIRE(client.send("INFER resnet_ti").ok());
  }
  {
    // Requests before the cut-off are still answered (the client half-closed).
    psnc::Client client = server.connect();
    REQUIRE(client.send("PING\nINFER resnet_tiny\nINFER bert_").ok());
    client.shutdown_write();
    CHECK(client.read_reply()->line == "OK pong");
    CHECK(client.read_reply()->field("checksum") == reference_checksum("resnet_tiny", 1));
    CHECK(client.wait_closed(std::chrono::seconds(5)).value());
  }
  CHECK(request(other, "PING\n").line == "OK pong");
  check_alive(server);
}

TEST_CASE(
    "e2e errors: a client that never reads its replies is not read further, others are "
    "served, and it is closed after --write-timeout",
    "[e2e]") {
  ServerProcess server = start_server({"--write-timeout", "1"});
  psnc::Client greedy = server.connect();
  // HELP costs no compute and answers ~1.5 KB; the client never reads. Once the kernel's buffers
  // and the server's per-connection reply limit are full, the server stops reading from it, so
  // its sends stop going through (time out).
  const std::string line = "HELP" + std::string(3000, ' ') + "\n";
  std::string burst;
  for (int i = 0; i < 256; ++i) burst += line;
  greedy.set_timeout(std::chrono::milliseconds(500));
  Status sent = Status::OK();
  for (int i = 0; i < 2000 && sent.ok(); ++i) sent = greedy.send(burst);
  CHECK_FALSE(sent.ok());  // backpressure reached the client
  psnc::Client other = server.connect();
  for (int i = 0; i < 3; ++i) {
    CHECK(request(other, "INFER bert_tiny\n").field("checksum") ==
          reference_checksum("bert_tiny", 1));
  }
  // No write progress for a second: the server gives up on it.
  bool closed = false;
  for (int i = 0; i < 100 && !closed; ++i) {
    const psnc::Reply stats = request(other, "STATS\n");
    closed = stats.payload.find("connections=1 ") != std::string::npos;
    if (!closed) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(closed);
}

TEST_CASE("e2e errors: --max-connections turns extra clients away with ERR BUSY", "[e2e]") {
  ServerProcess server = start_server({"--max-connections", "2"});
  psnc::Client a = server.connect();
  psnc::Client b = server.connect();
  CHECK(request(a, "PING\n").line == "OK pong");
  CHECK(request(b, "PING\n").line == "OK pong");
  psnc::Client c = server.connect();
  auto busy = c.read_reply();
  REQUIRE(busy.ok());
  CHECK(busy->code == "BUSY");
  CHECK(c.wait_closed(std::chrono::seconds(5)).value());
  CHECK(request(a, "PING\n").line == "OK pong");
}

TEST_CASE("e2e auth: --token requires AUTH, --admin-token guards LOAD, binary is refused",
          "[e2e]") {
  ServerProcess server = start_server({"--token", "s3cret", "--admin-token", "r00t"});
  psnc::Client client = server.connect();
  CHECK(request(client, "PING\n").line == "OK pong");
  CHECK(request(client, "MODELS\n").code == "AUTH_REQUIRED");
  CHECK(request(client, "INFER resnet_tiny\n").code == "AUTH_REQUIRED");
  CHECK(request(client, "AUTH wrong\n").code == "AUTH_FAILED");
  CHECK(request(client, "AUTH s3cret\n").line == "OK auth=user");
  CHECK(request(client, "MODELS\n").ok);
  CHECK(request(client, "INFER resnet_tiny\n").field("checksum") ==
        reference_checksum("resnet_tiny", 1));
  CHECK(request(client, "UNLOAD resnet_tiny\n").code == "FORBIDDEN");
  CHECK(request(client, "AUTH r00t\n").line == "OK auth=admin");
  CHECK(request(client, "LOAD x\n").code == "FORBIDDEN");  // no --models directory
  // Three wrong tokens close the connection.
  psnc::Client guesser = server.connect();
  CHECK(request(guesser, "AUTH a\n").code == "AUTH_FAILED");
  CHECK(request(guesser, "AUTH b\n").code == "AUTH_FAILED");
  CHECK(request(guesser, "AUTH c\n").code == "AUTH_FAILED");
  CHECK(guesser.wait_closed(std::chrono::seconds(5)).value());
  // The binary protocol cannot authenticate: closed without a reply.
  psnc::Client binary = server.connect();
  CHECK_FALSE(psnc::binary_request(binary, "resnet_tiny_inference", "").ok());
}

TEST_CASE("e2e auth: a non-loopback address needs --token", "[e2e]") {
  const ToolResult refused =
      run_tool(pipeswitchd_path(), {"--device", "cpu", "--listen", "0.0.0.0:0"});
  CHECK(refused.exit_code == 2);
  CHECK(refused.err.find("--token") != std::string::npos);
  // An admin token alone does not do: connections start as users without AUTH.
  const ToolResult admin_only = run_tool(
      pipeswitchd_path(), {"--device", "cpu", "--listen", "0.0.0.0:0", "--admin-token", "r00t"});
  CHECK(admin_only.exit_code == 2);
  CHECK(admin_only.err.find("--token") != std::string::npos);
  const ToolResult bad = run_tool(pipeswitchd_path(), {"--device", "cpu", "--listen", "1.2.3:0"});
  CHECK(bad.exit_code == 2);
  // With a token it starts (and binds every interface); stop it at once.
  auto server = ServerProcess::start(
      {"--device", "cpu", "--zoo=resnet_tiny", "--listen", "0.0.0.0:0", "--token", "t0ken"});
  REQUIRE(server.ok());
  CHECK(server->address().host == "0.0.0.0");
  auto code = server->stop(SIGTERM);
  REQUIRE(code.ok());
  CHECK(*code == 0);
}

}  // namespace
}  // namespace ps::e2e
