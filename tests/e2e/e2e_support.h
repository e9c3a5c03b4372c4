// End-to-end test support: a real pipeswitchd process on 127.0.0.1:0, running tools (psnc) with
// stdin and captured stdout, and the reference outputs the CPU executor computes in the test.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "reactor/backend.h"
#include "reactor/model_source.h"
#include "tools/psnc/client.h"

namespace ps::e2e {

std::string pipeswitchd_path();
std::string psnc_path();

// A pipeswitchd child process. start() waits for its "listening on" line.
class ServerProcess {
 public:
  // Starts pipeswitchd with `args` (e.g. {"--device", "cpu", "--zoo=resnet_tiny"}); adds
  // --listen 127.0.0.1:0 unless args has --listen, and --log-level warn unless given.
  static Result<ServerProcess> start(std::vector<std::string> args);
  ServerProcess(ServerProcess&& other) noexcept;
  ServerProcess& operator=(ServerProcess&&) = delete;
  ~ServerProcess();  // SIGKILL if still running

  const psnc::HostPort& address() const { return address_; }
  const std::optional<psnc::HostPort>& metrics() const { return metrics_; }
  std::string address_text() const { return address_.host + ":" + std::to_string(address_.port); }
  const std::string& output() const { return output_; }  // stdout so far
  pid_t pid() const { return pid_; }                     // -1 once stopped

  psnc::Client connect() const;

  // Sends `signal` and waits up to `timeout` for the exit. Returns the exit status (or
  // 128+signal when killed by one), or an error on timeout. Reads the rest of stdout.
  Result<int> stop(int signal, std::chrono::milliseconds timeout = std::chrono::seconds(20));

 private:
  ServerProcess() = default;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string output_;
  psnc::HostPort address_;
  std::optional<psnc::HostPort> metrics_;
};

// pipeswitchd --device cpu --threads `threads` --zoo=resnet_tiny,bert_tiny, then `extra`; a
// server that does not start fails the test case.
ServerProcess start_cpu_server(const std::vector<std::string>& extra = {}, int threads = 2);

// Sends `bytes` and reads one whole reply; a send or read failure fails the test case.
psnc::Reply request(psnc::Client& client, const std::string& bytes);

struct ToolResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs `path args...` with `input` on stdin; waits for it (at most `timeout`, then SIGKILL).
ToolResult run_tool(const std::string& path, const std::vector<std::string>& args,
                    const std::string& input = "",
                    std::chrono::milliseconds timeout = std::chrono::seconds(30));

// The reference: zoo model `name` imported as the server does (native batch 1, seq 16).
struct Reference {
  reactor::HostModel host;
  reactor::ModelInfo info;
};
const Reference& reference(const std::string& name);

// The outputs (concatenated as the server sends them) of `name` at `batch` for `input`,
// computed with cpu::run_model one native batch at a time.
std::string reference_output(const std::string& name, uint32_t batch, const std::string& input);

// The checksum (hex, as in the reply) of reference_output for the synthetic input.
std::string reference_checksum(const std::string& name, uint32_t batch);

}  // namespace ps::e2e
