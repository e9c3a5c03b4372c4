#include "models/gpu/link_probe.h"

#include <algorithm>
#include <vector>

#include "cuda/copy.h"
#include "cuda/event.h"

namespace ps::models::gpu {
namespace {

constexpr size_t kSmallCopy = 4096;
constexpr int kSmallCopies = 64;
constexpr int kLargeRuns = 5;

}  // namespace

Result<TransferModel> probe_link(const cuda::Stream& copy, const void* host, CUdeviceptr device,
                                 size_t bytes) {
  if (bytes < (size_t{1} << 20)) {
    return invalid_argument("probe_link: buffers of ", bytes, " bytes; at least 1 MiB needed");
  }
  PS_ASSIGN_OR_RETURN(cuda::Event start, cuda::Event::create(true));
  PS_ASSIGN_OR_RETURN(cuda::Event end, cuda::Event::create(true));
  PS_ASSIGN_OR_RETURN(cuda::Event marker, cuda::Event::create(false));

  // Warm the path (first copies pay lazy set-up).
  PS_TRY(cuda::copy_to_device_async(device, host, bytes, copy));
  PS_TRY(copy.synchronize());

  PS_TRY(start.record(copy));
  for (int i = 0; i < kSmallCopies; ++i) {
    PS_TRY(cuda::copy_to_device_async(device + static_cast<CUdeviceptr>(i) * kSmallCopy,
                                      static_cast<const uint8_t*>(host) + i * kSmallCopy,
                                      kSmallCopy, copy));
    PS_TRY(marker.record(copy));
  }
  PS_TRY(end.record(copy));
  PS_TRY(end.synchronize());
  PS_ASSIGN_OR_RETURN(float small_ms, cuda::Event::elapsed_ms(start, end));
  const double fixed_us = small_ms * 1000.0 / kSmallCopies;

  std::vector<double> large_us;
  for (int run = 0; run < kLargeRuns; ++run) {
    PS_TRY(start.record(copy));
    PS_TRY(cuda::copy_to_device_async(device, host, bytes, copy));
    PS_TRY(end.record(copy));
    PS_TRY(end.synchronize());
    PS_ASSIGN_OR_RETURN(float ms, cuda::Event::elapsed_ms(start, end));
    large_us.push_back(ms * 1000.0);
  }
  std::sort(large_us.begin(), large_us.end());
  const double transfer_us = std::max(large_us[kLargeRuns / 2] - fixed_us, 1.0);
  return TransferModel{fixed_us, static_cast<double>(bytes) / transfer_us};
}

}  // namespace ps::models::gpu
