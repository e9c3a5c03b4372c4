// Parallel transmission's enqueue order (models/gpu/parallel_run.h), run against a simulation
// of CUDA streams and events over host memory: every stream runs its operations in order, an
// event wait holds its stream until the record it saw at enqueue time has run (a wait on an
// event never recorded passes), and a scheduler picks which ready stream runs next at random.
// Under many interleavings, each group's layers must find exactly the host's bytes in the
// target (outside the host-read ranges, which stay untouched), a switch's pieces must not be
// overwritten in a staging slot before they are forwarded, also across two switches. Removing
// one kind of wait must make some interleaving fail, so the checks can fail.
#include "models/gpu/parallel_run.h"

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "tests/models/zoo_lowering.h"
#include "tests/support/require_ok.h"

namespace ps::models::gpu {
namespace {

constexpr uint8_t kPoison = 0xA5;

// One simulated event: each record enqueued gets the next generation; a wait enqueued after
// generation n waits until the record of generation n has run.
struct SimEvent {
  uint32_t enqueued = 0;
  std::vector<bool> done{true};  // done[0]: "never recorded" is complete
};

struct SimOp {
  enum class Kind { kCopy, kRecord, kWait, kCheck };
  Kind kind = Kind::kCopy;
  uint8_t* dst = nullptr;
  const uint8_t* src = nullptr;
  uint64_t bytes = 0;
  SimEvent* event = nullptr;
  uint32_t generation = 0;
  std::function<void()> check;

  static SimOp of(Kind kind) {
    SimOp op;
    op.kind = kind;
    return op;
  }
  static SimOp copy(uint8_t* dst, const uint8_t* src, uint64_t bytes) {
    SimOp op = of(Kind::kCopy);
    op.dst = dst;
    op.src = src;
    op.bytes = bytes;
    return op;
  }
};

// What to leave out, to show the checks catch it.
struct Faults {
  bool no_slot_waits = false;     // host copies do not wait for a slot's previous forward
  bool no_landed_waits = false;   // forwards do not wait for their piece to land
  bool no_compute_waits = false;  // layers do not wait for their group
};

class SimLanes final : public TransferLanes {
 public:
  SimLanes(uint32_t links, uint32_t slots, uint64_t slot_bytes, uint32_t events, Faults faults = {})
      : slots_(links, slots),
        slot_bytes_(slot_bytes),
        faults_(faults),
        staging_(links),
        events_(links),
        streams_(1 + 2 * links) {
    slots_[0] = 0;
    for (uint32_t l = 0; l < links; ++l) {
      staging_[l].assign(static_cast<size_t>(slots_[l]) * slot_bytes, 0);
      for (uint32_t i = 0; i < events; ++i) events_[l].push_back(std::make_unique<SimEvent>());
    }
  }

  void bind(const std::vector<uint8_t>* host, std::vector<uint8_t>* target) {
    host_ = host;
    target_ = target;
  }

  uint32_t link_count() const override { return static_cast<uint32_t>(slots_.size()); }
  uint32_t staging_slots(uint32_t link) const override { return slots_[link]; }
  uint64_t slot_bytes(uint32_t link) const override { return slots_[link] ? slot_bytes_ : 0; }
  uint32_t events_per_link(uint32_t link) const override {
    return static_cast<uint32_t>(events_[link].size());
  }

  Status copy_in(uint32_t link, int32_t slot, uint64_t slot_offset, uint64_t blob_offset,
                 uint64_t bytes) override {
    if (blob_offset + bytes > host_->size()) return internal_error("copy_in leaves the blob");
    uint8_t* dst = target_->data() + blob_offset;
    if (slot >= 0) {
      if (link == 0 || static_cast<uint32_t>(slot) >= slots_[link] ||
          slot_offset + bytes > slot_bytes_) {
        return internal_error("copy_in leaves the staging slot");
      }
      dst = staging_[link].data() + slot * slot_bytes_ + slot_offset;
    } else if (slots_[link] != 0) {
      return internal_error("a direct copy on a peer link");
    }
    ++copies_;
    push(in(link), SimOp::copy(dst, host_->data() + blob_offset, bytes));
    return Status::OK();
  }

  Status forward(uint32_t link, uint32_t slot, uint64_t slot_offset, uint64_t blob_offset,
                 uint64_t bytes) override {
    if (link == 0 || slot >= slots_[link] || slot_offset + bytes > slot_bytes_ ||
        blob_offset + bytes > target_->size()) {
      return internal_error("a forward out of bounds");
    }
    ++forwards_;
    push(hop(link), SimOp::copy(target_->data() + blob_offset,
                                staging_[link].data() + slot * slot_bytes_ + slot_offset, bytes));
    return Status::OK();
  }

  Status record(LaneEvent event, Lane lane) override {
    if (lane == Lane::kHop && event.link == 0) return internal_error("link 0 has no hop lane");
    SimEvent& e = *events_[event.link].at(event.index);
    e.done.push_back(false);
    SimOp op = SimOp::of(SimOp::Kind::kRecord);
    op.event = &e;
    op.generation = ++e.enqueued;
    push(lane == Lane::kIn ? in(event.link) : hop(event.link), std::move(op));
    return Status::OK();
  }

  Status lane_wait(uint32_t link, Lane lane, LaneEvent event) override {
    const bool slot_wait = lane == Lane::kIn;
    if ((slot_wait && faults_.no_slot_waits) || (!slot_wait && faults_.no_landed_waits)) {
      return Status::OK();
    }
    return wait(lane == Lane::kIn ? in(link) : hop(link), event);
  }

  Status compute_wait(LaneEvent event) override {
    ++compute_waits_;
    if (faults_.no_compute_waits) return Status::OK();
    return wait(0, event);
  }

  // A group's layers: when they run, the group's bytes must be the host's, except the skipped
  // ones, which must be untouched.
  void run_group(const CopyGroup& g, std::span<const WeightRange> skip) {
    SimOp op = SimOp::of(SimOp::Kind::kCheck);
    const std::vector<uint8_t>* host = host_;
    std::vector<uint8_t>* target = target_;
    const CopyGroup group = g;
    const std::vector<WeightRange> skipped(skip.begin(), skip.end());
    op.check = [this, host, target, group, skipped] {
      for (uint64_t b = group.blob_offset; b < group.blob_offset + group.bytes; ++b) {
        bool inside = false;
        for (const WeightRange& s : skipped) inside |= b >= s.offset && b < s.offset + s.bytes;
        const uint8_t want = inside ? kPoison : (*host)[b];
        if ((*target)[b] != want) {
          ++bad_groups_;
          return;
        }
      }
      ++good_groups_;
    };
    push(0, std::move(op));
  }

  // Work on link 0's in-lane after the switch: `complete` must hold when it runs (the join).
  void after_transfer(std::function<bool()> complete) {
    SimOp op = SimOp::of(SimOp::Kind::kCheck);
    op.check = [this, complete] { (complete() ? good_joins_ : bad_joins_) += 1; };
    push(in(0), std::move(op));
  }

  // Runs every queued operation, choosing among the ready streams with `rng`. False on a
  // deadlock (a wait that can never be satisfied).
  bool run(std::mt19937& rng) {
    for (;;) {
      std::vector<size_t> ready;
      bool any = false;
      for (size_t s = 0; s < streams_.size(); ++s) {
        if (streams_[s].empty()) continue;
        any = true;
        const SimOp& head = streams_[s].front();
        if (head.kind != SimOp::Kind::kWait || head.event->done[head.generation]) {
          ready.push_back(s);
        }
      }
      if (!any) return true;
      if (ready.empty()) return false;
      const size_t s = ready[std::uniform_int_distribution<size_t>(0, ready.size() - 1)(rng)];
      SimOp op = std::move(streams_[s].front());
      streams_[s].pop_front();
      switch (op.kind) {
        case SimOp::Kind::kCopy:
          std::memcpy(op.dst, op.src, op.bytes);
          break;
        case SimOp::Kind::kRecord:
          op.event->done[op.generation] = true;
          break;
        case SimOp::Kind::kWait:
          break;
        case SimOp::Kind::kCheck:
          op.check();
          break;
      }
    }
  }

  int good_groups() const { return good_groups_; }
  int good_joins() const { return good_joins_; }
  int bad_joins() const { return bad_joins_; }
  int bad_groups() const { return bad_groups_; }
  int copies() const { return copies_; }
  int forwards() const { return forwards_; }
  int compute_waits() const { return compute_waits_; }
  // Operations enqueued so far (all streams), to compare enqueue positions.
  uint64_t enqueued() const { return sequence_; }
  uint64_t first_check_at() const { return first_check_at_; }
  uint64_t last_copy_at() const { return last_copy_at_; }

 private:
  size_t in(uint32_t link) const { return 1 + 2 * link; }
  size_t hop(uint32_t link) const { return 2 + 2 * link; }
  Status wait(size_t stream, LaneEvent event) {
    SimEvent& e = *events_[event.link].at(event.index);
    SimOp op = SimOp::of(SimOp::Kind::kWait);
    op.event = &e;
    op.generation = e.enqueued;
    push(stream, std::move(op));
    return Status::OK();
  }
  void push(size_t stream, SimOp op) {
    ++sequence_;
    if (op.kind == SimOp::Kind::kCheck && first_check_at_ == 0) first_check_at_ = sequence_;
    if (op.kind == SimOp::Kind::kCopy) last_copy_at_ = sequence_;
    streams_[stream].push_back(std::move(op));
  }

  std::vector<uint32_t> slots_;
  uint64_t slot_bytes_;
  Faults faults_;
  std::vector<std::vector<uint8_t>> staging_;
  std::vector<std::vector<std::unique_ptr<SimEvent>>> events_;
  std::vector<std::deque<SimOp>> streams_;  // 0: compute; then each link's in and hop lanes
  const std::vector<uint8_t>* host_ = nullptr;
  std::vector<uint8_t>* target_ = nullptr;
  int good_groups_ = 0, bad_groups_ = 0, copies_ = 0, forwards_ = 0, compute_waits_ = 0;
  int good_joins_ = 0, bad_joins_ = 0;
  uint64_t sequence_ = 0, first_check_at_ = 0, last_copy_at_ = 0;
};

// A model: contiguous groups (some empty) with alignment padding between them, random bytes.
struct SimModel {
  std::vector<CopyGroup> groups;
  std::vector<uint8_t> host;
  std::vector<uint8_t> target;
  std::vector<WeightRange> skip;
};

SimModel make_model(std::mt19937& rng, size_t group_count, uint64_t max_group_bytes,
                    bool with_skip) {
  SimModel m;
  uint64_t at = 0;
  for (size_t g = 0; g < group_count; ++g) {
    const uint64_t bytes = rng() % 5 == 0 ? 0 : 1 + rng() % max_group_bytes;
    m.groups.push_back({static_cast<uint32_t>(g), 1, at, bytes});
    at += (bytes + 255) / 256 * 256;
  }
  m.host.resize(at);
  for (uint8_t& b : m.host) b = static_cast<uint8_t>(rng());
  m.target.assign(at, kPoison);
  if (with_skip && at > 1000) {  // two host-read ranges, anywhere (also across groups)
    const uint64_t a = rng() % (at / 2), b = at / 2 + rng() % (at / 2);
    m.skip.push_back({a, std::min<uint64_t>(1 + rng() % 700, at / 2 - a), 0});
    m.skip.push_back({b, std::min<uint64_t>(1 + rng() % 700, at - b), 1});
  }
  return m;
}

LinkSet sim_links(uint32_t links, uint64_t max_piece) {
  LinkSet l;
  l.links = links;
  l.host = {3.0, 50000.0};
  l.nvlink_bytes_per_us = 350000.0;
  l.hop_fixed_us = 2.0;
  l.max_piece_bytes = max_piece;
  return l;
}

// The model's route, timing each piece by the bytes it copies (those outside m.skip), as the
// switching engine does: pieces wholly inside a skipped range stay on link 0 and copy nothing.
ParallelPlan plan_for(const SimModel& m, const LinkSet& links) {
  std::vector<uint64_t> bytes;
  for (const CopyGroup& g : m.groups) bytes.push_back(g.bytes);
  const CopiedBytes copied = [&m](uint32_t g, uint64_t offset, uint64_t n) {
    return n - bytes_inside(m.groups[g].blob_offset + offset, n, m.skip);
  };
  auto plan = plan_parallel_transfer(bytes, links, copied);
  REQUIRE(plan.ok());
  return std::move(plan).value();
}

Status enqueue(SimModel& m, const ParallelPlan& plan, SimLanes& lanes) {
  lanes.bind(&m.host, &m.target);
  return enqueue_parallel(m.groups, plan, m.skip, lanes, [&](size_t g) {
    lanes.run_group(m.groups[g], m.skip);
    return Status::OK();
  });
}

// The bytes outside the skipped ranges are the host's; inside, untouched.
bool target_complete(const SimModel& m) {
  for (uint64_t b = 0; b < m.host.size(); ++b) {
    bool inside = false;
    for (const WeightRange& s : m.skip) inside |= b >= s.offset && b < s.offset + s.bytes;
    bool in_group = false;
    for (const CopyGroup& g : m.groups) in_group |= b >= g.blob_offset && b < g.blob_offset + g.bytes;
    if (!in_group) continue;  // padding
    if (m.target[b] != (inside ? kPoison : m.host[b])) return false;
  }
  return true;
}

struct Config {
  uint32_t links;
  uint32_t slots;
  uint64_t max_piece;
};

TEST_CASE("parallel run: every interleaving delivers each group before its layers",
          "[parallel_run]") {
  const Config config = GENERATE(Config{1, 0, 0}, Config{1, 0, 1024}, Config{2, 1, 1024},
                                 Config{2, 2, 2048}, Config{3, 2, 512}, Config{4, 3, 4096});
  const bool with_skip = GENERATE(false, true);
  INFO("links " << config.links << " slots " << config.slots << " piece " << config.max_piece
                << " skip " << with_skip);
  std::mt19937 rng(1234 + config.links * 7 + config.slots);
  for (int trial = 0; trial < 40; ++trial) {
    INFO("trial " << trial);
    SimModel m = make_model(rng, 1 + rng() % 12, 6000, with_skip);
    const ParallelPlan plan = plan_for(m, sim_links(config.links, config.max_piece));
    // Groups may be larger than a slot when pieces are not cut: size the slots for the plan.
    uint64_t largest = 1;
    for (const PieceRoute& p : plan.pieces) largest = std::max(largest, p.bytes);
    uint32_t events = 0;
    for (uint32_t l = 0; l < config.links; ++l) {
      events = std::max(events, lane_events_needed(plan, l, l == 0 ? 0 : config.slots));
    }
    SimLanes lanes(config.links, config.slots, largest, events);
    REQUIRE_OK(enqueue(m, plan, lanes));
    CHECK(lanes.copies() >= static_cast<int>(plan.pieces.size()) - 4);  // skips may drop a few
    if (config.links > 1 && !with_skip) {
      int peer_pieces = 0;
      for (const PieceRoute& p : plan.pieces) peer_pieces += p.link != 0;
      CHECK(lanes.forwards() == peer_pieces);
    }
    CHECK(lanes.compute_waits() <= static_cast<int>(m.groups.size() * config.links));
    lanes.after_transfer([&m] { return target_complete(m); });
    REQUIRE(lanes.run(rng));
    CHECK(lanes.bad_groups() == 0);
    CHECK(lanes.good_joins() == 1);
    CHECK(lanes.good_groups() == static_cast<int>(m.groups.size()));
    CHECK(target_complete(m));
  }
}

// The zoo's real layouts (bert_tiny's large embedding groups, resnet_tiny's many small ones)
// routed as test_gpu_executor's GPU case routes them, 64 KiB pieces or whole groups over 1-3
// links: after the run every group's bytes are the package's and the alignment padding
// between groups, which no copy covers, is untouched (the GPU case's check, here under many
// interleavings).
TEST_CASE("parallel run: the zoo's real group layouts arrive whole", "[parallel_run]") {
  const std::string model = GENERATE("resnet_tiny", "bert_tiny");
  const uint32_t links = GENERATE(1u, 2u, 3u);
  const uint64_t max_piece = GENERATE(uint64_t{0}, uint64_t{64} << 10);
  INFO(model << ", " << links << " links, pieces of at most " << max_piece);
  models::testing::ZooLowering what;
  what.model = model;
  Result<onnx_loader::LoweredModel> lowered = models::testing::lower_zoo_model(what);
  REQUIRE_OK(lowered);
  Result<std::vector<CopyGroup>> groups = package_groups(lowered->manifest);
  REQUIRE_OK(groups);
  SimModel m;
  m.groups = *groups;
  m.host = lowered->weights;
  LinkSet set = sim_links(links, max_piece);
  const ParallelPlan plan = plan_for(m, set);
  uint64_t largest = 256;
  for (const PieceRoute& p : plan.pieces) largest = std::max(largest, p.bytes);
  uint32_t events = 0;
  for (uint32_t l = 0; l < links; ++l) {
    events = std::max(events, lane_events_needed(plan, l, l == 0 ? 0 : 2));
  }
  std::mt19937 rng(5);
  for (int trial = 0; trial < 5; ++trial) {
    m.target.assign(m.host.size(), kPoison);
    SimLanes lanes(links, 2, largest, events);
    REQUIRE_OK(enqueue(m, plan, lanes));
    REQUIRE(lanes.run(rng));
    CHECK(lanes.bad_groups() == 0);
    uint64_t differ = 0, padding = 0, first = 0;
    for (uint64_t b = 0; b < m.host.size(); ++b) {
      bool in_group = false;
      for (const CopyGroup& g : m.groups) {
        in_group |= b >= g.blob_offset && b < g.blob_offset + g.bytes;
      }
      padding += in_group ? 0 : 1;
      if (m.target[b] != (in_group ? m.host[b] : kPoison) && differ++ == 0) first = b;
    }
    INFO("first differing byte " << first);
    CHECK(differ == 0);
    CHECK(padding > 0);  // the layout has padding between groups, which stays untouched
  }
}

TEST_CASE("parallel run: two switches through the same lanes reuse the slots safely",
          "[parallel_run]") {
  std::mt19937 rng(99);
  for (int trial = 0; trial < 60; ++trial) {
    INFO("trial " << trial);
    SimModel a = make_model(rng, 2 + rng() % 6, 5000, false);
    SimModel b = make_model(rng, 2 + rng() % 6, 5000, trial % 2 == 0);
    const LinkSet links = sim_links(3, 700);
    const ParallelPlan pa = plan_for(a, links), pb = plan_for(b, links);
    uint32_t events = 0;
    for (uint32_t l = 0; l < 3; ++l) {
      events = std::max({events, lane_events_needed(pa, l, 2), lane_events_needed(pb, l, 2)});
    }
    SimLanes lanes(3, 2, 768, events);
    // Both enqueued before anything runs: b's first host copies into a slot must wait for a's
    // last forwards out of it.
    REQUIRE_OK(enqueue(a, pa, lanes));
    REQUIRE_OK(enqueue(b, pb, lanes));
    REQUIRE(lanes.run(rng));
    CHECK(lanes.bad_groups() == 0);
    CHECK(target_complete(a));
    CHECK(target_complete(b));
  }
}

TEST_CASE("parallel run: without each kind of wait some interleaving goes wrong",
          "[parallel_run]") {
  Faults faults;
  const int which = GENERATE(0, 1, 2);
  if (which == 0) faults.no_slot_waits = true;
  if (which == 1) faults.no_landed_waits = true;
  if (which == 2) faults.no_compute_waits = true;
  INFO("fault " << which);
  std::mt19937 rng(7);
  int wrong = 0;
  for (int trial = 0; trial < 200 && wrong == 0; ++trial) {
    SimModel m = make_model(rng, 6, 4000, false);
    const ParallelPlan plan = plan_for(m, sim_links(2, 512));
    SimLanes lanes(2, 1, 512, 4096, faults);
    REQUIRE_OK(enqueue(m, plan, lanes));
    REQUIRE(lanes.run(rng));
    wrong += lanes.bad_groups() > 0 || !target_complete(m);
  }
  CHECK(wrong > 0);
}

TEST_CASE("parallel run: the first layers are enqueued before the last copies", "[parallel_run]") {
  // 12 groups of 8 MiB over two links: the window (2 x 16 MiB) holds four groups, so the first
  // group's layers are queued long before the last piece.
  SimModel m;
  for (uint32_t g = 0; g < 12; ++g) m.groups.push_back({g, 1, uint64_t{g} << 23, uint64_t{1} << 23});
  m.host.assign(uint64_t{12} << 23, 1);
  m.target.assign(m.host.size(), kPoison);
  const ParallelPlan plan = plan_for(m, sim_links(2, uint64_t{4} << 20));
  SimLanes lanes(2, 2, uint64_t{4} << 20, 64);
  REQUIRE_OK(enqueue(m, plan, lanes));
  CHECK(lanes.first_check_at() < lanes.last_copy_at());
  std::mt19937 rng(5);
  REQUIRE(lanes.run(rng));
  CHECK(lanes.bad_groups() == 0);
  CHECK(lanes.good_groups() == 12);
}

TEST_CASE("parallel run: plans that do not fit the groups or the lanes are refused",
          "[parallel_run]") {
  std::mt19937 rng(3);
  SimModel m = make_model(rng, 5, 3000, false);
  m.groups[1].bytes = 2000;  // no empty group, so every group has a piece
  m.groups[3].bytes = 2000;
  m.groups[0].bytes = std::max<uint64_t>(m.groups[0].bytes, 1);
  m.groups[2].bytes = std::max<uint64_t>(m.groups[2].bytes, 1);
  m.groups[4].bytes = std::max<uint64_t>(m.groups[4].bytes, 1);
  const ParallelPlan plan = plan_for(m, sim_links(2, 1024));
  auto refused = [&](const ParallelPlan& p, SimLanes& lanes) {
    lanes.bind(&m.host, &m.target);
    const Status s = enqueue_parallel(m.groups, p, {}, lanes, [](size_t) { return Status::OK(); });
    INFO(s.to_string());
    CHECK(s.code() == Code::kInvalidArgument);
    CHECK(lanes.enqueued() == 0);  // refused before anything is queued
  };
  {
    SimLanes lanes(2, 2, 1024, 256);
    ParallelPlan p = plan;
    p.group_arrival_us.pop_back();  // a plan for other groups
    refused(p, lanes);
  }
  {
    SimLanes lanes(2, 2, 512, 256);  // slots smaller than the pieces
    refused(plan, lanes);
  }
  {
    SimLanes lanes(2, 2, 1024, 3);  // too few events
    refused(plan, lanes);
  }
  {
    SimLanes lanes(1, 0, 0, 256);  // a plan for two links on one
    refused(plan, lanes);
  }
  {
    SimLanes lanes(2, 2, 1024, 256);
    ParallelPlan p = plan;
    p.pieces.pop_back();  // the last group not covered
    refused(p, lanes);
  }
  {
    SimLanes lanes(2, 2, 1024, 256);
    ParallelPlan p = plan;
    std::swap(p.pieces.front(), p.pieces.back());  // out of order
    refused(p, lanes);
  }
  {
    SimLanes lanes(2, 2, 1024, 256);
    ParallelPlan p = plan;
    p.pieces[0].bytes += 1;  // overlaps the next piece
    refused(p, lanes);
  }
}

TEST_CASE("parallel run: a model's routes over 2..N links, as many as the events allow",
          "[parallel_run]") {
  const std::vector<uint64_t> groups = {3'000'000, 0, 9'000'000, 500'000, 12'000'000};
  LinkSet links = sim_links(1, 1 << 20);  // links.links is set per route
  auto routes = plan_routes(groups, links, 4, 2, 1024);
  REQUIRE(routes.ok());
  REQUIRE(routes->size() == 3);  // 2, 3 and 4 links
  for (size_t i = 0; i < routes->size(); ++i) {
    const ParallelPlan& r = (*routes)[i];
    CHECK(r.bytes_per_link.size() == i + 2);
    CHECK(r.group_arrival_us.size() == groups.size());
    for (const PieceRoute& p : r.pieces) CHECK(p.bytes <= (1u << 20));
    if (i > 0) CHECK(r.transfer_us <= (*routes)[i - 1].transfer_us);
  }
  // 24.5 MB in 1 MiB pieces: ~24 pieces. With 20 events a link (2 for the slots, 2 a piece),
  // link 0's share over two links (about half the pieces) does not fit, and the routes stop at
  // the first that does not: none. With 24, some fit, each within the events.
  auto few = plan_routes(groups, links, 4, 2, 20);
  REQUIRE(few.ok());
  CHECK(few->empty());
  auto some = plan_routes(groups, links, 8, 2, 24);
  REQUIRE(some.ok());
  CHECK(some->size() < 7);
  for (size_t k = 0; k < some->size(); ++k) {
    for (uint32_t l = 0; l < k + 2; ++l) {
      CHECK(lane_events_needed((*some)[k], l, l == 0 ? 0 : 2) <= 24);
    }
  }
  CHECK(plan_routes(groups, links, 1, 2, 1024)->empty());  // one link: nothing to route
  LinkSet broken = links;
  broken.nvlink_bytes_per_us = 0;
  CHECK(plan_routes(groups, broken, 3, 2, 1024).status().code() == Code::kInvalidArgument);
}

}  // namespace
}  // namespace ps::models::gpu
