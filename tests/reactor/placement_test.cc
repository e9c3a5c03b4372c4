// Placement over simulated device sets (reactor/placement.h): residency first, least loaded
// next, ties by index, full and unhealthy devices, training pinned, one device, many devices.
#include "reactor/placement.h"

#include <catch2/catch.hpp>

namespace ps::reactor {
namespace {

std::vector<DeviceState> devices(size_t n, uint32_t capacity = 2) {
  std::vector<DeviceState> out(n);
  for (size_t i = 0; i < n; ++i) {
    out[i].name = std::to_string(i);
    out[i].capacity = capacity;
  }
  return out;
}

TEST_CASE("placement: one device takes everything while it is healthy", "[placement]") {
  auto d = devices(1);
  CHECK(place_inference(d, "a") == 0u);
  d[0].in_flight = 5;  // over capacity: still the only one
  CHECK(place_inference(d, "a") == 0u);
  d[0].healthy = false;
  CHECK_FALSE(place_inference(d, "a").has_value());
  CHECK(place_training(d, "").status().code() == Code::kUnavailable);
}

TEST_CASE("placement: idle devices tie to the lowest index", "[placement]") {
  auto d = devices(4);
  CHECK(place_inference(d, "a") == 0u);
  d[0].in_flight = 1;
  CHECK(place_inference(d, "a") == 1u);
  d[1].in_flight = 1;
  d[2].in_flight = 1;
  CHECK(place_inference(d, "a") == 3u);
}

TEST_CASE("placement: a resident model goes where it is, unless that device is full",
          "[placement]") {
  auto d = devices(3);
  d[2].resident = {"b", "a"};
  d[2].in_flight = 1;  // busier than 0 and 1, but holds the model and has room
  CHECK(place_inference(d, "a") == 2u);
  CHECK(place_inference(d, "c") == 0u);  // not resident anywhere: least loaded
  d[2].in_flight = 2;                    // full: a second copy on an idle device beats waiting
  CHECK(place_inference(d, "a") == 0u);
  // Resident on two devices: the less loaded of them.
  d[1].resident = {"a"};
  d[1].in_flight = 1;
  d[2].in_flight = 0;
  CHECK(place_inference(d, "a") == 2u);
  d[2].in_flight = 1;
  CHECK(place_inference(d, "a") == 1u);  // tie between 1 and 2: lowest index
}

TEST_CASE("placement: a model being switched in counts as resident (no double switch)",
          "[placement]") {
  auto d = devices(2);
  d[1].in_flight = 1;
  d[1].in_flight_models = {"a"};
  CHECK(place_inference(d, "a") == 1u);
  // Policies that evict after each task turn that off: least loaded wins.
  PlacementRules evicting;
  evicting.in_flight_holds = false;
  CHECK(place_inference(d, "a", evicting) == 0u);
  // Residency itself still counts with that rule.
  d[1].resident = {"a"};
  CHECK(place_inference(d, "a", evicting) == 1u);
}

TEST_CASE("placement: when every device is full the model's device still wins", "[placement]") {
  auto d = devices(3, 1);
  for (auto& s : d) s.in_flight = 1;
  d[1].resident = {"a"};
  CHECK(place_inference(d, "a") == 1u);
  CHECK(place_inference(d, "z") == 0u);
  d[0].in_flight = 3;
  CHECK(place_inference(d, "z") == 1u);
}

TEST_CASE("placement: load is in_flight per capacity, then switch bytes, then training",
          "[placement]") {
  auto d = devices(2);
  d[0].capacity = 4;
  d[0].in_flight = 2;  // half full
  d[1].capacity = 2;
  d[1].in_flight = 1;  // half full: equal
  CHECK(place_inference(d, "a") == 0u);
  d[0].pending_switch_bytes = 100;
  CHECK(place_inference(d, "a") == 1u);
  d[1].pending_switch_bytes = 100;
  d[1].training_jobs = 1;
  CHECK(place_inference(d, "a") == 0u);
  d[0].in_flight = 3;  // three quarters
  CHECK(place_inference(d, "a") == 1u);
}

TEST_CASE("placement: unhealthy devices are never chosen", "[placement]") {
  auto d = devices(3);
  d[0].healthy = false;
  d[0].resident = {"a"};
  CHECK(place_inference(d, "a") == 1u);
  d[1].healthy = false;
  CHECK(place_inference(d, "a") == 2u);
  d[2].in_flight = 9;
  CHECK(place_inference(d, "a") == 2u);
  d[2].healthy = false;
  CHECK_FALSE(place_inference(d, "a").has_value());
}

TEST_CASE("placement: training goes to a named device or the least loaded one without a job",
          "[placement]") {
  auto d = devices(3);
  CHECK(*place_training(d, "") == 0u);
  d[0].training_jobs = 1;
  CHECK(*place_training(d, "") == 1u);
  d[1].in_flight = 2;
  CHECK(*place_training(d, "") == 2u);
  d[2].training_jobs = 1;
  CHECK(*place_training(d, "") == 1u);  // the only one without a job, busy or not
  d[1].training_jobs = 2;
  CHECK(*place_training(d, "") == 0u);  // all have jobs: fewest jobs, then least loaded
  d[2].in_flight = 0;
  d[0].in_flight = 1;
  CHECK(*place_training(d, "") == 2u);
  // Named: wherever it is asked, jobs or not.
  CHECK(*place_training(d, "1") == 1u);
  auto bad = place_training(d, "7");
  CHECK(bad.status().code() == Code::kInvalidArgument);
  CHECK(bad.status().message().find("0, 1, 2") != std::string::npos);
  d[1].healthy = false;
  CHECK(place_training(d, "1").status().code() == Code::kUnavailable);
}

TEST_CASE("placement: many devices spread a burst evenly and keep models together", "[placement]") {
  auto d = devices(8, 2);
  // 16 requests of different models, each placed and counted: every device gets two.
  for (int r = 0; r < 16; ++r) {
    const std::string model = "m" + std::to_string(r);
    auto at = place_inference(d, model);
    REQUIRE(at.has_value());
    ++d[*at].in_flight;
    d[*at].in_flight_models.push_back(model);
  }
  for (const auto& s : d) CHECK(s.in_flight == 2);
  // A 17th of a model already in flight on device 5 goes there (everyone is full).
  CHECK(place_inference(d, "m5") == 5u);
  // Completions free device 6: a new model goes there, m5 still to device 5.
  d[6].in_flight = 0;
  d[6].in_flight_models.clear();
  CHECK(place_inference(d, "new") == 6u);
  CHECK(place_inference(d, "m5") == 6u);  // its own device is full: the one with room
}

}  // namespace
}  // namespace ps::reactor
