// [gpu] cases of CompletionBridge: host functions queued on real streams deliver their tokens
// to the owner's thread through the notifier.
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <vector>

#include "cuda/host_bridge.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/support/gpu.h"

using ps::Code;
using namespace ps::cuda;
using ps::cuda::testing::Gate;
using ps::cuda::testing::open_gpu;
using ps::cuda::testing::take;
using namespace std::chrono_literals;

namespace {

// The owner side of a bridge in a test: a notifier that wakes a condition variable, and a
// wait that drains until a predicate on everything received so far holds (or 10 s pass).
class Owner {
 public:
  std::function<void()> notifier() {
    return [this] {
      std::lock_guard<std::mutex> lock(mutex_);
      ++notifications_;
      wake_.notify_all();
    };
  }

  // Drains `bridge` on every wake-up until `done(received)`; false on time-out.
  template <typename Done>
  bool drain_until(CompletionBridge& bridge, Done done) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    for (;;) {
      bridge.drain(&received);
      if (done(received)) return true;
      std::unique_lock<std::mutex> lock(mutex_);
      if (!wake_.wait_until(lock, deadline, [&] { return notifications_ > seen_; })) {
        return false;
      }
      seen_ = notifications_;
    }
  }

  uint64_t notifications() {
    std::lock_guard<std::mutex> lock(mutex_);
    return notifications_;
  }

  std::vector<uint64_t> received;

 private:
  std::mutex mutex_;
  std::condition_variable wake_;
  uint64_t notifications_ = 0;
  uint64_t seen_ = 0;
};

uint64_t token(uint64_t stream, uint64_t seq) { return (stream << 32) | seq; }

size_t count_of_stream(const std::vector<uint64_t>& tokens, uint64_t stream) {
  size_t n = 0;
  for (uint64_t t : tokens) n += (t >> 32) == stream;
  return n;
}

}  // namespace

TEST_CASE("bridge: tokens of two streams arrive exactly once, in stream order", "[cuda][gpu]") {
  PS_REQUIRE_GPU();
  auto gpu = open_gpu();
  constexpr uint64_t kPerStream = 100;
  Stream held = take(Stream::create(StreamPriority::kLow));
  Stream free_running = take(Stream::create(StreamPriority::kHigh));
  DeviceBuffer scratch = take(DeviceBuffer::allocate(2 * 4096 * 4));
  Owner owner;
  CompletionBridge bridge(owner.notifier(), 2 * kPerStream);
  Gate gate(gpu.kernels);

  // Stream 0 is held by the gate before its first token; stream 1 runs freely. Each token
  // follows a kernel, so host functions sit between real work.
  gate.hold(held);
  for (uint64_t i = 0; i < kPerStream; ++i) {
    REQUIRE_OK(gpu.kernels.fill_u32(held, scratch.ptr(), 4096, static_cast<uint32_t>(i)));
    REQUIRE_OK(bridge.enqueue(held, token(0, i)));
    REQUIRE_OK(gpu.kernels.fill_u32(free_running, scratch.ptr() + 4096 * 4, 4096,
                                    static_cast<uint32_t>(i)));
    REQUIRE_OK(bridge.enqueue(free_running, token(1, i)));
  }
  CHECK(bridge.in_flight() <= 2 * kPerStream);

  // Every token of the free stream arrives while the held stream delivers none.
  REQUIRE(owner.drain_until(
      bridge, [&](const std::vector<uint64_t>& r) { return count_of_stream(r, 1) == kPerStream; }));
  CHECK(count_of_stream(owner.received, 0) == 0);
  CHECK(bridge.in_flight() == kPerStream);

  gate.open();
  REQUIRE(owner.drain_until(
      bridge, [&](const std::vector<uint64_t>& r) { return r.size() >= 2 * kPerStream; }));
  REQUIRE(owner.received.size() == 2 * kPerStream);
  std::map<uint64_t, uint64_t> next;
  for (uint64_t t : owner.received) {
    INFO("stream " << (t >> 32) << " token " << (t & 0xffffffffu));
    REQUIRE((t >> 32) <= 1);
    REQUIRE((t & 0xffffffffu) == next[t >> 32]);
    ++next[t >> 32];
  }
  CHECK(next[0] == kPerStream);
  CHECK(next[1] == kPerStream);
  CHECK(owner.notifications() == 2 * kPerStream);
  CHECK(bridge.in_flight() == 0);
  CHECK_FALSE(gate.timed_out());
}

TEST_CASE("bridge: capacity holds until tokens are drained", "[cuda][gpu]") {
  PS_REQUIRE_GPU();
  auto gpu = open_gpu();
  Stream stream = take(Stream::create());
  Owner owner;
  constexpr size_t kCapacity = 8;
  CompletionBridge bridge(owner.notifier(), kCapacity);
  CHECK(bridge.capacity() == kCapacity);
  Gate gate(gpu.kernels);

  gate.hold(stream);
  for (uint64_t i = 0; i < kCapacity; ++i) REQUIRE_OK(bridge.enqueue(stream, i));
  ps::Status full = bridge.enqueue(stream, 99);
  CHECK(full.code() == Code::kResourceExhausted);
  CHECK(bridge.in_flight() == kCapacity);

  gate.open();
  REQUIRE_OK(stream.synchronize());
  // Delivered (the stream has passed every host function) but not drained: still full.
  CHECK(bridge.enqueue(stream, 100).code() == Code::kResourceExhausted);
  REQUIRE(owner.drain_until(bridge,
                            [&](const std::vector<uint64_t>& r) { return r.size() >= kCapacity; }));
  CHECK(owner.received == (std::vector<uint64_t>{0, 1, 2, 3, 4, 5, 6, 7}));

  REQUIRE_OK(bridge.enqueue(stream, 8));
  REQUIRE(owner.drain_until(
      bridge, [&](const std::vector<uint64_t>& r) { return r.size() >= kCapacity + 1; }));
  CHECK(owner.received.back() == 8);
  CHECK_FALSE(gate.timed_out());
}
