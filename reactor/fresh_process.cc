#include "reactor/fresh_process.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <thread>
#include <vector>

#include "cuda/copy.h"
#include "cuda/device_buffer.h"
#include "cuda/host_memory.h"
#include "cuda/stream.h"
#include "models/gpu/plan.h"
#include "models/gpu/runtime.h"
#include "models/package_reader.h"
#include "reactor/backend.h"
#include "reactor/model_source.h"

extern char** environ;

namespace ps::reactor {
namespace {

// Reads everything from fds[0] (stdout) and fds[1] (stderr) until both close.
void drain(int out_fd, int err_fd, std::string* out, std::string* err) {
  pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  char buf[1 << 16];
  int open = 2;
  while (open > 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        (i == 0 ? out : err)->append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        fds[i].fd = -1;
        --open;
      }
    }
  }
}

Result<std::string> oneshot(const OneshotRequest& r, const std::string& input) {
  PS_ASSIGN_OR_RETURN(auto runtime, models::gpu::GpuRuntime::create(r.device));
  PS_ASSIGN_OR_RETURN(models::Package package, models::Package::open(r.package));
  PS_ASSIGN_OR_RETURN(ModelInfo info, describe_model("oneshot", r.package, package.manifest()));
  std::string why;
  if (!batch_supported(info, r.batch, &why)) return invalid_argument(why);
  if (input.size() != input_bytes(info, r.batch)) {
    return invalid_argument("input of ", input.size(), " bytes; the model at batch ", r.batch,
                            " takes ", input_bytes(info, r.batch));
  }
  const uint64_t weight_bytes = std::max<uint64_t>(package.weights_bytes(), 1);
  PS_ASSIGN_OR_RETURN(cuda::PinnedBuffer weights, cuda::PinnedBuffer::allocate(weight_bytes));
  if (package.weights_bytes() > 0) {
    PS_TRY(package.read_weights(weights.data(), package.weights_bytes()));
  }
  models::gpu::PlanOptions options;
  PS_ASSIGN_OR_RETURN(options.precision, models::gpu::parse_precision(r.precision));
  options.warm_up = false;  // one request: nothing to warm up for
  PS_ASSIGN_OR_RETURN(models::gpu::Plan plan,
                      models::gpu::Plan::build(
                          package.manifest(),
                          std::span<const uint8_t>(weights.as<uint8_t>(), package.weights_bytes()),
                          *runtime, options));
  PS_ASSIGN_OR_RETURN(cuda::DeviceBuffer device_weights,
                      cuda::DeviceBuffer::allocate(std::max<uint64_t>(weight_bytes, 256)));
  PS_ASSIGN_OR_RETURN(cuda::DeviceBuffer arena,
                      cuda::DeviceBuffer::allocate(std::max<uint64_t>(plan.arena_bytes(), 256)));
  cuda::DeviceBuffer workspace;
  if (plan.workspace_bytes() > 0) {
    PS_ASSIGN_OR_RETURN(workspace, cuda::DeviceBuffer::allocate(plan.workspace_bytes()));
  }
  PS_ASSIGN_OR_RETURN(cuda::Stream stream, cuda::Stream::create());
  PS_TRY(cuda::copy_to_device_async(device_weights.ptr(), weights.data(), package.weights_bytes(),
                                    stream));
  const models::gpu::Bindings b{device_weights.ptr(), arena.ptr(), workspace.ptr(),
                                workspace.size()};
  const uint32_t chunks = r.batch / info.batch;
  uint64_t out_total = 0;
  for (const models::gpu::IoSpec& io : plan.outputs()) out_total += io.bytes;
  std::string output(out_total * chunks, '\0');
  for (uint32_t k = 0; k < chunks; ++k) {
    uint64_t offset = 0;
    for (const models::gpu::IoSpec& io : plan.inputs()) {
      PS_TRY(cuda::copy_to_device_async(arena.ptr() + io.arena_offset,
                                        input.data() + offset + k * io.bytes, io.bytes, stream));
      offset += io.bytes * chunks;
    }
    PS_TRY(plan.enqueue(stream, b));
    offset = 0;
    for (const models::gpu::IoSpec& io : plan.outputs()) {
      PS_TRY(cuda::copy_to_host_async(output.data() + offset + k * io.bytes,
                                      arena.ptr() + io.arena_offset, io.bytes, stream));
      offset += io.bytes * chunks;
    }
  }
  PS_TRY(stream.synchronize());
  return output;
}

}  // namespace

Result<std::string> run_in_fresh_process(const OneshotRequest& r, const std::string& input) {
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return io_error("pipe: ", std::strerror(errno));
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ::close(in[0]);
    ::close(in[1]);
    return io_error("pipe: ", std::strerror(errno));
  }
  if (::pipe2(err, O_CLOEXEC) != 0) {
    for (int fd : {in[0], in[1], out[0], out[1]}) ::close(fd);
    return io_error("pipe: ", std::strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
  std::vector<std::string> args = {
      r.exe,         "--oneshot", "--device", std::to_string(r.device), "--package", r.package,
      "--precision", r.precision, "--batch",  std::to_string(r.batch)};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = ::posix_spawn(&pid, r.exe.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  if (spawned != 0) {
    for (int fd : {in[1], out[0], err[0]}) ::close(fd);
    return io_error("starting ", r.exe, ": ", std::strerror(spawned));
  }
  // The input may be larger than a pipe holds: write it while reading the outputs.
  std::thread writer([fd = in[1], &input] {
    size_t done = 0;
    while (done < input.size()) {
      const ssize_t n = ::write(fd, input.data() + done, input.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // the child went away; its exit status says why
      done += static_cast<size_t>(n);
    }
    ::close(fd);
  });
  std::string output, errors;
  drain(out[0], err[0], &output, &errors);
  writer.join();
  ::close(out[0]);
  ::close(err[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    while (!errors.empty() && errors.back() == '\n') errors.pop_back();
    return device_error("the fresh process (kill-restart) failed (",
                        WIFEXITED(status) ? str_cat("exit ", WEXITSTATUS(status))
                                          : str_cat("signal ", WTERMSIG(status)),
                        "): ", errors.empty() ? "no message" : errors);
  }
  return output;
}

int oneshot_main(std::span<const std::string> args) {
  OneshotRequest r;
  for (size_t i = 0; i + 1 < args.size(); i += 2) {
    const std::string& flag = args[i];
    const std::string& value = args[i + 1];
    if (flag == "--device") {
      r.device = std::atoi(value.c_str());
    } else if (flag == "--package") {
      r.package = value;
    } else if (flag == "--precision") {
      r.precision = value;
    } else if (flag == "--batch") {
      r.batch = static_cast<uint32_t>(std::strtoul(value.c_str(), nullptr, 10));
    } else {
      std::cerr << "pipeswitchd --oneshot: unknown argument '" << flag << "'\n";
      return 2;
    }
  }
  if (args.size() % 2 != 0 || r.package.empty() || r.batch == 0) {
    std::cerr << "usage: pipeswitchd --oneshot --device N --package P --precision tf32|fp32 "
                 "--batch B  (inputs on stdin, outputs on stdout)\n";
    return 2;
  }
  std::string input;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    input.append(buf, static_cast<size_t>(n));
  }
  auto output = oneshot(r, input);
  if (!output.ok()) {
    std::cerr << output.status().message() << "\n";
    return 1;
  }
  std::cout.write(output->data(), static_cast<std::streamsize>(output->size()));
  std::cout.flush();
  return std::cout ? 0 : 1;
}

}  // namespace ps::reactor
