// [gpu] cases of the device layer: device, streams and events, our kernels and copies. Each begins
// with PS_REQUIRE_GPU() and is skipped on machines without a GPU.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "cuda/copy.h"
#include "cuda/event.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/support/gpu.h"

using ps::Code;
using namespace ps::cuda;
using ps::cuda::testing::Gate;
using ps::cuda::testing::open_gpu;
using ps::cuda::testing::take;

namespace {

// The iota pattern's parameters: a odd, so neighbouring words always differ.
constexpr uint32_t kA = 2654435761u;
constexpr uint32_t kB = 12345u;

uint32_t pattern(uint64_t i, uint32_t a = kA, uint32_t b = kB) {
  return static_cast<uint32_t>(i) * a + b;
}

// Checks the iota pattern on the GPU (after everything queued on `stream`) and returns the
// result; synchronizes the stream.
PatternCheck check_on_gpu(const BasicKernels& kernels, const Stream& stream, CUdeviceptr src,
                          uint64_t count, uint32_t a = kA, uint32_t b = kB) {
  DeviceBuffer result = take(DeviceBuffer::allocate(sizeof(PatternCheck)));
  PinnedBuffer host = take(PinnedBuffer::allocate(sizeof(PatternCheck)));
  REQUIRE_OK(kernels.check_iota_u32(stream, src, count, a, b, result.ptr()));
  REQUIRE_OK(copy_to_host_async(host.data(), result.ptr(), sizeof(PatternCheck), stream));
  REQUIRE_OK(stream.synchronize());
  return *host.as<PatternCheck>();
}

}  // namespace

TEST_CASE("device: open, properties, memory and bad ordinals", "[cuda][gpu]") {
  PS_REQUIRE_GPU();
  int count = take(Device::count());
  REQUIRE(count >= 1);
  Device device = take(Device::open(0));
  CHECK(device.ordinal() == 0);
  CHECK_FALSE(device.name().empty());
  CHECK(device.cc_major() >= 8);  // the fatbin has code for sm_80 and newer
  CHECK(device.multiprocessor_count() > 0);
  CHECK(device.total_memory() > (size_t{1} << 30));
  CHECK(take(current_context()) == device.context());

  auto [free_bytes, total_bytes] = take(device.memory_info());
  CHECK(total_bytes > 0);
  CHECK(free_bytes <= total_bytes);
  CHECK(total_bytes <= device.total_memory());

  CHECK(Device::open(count).status().code() == Code::kInvalidArgument);
  CHECK(Device::open(-1).status().code() == Code::kInvalidArgument);

  // A second handle on the same device shares the primary context.
  Device again = take(Device::open(0));
  CHECK(again.context() == device.context());
  Device moved = std::move(again);
  CHECK(moved.context() == device.context());
  REQUIRE(api().cuCtxSetCurrent(nullptr) == CUDA_SUCCESS);
  CHECK(current_context().status().code() == Code::kInvalidArgument);
  REQUIRE_OK(moved.make_current());
  CHECK(take(current_context()) == device.context());
}

TEST_CASE("streams: priorities follow the device's range", "[cuda][gpu]") {
  PS_REQUIRE_GPU();
  Device device = take(Device::open(0));
  int least = 0;
  int greatest = 0;
  REQUIRE(api().cuCtxGetStreamPriorityRange(&least, &greatest) == CUDA_SUCCESS);
  Stream low = take(Stream::create(StreamPriority::kLow));
  Stream normal = take(Stream::create(StreamPriority::kNormal));
  Stream high = take(Stream::create(StreamPriority::kHigh));
  CHECK(take(low.priority()) == least);
  CHECK(take(high.priority()) == greatest);
  int n = take(normal.priority());
  CHECK(n <= least);  // lower numbers are higher priorities
  CHECK(n >= greatest);
  CHECK(high.priority_class() == StreamPriority::kHigh);
  CHECK(take(low.is_done()));  // nothing queued
  REQUIRE_OK(low.synchronize());
}

TEST_CASE("kernels: fills and the iota pattern, checked on the host and on the GPU",
          "[cuda][gpu]") {
  PS_REQUIRE_GPU();
  auto gpu = open_gpu();
  Stream stream = take(Stream::create());
  constexpr uint64_t kCount = (uint64_t{1} << 20) + 7;
  DeviceBuffer buffer = take(DeviceBuffer::allocate(kCount * 4));
  PinnedBuffer host = take(PinnedBuffer::allocate(kCount * 4));

  REQUIRE_OK(gpu.kernels.fill_u32(stream, buffer.ptr(), kCount, 0xDEADBEEFu));
  REQUIRE_OK(copy_to_host_async(host.data(), buffer.ptr(), kCount * 4, stream));
  REQUIRE_OK(stream.synchronize());
  const uint32_t* words = host.as<uint32_t>();
  uint64_t wrong = 0;
  for (uint64_t i = 0; i < kCount; ++i) wrong += words[i] != 0xDEADBEEFu;
  CHECK(wrong == 0);

  REQUIRE_OK(gpu.kernels.fill_f32(stream, buffer.ptr(), kCount, 1.5f));
  REQUIRE_OK(copy_to_host_async(host.data(), buffer.ptr(), kCount * 4, stream));
  REQUIRE_OK(stream.synchronize());
  const float* floats = host.as<float>();
  wrong = 0;
  for (uint64_t i = 0; i < kCount; ++i) wrong += floats[i] != 1.5f;
  CHECK(wrong == 0);

  REQUIRE_OK(gpu.kernels.iota_u32(stream, buffer.ptr(), kCount, kA, kB));
  REQUIRE_OK(copy_to_host_async(host.data(), buffer.ptr(), kCount * 4, stream));
  REQUIRE_OK(stream.synchronize());
  wrong = 0;
  for (uint64_t i = 0; i < kCount; ++i) wrong += words[i] != pattern(i);
  CHECK(wrong == 0);

  PatternCheck clean = check_on_gpu(gpu.kernels, stream, buffer.ptr(), kCount);
  CHECK(clean.mismatches == 0);
  CHECK(clean.first_mismatch == UINT64_MAX);

  // Break two words (neither holds 0 in the pattern) and the checker must find exactly those.
  REQUIRE(pattern(1000) != 0);
  REQUIRE(pattern(kCount - 1) != 0);
  REQUIRE_OK(memset_d32_async(buffer.ptr() + 4 * (kCount - 1), 0, 1, stream));
  REQUIRE_OK(memset_d32_async(buffer.ptr() + 4 * 1000, 0, 1, stream));
  PatternCheck broken = check_on_gpu(gpu.kernels, stream, buffer.ptr(), kCount);
  CHECK(broken.mismatches == 2);
  CHECK(broken.first_mismatch == 1000);
  // A different pattern mismatches everywhere.
  CHECK(check_on_gpu(gpu.kernels, stream, buffer.ptr(), kCount, kA, kB + 1).mismatches == kCount);
}

TEST_CASE("kernels: lookups and launches are checked against the kernel's parameters",
          "[cuda][gpu]") {
  PS_REQUIRE_GPU();
  auto gpu = open_gpu();
  Stream stream = take(Stream::create());
  auto missing = gpu.module.function("ps_no_such_kernel");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == Code::kNotFound);
  CHECK(missing.status().message().find("ps_no_such_kernel") != std::string::npos);

  Kernel fill = take(gpu.module.function("ps_fill_u32"));
  CHECK(fill.name() == "ps_fill_u32");
  REQUIRE(fill.params_known());
  REQUIRE(fill.param_count() == 3);
  CHECK(fill.param_size(0) == 8);
  CHECK(fill.param_size(1) == 8);
  CHECK(fill.param_size(2) == 4);

  DeviceBuffer buffer = take(DeviceBuffer::allocate(64 * 4));
  // Wrong count, and a 4-byte count where the kernel takes 8 bytes.
  ps::Status too_few = fill.launch(stream, 1, 64, 0, buffer.ptr(), uint64_t{64});
  CHECK(too_few.code() == Code::kInvalidArgument);
  ps::Status narrow = fill.launch(stream, 1, 64, 0, buffer.ptr(), 64u, 7u);
  CHECK(narrow.code() == Code::kInvalidArgument);
  CHECK(narrow.message().find("parameter 1") != std::string::npos);
  // An impossible block size is the driver's error, with the kernel named.
  ps::Status huge = fill.launch(stream, 1, 4096, 0, buffer.ptr(), uint64_t{64}, 7u);
  CHECK(huge.code() == Code::kDevice);
  CHECK(huge.message().find("ps_fill_u32") != std::string::npos);

  REQUIRE_OK(fill.launch(stream, 1, 64, 0, buffer.ptr(), uint64_t{64}, 7u));
  std::vector<uint32_t> host(64);
  REQUIRE_OK(copy_to_host_async(host.data(), buffer.ptr(), 64 * 4, stream));
  REQUIRE_OK(stream.synchronize());
  CHECK(host == std::vector<uint32_t>(64, 7u));
}

TEST_CASE("kernels: PS_KERNELS_FATBIN loads the named image instead of the embedded one",
          "[cuda][gpu]") {
  PS_REQUIRE_GPU();
  auto gpu = open_gpu();
  const auto image = ps::cuda::embedded_fatbin();
  char path[] = "/tmp/ps_kernels_XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, image.data(), image.size()) == static_cast<ssize_t>(image.size()));
  close(fd);
  REQUIRE(setenv(Module::kKernelsOverrideEnv, path, 1) == 0);
  auto loaded = Module::load_embedded();
  unsetenv(Module::kKernelsOverrideEnv);
  unlink(path);
  Module module = take(std::move(loaded));
  Kernel fill = take(module.function("ps_fill_u32"));
  Stream stream = take(Stream::create());
  DeviceBuffer buffer = take(DeviceBuffer::allocate(16 * 4));
  REQUIRE_OK(fill.launch(stream, 1, 16, 0, buffer.ptr(), uint64_t{16}, 5u));
  std::vector<uint32_t> host(16);
  REQUIRE_OK(copy_to_host_async(host.data(), buffer.ptr(), 16 * 4, stream));
  REQUIRE_OK(stream.synchronize());
  CHECK(host == std::vector<uint32_t>(16, 5u));
}

// Producer: [fill 0] [gate] [iota] -> event; consumer: wait(event) [check]. While the gate is
// closed the consumer must not have run; after it opens, the check must see the whole pattern.
TEST_CASE("streams: a consumer stream waits on the producer's event", "[cuda][gpu]") {
  PS_REQUIRE_GPU();
  auto gpu = open_gpu();
  Stream producer = take(Stream::create(StreamPriority::kLow));
  Stream consumer = take(Stream::create(StreamPriority::kHigh));
  Event produced = take(Event::create());
  Event consumed = take(Event::create());
  constexpr uint64_t kCount = uint64_t{1} << 22;
  DeviceBuffer buffer = take(DeviceBuffer::allocate(kCount * 4));
  DeviceBuffer result = take(DeviceBuffer::allocate(sizeof(PatternCheck)));
  PinnedBuffer host = take(PinnedBuffer::allocate(sizeof(PatternCheck)));
  Gate gate(gpu.kernels);  // last: destroyed first, so nothing is freed under a held stream

  REQUIRE_OK(gpu.kernels.fill_u32(producer, buffer.ptr(), kCount, 0));
  gate.hold(producer);
  REQUIRE_OK(gpu.kernels.iota_u32(producer, buffer.ptr(), kCount, kA, kB));
  REQUIRE_OK(produced.record(producer));

  REQUIRE_OK(consumer.wait(produced));
  REQUIRE_OK(gpu.kernels.check_iota_u32(consumer, buffer.ptr(), kCount, kA, kB, result.ptr()));
  REQUIRE_OK(copy_to_host_async(host.data(), result.ptr(), sizeof(PatternCheck), consumer));
  REQUIRE_OK(consumed.record(consumer));

  CHECK_FALSE(take(producer.is_done()));
  CHECK_FALSE(take(produced.is_done()));
  CHECK_FALSE(take(consumer.is_done()));
  CHECK_FALSE(take(consumed.is_done()));

  gate.open();
  REQUIRE_OK(consumed.synchronize());
  CHECK(take(consumed.is_done()));
  CHECK(take(consumer.is_done()));
  CHECK(take(produced.is_done()));
  CHECK(take(producer.is_done()));
  CHECK(host.as<PatternCheck>()->mismatches == 0);
  CHECK_FALSE(gate.timed_out());
}

// Two producers write one half each; a consumer waits on both events. One producer is held:
// the consumer must wait for it even though the other finished long ago.
TEST_CASE("streams: one consumer waits on two producers", "[cuda][gpu]") {
  PS_REQUIRE_GPU();
  auto gpu = open_gpu();
  Stream first = take(Stream::create());
  Stream second = take(Stream::create());
  Stream consumer = take(Stream::create(StreamPriority::kHigh));
  Event first_done = take(Event::create());
  Event second_done = take(Event::create());
  constexpr uint64_t kHalf = uint64_t{1} << 20;
  DeviceBuffer buffer = take(DeviceBuffer::allocate(2 * kHalf * 4));
  const CUdeviceptr lower = buffer.ptr();
  const CUdeviceptr upper = buffer.ptr() + kHalf * 4;
  DeviceBuffer results = take(DeviceBuffer::allocate(2 * sizeof(PatternCheck)));
  PinnedBuffer host = take(PinnedBuffer::allocate(2 * sizeof(PatternCheck)));
  Gate gate(gpu.kernels);

  REQUIRE_OK(gpu.kernels.fill_u32(first, buffer.ptr(), 2 * kHalf, 0));
  REQUIRE_OK(first.synchronize());
  gate.hold(first);
  REQUIRE_OK(gpu.kernels.iota_u32(first, lower, kHalf, kA, kB));
  REQUIRE_OK(first_done.record(first));
  REQUIRE_OK(gpu.kernels.iota_u32(second, upper, kHalf, kA, kB + 1));
  REQUIRE_OK(second_done.record(second));

  REQUIRE_OK(consumer.wait(first_done));
  REQUIRE_OK(consumer.wait(second_done));
  REQUIRE_OK(gpu.kernels.check_iota_u32(consumer, lower, kHalf, kA, kB, results.ptr()));
  REQUIRE_OK(gpu.kernels.check_iota_u32(consumer, upper, kHalf, kA, kB + 1,
                                        results.ptr() + sizeof(PatternCheck)));
  REQUIRE_OK(copy_to_host_async(host.data(), results.ptr(), 2 * sizeof(PatternCheck), consumer));

  REQUIRE_OK(second_done.synchronize());  // the free producer finishes...
  CHECK_FALSE(take(consumer.is_done()));  // ...but the consumer still waits for the held one
  CHECK_FALSE(take(first_done.is_done()));
  gate.open();
  REQUIRE_OK(consumer.synchronize());
  CHECK(host.as<PatternCheck>()[0].mismatches == 0);
  CHECK(host.as<PatternCheck>()[1].mismatches == 0);
  CHECK_FALSE(gate.timed_out());
}

TEST_CASE("events: timing events measure, untimed ones refuse to", "[cuda][gpu]") {
  PS_REQUIRE_GPU();
  auto gpu = open_gpu();
  Stream stream = take(Stream::create());
  Event start = take(Event::create(true));
  Event end = take(Event::create(true));
  REQUIRE_OK(start.record(stream));
  REQUIRE_OK(gpu.kernels.spin_cycles(stream, 2'000'000));  // about a millisecond
  REQUIRE_OK(end.record(stream));
  REQUIRE_OK(end.synchronize());
  float ms = take(Event::elapsed_ms(start, end));
  CHECK(ms > 0.0f);

  Event a = take(Event::create());
  Event b = take(Event::create());
  REQUIRE_OK(a.record(stream));
  REQUIRE_OK(b.record(stream));
  REQUIRE_OK(b.synchronize());
  auto untimed = Event::elapsed_ms(a, b);
  REQUIRE_FALSE(untimed.ok());
  CHECK(untimed.status().code() == Code::kDevice);
}

TEST_CASE("copies: pinned host to device and back, odd sizes included", "[cuda][gpu]") {
  PS_REQUIRE_GPU();
  auto gpu = open_gpu();
  Stream stream = take(Stream::create());
  for (size_t n : {size_t{1}, size_t{3}, size_t{4}, size_t{5}, size_t{1023}, size_t{4097},
                   (size_t{1} << 20) + 3, size_t{8} << 20}) {
    INFO("bytes: " << n);
    PinnedBuffer src = take(PinnedBuffer::allocate(n));
    PinnedBuffer dst = take(PinnedBuffer::allocate(n));
    DeviceBuffer a = take(DeviceBuffer::allocate(n));
    DeviceBuffer b = take(DeviceBuffer::allocate(n));
    auto* s = src.as<unsigned char>();
    for (size_t i = 0; i < n; ++i) s[i] = static_cast<unsigned char>(i * 131 + 7);
    std::memset(dst.data(), 0, n);
    REQUIRE_OK(memset_d8_async(b.ptr(), 0xEE, n, stream));
    REQUIRE_OK(copy_to_device_async(a.ptr(), src.data(), n, stream));
    REQUIRE_OK(copy_device_async(b.ptr(), a.ptr(), n, stream));
    REQUIRE_OK(copy_to_host_async(dst.data(), b.ptr(), n, stream));
    REQUIRE_OK(stream.synchronize());
    CHECK(std::memcmp(src.data(), dst.data(), n) == 0);

    if (n > 2) {  // unaligned sub-ranges: bytes [1, n-1) shifted by one on the way back
      std::memset(dst.data(), 0, n);
      REQUIRE_OK(copy_to_host_async(dst.as<unsigned char>(), a.ptr() + 1, n - 2, stream));
      REQUIRE_OK(stream.synchronize());
      CHECK(std::memcmp(src.as<unsigned char>() + 1, dst.data(), n - 2) == 0);
    }
  }
  // Zero-byte operations queue nothing and succeed.
  REQUIRE_OK(copy_to_device_async(0, nullptr, 0, stream));
  REQUIRE_OK(copy_to_host_async(nullptr, 0, 0, stream));
}

TEST_CASE("copies: memset and registered (pinned in place) host memory", "[cuda][gpu]") {
  PS_REQUIRE_GPU();
  auto gpu = open_gpu();
  Stream stream = take(Stream::create());
  constexpr size_t kWords = 1001;
  DeviceBuffer words = take(DeviceBuffer::allocate(kWords * 4));
  REQUIRE_OK(memset_d32_async(words.ptr(), 0xA5A5A5A5u, kWords, stream));
  std::vector<uint32_t> back(kWords);
  REQUIRE_OK(copy_to_host_async(back.data(), words.ptr(), kWords * 4, stream));
  REQUIRE_OK(stream.synchronize());
  CHECK(back == std::vector<uint32_t>(kWords, 0xA5A5A5A5u));
  CHECK(memset_d32_async(words.ptr() + 2, 0, 1, stream).code() == Code::kInvalidArgument);

  // Two separately page-aligned ranges (two registrations must not share a page), odd length.
  constexpr size_t kBytes = (size_t{1} << 20) + 3;
  constexpr size_t kPage = 4096;
  constexpr size_t kAllocated = (kBytes + kPage - 1) / kPage * kPage;
  std::unique_ptr<unsigned char, decltype(&std::free)> in(
      static_cast<unsigned char*>(std::aligned_alloc(kPage, kAllocated)), &std::free);
  std::unique_ptr<unsigned char, decltype(&std::free)> out(
      static_cast<unsigned char*>(std::aligned_alloc(kPage, kAllocated)), &std::free);
  REQUIRE(in != nullptr);
  REQUIRE(out != nullptr);
  for (size_t i = 0; i < kBytes; ++i) in.get()[i] = static_cast<unsigned char>(i * 7 + 1);
  std::memset(out.get(), 0, kBytes);
  {
    HostRegistration pin_in = take(HostRegistration::register_range(in.get(), kBytes));
    HostRegistration pin_out = take(HostRegistration::register_range(out.get(), kBytes));
    CHECK(pin_in.size() == kBytes);
    CHECK(pin_in.data() == in.get());
    auto twice = HostRegistration::register_range(in.get(), kBytes);
    CHECK_FALSE(twice.ok());
    DeviceBuffer d = take(DeviceBuffer::allocate(kBytes));
    REQUIRE_OK(copy_to_device_async(d.ptr(), in.get(), kBytes, stream));
    REQUIRE_OK(copy_to_host_async(out.get(), d.ptr(), kBytes, stream));
    REQUIRE_OK(stream.synchronize());
  }
  CHECK(std::memcmp(in.get(), out.get(), kBytes) == 0);
}
