// DevicePool on a GPU: mapping and unmapping, sub-allocations holding their own data, errors.
// Every case is [gpu] and skips (GPU-SKIP) without a driver or device.
#include <catch2/catch.hpp>
#include <cstring>
#include <utility>
#include <vector>

#include "cuda/basic_kernels.h"
#include "cuda/copy.h"
#include "cuda/device.h"
#include "cuda/device_pool.h"
#include "cuda/host_memory.h"
#include "cuda/module.h"
#include "cuda/stream.h"
#include "tests/support/gpu.h"

namespace {

using ps::Code;
using ps::cuda::BasicKernels;
using ps::cuda::Device;
using ps::cuda::DevicePool;
using ps::cuda::DevicePoolOptions;
using ps::cuda::Module;
using ps::cuda::PatternCheck;
using ps::cuda::PinnedBuffer;
using ps::cuda::PoolRange;
using ps::cuda::Stream;

constexpr uint64_t kMiB = uint64_t{1} << 20;

template <typename T>
T must(ps::Result<T> r) {
  INFO(r.status().to_string());
  REQUIRE(r.ok());
  return std::move(r).value();
}

void must_ok(const ps::Status& s) {
  INFO(s.to_string());
  REQUIRE(s.ok());
}

// What a GPU case needs besides the pool. Members are destroyed in reverse order: Device last.
struct Gpu {
  Device device;
  Stream stream;
  Module module;
  BasicKernels kernels;
};

Gpu open_gpu() {
  Device device = must(Device::open(0));
  Stream stream = must(Stream::create());
  Module module = must(Module::load_embedded());
  BasicKernels kernels = must(BasicKernels::load(module));
  return Gpu{std::move(device), std::move(stream), std::move(module), std::move(kernels)};
}

size_t free_device_memory(const Device& device) { return must(device.memory_info()).first; }

// Counts the words of [ptr, ptr + 4 * words) that differ from the iota pattern (a, b), on the
// GPU. `result` is 16 bytes of device memory.
PatternCheck check_pattern(Gpu& gpu, CUdeviceptr ptr, uint64_t words, uint32_t a, uint32_t b,
                           CUdeviceptr result) {
  PinnedBuffer host = must(PinnedBuffer::allocate(sizeof(PatternCheck)));
  must_ok(gpu.kernels.check_iota_u32(gpu.stream, ptr, words, a, b, result));
  must_ok(ps::cuda::copy_to_host_async(host.data(), result, sizeof(PatternCheck), gpu.stream));
  must_ok(gpu.stream.synchronize());
  PatternCheck out;
  std::memcpy(&out, host.data(), sizeof(out));
  return out;
}

}  // namespace

TEST_CASE("creating and destroying pools maps and gives back the memory", "[gpu][pool]") {
  PS_REQUIRE_GPU();
  Gpu gpu = open_gpu();
  constexpr uint64_t kBytes = 256 * kMiB;
  // One pool first, so lazy driver allocations do not count as a leak.
  { DevicePool warm = must(DevicePool::create(gpu.device, kBytes)); }
  const size_t before = free_device_memory(gpu.device);

  for (int round = 0; round < 5; ++round) {
    INFO("round " << round);
    DevicePoolOptions options;
    options.chunk_bytes = 1;  // rounded up to the granularity: many chunks, many mappings
    DevicePool pool = must(DevicePool::create(gpu.device, kBytes, options));
    auto s = pool.stats();
    CHECK(s.device_ordinal == 0);
    CHECK(s.requested_bytes == kBytes);
    CHECK(s.mapped_bytes == kBytes);  // 256 MiB is a multiple of any granularity in use
    CHECK(s.granularity > 0);
    CHECK(s.chunk_bytes == s.granularity);
    CHECK(s.chunk_count == kBytes / s.granularity);
    CHECK(pool.base() != 0);
    CHECK(pool.base() % DevicePool::kMaxAlignment == 0);
    CHECK(pool.capacity() == kBytes);
    CHECK(s.allocator.free_bytes == kBytes);
    // The physical memory is committed at create(), not at first use.
    CHECK(free_device_memory(gpu.device) + kBytes <= before + 4 * kMiB);
  }
  // Every round gave back its 256 MiB (a leak would show as 256 MiB per round).
  CHECK(free_device_memory(gpu.device) + 8 * kMiB >= before);

  // The default chunking maps the same memory in fewer, larger chunks.
  DevicePool big_chunks = must(DevicePool::create(gpu.device, kBytes));
  CHECK(big_chunks.stats().chunk_count == 1);
  CHECK_THAT(big_chunks.describe(), Catch::Contains("mapped in 1 chunks"));
}

TEST_CASE("sub-allocations hold their own data and do not interfere", "[gpu][pool]") {
  PS_REQUIRE_GPU();
  Gpu gpu = open_gpu();
  DevicePoolOptions options;
  options.chunk_bytes = 1;  // ranges below span chunk boundaries
  DevicePool pool = must(DevicePool::create(gpu.device, 64 * kMiB, options));
  PoolRange result = must(pool.allocate(sizeof(PatternCheck), "check-result"));

  struct Slot {
    uint64_t bytes;
    uint64_t alignment;
    PoolRange range;
    uint32_t a;
    uint32_t b;
  };
  std::vector<Slot> slots = {
      {1 * kMiB, 256, {}, 3, 100},
      {5 * kMiB + 12, 4096, {}, 5, 200},  // spans three 2 MiB chunks
      {4096, 64 * 1024, {}, 7, 300},
      {12, 4, {}, 9, 400},
      {17 * kMiB, DevicePool::kMaxAlignment, {}, 11, 500},
  };
  for (size_t i = 0; i < slots.size(); ++i) {
    Slot& s = slots[i];
    s.range = must(pool.allocate(s.bytes, s.alignment, ps::str_cat("slot", i)));
    CHECK(s.range.ptr == pool.base() + s.range.offset());
    CHECK(s.range.ptr % s.alignment == 0);
    CHECK(s.range.size() == s.bytes);
    CHECK(pool.contains(s.range.ptr, s.bytes));
  }
  // Fill every slot, then check every slot: a range that overlapped another would be overwritten.
  for (const Slot& s : slots) {
    must_ok(gpu.kernels.iota_u32(gpu.stream, s.range.ptr, s.bytes / 4, s.a, s.b));
  }
  for (const Slot& s : slots) {
    INFO("slot of " << s.bytes << " bytes");
    PatternCheck c = check_pattern(gpu, s.range.ptr, s.bytes / 4, s.a, s.b, result.ptr);
    CHECK(c.mismatches == 0);
  }

  // Copy one slot back to the host and compare there too (data written through the pool's
  // mapping reads back through a plain copy).
  const Slot& spanning = slots[1];
  PinnedBuffer host = must(PinnedBuffer::allocate(spanning.bytes));
  must_ok(
      ps::cuda::copy_to_host_async(host.data(), spanning.range.ptr, spanning.bytes, gpu.stream));
  must_ok(gpu.stream.synchronize());
  const auto* words = host.as<const uint32_t>();
  uint64_t host_mismatches = 0;
  for (uint64_t i = 0; i < spanning.bytes / 4; ++i) {
    if (words[i] != static_cast<uint32_t>(i) * spanning.a + spanning.b) ++host_mismatches;
  }
  CHECK(host_mismatches == 0);

  // Data written from the host through the pool, with a memset next to it.
  PinnedBuffer upload = must(PinnedBuffer::allocate(4096));
  for (uint64_t i = 0; i < 1024; ++i) upload.as<uint32_t>()[i] = static_cast<uint32_t>(i) * 13 + 7;
  must_ok(ps::cuda::copy_to_device_async(slots[2].range.ptr, upload.data(), 4096, gpu.stream));
  must_ok(ps::cuda::memset_d32_async(slots[3].range.ptr, 0xabcdef01u, 3, gpu.stream));
  CHECK(check_pattern(gpu, slots[2].range.ptr, 1024, 13, 7, result.ptr).mismatches == 0);
  CHECK(check_pattern(gpu, slots[3].range.ptr, 3, 0, 0xabcdef01u, result.ptr).mismatches == 0);

  // Free a slot, reuse its space for another range, and write it: the neighbours are intact.
  must_ok(pool.free(slots[0].range));
  PoolRange reused = must(pool.allocate(512 * 1024, "reused"));
  CHECK(reused.offset() >= slots[0].range.offset());
  CHECK(reused.offset() + reused.size() <= slots[0].range.offset() + slots[0].range.size());
  must_ok(gpu.kernels.fill_u32(gpu.stream, reused.ptr, reused.size() / 4, 0xffffffffu));
  for (size_t i = 1; i < slots.size(); ++i) {
    if (i == 2 || i == 3) continue;  // rewritten above
    INFO("slot " << i);
    const Slot& s = slots[i];
    CHECK(check_pattern(gpu, s.range.ptr, s.bytes / 4, s.a, s.b, result.ptr).mismatches == 0);
  }
  must_ok(pool.free(reused));
  for (size_t i = 1; i < slots.size(); ++i) must_ok(pool.free(slots[i].range));
  must_ok(pool.free(result));
  CHECK(pool.stats().allocator.allocation_count == 0);
  CHECK(pool.stats().allocator.free_block_count == 1);
}

TEST_CASE("a request larger than the pool is kOutOfMemory and the pool stays usable",
          "[gpu][pool]") {
  PS_REQUIRE_GPU();
  Gpu gpu = open_gpu();
  DevicePool pool = must(DevicePool::create(gpu.device, 32 * kMiB));
  PoolRange result = must(pool.allocate(sizeof(PatternCheck), "check-result"));

  auto too_big = pool.allocate(64 * kMiB, "too-big");
  REQUIRE_FALSE(too_big.ok());
  CHECK(too_big.status().code() == Code::kOutOfMemory);
  const std::string message = too_big.status().message();
  CHECK_THAT(message, Catch::Contains("too-big"));
  CHECK_THAT(message, Catch::Contains("largest free block"));
  CHECK_THAT(message, Catch::Contains("GPU 0"));

  // Fill the pool up, then ask for one byte more than is left.
  const uint64_t left = pool.stats().allocator.largest_free_block;
  PoolRange rest = must(pool.allocate(left, 1, "rest"));
  CHECK(pool.allocate(1, 1, "one-more").status().code() == Code::kOutOfMemory);
  must_ok(pool.free(rest));

  PoolRange fits = must(pool.allocate(16 * kMiB, "fits"));
  must_ok(gpu.kernels.iota_u32(gpu.stream, fits.ptr, fits.size() / 4, 31, 1));
  CHECK(check_pattern(gpu, fits.ptr, fits.size() / 4, 31, 1, result.ptr).mismatches == 0);
  CHECK(pool.stats().allocator.failed_allocations == 2);
}

TEST_CASE("bad requests and foreign frees are kInvalidArgument", "[gpu][pool]") {
  PS_REQUIRE_GPU();
  Gpu gpu = open_gpu();
  DevicePool pool = must(DevicePool::create(gpu.device, 8 * kMiB));
  CHECK(pool.allocate(0, "zero").status().code() == Code::kInvalidArgument);
  CHECK(pool.allocate(64, 3, "odd").status().code() == Code::kInvalidArgument);
  CHECK(pool.allocate(64, DevicePool::kMaxAlignment * 2, "huge-alignment").status().code() ==
        Code::kInvalidArgument);

  PoolRange r = must(pool.allocate(1024, "r"));
  PoolRange foreign = r;
  foreign.ptr += 4096;  // not base + offset: from another pool, or corrupted
  CHECK(pool.free(foreign).code() == Code::kInvalidArgument);
  must_ok(pool.free(r));
  CHECK(pool.free(r).code() == Code::kInvalidArgument);  // twice
  CHECK(DevicePool::create(gpu.device, 0).status().code() == Code::kInvalidArgument);
}

TEST_CASE("a pool larger than free device memory fails cleanly at create", "[gpu][pool]") {
  PS_REQUIRE_GPU();
  Gpu gpu = open_gpu();
  { DevicePool warm = must(DevicePool::create(gpu.device, 2 * kMiB)); }
  const size_t before = free_device_memory(gpu.device);

  auto r = DevicePool::create(gpu.device, before + 1024 * kMiB);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kOutOfMemory);
  const std::string message = r.status().message();
  CHECK_THAT(message, Catch::Contains("free of"));
  CHECK_THAT(message, Catch::Contains("GPU 0"));
  // Nothing was left behind, and the device still works.
  CHECK(free_device_memory(gpu.device) + 4 * kMiB >= before);
  DevicePool small = must(DevicePool::create(gpu.device, 16 * kMiB));
  CHECK(small.capacity() == 16 * kMiB);
}

TEST_CASE("a moved pool keeps its mapping and is released once", "[gpu][pool]") {
  PS_REQUIRE_GPU();
  Gpu gpu = open_gpu();
  { DevicePool warm = must(DevicePool::create(gpu.device, 2 * kMiB)); }
  const size_t before = free_device_memory(gpu.device);
  {
    DevicePool a = must(DevicePool::create(gpu.device, 32 * kMiB));
    PoolRange r = must(a.allocate(4 * kMiB, "kept"));
    const CUdeviceptr base = a.base();
    DevicePool b = std::move(a);
    CHECK(b.base() == base);
    CHECK(b.stats().allocator.allocation_count == 1);
    must_ok(b.free(r));
    DevicePool c = must(DevicePool::create(gpu.device, 16 * kMiB));
    c = std::move(b);  // c's own mapping is released here
    CHECK(c.base() == base);
    CHECK(c.capacity() == 32 * kMiB);
  }
  CHECK(free_device_memory(gpu.device) + 4 * kMiB >= before);
}
