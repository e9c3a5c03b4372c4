// Switching policies and the resident set (reactor/switch_policy.h): pure, runs in CI.
#include "reactor/switch_policy.h"

#include <catch2/catch.hpp>
#include <map>
#include <vector>

#include "reactor/backend_factory.h"

namespace ps::reactor {
namespace {

TEST_CASE("every known policy has a definition and they differ as documented", "[policy]") {
  for (std::string_view name : kPolicies) {
    auto p = policy_named(name);
    INFO(name);
    REQUIRE(p.ok());
    CHECK(p->name == name);
  }
  CHECK_FALSE(policy_named("fastest").ok());

  auto pipeswitch = *policy_named("pipeswitch");
  CHECK(pipeswitch.home == WeightHome::kPinned);
  CHECK(pipeswitch.memory == DeviceMemory::kPool);
  CHECK(pipeswitch.residency == Residency::kEvictAfterTask);
  CHECK_FALSE(pipeswitch.whole_model_copy);
  CHECK(policy_named("cache")->residency == Residency::kLru);
  CHECK(policy_named("ready")->residency == Residency::kAlways);
  CHECK(policy_named("stop-and-start")->whole_model_copy);
  CHECK(policy_named("kill-restart")->fresh_process);
  CHECK(policy_named("no-pool")->memory == DeviceMemory::kDriver);
  CHECK(policy_named("pageable")->home == WeightHome::kPageable);
  CHECK(policy_named("managed")->home == WeightHome::kManaged);
}

TEST_CASE("the resident set offers the least recently used model as the victim", "[policy]") {
  ResidentSet set;
  CHECK_FALSE(set.victim("a").has_value());
  set.add("a", false);
  set.add("b", false);
  set.add("c", false);
  CHECK(set.victim("") == "a");
  set.touch("a");  // order now b, c, a
  CHECK(set.victim("") == "b");
  CHECK(set.victim("b") == "c");  // the model being switched in is never its own victim
  set.remove("b");
  CHECK_FALSE(set.contains("b"));
  CHECK(set.victim("") == "c");
  set.touch("missing");  // no-op
  CHECK(set.size() == 2);
}

TEST_CASE("pinned (ready) models are never victims", "[policy]") {
  ResidentSet set;
  set.add("ready", true);
  set.add("x", false);
  CHECK(set.victim("") == "x");
  CHECK_FALSE(set.victim("x").has_value());
  set.remove("x");
  CHECK_FALSE(set.victim("").has_value());
  CHECK(set.contains("ready"));
}

// place_evicting against a simulated pool of fixed capacity: LRU evictions under a request
// sequence, and a model larger than the whole pool fails after evicting everything evictable.
TEST_CASE("cache policy simulation: LRU evictions under a request sequence", "[policy]") {
  const uint64_t capacity = 1000;
  std::map<std::string, uint64_t> sizes = {{"r", 400}, {"i", 300}, {"b", 500}, {"huge", 1200}};
  std::map<std::string, uint64_t> placed;
  ResidentSet set;
  std::vector<std::string> evictions;
  auto used = [&] {
    uint64_t u = 0;
    for (auto& [n, s] : placed) u += s;
    return u;
  };
  auto request = [&](const std::string& m) -> bool {
    if (set.contains(m)) {
      set.touch(m);
      return true;
    }
    Status s = set.place_evicting(
        m,
        [&]() -> Status {
          if (used() + sizes[m] > capacity) return out_of_memory("no room for ", m);
          placed[m] = sizes[m];
          return Status::OK();
        },
        [&](const std::string& victim) {
          evictions.push_back(victim);
          placed.erase(victim);
        });
    if (!s.ok()) return false;
    set.add(m, false);
    return true;
  };
  CHECK(request("r"));
  CHECK(request("i"));
  CHECK(request("r"));  // hit; i is now LRU
  CHECK(request("b"));  // 400 + 300 + 500 > 1000: evict i
  CHECK(evictions == std::vector<std::string>{"i"});
  CHECK(request("i"));  // evict r (LRU), then fits
  CHECK(evictions == std::vector<std::string>{"i", "r"});
  CHECK(set.contains("b"));
  CHECK_FALSE(set.contains("r"));
  set.add("pinned", true);
  placed["pinned"] = 100;
  CHECK_FALSE(request("huge"));  // evicts everything evictable and still does not fit
  CHECK(used() == 100);          // the pinned model stayed
  CHECK(set.contains("pinned"));
}

}  // namespace
}  // namespace ps::reactor
