// The optimal grouping search against brute force, and its timeline model.
#include <catch2/catch.hpp>

#include <random>

#include "models/optimal_grouping.h"

namespace ps::models {
namespace {

// Every grouping of n units (bit i of mask set: a group starts at unit i + 1).
std::vector<GroupStarts> all_groupings(size_t n) {
  std::vector<GroupStarts> out;
  for (uint32_t mask = 0; mask < (1u << (n - 1)); ++mask) {
    GroupStarts g{0};
    for (uint32_t i = 0; i + 1 < n; ++i) {
      if (mask & (1u << i)) g.push_back(i + 1);
    }
    out.push_back(g);
  }
  return out;
}

double finish(std::span<const GroupingUnit> units, const TransferModel& m, const GroupStarts& g) {
  auto p = predict_grouping(units, m, g);
  REQUIRE(p.ok());
  return p->finish_us;
}

TEST_CASE("predict_grouping follows the copy/compute timeline", "[grouping]") {
  // 2 units: 100 B each at 10 B/us (10 us per copy) + 1 us fixed; compute 5 and 20 us.
  const std::vector<GroupingUnit> units{{100, 5}, {100, 20}};
  const TransferModel m{1.0, 10.0};
  auto per_layer = predict_grouping(units, m, {0, 1});
  REQUIRE(per_layer.ok());
  // copy0 ends 11, compute0 11..16; copy1 ends 22, compute1 22..42.
  CHECK(per_layer->finish_us == Approx(42.0));
  CHECK(per_layer->transfer_us == Approx(22.0));
  CHECK(per_layer->stall_us == Approx(11.0 + 6.0));
  auto whole = predict_grouping(units, m, {0});
  REQUIRE(whole.ok());
  CHECK(whole->finish_us == Approx(21.0 + 25.0));  // one copy of 200 B: 21 us, then 25 us
}

TEST_CASE("predict_grouping refuses malformed groupings", "[grouping]") {
  const std::vector<GroupingUnit> units{{1, 1}, {1, 1}, {1, 1}};
  const TransferModel m{0.0, 1.0};
  CHECK_FALSE(predict_grouping(units, m, {}).ok());
  CHECK_FALSE(predict_grouping(units, m, {1}).ok());
  CHECK_FALSE(predict_grouping(units, m, {0, 2, 2}).ok());
  CHECK_FALSE(predict_grouping(units, m, {0, 3}).ok());
  CHECK_FALSE(predict_grouping(units, TransferModel{0.0, 0.0}, {0}).ok());
  CHECK(predict_grouping({}, m, {}).ok());
}

TEST_CASE("optimal_grouping equals brute force on random instances", "[grouping]") {
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<uint64_t> bytes(0, 4'000'000);
  std::uniform_real_distribution<double> compute(0.0, 300.0);
  std::uniform_real_distribution<double> fixed(0.0, 40.0);
  for (int trial = 0; trial < 300; ++trial) {
    const size_t n = 1 + trial % 11;
    std::vector<GroupingUnit> units(n);
    for (auto& u : units) {
      u.bytes = (trial % 5 == 0 && rng() % 3 == 0) ? 0 : bytes(rng);
      u.compute_us = (trial % 7 == 0 && rng() % 3 == 0) ? 0.0 : compute(rng);
    }
    const TransferModel m{fixed(rng), 50'000.0};
    auto best = optimal_grouping(units, m);
    REQUIRE(best.ok());
    const double got = finish(units, m, *best);
    double brute = std::numeric_limits<double>::infinity();
    for (const GroupStarts& g : all_groupings(n)) brute = std::min(brute, finish(units, m, g));
    INFO("trial " << trial << ", " << n << " units");
    CHECK(got == Approx(brute).epsilon(1e-12));
  }
}

TEST_CASE("optimal_grouping in the limiting cases", "[grouping]") {
  std::vector<GroupingUnit> units;
  for (int i = 0; i < 40; ++i) units.push_back({1'000'000, 30.0});
  SECTION("free copies and compute slower than transfer: only the first copy is exposed") {
    const TransferModel m{0.0, 50'000.0};
    auto g = optimal_grouping(units, m);
    REQUIRE(g.ok());
    // 1 MB copies in 20 us and computes in 30 us: a first group of one unit, after which the
    // copies stay ahead; ties go to fewer groups, so later groups may be merged.
    CHECK(finish(units, m, *g) == Approx(20.0 + 40 * 30.0));
    REQUIRE(g->size() >= 2);
    CHECK((*g)[1] == 1);
  }
  SECTION("a huge fixed cost: the whole model in one copy") {
    auto g = optimal_grouping(units, TransferModel{1e9, 50'000.0});
    REQUIRE(g.ok());
    CHECK(*g == GroupStarts{0});
  }
  SECTION("the optimum is never worse than per-layer, whole-model or any fixed grouping") {
    const TransferModel m{8.0, 50'000.0};
    auto g = optimal_grouping(units, m);
    REQUIRE(g.ok());
    GroupStarts per_layer;
    for (uint32_t i = 0; i < units.size(); ++i) per_layer.push_back(i);
    GroupStarts fours;
    for (uint32_t i = 0; i < units.size(); i += 4) fours.push_back(i);
    const double best = finish(units, m, *g);
    CHECK(best <= finish(units, m, per_layer) + 1e-9);
    CHECK(best <= finish(units, m, {0}) + 1e-9);
    CHECK(best <= finish(units, m, fours) + 1e-9);
  }
  SECTION("no units, no groups; bad models are refused") {
    auto g = optimal_grouping({}, TransferModel{1.0, 1.0});
    REQUIRE(g.ok());
    CHECK(g->empty());
    CHECK_FALSE(optimal_grouping(units, TransferModel{1.0, 0.0}).ok());
    CHECK_FALSE(optimal_grouping(units, TransferModel{-1.0, 1.0}).ok());
    std::vector<GroupingUnit> bad{{1, -1.0}};
    CHECK_FALSE(optimal_grouping(bad, TransferModel{1.0, 1.0}).ok());
  }
}

TEST_CASE("optimal_grouping handles a BERT-sized model quickly", "[grouping]") {
  std::mt19937_64 rng(7);
  std::vector<GroupingUnit> units(300);
  for (auto& u : units) u = {rng() % 5'000'000, static_cast<double>(rng() % 400)};
  auto g = optimal_grouping(units, TransferModel{6.0, 50'000.0});
  REQUIRE(g.ok());
  CHECK(g->front() == 0);
  for (size_t i = 1; i < g->size(); ++i) CHECK((*g)[i - 1] < (*g)[i]);
}

}  // namespace
}  // namespace ps::models
