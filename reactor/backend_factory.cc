#include "reactor/backend_factory.h"

#include <algorithm>
#include <thread>

#include "reactor/cpu_backend.h"

namespace ps::reactor {

bool is_known_policy(std::string_view policy) {
  return std::find(std::begin(kPolicies), std::end(kPolicies), policy) != std::end(kPolicies);
}

Result<std::string> parse_device(std::string_view text) {
  if (text == "cpu") return std::string(text);
  if (text.empty() || text.size() > 3 ||
      !std::all_of(text.begin(), text.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
    return invalid_argument("--device '", text, "': expected cpu or a GPU index (0, 1, ...)");
  }
  return std::string(text);
}

Result<std::unique_ptr<Backend>> make_backend(const BackendOptions& options) {
  if (!is_known_policy(options.policy)) {
    std::string known;
    for (std::string_view p : kPolicies) known += str_cat(known.empty() ? "" : ", ", p);
    return invalid_argument("--policy '", options.policy, "': expected one of ", known);
  }
  PS_ASSIGN_OR_RETURN(std::string device, parse_device(options.device));
  if (device == "cpu") {
    uint32_t threads = options.cpu_threads;
    if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
    return std::unique_ptr<Backend>(std::make_unique<CpuBackend>(threads, options.training));
  }
  return make_gpu_backend(std::stoi(device), options);
}

}  // namespace ps::reactor
