// Parallel transmission's plan and timeline (models/parallel_transfer.h): one link is the
// serial pipeline of models/optimal_grouping.h; more links share the bytes; big groups are
// cut; the floor holds; bad models are refused.
#include "models/parallel_transfer.h"

#include <catch2/catch.hpp>
#include <numeric>

namespace ps::models {
namespace {

// 50 GB/s host links (50000 B/us), 3 us per copy; NVLink 350 GB/s, 2 us per hop.
LinkSet h200(uint32_t links) {
  LinkSet l;
  l.links = links;
  l.host = {3.0, 50000.0};
  l.nvlink_bytes_per_us = 350000.0;
  l.hop_fixed_us = 2.0;
  return l;
}

TEST_CASE("parallel transfer: one link is the serial pipeline", "[parallel]") {
  const std::vector<uint64_t> groups = {500'000, 0, 1'000'000, 250'000};
  auto plan = plan_parallel_transfer(groups, h200(1));
  REQUIRE(plan.ok());
  REQUIRE(plan->pieces.size() == 3);  // the empty group needs no copy
  CHECK(plan->group_arrival_us[0] == Approx(13.0));
  CHECK(plan->group_arrival_us[1] == 0.0);
  CHECK(plan->group_arrival_us[2] == Approx(13.0 + 23.0));
  CHECK(plan->group_arrival_us[3] == Approx(36.0 + 8.0));
  CHECK(plan->transfer_us == Approx(44.0));
  // The same timeline as predict_grouping over the same groups (one unit each).
  std::vector<GroupingUnit> units;
  const std::vector<double> compute = {10, 1, 30, 5};
  for (size_t g = 0; g < groups.size(); ++g) units.push_back({groups[g], compute[g]});
  auto serial = predict_grouping(units, h200(1).host, GroupStarts{0, 1, 2, 3});
  auto parallel = predict_parallel(*plan, compute);
  REQUIRE(serial.ok());
  REQUIRE(parallel.ok());
  // predict_grouping charges the fixed cost for the empty group too; ours skips it.
  CHECK(parallel->finish_us <= serial->finish_us);
  // 23 (group 0), 24 (group 1), then group 2 waits for its copy at 36: 66, then 71.
  CHECK(parallel->finish_us == Approx(71.0));
  CHECK(parallel->stall_us == Approx(13.0 + 12.0));
}

TEST_CASE("parallel transfer: more links share the bytes and arrive sooner", "[parallel]") {
  const std::vector<uint64_t> groups(16, 4'000'000);  // 64 MB in 16 groups of 80 us each
  const uint64_t total = 64'000'000;
  double previous = 0;
  for (uint32_t k : {1u, 2u, 4u, 8u}) {
    INFO(k);
    auto plan = plan_parallel_transfer(groups, h200(k));
    REQUIRE(plan.ok());
    CHECK(std::accumulate(plan->bytes_per_link.begin(), plan->bytes_per_link.end(), uint64_t{0}) ==
          total);
    CHECK(plan->transfer_us >= parallel_transfer_floor_us(total, h200(k)));
    // Within one group's copy and hop of the floor.
    CHECK(plan->transfer_us <= parallel_transfer_floor_us(total, h200(k)) + 83 + 14);
    if (k > 1) CHECK(plan->transfer_us < previous);
    previous = plan->transfer_us;
    // Every link carries a share.
    for (uint64_t b : plan->bytes_per_link) CHECK(b > 0);
  }
  // The first group always comes over the target's own link: no hop to wait for.
  auto plan = plan_parallel_transfer(groups, h200(4));
  CHECK(plan->pieces[0].link == 0);
  CHECK(plan->group_arrival_us[0] == Approx(83.0));
}

TEST_CASE("parallel transfer: a large first group is cut and spread over the links", "[parallel]") {
  // BERT-base-like: an 89 MB embedding group first, then 12 groups of 28 MB.
  std::vector<uint64_t> groups = {89'000'000};
  for (int i = 0; i < 12; ++i) groups.push_back(28'000'000);
  LinkSet whole = h200(4);
  LinkSet cut = h200(4);
  cut.max_piece_bytes = 8 << 20;
  auto a = plan_parallel_transfer(groups, whole);
  auto b = plan_parallel_transfer(groups, cut);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a->group_arrival_us[0] == Approx(3 + 1780.0));  // one link for the whole group
  CHECK(b->group_arrival_us[0] < a->group_arrival_us[0] / 3);
  CHECK(b->transfer_us < a->transfer_us);
  // Pieces cover each group exactly, at aligned offsets, in order.
  std::vector<uint64_t> covered(groups.size(), 0);
  for (const PieceRoute& p : b->pieces) {
    CHECK(p.offset == covered[p.group]);
    CHECK(p.offset % cut.piece_align == 0);
    CHECK(p.bytes <= uint64_t{8} << 20);
    covered[p.group] += p.bytes;
  }
  CHECK(covered == groups);
}

TEST_CASE("parallel transfer: a slow NVLink keeps the bytes on the target's link", "[parallel]") {
  LinkSet slow = h200(2);
  slow.nvlink_bytes_per_us = 1000.0;  // 1 GB/s: forwarding never pays
  auto plan = plan_parallel_transfer(std::vector<uint64_t>{1'000'000, 1'000'000}, slow);
  REQUIRE(plan.ok());
  CHECK(plan->bytes_per_link[1] == 0);
  CHECK(plan->transfer_us == Approx(46.0));
}

TEST_CASE("parallel transfer: pieces are timed by the bytes they really copy", "[parallel]") {
  // Group 1 (40 MB, cut into 10 MB pieces) is an embedding table read from the host except
  // its last 2 MB: its first three pieces copy nothing, the fourth 8 of its 10 MB.
  const std::vector<uint64_t> groups = {10'000'000, 40'000'000, 10'000'000};
  LinkSet l = h200(2);
  l.max_piece_bytes = 10'000'000;
  l.piece_align = 1;
  const CopiedBytes copied = [](uint32_t group, uint64_t offset, uint64_t bytes) -> uint64_t {
    if (group != 1) return bytes;
    const uint64_t table_end = 38'000'000;  // the table: [0, 38 MB) of group 1
    const uint64_t end = offset + bytes;
    return end <= table_end ? 0 : end - std::max(offset, table_end);
  };
  auto plan = plan_parallel_transfer(groups, l, copied);
  REQUIRE(plan.ok());
  REQUIRE(plan->pieces.size() == 6);  // every piece is still there: they tile the groups
  for (int i : {1, 2, 3}) {
    INFO(i);
    CHECK(plan->pieces[i].group == 1);
    CHECK(plan->pieces[i].link == 0);
    CHECK(plan->pieces[i].arrival_us == 0.0);
  }
  CHECK(plan->pieces[4].bytes == 10'000'000);
  CHECK(std::accumulate(plan->bytes_per_link.begin(), plan->bytes_per_link.end(), uint64_t{0}) ==
        10'000'000 + 2'000'000 + 10'000'000);
  // Group 1 arrives with its 2 MB piece: about one piece's copy after the start, not after 40 MB.
  CHECK(plan->group_arrival_us[1] < 2 * (3.0 + 10'000'000 / 50000.0));
  // Without the function the same groups take far longer.
  auto full = plan_parallel_transfer(groups, l);
  REQUIRE(full.ok());
  CHECK(full->transfer_us > plan->transfer_us + 300);
}

TEST_CASE("parallel transfer: bad link sets and compute lists are refused", "[parallel]") {
  const std::vector<uint64_t> groups = {100};
  LinkSet l = h200(0);
  CHECK(plan_parallel_transfer(groups, l).status().code() == Code::kInvalidArgument);
  l = h200(2);
  l.nvlink_bytes_per_us = 0;
  CHECK(plan_parallel_transfer(groups, l).status().code() == Code::kInvalidArgument);
  l = h200(1);
  l.nvlink_bytes_per_us = 0;  // not needed with one link
  CHECK(plan_parallel_transfer(groups, l).ok());
  l.host.bytes_per_us = 0;
  CHECK(plan_parallel_transfer(groups, l).status().code() == Code::kInvalidArgument);
  l = h200(2);
  l.hop_fixed_us = -1;
  CHECK(plan_parallel_transfer(groups, l).status().code() == Code::kInvalidArgument);
  l = h200(2);
  l.piece_align = 0;
  CHECK(plan_parallel_transfer(groups, l).status().code() == Code::kInvalidArgument);
  auto empty = plan_parallel_transfer({}, h200(2));
  REQUIRE(empty.ok());
  CHECK(empty->transfer_us == 0);
  auto plan = plan_parallel_transfer(groups, h200(2));
  CHECK(predict_parallel(*plan, std::vector<double>{1, 2}).status().code() ==
        Code::kInvalidArgument);
  CHECK(parallel_transfer_floor_us(0, h200(4)) == 0);
}

}  // namespace
}  // namespace ps::models
