// RangeAllocator on the CPU: unit cases, then a randomized property test over host memory that
// checks every operation against a simple reference model (the live ranges in a std::map; the
// free space is the gaps between them).
#include "cuda/range_allocator.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <vector>

namespace {

using ps::Code;
using ps::cuda::Range;
using ps::cuda::RangeAllocator;

constexpr uint64_t kKiB = 1024;

Range must_allocate(RangeAllocator& a, uint64_t bytes, uint64_t alignment = 1,
                    std::string_view tag = "t") {
  auto r = a.allocate(bytes, alignment, tag);
  INFO(r.status().to_string());
  REQUIRE(r.ok());
  return *r;
}

}  // namespace

TEST_CASE("a new allocator has one free block of the whole capacity", "[range_allocator]") {
  RangeAllocator a(64 * kKiB);
  auto s = a.stats();
  CHECK(s.capacity == 64 * kKiB);
  CHECK(s.used_bytes == 0);
  CHECK(s.free_bytes == 64 * kKiB);
  CHECK(s.largest_free_block == 64 * kKiB);
  CHECK(s.free_block_count == 1);
  CHECK(s.allocation_count == 0);
  CHECK(a.free_blocks() == std::vector<Range>{{0, 64 * kKiB}});
}

TEST_CASE("allocations are packed from the start and freed back", "[range_allocator]") {
  RangeAllocator a(1000);
  Range r1 = must_allocate(a, 100);
  Range r2 = must_allocate(a, 200);
  Range r3 = must_allocate(a, 300);
  CHECK(r1 == Range{0, 100});
  CHECK(r2 == Range{100, 200});
  CHECK(r3 == Range{300, 300});
  auto s = a.stats();
  CHECK(s.used_bytes == 600);
  CHECK(s.free_bytes == 400);
  CHECK(s.allocation_count == 3);
  CHECK(s.high_water_mark == 600);

  REQUIRE(a.free(r2).ok());
  CHECK(a.stats().used_bytes == 400);
  CHECK(a.stats().free_block_count == 2);
  CHECK(a.stats().high_water_mark == 600);
  REQUIRE(a.free(r1).ok());  // coalesces with the hole left by r2
  CHECK(a.free_blocks() == std::vector<Range>{{0, 300}, {600, 400}});
  REQUIRE(a.free(r3).ok());  // coalesces both sides
  CHECK(a.free_blocks() == std::vector<Range>{{0, 1000}});
  CHECK(a.stats().total_allocations == 3);
}

TEST_CASE("best fit picks the smallest block that holds the request", "[range_allocator]") {
  RangeAllocator a(1000);
  // Carve holes of 300, 100 and 200 bytes separated by live ranges.
  Range h300 = must_allocate(a, 300);
  must_allocate(a, 10);
  Range h100 = must_allocate(a, 100);
  must_allocate(a, 10);
  Range h200 = must_allocate(a, 200);
  must_allocate(a, 380);  // fills the rest exactly
  CHECK(a.stats().free_bytes == 0);
  REQUIRE(a.free(h300).ok());
  REQUIRE(a.free(h100).ok());
  REQUIRE(a.free(h200).ok());

  CHECK(must_allocate(a, 150).offset == h200.offset);  // 200 is the tightest fit for 150
  CHECK(must_allocate(a, 100).offset == h100.offset);  // exact fit
  // The 50 bytes left of the 200 hole are too small for 60: the 300 hole takes it.
  CHECK(must_allocate(a, 60).offset == h300.offset);
}

TEST_CASE("ties between equal blocks go to the lowest offset", "[range_allocator]") {
  RangeAllocator a(400);
  Range r0 = must_allocate(a, 100);
  must_allocate(a, 100);
  Range r2 = must_allocate(a, 100);
  must_allocate(a, 100);
  REQUIRE(a.free(r2).ok());
  REQUIRE(a.free(r0).ok());
  CHECK(must_allocate(a, 50).offset == 0);
}

TEST_CASE("alignment is honoured and the padding stays free", "[range_allocator]") {
  RangeAllocator a(4096);
  Range odd = must_allocate(a, 3);
  Range aligned = must_allocate(a, 100, 256);
  CHECK(odd == Range{0, 3});
  CHECK(aligned.offset == 256);
  CHECK(aligned.size == 100);
  // The padding [3, 256) is a free block, and a small request lands in it (best fit).
  CHECK(a.free_blocks() == std::vector<Range>{{3, 253}, {356, 4096 - 356}});
  Range small = must_allocate(a, 16, 16);
  CHECK(small.offset == 16);
  CHECK(a.stats().used_bytes + a.stats().free_bytes == 4096);

  for (uint64_t alignment = 1; alignment <= 1024; alignment *= 2) {
    Range r = must_allocate(a, 7, alignment);
    CHECK(r.offset % alignment == 0);
  }
}

TEST_CASE("a block that is big enough but misaligned is skipped", "[range_allocator]") {
  RangeAllocator a(1024);
  must_allocate(a, 1);
  Range hole = must_allocate(a, 100);  // [1, 101)
  must_allocate(a, 923);               // rest
  REQUIRE(a.free(hole).ok());
  // 100 bytes free at offset 1, but 64-aligned 64 bytes do not fit in [1, 101).
  auto r = a.allocate(64, 64, "aligned");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kOutOfMemory);
  // 32 aligned to 32 fits at 32.
  CHECK(must_allocate(a, 32, 32).offset == 32);
}

TEST_CASE("running out of space is kOutOfMemory naming the request and the largest block",
          "[range_allocator]") {
  RangeAllocator a(10000);
  must_allocate(a, 4000);
  Range mid = must_allocate(a, 2000);
  must_allocate(a, 4000);
  REQUIRE(a.free(mid).ok());
  auto before = a.stats();

  auto r = a.allocate(3000, 1, "model:bert/weights");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kOutOfMemory);
  const std::string m = r.status().message();  // status() returns a copy
  CHECK_THAT(m, Catch::Contains("3000 bytes"));
  CHECK_THAT(m, Catch::Contains("model:bert/weights"));
  CHECK_THAT(m, Catch::Contains("largest free block is 2000 bytes"));

  // The allocator is unchanged by the failure.
  auto after = a.stats();
  CHECK(after.used_bytes == before.used_bytes);
  CHECK(after.free_block_count == before.free_block_count);
  CHECK(after.failed_allocations == before.failed_allocations + 1);
  CHECK(must_allocate(a, 2000).offset == 4000);

  RangeAllocator empty(0);
  CHECK(empty.allocate(1, 1, "x").status().code() == Code::kOutOfMemory);
}

TEST_CASE("bad arguments are kInvalidArgument", "[range_allocator]") {
  RangeAllocator a(1024);
  CHECK(a.allocate(0, 1, "zero").status().code() == Code::kInvalidArgument);
  CHECK(a.allocate(8, 0, "no alignment").status().code() == Code::kInvalidArgument);
  CHECK(a.allocate(8, 3, "odd alignment").status().code() == Code::kInvalidArgument);
  CHECK(a.allocate(8, 48, "not a power").status().code() == Code::kInvalidArgument);
  CHECK(a.allocate(UINT64_MAX, 1, "huge").status().code() == Code::kOutOfMemory);
  CHECK(a.allocate(8, uint64_t{1} << 63, "huge alignment").ok());  // offset 0 is aligned
}

TEST_CASE("freeing what is not allocated is kInvalidArgument and changes nothing",
          "[range_allocator]") {
  RangeAllocator a(1024);
  Range r = must_allocate(a, 100);
  Range s = must_allocate(a, 100);

  CHECK(a.free(Range{50, 10}).code() == Code::kInvalidArgument);        // inside an allocation
  CHECK(a.free(Range{r.offset, 99}).code() == Code::kInvalidArgument);  // wrong size
  CHECK(a.free(Range{500, 10}).code() == Code::kInvalidArgument);       // in free space
  CHECK(a.free_at(1).code() == Code::kInvalidArgument);
  CHECK(a.stats().allocation_count == 2);
  CHECK(a.stats().used_bytes == 200);

  REQUIRE(a.free(r).ok());
  ps::Status twice = a.free(r);
  CHECK(twice.code() == Code::kInvalidArgument);
  CHECK_THAT(twice.message(), Catch::Contains("no live allocation"));
  REQUIRE(a.free_at(s.offset).ok());
  CHECK(a.free_blocks() == std::vector<Range>{{0, 1024}});
}

TEST_CASE("reset frees everything and keeps the high-water mark", "[range_allocator]") {
  RangeAllocator a(1024);
  for (int i = 0; i < 10; ++i) must_allocate(a, 50, 64);
  uint64_t hw = a.stats().high_water_mark;
  CHECK(hw == 500);
  a.reset();
  CHECK(a.stats().allocation_count == 0);
  CHECK(a.stats().high_water_mark == hw);
  CHECK(a.free_blocks() == std::vector<Range>{{0, 1024}});
}

TEST_CASE("describe lists allocations and free blocks in address order", "[range_allocator]") {
  RangeAllocator a(4096);
  must_allocate(a, 1024, 1, "resnet152/weights");
  Range hole = must_allocate(a, 512, 1, "scratch");
  must_allocate(a, 256, 1, "bert/arena");
  REQUIRE(a.free(hole).ok());
  std::string d = a.describe();
  INFO(d);
  CHECK_THAT(d, Catch::StartsWith("capacity 4.00 KiB, used 1.25 KiB in 2 allocations"));
  auto weights = d.find("0x0 +1024 (1.00 KiB) resnet152/weights");
  auto free_hole = d.find("0x400 +512 (512 B) <free>");
  auto arena = d.find("0x600 +256 (256 B) bert/arena");
  auto tail = d.find("0x700 +2304 (2.25 KiB) <free>");
  REQUIRE(weights != std::string::npos);
  REQUIRE(free_hole != std::string::npos);
  REQUIRE(arena != std::string::npos);
  REQUIRE(tail != std::string::npos);
  CHECK(weights < free_hole);
  CHECK(free_hole < arena);
  CHECK(arena < tail);
  CHECK(ps::cuda::format_bytes(3ull << 30) == "3.00 GiB");
}

TEST_CASE("a moved allocator keeps its state", "[range_allocator]") {
  RangeAllocator a(1024);
  Range r = must_allocate(a, 100);
  RangeAllocator b = std::move(a);
  CHECK(b.stats().used_bytes == 100);
  REQUIRE(b.free(r).ok());
  CHECK(b.free_blocks() == std::vector<Range>{{0, 1024}});
}

// ---------------------------------------------------------------------------------------------
// Property test.

namespace {

// The reference model: live ranges in offset order. Free space = the gaps between them.
struct Model {
  uint64_t capacity;
  std::map<uint64_t, uint64_t> live;  // offset -> size

  std::vector<Range> gaps() const {
    std::vector<Range> out;
    uint64_t cursor = 0;
    for (const auto& [off, size] : live) {
      if (off > cursor) out.push_back({cursor, off - cursor});
      cursor = off + size;
    }
    if (cursor < capacity) out.push_back({cursor, capacity - cursor});
    return out;
  }

  // Where best fit must put the request, or nothing if it cannot fit anywhere.
  std::optional<uint64_t> expected_offset(uint64_t bytes, uint64_t alignment) const {
    std::optional<Range> best;
    for (const Range& g : gaps()) {
      uint64_t aligned = (g.offset + alignment - 1) / alignment * alignment;
      if (aligned + bytes > g.end()) continue;
      if (!best || g.size < best->size) best = g;  // gaps come in offset order: ties keep the first
    }
    if (!best) return std::nullopt;
    return (best->offset + alignment - 1) / alignment * alignment;
  }
};

uint8_t pattern_byte(uint32_t id, uint64_t i) {
  return static_cast<uint8_t>((id * 131u) ^ (i * 7u) ^ (i >> 8));
}

struct LiveRange {
  Range range;
  uint32_t id;
};

void fill(std::vector<uint8_t>& memory, const LiveRange& l) {
  for (uint64_t i = 0; i < l.range.size; ++i) memory[l.range.offset + i] = pattern_byte(l.id, i);
}

bool intact(const std::vector<uint8_t>& memory, const LiveRange& l) {
  for (uint64_t i = 0; i < l.range.size; ++i) {
    if (memory[l.range.offset + i] != pattern_byte(l.id, i)) return false;
  }
  return true;
}

void check_against_model(const RangeAllocator& a, const Model& m,
                         const std::vector<LiveRange>& live, const std::vector<uint8_t>& memory) {
  // Free blocks are exactly the maximal gaps: complete coalescing.
  std::vector<Range> gaps = m.gaps();
  REQUIRE(a.free_blocks() == gaps);
  uint64_t largest = 0;
  uint64_t free_total = 0;
  for (const Range& g : gaps) {
    largest = std::max(largest, g.size);
    free_total += g.size;
  }
  auto s = a.stats();
  REQUIRE(s.largest_free_block == largest);
  REQUIRE(s.free_bytes == free_total);
  REQUIRE(s.used_bytes + s.free_bytes == m.capacity);
  REQUIRE(s.allocation_count == live.size());
  REQUIRE(s.free_block_count == gaps.size());
  // Every live range still holds its own pattern: nothing overlapped it.
  for (const LiveRange& l : live) REQUIRE(intact(memory, l));
}

void run_random_sequence(uint32_t seed, uint64_t capacity, int steps) {
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  RangeAllocator a(capacity);
  Model model{capacity, {}};
  std::vector<LiveRange> live;
  std::vector<uint8_t> memory(capacity, 0);
  uint32_t next_id = 1;
  uint64_t peak = 0;
  int failures = 0;

  auto random_size = [&]() -> uint64_t {
    switch (rng() % 4) {
      case 0:
        return 1 + rng() % 16;
      case 1:
        return 1 + rng() % 512;
      case 2:
        return 1 + rng() % 4096;
      default:
        return 1 + rng() % (capacity / 4);
    }
  };

  for (int step = 0; step < steps; ++step) {
    INFO("step " << step);
    const bool do_allocate = live.empty() || rng() % 100 < 55;
    if (do_allocate) {
      const uint64_t bytes = random_size();
      const uint64_t alignment = uint64_t{1} << (rng() % 13);  // 1 .. 4096
      const auto expected = model.expected_offset(bytes, alignment);
      auto r = a.allocate(bytes, alignment, "random");
      if (!expected) {
        REQUIRE_FALSE(r.ok());
        REQUIRE(r.status().code() == Code::kOutOfMemory);
        ++failures;
        continue;
      }
      INFO(r.status().to_string());
      REQUIRE(r.ok());
      const Range got = *r;
      REQUIRE(got.offset == *expected);
      REQUIRE(got.size == bytes);
      REQUIRE(got.offset % alignment == 0);
      REQUIRE(got.end() <= capacity);
      model.live.emplace(got.offset, got.size);
      live.push_back({got, next_id++});
      fill(memory, live.back());
    } else {
      const size_t index = rng() % live.size();
      const LiveRange victim = live[index];
      REQUIRE(intact(memory, victim));
      REQUIRE(a.free(victim.range).ok());
      // Scribble over the freed bytes: a stale range that still overlapped a live one would
      // show up as a broken pattern.
      std::fill_n(memory.begin() + static_cast<ptrdiff_t>(victim.range.offset), victim.range.size,
                  uint8_t{0xEE});
      model.live.erase(victim.range.offset);
      live[index] = live.back();
      live.pop_back();
    }
    uint64_t used = 0;
    for (const auto& [off, size] : model.live) used += size;
    peak = std::max(peak, used);
    if (step % 64 == 0) check_against_model(a, model, live, memory);
  }
  check_against_model(a, model, live, memory);
  CHECK(a.stats().high_water_mark == peak);
  // The sequence must have exercised the full path, not only the easy one.
  CHECK(failures > 0);

  // Free everything in random order: the free space coalesces back to one block.
  std::shuffle(live.begin(), live.end(), rng);
  while (!live.empty()) {
    REQUIRE(intact(memory, live.back()));
    REQUIRE(a.free(live.back().range).ok());
    model.live.erase(live.back().range.offset);
    live.pop_back();
  }
  REQUIRE(a.free_blocks() == std::vector<Range>{{0, capacity}});
  REQUIRE(a.stats().used_bytes == 0);
  REQUIRE(a.stats().largest_free_block == capacity);
}

}  // namespace

TEST_CASE("random allocate/free sequences keep ranges aligned, disjoint and coalesced",
          "[range_allocator][property]") {
  for (uint32_t seed = 1; seed <= 12; ++seed) run_random_sequence(seed, 64 * kKiB, 3000);
  // An odd capacity, so the last block is never a round size.
  run_random_sequence(1000, 64 * kKiB + 13, 3000);
}
