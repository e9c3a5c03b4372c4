#include "tools/psbench/copy_bench.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>

#include "cuda/basic_kernels.h"
#include "cuda/copy.h"
#include "cuda/device.h"
#include "cuda/device_pool.h"
#include "cuda/driver.h"
#include "cuda/event.h"
#include "cuda/host_memory.h"
#include "cuda/module.h"
#include "cuda/stream.h"
#include "tools/psbench/cli.h"

namespace ps::psbench {
namespace {

using cuda::BasicKernels;
using cuda::Device;
using cuda::DevicePool;
using cuda::Event;
using cuda::Module;
using cuda::PinnedBuffer;
using cuda::PoolRange;
using cuda::Stream;

// Iota patterns (word i = i * a + b); `a` odd, so neighbouring words always differ.
constexpr uint32_t kHostPatternA = 2654435761u;
constexpr uint32_t kHostPatternB = 0x9e3779b9u;
constexpr uint32_t kDevicePatternA = 40503u;
constexpr uint32_t kDevicePatternB = 0x7f4a7c15u;

// Fixed-cost measurement: batches of this many (4-byte copy + event record) pairs. The stream is
// held by a kernel while a batch is queued, so the batch must fit in the stream's queue without
// the enqueue blocking; 256 operations are well inside it.
constexpr int kTinyBatch = 128;
constexpr uint64_t kTinyBytes = 4;
constexpr uint64_t kTinySlots = 1024;  // tiny copies cycle over distinct 4-byte slots
// The hold gives up after about this many GPU cycles (1-2 s), long after a batch is queued.
constexpr uint64_t kHoldCycles = 3'000'000'000ull;
constexpr size_t kScratchResultOffset = 256;

double gbps(uint64_t bytes, double ms) {
  return ms > 0 ? static_cast<double>(bytes) / (ms * 1e-3) / 1e9 : 0.0;
}

// Everything the benchmark holds; members are destroyed in reverse order, the Device last.
struct Bench {
  Device device;
  Stream stream;
  Module module;
  BasicKernels kernels;
  DevicePool pool;
  PoolRange data{};       // destination of the bandwidth copies (max_size)
  PoolRange tiny{};       // destination of the 4-byte copies
  PoolRange check{};      // 16-byte PatternCheck result
  PoolRange timed_out{};  // u32 set by the hold kernel when it gave up
  PinnedBuffer host_src{};
  PinnedBuffer host_dst{};
  PinnedBuffer tiny_src{};
  PinnedBuffer scratch{};  // the hold flag (word 0), the hold's time-out (word 1), results at 256
  std::unique_ptr<uint8_t[]> pageable{};
  uint64_t pageable_bytes = 0;
  std::vector<Event> marks{};  // repeat + 1 timing events
};

Result<Bench> set_up(const CopyOptions& o) {
  PS_ASSIGN_OR_RETURN(Device device, Device::open(o.device));
  PS_ASSIGN_OR_RETURN(Stream stream, Stream::create(cuda::StreamPriority::kNormal));
  PS_ASSIGN_OR_RETURN(Module module, Module::load_embedded());
  PS_ASSIGN_OR_RETURN(BasicKernels kernels, BasicKernels::load(module));
  PS_ASSIGN_OR_RETURN(DevicePool pool, DevicePool::create(device, o.max_size + (1u << 20)));
  Bench b{.device = std::move(device),
          .stream = std::move(stream),
          .module = std::move(module),
          .kernels = std::move(kernels),
          .pool = std::move(pool)};
  PS_ASSIGN_OR_RETURN(b.data, b.pool.allocate(o.max_size, "psbench/data"));
  PS_ASSIGN_OR_RETURN(b.tiny, b.pool.allocate(kTinySlots * kTinyBytes, "psbench/tiny"));
  PS_ASSIGN_OR_RETURN(b.check, b.pool.allocate(sizeof(cuda::PatternCheck), "psbench/check"));
  PS_ASSIGN_OR_RETURN(b.timed_out, b.pool.allocate(sizeof(uint32_t), "psbench/timed-out"));
  PS_ASSIGN_OR_RETURN(b.host_src, PinnedBuffer::allocate(o.max_size));
  PS_ASSIGN_OR_RETURN(b.host_dst, PinnedBuffer::allocate(o.max_size));
  PS_ASSIGN_OR_RETURN(b.tiny_src, PinnedBuffer::allocate(kTinySlots * kTinyBytes));
  PS_ASSIGN_OR_RETURN(b.scratch, PinnedBuffer::allocate(4096));
  std::memset(b.tiny_src.data(), 0x5a, b.tiny_src.size());
  std::memset(b.scratch.data(), 0, b.scratch.size());
  b.pageable_bytes = std::min(o.max_size, o.pageable_max);
  b.pageable.reset(new (std::nothrow) uint8_t[b.pageable_bytes]);
  if (!b.pageable) {
    return out_of_memory("cannot allocate ", b.pageable_bytes, " bytes of pageable host memory");
  }
  std::memset(b.pageable.get(), 0x3c, b.pageable_bytes);  // fault the pages in before timing
  for (int i = 0; i <= o.repeat; ++i) {
    PS_ASSIGN_OR_RETURN(Event e, Event::create(/*timing=*/true));
    b.marks.push_back(std::move(e));
  }
  return b;
}

// One untimed warm-up copy, then `repeat` back-to-back timed copies queued by `enqueue`; each
// copy is timed between the events around it. Returns the median bandwidth in GB/s.
template <typename Enqueue>
Result<double> time_copies(Bench& b, uint64_t bytes, int repeat, Enqueue enqueue) {
  PS_TRY(enqueue());
  PS_TRY(b.marks[0].record(b.stream));
  for (int i = 0; i < repeat; ++i) {
    PS_TRY(enqueue());
    PS_TRY(b.marks[i + 1].record(b.stream));
  }
  PS_TRY(b.marks[repeat].synchronize());
  std::vector<double> rates;
  for (int i = 0; i < repeat; ++i) {
    PS_ASSIGN_OR_RETURN(float ms, Event::elapsed_ms(b.marks[i], b.marks[i + 1]));
    rates.push_back(gbps(bytes, ms));
  }
  return median(std::move(rates));
}

void fill_host_pattern(void* p, uint64_t words, uint32_t a, uint32_t b) {
  auto* w = static_cast<uint32_t*>(p);
  for (uint64_t i = 0; i < words; ++i) w[i] = static_cast<uint32_t>(i) * a + b;
}

// Verifies on the device that the H2D copies left the host pattern in the pool.
Status verify_on_device(Bench& b, uint64_t bytes) {
  const uint64_t words = bytes / 4;
  PS_TRY(b.kernels.check_iota_u32(b.stream, b.data.ptr, words, kHostPatternA, kHostPatternB,
                                  b.check.ptr));
  uint8_t* host_result = b.scratch.as<uint8_t>() + kScratchResultOffset;
  PS_TRY(cuda::copy_to_host_async(host_result, b.check.ptr, sizeof(cuda::PatternCheck), b.stream));
  PS_TRY(b.stream.synchronize());
  cuda::PatternCheck result;
  std::memcpy(&result, host_result, sizeof(result));
  if (result.mismatches != 0) {
    return internal_error("verify: after the host-to-device copy of ", size_label(bytes), ", ",
                          result.mismatches, " of ", words,
                          " words on the GPU differ from the host data, the first at word ",
                          result.first_mismatch);
  }
  return Status::OK();
}

// Verifies on the host that the D2H copies brought back the device pattern.
Status verify_on_host(const Bench& b, uint64_t bytes) {
  const uint64_t words = bytes / 4;
  const auto* w = b.host_dst.as<const uint32_t>();
  uint64_t mismatches = 0;
  uint64_t first = 0;
  for (uint64_t i = 0; i < words; ++i) {
    if (w[i] != static_cast<uint32_t>(i) * kDevicePatternA + kDevicePatternB) {
      if (mismatches++ == 0) first = i;
    }
  }
  if (mismatches != 0) {
    return internal_error("verify: after the device-to-host copy of ", size_label(bytes), ", ",
                          mismatches, " of ", words,
                          " words differ from the GPU data, the first at word ", first);
  }
  return Status::OK();
}

struct FixedCost {
  double gpu_us = 0;      // GPU time per copy + event, the stream fed faster than it drains
  double enqueue_us = 0;  // host time to queue one copy + event
  double free_us = 0;     // per copy + event when the host queues while the GPU runs
  int batches = 0;
};

// Stores 1 into the hold flag when it goes out of scope, so an early error return never leaves
// the stream held until the kernel's time-out.
class HoldRelease {
 public:
  explicit HoldRelease(uint32_t* flag) : flag_(flag) {}
  ~HoldRelease() { release(); }
  void release() { std::atomic_ref<uint32_t>(*flag_).store(1, std::memory_order_seq_cst); }
  HoldRelease(const HoldRelease&) = delete;
  HoldRelease& operator=(const HoldRelease&) = delete;

 private:
  uint32_t* flag_;
};

Result<FixedCost> measure_fixed_cost(Bench& b, int copies) {
  using Clock = std::chrono::steady_clock;
  std::vector<Event> done(kTinyBatch);
  for (Event& e : done) {
    PS_ASSIGN_OR_RETURN(e, Event::create(/*timing=*/false));
  }
  PS_ASSIGN_OR_RETURN(Event start, Event::create(true));
  PS_ASSIGN_OR_RETURN(Event end, Event::create(true));
  auto* flag = b.scratch.as<uint32_t>();
  const auto* src = static_cast<const uint8_t*>(b.tiny_src.data());

  auto enqueue_batch = [&]() -> Status {
    for (int i = 0; i < kTinyBatch; ++i) {
      const uint64_t slot = static_cast<uint64_t>(i) % kTinySlots;
      PS_TRY(cuda::copy_to_device_async(b.tiny.ptr + slot * kTinyBytes, src + slot * kTinyBytes,
                                        kTinyBytes, b.stream));
      PS_TRY(done[i].record(b.stream));
    }
    return Status::OK();
  };

  PS_TRY(enqueue_batch());  // warm-up
  PS_TRY(b.stream.synchronize());

  FixedCost out;
  out.batches = std::max(1, copies / kTinyBatch);
  std::vector<double> gpu, enqueue, free_running;
  for (int batch = 0; batch < out.batches; ++batch) {
    // Held: the GPU starts on the batch only once all of it is queued, so the events time the
    // GPU's own cost per pair, and the host loop times the enqueue alone.
    std::atomic_ref<uint32_t>(*flag).store(0, std::memory_order_seq_cst);
    PS_TRY(cuda::memset_d32_async(b.timed_out.ptr, 0, 1, b.stream));
    {
      HoldRelease hold(flag);
      PS_TRY(b.kernels.wait_flag(b.stream, flag, kHoldCycles, b.timed_out.ptr));
      PS_TRY(start.record(b.stream));
      const auto t0 = Clock::now();
      PS_TRY(enqueue_batch());
      const auto t1 = Clock::now();
      PS_TRY(end.record(b.stream));
      hold.release();
      enqueue.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count() / kTinyBatch);
    }
    PS_TRY(cuda::copy_to_host_async(flag + 1, b.timed_out.ptr, sizeof(uint32_t), b.stream));
    PS_TRY(b.stream.synchronize());
    if (std::atomic_ref<uint32_t>(flag[1]).load() != 0) {
      return internal_error("fixed cost: the stream hold timed out before ", kTinyBatch,
                            " copies were queued; the measurement is not valid");
    }
    PS_ASSIGN_OR_RETURN(float held_ms, Event::elapsed_ms(start, end));
    gpu.push_back(held_ms * 1e3 / kTinyBatch);

    // Free-running: the host queues while the GPU executes, as in a real pipelined switch.
    PS_TRY(start.record(b.stream));
    PS_TRY(enqueue_batch());
    PS_TRY(end.record(b.stream));
    PS_TRY(end.synchronize());
    PS_ASSIGN_OR_RETURN(float free_ms, Event::elapsed_ms(start, end));
    free_running.push_back(free_ms * 1e3 / kTinyBatch);
  }
  out.gpu_us = median(std::move(gpu));
  out.enqueue_us = median(std::move(enqueue));
  out.free_us = median(std::move(free_running));
  return out;
}

std::vector<uint64_t> sweep_sizes(const CopyOptions& o) {
  std::vector<uint64_t> sizes;
  for (uint64_t s = o.min_size; s <= o.max_size; s *= 2) {
    sizes.push_back(s);
    if (s > o.max_size / 2) break;  // no overflow on the next doubling
  }
  return sizes;
}

}  // namespace

void print_copy_help(std::FILE* out) {
  std::fprintf(
      out,
      "usage: psbench copy [--device N] [--min-size S] [--max-size S] [--repeat N]\n"
      "                    [--pageable-max S] [--tiny-copies N]\n"
      "\n"
      "Measures copies between host memory and a DevicePool on one GPU:\n"
      "  - bandwidth (GB/s = 1e9 bytes/s, median of --repeat timed copies, CUDA events) for sizes\n"
      "    S = min, 2*min, ... max: pinned host-to-device, pinned device-to-host, and pageable\n"
      "    host-to-device up to --pageable-max as a reference;\n"
      "  - the fixed cost of one 4-byte copy plus an event record on one stream: GPU time per\n"
      "    pair, host enqueue time per pair, and the free-running rate;\n"
      "  - the data of the largest copy in each direction (checked on the GPU for host-to-device,\n"
      "    on the host for device-to-host).\n"
      "Ends with a verdict: pinned host-to-device at 256 MiB against the target of 45 GB/s.\n"
      "\n"
      "options:\n"
      "  --device N        GPU ordinal (default 0)\n"
      "  --min-size S      smallest copy (default 1M); K, M, G suffixes are powers of 1024\n"
      "  --max-size S      largest copy (default 1G); needs S of GPU and 2*S of pinned memory\n"
      "  --repeat N        timed copies per size (default 10)\n"
      "  --pageable-max S  largest pageable copy (default 256M)\n"
      "  --tiny-copies N   4-byte copies for the fixed cost (default 4096, in batches of %d)\n"
      "\n"
      "exit status: 0 measured and verified (whatever the verdict), 1 error (no driver or GPU,\n"
      "out of memory, data mismatch), 2 bad command line.\n",
      kTinyBatch);
}

Result<CopyOptions> parse_copy_options(const std::vector<std::string_view>& args, bool* help) {
  CopyOptions o;
  *help = false;
  OptionReader r(args);
  while (r.next()) {
    if (r.is_help()) {
      *help = true;
      return o;
    }
    if (r.is("--device")) {
      PS_ASSIGN_OR_RETURN(auto n, r.int_value(0, 1023));
      o.device = static_cast<int>(n);
    } else if (r.is("--min-size")) {
      PS_ASSIGN_OR_RETURN(auto v, r.value());
      PS_ASSIGN_OR_RETURN(o.min_size, parse_size("--min-size", v));
    } else if (r.is("--max-size")) {
      PS_ASSIGN_OR_RETURN(auto v, r.value());
      PS_ASSIGN_OR_RETURN(o.max_size, parse_size("--max-size", v));
    } else if (r.is("--pageable-max")) {
      PS_ASSIGN_OR_RETURN(auto v, r.value());
      PS_ASSIGN_OR_RETURN(o.pageable_max, parse_size("--pageable-max", v));
    } else if (r.is("--repeat")) {
      PS_ASSIGN_OR_RETURN(auto n, r.int_value(1, 10000));
      o.repeat = static_cast<int>(n);
    } else if (r.is("--tiny-copies")) {
      PS_ASSIGN_OR_RETURN(auto n, r.int_value(1, 10'000'000));
      o.tiny_copies = static_cast<int>(n);
    } else {
      return invalid_argument("unknown option '", r.name(), "'");
    }
  }
  if (o.min_size > o.max_size) {
    return invalid_argument("--min-size ", size_label(o.min_size), " is larger than --max-size ",
                            size_label(o.max_size));
  }
  return o;
}

Status run_copy(const CopyOptions& o) {
  PS_ASSIGN_OR_RETURN(Bench b, set_up(o));
  const int driver = cuda::api().driver_version;
  std::printf(
      "psbench copy: GPU %d (%s), driver %d.%d, pool %s at 0x%llx, %d timed copies per "
      "size (median)\n",
      b.device.ordinal(), b.device.name().c_str(), driver / 1000, (driver % 1000) / 10,
      size_label(b.pool.capacity()).c_str(), static_cast<unsigned long long>(b.pool.base()),
      o.repeat);

  const std::vector<uint64_t> sizes = sweep_sizes(o);
  std::vector<double> h2d, d2h, pageable;

  // Pinned host-to-device, ascending, so the last copy is the largest: verified on the GPU.
  fill_host_pattern(b.host_src.data(), o.max_size / 4, kHostPatternA, kHostPatternB);
  for (uint64_t n : sizes) {
    PS_ASSIGN_OR_RETURN(double r, time_copies(b, n, o.repeat, [&] {
                          return cuda::copy_to_device_async(b.data.ptr, b.host_src.data(), n,
                                                            b.stream);
                        }));
    h2d.push_back(r);
  }
  PS_TRY(verify_on_device(b, o.max_size));

  // Pinned device-to-host from a pattern written on the GPU: verified on the host.
  PS_TRY(
      b.kernels.iota_u32(b.stream, b.data.ptr, o.max_size / 4, kDevicePatternA, kDevicePatternB));
  std::memset(b.host_dst.data(), 0, o.max_size);
  for (uint64_t n : sizes) {
    PS_ASSIGN_OR_RETURN(double r, time_copies(b, n, o.repeat, [&] {
                          return cuda::copy_to_host_async(b.host_dst.data(), b.data.ptr, n,
                                                          b.stream);
                        }));
    d2h.push_back(r);
  }
  PS_TRY(verify_on_host(b, o.max_size));

  // Pageable host-to-device: the driver stages it through its own pinned buffers.
  for (uint64_t n : sizes) {
    if (n > b.pageable_bytes) break;
    PS_ASSIGN_OR_RETURN(double r, time_copies(b, n, o.repeat, [&] {
                          return cuda::copy_to_device_async(b.data.ptr, b.pageable.get(), n,
                                                            b.stream);
                        }));
    pageable.push_back(r);
  }

  PS_ASSIGN_OR_RETURN(FixedCost fixed, measure_fixed_cost(b, o.tiny_copies));

  std::printf("\n%10s  %12s  %12s  %14s\n", "size", "H2D pinned", "D2H pinned", "H2D pageable");
  for (size_t i = 0; i < sizes.size(); ++i) {
    char pageable_cell[32] = "-";
    if (i < pageable.size())
      std::snprintf(pageable_cell, sizeof(pageable_cell), "%.2f", pageable[i]);
    std::printf("%10s  %12.2f  %12.2f  %14s\n", size_label(sizes[i]).c_str(), h2d[i], d2h[i],
                pageable_cell);
  }
  std::printf("(GB/s = 1e9 bytes/s)\n\n");
  std::printf("copy (4 B, pinned) + event record, %d batches of %d on one stream:\n", fixed.batches,
              kTinyBatch);
  std::printf("  GPU time per copy+event     %8.2f us  (stream held until the batch is queued)\n",
              fixed.gpu_us);
  std::printf("  host enqueue per copy+event %8.2f us\n", fixed.enqueue_us);
  std::printf("  free-running per copy+event %8.2f us  (host queues while the GPU runs)\n",
              fixed.free_us);
  std::printf(
      "verify: %s host-to-device checked on the GPU, %s device-to-host checked on the "
      "host: OK\n",
      size_label(o.max_size).c_str(), size_label(o.max_size).c_str());

  const auto target = std::find(sizes.begin(), sizes.end(), kTargetSize);
  if (target == sizes.end()) {
    std::printf("verdict: n/a: %s was not measured (the sweep must include it)\n",
                size_label(kTargetSize).c_str());
  } else {
    const double at = h2d[static_cast<size_t>(target - sizes.begin())];
    std::printf("verdict: %s: pinned H2D at %s = %.1f GB/s (target >= %.0f GB/s)\n",
                at >= kTargetGBps ? "PASS" : "BELOW TARGET", size_label(kTargetSize).c_str(), at,
                kTargetGBps);
  }
  return Status::OK();
}

int copy_main(const std::vector<std::string_view>& args) {
  return subcommand_main("copy", args, parse_copy_options, print_copy_help,
                         [](const CopyOptions& o) -> Result<int> {
                           PS_TRY(run_copy(o));
                           return 0;
                         });
}

}  // namespace ps::psbench
