#include "tests/e2e/e2e_support.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "models/cpu/executor.h"
#include "models/cpu/tensor.h"
#include "net/text_reply.h"
#include "reactor/synthetic_input.h"

extern char** environ;

namespace ps::e2e {

// $PS_TOOLS_DIR (a folder holding both tools, as scripts/bundle.sh's bin/) overrides the
// build tree, so the same test executable runs from a bundle on the GPU machine.
std::string tool_path(const char* subdir, const char* name) {
  if (const char* dir = std::getenv("PS_TOOLS_DIR"); dir != nullptr && *dir != '\0') {
    return std::string(dir) + "/" + name;
  }
  return std::string(PS_BINARY_DIR) + "/tools/" + subdir + "/" + name;
}
std::string pipeswitchd_path() { return tool_path("pipeswitchd", "pipeswitchd"); }
std::string psnc_path() { return tool_path("psnc", "psnc"); }

namespace {

std::vector<char*> argv_of(const std::string& path, const std::vector<std::string>& args) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(path.c_str()));
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  return argv;
}

// Reads what is available on fd into *out; false on EOF.
bool read_available(int fd, std::string* out) {
  char buf[4096];
  const ssize_t n = ::read(fd, buf, sizeof(buf));
  if (n <= 0) return n < 0 && errno == EINTR;
  out->append(buf, static_cast<size_t>(n));
  return true;
}

std::optional<psnc::HostPort> address_after(const std::string& text, const std::string& marker) {
  const size_t at = text.find(marker);
  if (at == std::string::npos) return std::nullopt;
  const size_t end = text.find_first_of("\n/", at + marker.size());
  if (end == std::string::npos) return std::nullopt;
  auto hp = psnc::parse_host_port(text.substr(at + marker.size(), end - at - marker.size()));
  if (!hp.ok()) return std::nullopt;
  return *hp;
}

}  // namespace

Result<ServerProcess> ServerProcess::start(std::vector<std::string> args) {
  auto has = [&](const std::string& flag) {
    for (const auto& a : args) {
      if (a == flag || a.starts_with(flag + "=")) return true;
    }
    return false;
  };
  const bool wants_metrics = has("--metrics-listen");
  if (!has("--listen")) args.insert(args.end(), {"--listen", "127.0.0.1:0"});
  if (!has("--log-level")) args.insert(args.end(), {"--log-level", "warn"});
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return io_error("pipe: ", std::strerror(errno));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  const std::string path = pipeswitchd_path();
  auto argv = argv_of(path, args);
  ServerProcess p;
  const int rc = posix_spawn(&p.pid_, path.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipe_fds[1]);
  if (rc != 0) {
    ::close(pipe_fds[0]);
    return io_error("posix_spawn ", path, ": ", std::strerror(rc));
  }
  p.stdout_fd_ = pipe_fds[0];
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (;;) {
    size_t listening = 0;
    for (size_t at = p.output_.find("listening on "); at != std::string::npos;
         at = p.output_.find("listening on ", at + 1)) {
      ++listening;
    }
    size_t wanted = 0;
    for (const auto& a : args) wanted += a == "--listen" ? 1 : 0;
    if (listening < wanted || p.output_.back() != '\n') {
      // not all listeners reported yet
    } else if (auto address = address_after(p.output_, "listening on ")) {
      p.address_ = *address;
      p.metrics_ = address_after(p.output_, "metrics on http://");
      if (p.metrics_ || !wants_metrics) return p;
    }
    pollfd fd{p.stdout_fd_, POLLIN, 0};
    ::poll(&fd, 1, 100);
    if ((fd.revents & (POLLIN | POLLHUP)) && !read_available(p.stdout_fd_, &p.output_)) {
      return unavailable("pipeswitchd exited before listening; its output:\n", p.output_);
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return unavailable("pipeswitchd did not listen within 60 s; its output:\n", p.output_);
    }
  }
}

ServerProcess::ServerProcess(ServerProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      stdout_fd_(std::exchange(other.stdout_fd_, -1)),
      output_(std::move(other.output_)),
      address_(other.address_),
      metrics_(other.metrics_) {}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
}

psnc::Client ServerProcess::connect() const {
  auto client = psnc::Client::connect(address_);
  PS_CHECK(client.ok());
  client->set_timeout(std::chrono::seconds(20));
  return std::move(*client);
}

Result<int> ServerProcess::stop(int signal, std::chrono::milliseconds timeout) {
  PS_CHECK(pid_ > 0);
  ::kill(pid_, signal);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t done = ::waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      pid_ = -1;
      while (read_available(stdout_fd_, &output_)) {
      }
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    pollfd fd{stdout_fd_, POLLIN, 0};
    if (::poll(&fd, 1, 10) > 0) read_available(stdout_fd_, &output_);
    if (std::chrono::steady_clock::now() > deadline) return unavailable("pipeswitchd did not exit");
  }
}

ToolResult run_tool(const std::string& path, const std::vector<std::string>& args,
                    const std::string& input, std::chrono::milliseconds timeout) {
  int in[2], out[2], err[2];
  PS_CHECK(::pipe2(in, O_CLOEXEC) == 0 && ::pipe2(out, O_CLOEXEC) == 0 &&
           ::pipe2(err, O_CLOEXEC) == 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
  auto argv = argv_of(path, args);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, path.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  ToolResult result;
  if (rc != 0) {
    ::close(in[1]);
    ::close(out[0]);
    ::close(err[0]);
    result.err = std::strerror(rc);
    return result;
  }
  std::thread writer([fd = in[1], &input] {
    size_t done = 0;
    while (done < input.size()) {
      const ssize_t n = ::write(fd, input.data() + done, input.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    ::close(fd);
  });
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool out_open = true, err_open = true;
  while (out_open || err_open) {
    pollfd fds[2] = {{out_open ? out[0] : -1, POLLIN, 0}, {err_open ? err[0] : -1, POLLIN, 0}};
    ::poll(fds, 2, 50);
    if (fds[0].revents) out_open = read_available(out[0], &result.out);
    if (fds[1].revents) err_open = read_available(err[0], &result.err);
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      result.err += "\n(killed: timeout)";
      break;
    }
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  writer.join();
  ::close(out[0]);
  ::close(err[0]);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

ServerProcess start_cpu_server(const std::vector<std::string>& extra, int threads) {
  std::vector<std::string> args = {"--device", "cpu", "--threads", std::to_string(threads),
                                   "--zoo=resnet_tiny,bert_tiny"};
  args.insert(args.end(), extra.begin(), extra.end());
  auto server = ServerProcess::start(args);
  INFO(server.status().message());
  REQUIRE(server.ok());
  return std::move(*server);
}

psnc::Reply request(psnc::Client& client, const std::string& bytes) {
  REQUIRE(client.send(bytes).ok());
  auto reply = client.read_reply();
  INFO(reply.status().message());
  REQUIRE(reply.ok());
  return std::move(*reply);
}

const Reference& reference(const std::string& name) {
  static std::mutex mutex;
  static std::map<std::string, Reference> cache;
  std::lock_guard lock(mutex);
  auto it = cache.find(name);
  if (it == cache.end()) {
    auto host = reactor::import_zoo_model(name, 1, 16);
    PS_CHECK(host.ok());
    auto info = reactor::describe_model(name, "zoo:" + name, host->manifest);
    PS_CHECK(info.ok());
    it = cache.emplace(name, Reference{std::move(*host), std::move(*info)}).first;
  }
  return it->second;
}

std::string reference_output(const std::string& name, uint32_t batch, const std::string& input) {
  const Reference& ref = reference(name);
  const reactor::ModelInfo& info = ref.info;
  PS_CHECK(info.batch == 1 && input.size() == reactor::input_bytes(info, batch));
  std::vector<std::string> outputs(info.outputs.size());
  for (uint32_t b = 0; b < batch; ++b) {
    std::vector<models::cpu::Tensor> tensors;
    uint64_t offset = 0;
    for (const reactor::TensorSpec& spec : info.inputs) {
      auto t = models::cpu::Tensor::allocate(spec.dtype, spec.shape);
      PS_CHECK(t.ok());
      // Input i holds `batch` samples of spec.bytes() each; sample b of it.
      std::memcpy(t->mutable_raw(), input.data() + offset + b * spec.bytes(), spec.bytes());
      offset += spec.bytes() * batch;
      tensors.push_back(std::move(*t));
    }
    std::map<std::string, const models::cpu::Tensor*> inputs;
    for (size_t i = 0; i < tensors.size(); ++i) inputs[info.inputs[i].name] = &tensors[i];
    auto result = models::cpu::run_model(ref.host.manifest, ref.host.weights, inputs);
    PS_CHECK(result.ok());
    for (size_t o = 0; o < info.outputs.size(); ++o) {
      const models::cpu::Tensor& t = result->at(info.outputs[o].name);
      outputs[o].append(static_cast<const char*>(t.raw()), t.byte_size());
    }
  }
  std::string all;
  for (const std::string& o : outputs) all += o;
  return all;
}

std::string reference_checksum(const std::string& name, uint32_t batch) {
  const std::string input = reactor::synthetic_input(reference(name).info, batch);
  char hex[17];
  std::snprintf(
      hex, sizeof(hex), "%016llx",
      static_cast<unsigned long long>(net::payload_checksum(reference_output(name, batch, input))));
  return hex;
}

}  // namespace ps::e2e
