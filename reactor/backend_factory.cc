#include "reactor/backend_factory.h"

#include <algorithm>
#include <thread>

#include "cuda/device.h"
#include "reactor/cpu_backend.h"
#include "reactor/multi_backend.h"
#include "reactor/peer_links.h"
#include "reactor/switch_policy.h"

namespace ps::reactor {
namespace {

bool is_index(std::string_view text) {
  return !text.empty() && text.size() <= 3 &&
         std::all_of(text.begin(), text.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
}

std::vector<std::string_view> split_commas(std::string_view text) {
  std::vector<std::string_view> out;
  for (;;) {
    const size_t comma = text.find(',');
    out.push_back(text.substr(0, comma));
    if (comma == std::string_view::npos) return out;
    text.remove_prefix(comma + 1);
  }
}

Result<int> driver_gpu_count() { return cuda::Device::count(); }

}  // namespace

bool is_known_policy(std::string_view policy) {
  return std::find(std::begin(kPolicies), std::end(kPolicies), policy) != std::end(kPolicies);
}

Result<std::string> parse_device(std::string_view text) {
  if (text == "cpu" || text == "all") return std::string(text);
  const auto bad = [&] {
    return invalid_argument("--device '", text,
                            "': expected cpu, a GPU index (0, 1, ...), all, or a list of GPU "
                            "indices (0,1) or of cpu (cpu,cpu: simulated devices)");
  };
  const std::vector<std::string_view> parts = split_commas(text);
  size_t cpus = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i] == "cpu") {
      ++cpus;
      continue;
    }
    if (!is_index(parts[i])) return bad();
    for (size_t j = 0; j < i; ++j) {
      if (parts[j] == parts[i]) {
        return invalid_argument("--device '", text, "': GPU ", parts[i], " is listed twice");
      }
    }
  }
  if (cpus != 0 && cpus != parts.size()) {
    return invalid_argument("--device '", text, "': a list is either GPU indices or cpu, not both");
  }
  if (parts.size() > 64) return invalid_argument("--device '", text, "': at most 64 devices");
  return std::string(text);
}

Result<std::vector<std::string>> expand_devices(std::string_view device, GpuCounter count_gpus) {
  PS_ASSIGN_OR_RETURN(const std::string text, parse_device(device));
  std::vector<std::string> out;
  if (text == "all") {
    auto n = (count_gpus != nullptr ? count_gpus : &driver_gpu_count)();
    if (!n.ok()) {
      return unavailable("--device all counts the GPUs through the CUDA driver: ",
                         n.status().message());
    }
    if (*n <= 0) return unavailable("--device all: the CUDA driver shows no GPU");
    for (int i = 0; i < *n; ++i) out.push_back(std::to_string(i));
    return out;
  }
  for (std::string_view part : split_commas(text)) out.emplace_back(part);
  return out;
}

Result<std::unique_ptr<Backend>> make_backend(const BackendOptions& options) {
  if (!is_known_policy(options.policy)) {
    std::string known;
    for (std::string_view p : kPolicies) known += str_cat(known.empty() ? "" : ", ", p);
    return invalid_argument("--policy '", options.policy, "': expected one of ", known);
  }
  PS_ASSIGN_OR_RETURN(const std::vector<std::string> devices, expand_devices(options.device));
  // Parallel transmission: the GPUs of the set lend each other their links.
  BackendOptions gpu_options = options;
  if (options.parallel_links > 1 && devices.size() > 1 && devices[0] != "cpu" &&
      !gpu_options.peer_links) {
    std::vector<int> ordinals;
    for (const std::string& d : devices) ordinals.push_back(std::stoi(d));
    gpu_options.peer_links = std::make_shared<PeerLinks>(std::move(ordinals));
  }
  const auto one = [&](const std::string& device) -> Result<std::unique_ptr<Backend>> {
    if (device == "cpu") {
      uint32_t threads = options.cpu_threads;
      if (threads == 0) {
        const uint32_t cores = std::max(1u, std::thread::hardware_concurrency());
        threads = std::max<uint32_t>(1, cores / static_cast<uint32_t>(devices.size()));
      }
      return std::unique_ptr<Backend>(std::make_unique<CpuBackend>(threads, options.training));
    }
    return make_gpu_backend(std::stoi(device), gpu_options);
  };
  if (devices.size() == 1) return one(devices[0]);

  std::vector<MultiBackend::Device> children;
  for (size_t i = 0; i < devices.size(); ++i) {
    PS_ASSIGN_OR_RETURN(std::unique_ptr<Backend> child, one(devices[i]));
    children.push_back(MultiBackend::Device{devices[i] == "cpu" ? str_cat("cpu", i) : devices[i],
                                            std::move(child)});
  }
  // Requests follow a model to the device it is on while it is being switched in only when
  // the policy keeps models after a task; under the evicting ones that would only queue them.
  PS_ASSIGN_OR_RETURN(const SwitchPolicy policy, policy_named(options.policy));
  PlacementRules rules;
  rules.in_flight_holds = policy.residency != Residency::kEvictAfterTask;
  return std::unique_ptr<Backend>(std::make_unique<MultiBackend>(std::move(children), rules));
}

}  // namespace ps::reactor
