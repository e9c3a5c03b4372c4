// The server in-process, on its own loop thread, with a FakeBackend whose completions the test
// controls: replies leave in request order, connection limits, backpressure (reading stops at
// max_pipelined), closing after QUIT and after must-close errors, and a clean loop at the end.
#include "reactor/server.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <thread>

#include "onnx_loader/package_writer.h"
#include "reactor/completion_bridge.h"
#include "reactor/model_source.h"
#include "tests/onnx_loader/temp_dir.h"
#include "tests/reactor/fake_backend.h"
#include "tools/psnc/client.h"

namespace ps::reactor {
namespace {

using testing::FakeBackend;
using testing::tiny_model;

// Polls `predicate` (state another thread changes) until it holds or 5 s pass.
template <typename Predicate>
bool wait_until(Predicate predicate) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!predicate()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

class Harness {
 public:
  explicit Harness(ServerOptions options, uint32_t in_flight = 100)
      : backend_(in_flight), scheduler_(backend_) {
    REQUIRE(uv_loop_init(&loop_) == 0);
    REQUIRE(bridge_
                .open(&loop_, &backend_,
                      [this](Completion c) { scheduler_.on_completion(std::move(c)); })
                .ok());
    REQUIRE(backend_.start(&bridge_).ok());
    ModelSource source;
    source.name = "a";
    bool loaded = false;
    REQUIRE(scheduler_.load(source, [&](Completion c) { loaded = c.status.ok(); }).ok());
    backend_.complete_load(backend_.loads()[0].first, tiny_model("a"));
    while (!loaded) uv_run(&loop_, UV_RUN_ONCE);

    options.listen = {*parse_listen_address("127.0.0.1:0")};
    options.handle_signals = false;
    server_ = std::make_unique<Server>(&loop_, scheduler_, options);
    server_->set_on_finished([this] { bridge_.close(); });
    REQUIRE(server_->start().ok());
    address_ = *psnc::parse_host_port(server_->bound_addresses()[0]);
    stop_.data = this;
    uv_async_init(&loop_, &stop_, [](uv_async_t* a) {
      static_cast<Harness*>(a->data)->server_->begin_shutdown("test");
      uv_close(reinterpret_cast<uv_handle_t*>(a), nullptr);
    });
    thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
  }

  ~Harness() {
    uv_async_send(&stop_);
    thread_.join();
    CHECK(server_->finished());
    server_.reset();
    CHECK(uv_loop_close(&loop_) == 0);  // every handle was closed: nothing leaked
  }

  psnc::Client connect() {
    auto client = psnc::Client::connect(address_);
    REQUIRE(client.ok());
    client->set_timeout(std::chrono::seconds(5));
    return std::move(*client);
  }
  FakeBackend& backend() { return backend_; }

 private:
  uv_loop_t loop_{};
  FakeBackend backend_;
  CompletionBridge bridge_;
  Scheduler scheduler_;
  std::unique_ptr<Server> server_;
  uv_async_t stop_{};
  std::thread thread_;
  psnc::HostPort address_;
};

TEST_CASE("server: pipelined replies leave in request order when work completes out of order",
          "[server]") {
  Harness h({});
  psnc::Client client = h.connect();
  REQUIRE(client.send("INFER a\nINFER a\nPING\nINFER a\n").ok());
  REQUIRE(wait_until([&] { return h.backend().infers().size() == 3; }));
  const auto infers = h.backend().infers();
  for (auto it = infers.rbegin(); it != infers.rend(); ++it) h.backend().complete_infer(it->ticket);
  for (int i = 0; i < 4; ++i) {
    auto reply = client.read_reply();
    REQUIRE(reply.ok());
    INFO(reply->line);
    REQUIRE(reply->ok);
    if (i == 2) {
      CHECK(reply->line == "OK pong");
      continue;
    }
    // The fake's output is the ticket: the i-th INFER's reply carries the i-th ticket.
    const size_t n = i < 2 ? static_cast<size_t>(i) : 2;
    CHECK(std::stod(reply->field("sum")) == static_cast<double>(infers[n].ticket));
    CHECK(reply->field("queue_us") == "1");
    CHECK(reply->field("compute_us") == "3");
    CHECK(reply->field("shape") == "1");
  }
}

TEST_CASE("server: connections over the limit get ERR BUSY and are closed", "[server]") {
  ServerOptions options;
  options.max_connections = 2;
  Harness h(options);
  psnc::Client one = h.connect();
  psnc::Client two = h.connect();
  for (psnc::Client* c : {&one, &two}) {
    REQUIRE(c->send("PING\n").ok());
    REQUIRE(c->read_reply()->line == "OK pong");
  }
  psnc::Client three = h.connect();
  auto reply = three.read_reply();
  REQUIRE(reply.ok());
  CHECK(reply->code == "BUSY");
  CHECK(three.wait_closed(std::chrono::seconds(5)).value());
  // The others are undisturbed, and a slot frees when one leaves.
  REQUIRE(one.send("QUIT\n").ok());
  CHECK(one.read_reply()->line == "OK bye");
  CHECK(one.wait_closed(std::chrono::seconds(5)).value());
  REQUIRE(wait_until([&] {
    psnc::Client four = h.connect();
    if (!four.send("PING\n").ok()) return false;
    auto r = four.read_reply();
    return r.ok() && r->line == "OK pong";
  }));
  REQUIRE(two.send("PING\n").ok());
  CHECK(two.read_reply()->line == "OK pong");
}

TEST_CASE("server: a client with max_pipelined unanswered requests is not read further",
          "[server]") {
  ServerOptions options;
  options.max_pipelined = 4;
  Harness h(options);
  psnc::Client client = h.connect();
  std::string requests;
  for (int i = 0; i < 10; ++i) requests += "INFER a\n";
  REQUIRE(client.send(requests).ok());
  REQUIRE(wait_until([&] { return h.backend().infers().size() == 4; }));
  // Another client is served meanwhile, which also proves the loop went round several times.
  psnc::Client other = h.connect();
  for (int i = 0; i < 20; ++i) {
    REQUIRE(other.send("PING\n").ok());
    REQUIRE(other.read_reply()->line == "OK pong");
  }
  CHECK(h.backend().infers().size() == 4);
  size_t completed = 0;
  for (int i = 0; i < 10; ++i) {
    REQUIRE(wait_until([&] {
      auto infers = h.backend().infers();
      while (completed < infers.size()) h.backend().complete_infer(infers[completed++].ticket);
      return completed > static_cast<size_t>(i);
    }));
    auto reply = client.read_reply();
    REQUIRE(reply.ok());
    CHECK(reply->ok);
  }
  CHECK(h.backend().infers().size() == 10);
}

TEST_CASE("server: nothing after QUIT or a must-close error runs", "[server]") {
  ServerOptions options;
  options.text_limits.max_line_bytes = 64;
  Harness h(options);
  {
    psnc::Client client = h.connect();
    REQUIRE(client.send("PING\nQUIT\nINFER a\nPING\n").ok());
    CHECK(client.read_reply()->line == "OK pong");
    CHECK(client.read_reply()->line == "OK bye");
    CHECK(client.wait_closed(std::chrono::seconds(5)).value());
  }
  {
    psnc::Client client = h.connect();
    REQUIRE(client.send("PING\n" + std::string(100, 'A') + "\nINFER a\n").ok());
    CHECK(client.read_reply()->line == "OK pong");
    auto reply = client.read_reply();
    REQUIRE(reply.ok());
    CHECK(reply->code == "LINE_TOO_LONG");
    CHECK(client.wait_closed(std::chrono::seconds(5)).value());
  }
  CHECK(h.backend().infers().empty());
}

TEST_CASE("server: a reply's payload and errors for bad input keep the connection in step",
          "[server]") {
  Harness h({});
  psnc::Client client = h.connect();
  const std::string input(8, '\0');  // float32 [1,2]
  REQUIRE(client.send("INFER a bytes=3\nabcINFER a bytes=8 output=raw\n" + input + "NOPE\n").ok());
  auto bad = client.read_reply();
  REQUIRE(bad.ok());
  CHECK(bad->code == "BAD_ARGUMENT");
  REQUIRE(wait_until([&] { return h.backend().infers().size() == 1; }));
  CHECK(h.backend().infers()[0].input == input);
  CHECK_FALSE(h.backend().infers()[0].synthetic);
  h.backend().complete_infer(h.backend().infers()[0].ticket);
  auto ok = client.read_reply();
  REQUIRE(ok.ok());
  REQUIRE(ok->ok);
  CHECK(ok->payload.size() == 4);
  CHECK(client.read_reply()->code == "UNKNOWN_COMMAND");
}

// The time-of-check/time-of-use race of LOAD, made deterministic: the server checks and opens
// the package, then (before the backend reads it) the file is replaced by a link leading out of
// the models directory. The backend reads the file that was checked, through the descriptor the
// source carries; the path alone would now read the outside file.
TEST_CASE("server: LOAD hands the backend the package it opened, not its path", "[server]") {
  namespace fs = std::filesystem;
  onnx_loader::testing::TempDir dir;
  auto model = import_zoo_model("resnet_tiny", 1, 16);
  REQUIRE(model.ok());
  fs::create_directories(dir.path() / "models");
  REQUIRE(
      onnx_loader::write_package(dir.file("models/pkg.psm"), model->manifest, model->weights).ok());
  dir.write("outside.psm", "not a package");
  ServerOptions options;
  options.models_dir = dir.file("models");
  Harness h(options);
  psnc::Client client = h.connect();

  REQUIRE(client.send("LOAD b pkg.psm\n").ok());
  REQUIRE(wait_until([&] { return h.backend().loads().size() == 2; }));
  auto loads = h.backend().loads();
  const uint64_t ticket = loads[1].first;
  ModelSource source = loads[1].second;
  loads.clear();
  CHECK(source.name == "b");
  CHECK(source.package_path == fs::canonical(dir.file("models/pkg.psm")).string());
  REQUIRE(source.package_fd);
  struct stat opened;
  REQUIRE(::fstat(source.package_fd->get(), &opened) == 0);

  fs::remove(dir.file("models/pkg.psm"));
  fs::create_symlink("../outside.psm", dir.file("models/pkg.psm"));  // the swap
  auto read = read_model(source);
  REQUIRE(read.ok());
  CHECK(read->manifest.model_name() == model->manifest.model_name());
  CHECK(read->weights == model->weights);
  ModelSource by_path = source;
  by_path.package_fd.reset();
  CHECK(read_model(by_path).status().code() == Code::kCorrupt);  // what the path leads to now

  // The load fails later: the client gets the error, and once the backend lets go of the source
  // nobody holds the descriptor (the number is closed, or reused for another file).
  h.backend().fail_load(ticket, corrupt("pkg.psm: the weights are corrupt"));
  auto reply = client.read_reply();
  REQUIRE(reply.ok());
  CHECK_FALSE(reply->ok);
  CHECK(reply->message == "pkg.psm: the weights are corrupt");
  const int fd = source.package_fd->get();
  by_path = ModelSource();
  h.backend().forget_loads();
  CHECK(source.package_fd.use_count() == 1);
  source = ModelSource();
  struct stat now;
  CHECK((::fstat(fd, &now) != 0 || now.st_ino != opened.st_ino || now.st_dev != opened.st_dev));

  // Refused before anything is opened: the link leads out now.
  REQUIRE(client.send("LOAD c pkg.psm\nLOAD d ../outside.psm\nLOAD e missing.psm\n").ok());
  CHECK(client.read_reply()->code == "FORBIDDEN");
  CHECK(client.read_reply()->code == "FORBIDDEN");
  CHECK(client.read_reply()->code == "NOT_FOUND");
  CHECK(h.backend().loads().empty());
}

}  // namespace
}  // namespace ps::reactor
