// psnc load end to end: 200 concurrent connections against a real pipeswitchd (CPU backend,
// tiny zoo models) with pipelining, deliberate disconnects and a TRAIN mix; every reply checked
// against the CPU executor's checksum computed here. Also that the tool itself fails when it
// should: a wrong reference, a server that drops requests, a non-loopback server.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cctype>
#include <thread>

#include "tests/e2e/e2e_support.h"

namespace ps::e2e {
namespace {

// The number after the first `label` followed by a space and digits in the report ("ok 123"),
// or -1. (No std::regex: GCC 12 warns inside it under the sanitizers.)
long long count_after(const std::string& text, const std::string& label) {
  const std::string key = label + " ";
  for (size_t at = text.find(key); at != std::string::npos; at = text.find(key, at + 1)) {
    const size_t digits = at + key.size();
    size_t end = digits;
    while (end < text.size() && std::isdigit(static_cast<unsigned char>(text[end]))) ++end;
    if (end > digits) return std::stoll(text.substr(digits, end - digits));
  }
  return -1;
}

TEST_CASE("e2e load: 200 connections, pipelined, with disconnects and TRAIN, nothing lost",
          "[e2e][load]") {
  auto server =
      ServerProcess::start({"--device", "cpu", "--threads", "2", "--zoo=resnet_tiny,bert_tiny"});
  INFO(server.status().message());
  REQUIRE(server.ok());
  const std::string resnet = reference_checksum("resnet_tiny", 1);
  const std::string bert = reference_checksum("bert_tiny", 2);
  const ToolResult load = run_tool(psnc_path(),
                                   {"--server",
                                    server->address_text(),
                                    "load",
                                    "--connections",
                                    "200",
                                    "--requests",
                                    "800",
                                    "--duration",
                                    "60",
                                    "--timeout",
                                    "30",
                                    "--models",
                                    "resnet_tiny:1,bert_tiny:2",
                                    "--depth",
                                    "2",
                                    "--disconnect",
                                    "0.03",
                                    "--train",
                                    "0.05",
                                    "--reference",
                                    "resnet_tiny:1=" + resnet,
                                    "--reference",
                                    "bert_tiny:2=" + bert,
                                    "--server-pid",
                                    std::to_string(server->pid())},
                                   "", std::chrono::seconds(120));
  INFO(load.out << load.err);
  CHECK(load.exit_code == 0);
  CHECK(load.out.find("result: PASS") != std::string::npos);
  CHECK(count_after(load.out, "lost") == 0);
  CHECK(count_after(load.out, "checksum mismatches") == 0);
  CHECK(count_after(load.out, "bad replies") == 0);
  const long long sent = count_after(load.out, "sent");
  const long long ok = count_after(load.out, "ok");
  const long long failed = count_after(load.out, "failed");
  const long long abandoned = count_after(load.out, "abandoned");
  // 800 at most, plus the STOPs of jobs still running when the budget was spent.
  CHECK(sent >= 800);
  CHECK(sent <= 800 + count_after(load.out, "train"));
  CHECK(ok > 600);
  // Every request sent on a connection we did not cut was answered.
  CHECK(ok + failed + abandoned == sent);
  // TRAIN starts real jobs (each stopped again by the load tool) beside the inference.
  CHECK(count_after(load.out, "train") > 0);
  CHECK(count_after(load.out, "stop") > 0);
  CHECK(count_after(load.out, "cut on purpose") > 0);
  CHECK(load.out.find("checksum resnet_tiny:1 " + resnet + " (reference)") != std::string::npos);
  for (const char* quantile : {"p50=", "p90=", "p99="}) {
    CHECK(load.out.find(quantile) != std::string::npos);
  }
  CHECK(load.out.find("p50=0.000 ms") == std::string::npos);
  CHECK(count_after(load.out, "server rss start") > 0);
  CHECK(count_after(load.out, "KiB, end") > 0);
  CHECK(load.out.find("KiB (/proc/") != std::string::npos);

  // Without --server-pid the RSS comes from STATS; a first-reply reference.
  const ToolResult again =
      run_tool(psnc_path(), {"--server", server->address_text(), "load", "--connections", "8",
                             "--requests", "40", "--models", "resnet_tiny", "--depth", "4"});
  INFO(again.out << again.err);
  CHECK(again.exit_code == 0);
  CHECK(again.out.find("(STATS)") != std::string::npos);
  CHECK(again.out.find("checksum resnet_tiny:1 " + resnet + " (first reply)") != std::string::npos);

  auto code = server->stop(SIGTERM);
  REQUIRE(code.ok());
  CHECK(*code == 0);
}

TEST_CASE("e2e load: a checksum mismatch fails the run", "[e2e][load]") {
  auto server = ServerProcess::start({"--device", "cpu", "--zoo=resnet_tiny"});
  REQUIRE(server.ok());
  const ToolResult load =
      run_tool(psnc_path(),
               {"--server", server->address_text(), "load", "--connections", "4", "--requests", "8",
                "--models", "resnet_tiny", "--reference", "resnet_tiny:1=0123456789abcdef"});
  INFO(load.out << load.err);
  CHECK(load.exit_code == 1);
  CHECK(count_after(load.out, "checksum mismatches") == 8);
  CHECK(load.out.find("result: FAIL (8 checksum mismatches)") != std::string::npos);
}

// A server that reads one request per connection and closes it without a reply.
class DroppingServer {
 public:
  DroppingServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof(addr);
    PS_CHECK(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), size) == 0);
    PS_CHECK(::listen(fd_, 64) == 0);
    PS_CHECK(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &size) == 0);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      for (;;) {
        const int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;  // the listener was shut down
        char b;
        while (::recv(c, &b, 1, 0) == 1 && b != '\n') {
        }
        ::close(c);
      }
    });
  }
  ~DroppingServer() {
    ::shutdown(fd_, SHUT_RDWR);  // wakes accept()
    thread_.join();
    ::close(fd_);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
};

TEST_CASE("e2e load: requests the server drops are counted lost and fail the run", "[e2e][load]") {
  DroppingServer dropping;
  const ToolResult load =
      run_tool(psnc_path(), {"--server", dropping.address(), "load", "--connections", "2",
                             "--requests", "6", "--models", "resnet_tiny", "--timeout", "10"});
  INFO(load.out << load.err);
  CHECK(load.exit_code == 1);
  CHECK(count_after(load.out, "lost") == 6);
  CHECK(load.out.find("result: FAIL (6 lost)") != std::string::npos);
  // Nobody listening: each slot fails once and is retired; the run fails at once.
  const ToolResult nobody =
      run_tool(psnc_path(), {"--server", "127.0.0.1:1", "load", "--connections", "3", "--models",
                             "resnet_tiny", "--duration", "600"});
  INFO(nobody.out << nobody.err);
  CHECK(nobody.exit_code == 1);
  CHECK(count_after(nobody.out, "connect failures") == 3);
}

TEST_CASE("e2e load: loopback only, and bad arguments exit 2", "[e2e][load]") {
  for (const char* server : {"10.0.0.1:1", "0.0.0.0:1", "[::]:1", "192.168.1.1:80"}) {
    const ToolResult r = run_tool(psnc_path(), {"--server", server, "load"});
    INFO(server << ": " << r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("loopback") != std::string::npos);
  }
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"load", "--connections", "0"},
        {"load", "--disconnect", "1.5"},
        {"load", "--train", "0.6", "--disconnect", "0.6"},
        {"load", "--models", "a:0"},
        {"load", "--reference", "a:1=xyz"},
        {"load", "--frob"}}) {
    const ToolResult r = run_tool(psnc_path(), args);
    INFO(args[1] << ": " << r.err);
    CHECK(r.exit_code == 2);
  }
  const ToolResult help = run_tool(psnc_path(), {"load", "--help"});
  CHECK(help.exit_code == 0);
  CHECK(help.out.find("--disconnect P") != std::string::npos);
}

}  // namespace
}  // namespace ps::e2e
