// CompletionQueue, the host side of CompletionBridge, exercised from plain threads standing in
// for the driver's callback thread. No GPU needed.
#include "cuda/completion_queue.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

using ps::Code;
using ps::cuda::CompletionQueue;
using namespace std::chrono_literals;

namespace {

void* reserve_ok(CompletionQueue& q, uint64_t token) {
  auto r = q.reserve(token);
  if (!r.ok()) FAIL(r.status().to_string());
  return *r;
}

}  // namespace

TEST_CASE("completion queue: capacity, delivery order and recycling", "[cuda][bridge]") {
  int notified = 0;
  CompletionQueue q([&] { ++notified; }, 3);
  CHECK(q.capacity() == 3);

  void* a = reserve_ok(q, 10);
  void* b = reserve_ok(q, 11);
  void* c = reserve_ok(q, 12);
  CHECK(q.in_flight() == 3);
  auto full = q.reserve(13);
  REQUIRE_FALSE(full.ok());
  CHECK(full.status().code() == Code::kResourceExhausted);

  CompletionQueue::deliver(b);
  CompletionQueue::deliver(a);
  CHECK(notified == 2);
  CHECK(q.in_flight() == 1);
  CHECK(q.delivered() == 2);
  // Delivered but not drained: the records are still busy.
  CHECK(q.reserve(14).status().code() == Code::kResourceExhausted);

  std::vector<uint64_t> out = {99};  // drain appends
  CHECK(q.drain(&out) == 2);
  CHECK(out == (std::vector<uint64_t>{99, 11, 10}));
  CHECK(q.delivered() == 0);
  CHECK(q.drain(&out) == 0);

  void* d = reserve_ok(q, 15);
  void* e = reserve_ok(q, 16);
  CHECK(q.reserve(17).status().code() == Code::kResourceExhausted);
  CompletionQueue::deliver(c);
  CompletionQueue::deliver(e);
  CompletionQueue::deliver(d);
  out.clear();
  CHECK(q.drain(&out) == 3);
  CHECK(out == (std::vector<uint64_t>{12, 16, 15}));
  CHECK(notified == 5);
  CHECK(q.in_flight() == 0);
}

TEST_CASE("completion queue: a cancelled record is reusable and never delivered",
          "[cuda][bridge]") {
  int notified = 0;
  CompletionQueue q([&] { ++notified; }, 1);
  void* a = reserve_ok(q, 1);
  CHECK_FALSE(q.wait_until_idle(0ms));
  q.cancel(a);
  CHECK(q.in_flight() == 0);
  CHECK(q.wait_until_idle(0ms));
  void* b = reserve_ok(q, 2);
  CompletionQueue::deliver(b);
  std::vector<uint64_t> out;
  CHECK(q.drain(&out) == 1);
  CHECK(out == std::vector<uint64_t>{2});
  CHECK(notified == 1);
}

// Four "streams", each a thread delivering its records in order, and the test thread as the
// owner: it reserves, hands records to the streams, and drains when notified, the way the
// reactor will. Every token must arrive exactly once, each stream's in order.
TEST_CASE("completion queue: concurrent delivery from several threads", "[cuda][bridge]") {
  constexpr int kStreams = 4;
  constexpr uint64_t kPerStream = 2000;
  constexpr size_t kCapacity = 16;

  std::mutex wake_mutex;
  std::condition_variable wake;
  uint64_t notifications = 0;
  auto notifier = [&] {
    std::lock_guard<std::mutex> lock(wake_mutex);
    ++notifications;
    wake.notify_all();
  };
  CompletionQueue q(notifier, kCapacity);

  struct FakeStream {
    std::mutex mutex;
    std::condition_variable ready;
    std::deque<void*> records;  // nullptr = stop
  };
  std::vector<std::unique_ptr<FakeStream>> streams;
  std::vector<std::thread> threads;
  for (int s = 0; s < kStreams; ++s) {
    streams.push_back(std::make_unique<FakeStream>());
    FakeStream* fs = streams.back().get();
    threads.emplace_back([fs] {
      for (;;) {
        std::unique_lock<std::mutex> lock(fs->mutex);
        fs->ready.wait(lock, [fs] { return !fs->records.empty(); });
        void* r = fs->records.front();
        fs->records.pop_front();
        lock.unlock();
        if (r == nullptr) return;
        CompletionQueue::deliver(r);
      }
    });
  }
  auto submit = [&](int s, void* record) {
    {
      std::lock_guard<std::mutex> lock(streams[s]->mutex);
      streams[s]->records.push_back(record);
    }
    streams[s]->ready.notify_one();
  };

  std::vector<uint64_t> received;
  uint64_t seen = 0;
  auto wait_and_drain = [&] {
    std::unique_lock<std::mutex> lock(wake_mutex);
    bool woke = wake.wait_for(lock, 10s, [&] { return notifications > seen; });
    seen = notifications;
    lock.unlock();
    REQUIRE(woke);
    q.drain(&received);
  };

  uint64_t next[kStreams] = {};
  uint64_t submitted = 0;
  while (submitted < kStreams * kPerStream) {
    int s = static_cast<int>(submitted % kStreams);
    auto r = q.reserve((uint64_t(s) << 32) | next[s]);
    if (!r.ok()) {
      REQUIRE(r.status().code() == Code::kResourceExhausted);
      if (q.drain(&received) == 0) wait_and_drain();
      continue;
    }
    submit(s, *r);
    ++next[s];
    ++submitted;
  }
  while (received.size() < submitted) wait_and_drain();
  for (int s = 0; s < kStreams; ++s) submit(s, nullptr);
  for (auto& t : threads) t.join();

  CHECK(q.wait_until_idle(0ms));
  REQUIRE(received.size() == kStreams * kPerStream);
  std::map<uint64_t, uint64_t> expected_next;
  for (uint64_t token : received) {
    uint64_t stream = token >> 32;
    uint64_t seq = token & 0xffffffffu;
    INFO("stream " << stream << " token " << seq);
    REQUIRE(seq == expected_next[stream]);
    ++expected_next[stream];
  }
  for (int s = 0; s < kStreams; ++s) CHECK(expected_next[s] == kPerStream);
  std::lock_guard<std::mutex> lock(wake_mutex);
  CHECK(notifications == kStreams * kPerStream);
}

// The destructor must not free the queue while a deliver() is still running its notifier.
TEST_CASE("completion queue: destruction waits for a delivery in progress", "[cuda][bridge]") {
  std::mutex m;
  std::condition_variable cv;
  bool in_notifier = false;
  bool go = false;
  std::atomic<bool> notifier_returned{false};

  auto q = std::make_unique<CompletionQueue>(
      [&] {
        std::unique_lock<std::mutex> lock(m);
        in_notifier = true;
        cv.notify_all();
        cv.wait(lock, [&] { return go; });
        notifier_returned = true;
      },
      1);
  void* record = reserve_ok(*q, 1);
  std::thread deliverer([record] { CompletionQueue::deliver(record); });
  {
    std::unique_lock<std::mutex> lock(m);
    REQUIRE(cv.wait_for(lock, 10s, [&] { return in_notifier; }));
  }
  std::atomic<bool> returned_before_destroyed{false};
  std::thread destroyer([&] {
    q.reset();
    returned_before_destroyed = notifier_returned.load();
  });
  {
    std::lock_guard<std::mutex> lock(m);
    go = true;
  }
  cv.notify_all();
  destroyer.join();
  deliverer.join();
  CHECK(returned_before_destroyed);
}
