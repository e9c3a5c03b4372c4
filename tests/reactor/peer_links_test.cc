// PeerLinks (reactor/peer_links.h): which links a switch may borrow. Pure bookkeeping over
// LinkStreams values (no GPU): idle devices only, never the claimer's own, never one link to two
// claims, loopback links first, withdrawal waiting for the claims, and many threads claiming and
// releasing at once without a link ever held twice.
#include "reactor/peer_links.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>
#include <vector>

namespace ps::reactor {
namespace {

models::gpu::LinkStreams link_at(uint64_t staging) {
  models::gpu::LinkStreams l;
  l.staging = staging;  // identifies the link in these tests
  l.slots = 2;
  l.slot_bytes = 1 << 20;
  return l;
}

std::vector<uint64_t> staged(const PeerLinks::Claim& c) {
  std::vector<uint64_t> out;
  for (uint32_t i = 0; i < c.count; ++i) out.push_back(c.links[i].staging);
  return out;
}

TEST_CASE("peer links: idle devices other than the claimer, each link to one claim",
          "[peer_links]") {
  PeerLinks links({0, 1, 2, 3});
  for (int d = 0; d < 4; ++d) links.add(d, link_at(100 + d));

  auto a = links.claim(0, 8);
  CHECK(staged(a) == std::vector<uint64_t>{101, 102, 103});  // not its own
  auto b = links.claim(1, 8);
  CHECK(b.count == 1);  // only device 0's link is free
  CHECK(staged(b) == std::vector<uint64_t>{100});
  links.release(a);
  links.release(b);

  links.set_busy(2, true);  // device 2 runs a request of its own
  auto c = links.claim(0, 8);
  CHECK(staged(c) == std::vector<uint64_t>{101, 103});
  links.release(c);
  links.set_busy(2, false);
  links.set_busy(7, true);  // unknown: ignored

  auto d = links.claim(3, 1);  // at most one
  CHECK(staged(d) == std::vector<uint64_t>{100});
  links.release(d);
  CHECK(links.claim(0, 0).count == 0);
  CHECK(links.lent() == 3 + 1 + 2 + 1);
}

TEST_CASE("peer links: loopback links go first and to any claimer", "[peer_links]") {
  PeerLinks links({0});
  links.add(PeerLinks::kLoopback, link_at(7));
  links.add(PeerLinks::kLoopback, link_at(8));
  links.set_busy(0, true);  // the claimer is busy with the very switch that claims
  auto a = links.claim(0, 5);
  CHECK(staged(a) == std::vector<uint64_t>{7, 8});
  CHECK(links.claim(0, 5).count == 0);  // both held
  links.release(a);
  CHECK(links.claim(0, 1).count == 1);
}

TEST_CASE("peer links: remove waits for the claims and stops new ones", "[peer_links]") {
  PeerLinks links({0, 1});
  links.add(1, link_at(11));
  auto held = links.claim(0, 4);
  REQUIRE(held.count == 1);
  std::atomic<bool> removed{false};
  std::thread t([&] {
    links.remove(1);
    removed = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK_FALSE(removed.load());  // still lent
  links.release(held);
  t.join();
  CHECK(removed.load());
  CHECK(links.claim(0, 4).count == 0);  // withdrawn
}

TEST_CASE("peer links: concurrent claims never share a link", "[peer_links]") {
  constexpr int kDevices = 8;
  std::vector<int> devices;
  for (int d = 0; d < kDevices; ++d) devices.push_back(d);
  PeerLinks links(devices);
  for (int d = 0; d < kDevices; ++d) links.add(d, link_at(d));
  std::vector<std::atomic<int>> holders(kDevices);
  std::atomic<int> shared{0};
  std::vector<std::thread> threads;
  for (int d = 0; d < kDevices; ++d) {
    threads.emplace_back([&, d] {
      for (int i = 0; i < 2000; ++i) {
        links.set_busy(d, true);
        auto c = links.claim(d, 3);
        for (uint32_t k = 0; k < c.count; ++k) {
          const auto id = static_cast<int>(c.links[k].staging);
          if (id == d || holders[id].fetch_add(1) != 0) ++shared;
        }
        for (uint32_t k = 0; k < c.count; ++k) holders[c.links[k].staging].fetch_sub(1);
        links.release(c);
        links.set_busy(d, false);
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(shared.load() == 0);
}

}  // namespace
}  // namespace ps::reactor
