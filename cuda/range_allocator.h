// RangeAllocator: bookkeeping for sub-allocations of an abstract address range [0, capacity).
//
// It touches no memory and makes no driver call: it only decides offsets. DevicePool uses it to
// carve model weight slots, activation arenas and workspaces out of one pre-mapped device range
// (base + offset), and the tests exercise it over ordinary host memory.
//
// Policy: best fit. A request goes to the smallest free block that can hold it at the requested
// alignment (ties: the lowest offset), at the block's first aligned offset. The padding skipped
// for alignment and the tail of the block stay free blocks, so nothing is lost to internal
// fragmentation: used_bytes + free_bytes == capacity at all times. A freed range is coalesced
// with free neighbours at once, so the free list never holds two adjacent blocks, and freeing
// everything always gives back one block of the whole capacity.
//
// Complexity (n = free blocks, m = live allocations): allocate O(log n + k), where k counts the
// free blocks whose size lies in [bytes, bytes + alignment - 1) and that the alignment padding
// rules out (a block of at least bytes + alignment - 1 always fits, so the scan stops there);
// free O(log n + log m); stats O(1); describe O(n + m).
//
// Not thread-safe: the server is single-threaded and owns its pools from the loop thread.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace ps::cuda {

// A live sub-allocation: [offset, offset + size).
struct Range {
  uint64_t offset = 0;
  uint64_t size = 0;

  uint64_t end() const { return offset + size; }
  friend bool operator==(const Range&, const Range&) = default;
};

struct RangeAllocatorStats {
  uint64_t capacity = 0;
  uint64_t used_bytes = 0;          // sum of the sizes of live allocations
  uint64_t free_bytes = 0;          // capacity - used_bytes
  uint64_t largest_free_block = 0;  // the largest request that can succeed with alignment 1
  uint64_t free_block_count = 0;    // 1 when nothing is fragmented
  uint64_t allocation_count = 0;    // live allocations
  uint64_t high_water_mark = 0;     // the largest used_bytes ever reached
  uint64_t total_allocations = 0;   // successful allocate() calls since construction
  uint64_t failed_allocations = 0;  // allocate() calls answered kOutOfMemory
};

// One live allocation, as listed by allocations().
struct AllocationInfo {
  Range range;
  std::string tag;
};

class RangeAllocator {
 public:
  // An allocator over [0, capacity) with everything free. A capacity of 0 is valid (every
  // request then fails with kOutOfMemory).
  explicit RangeAllocator(uint64_t capacity = 0);

  RangeAllocator(const RangeAllocator&) = delete;
  RangeAllocator& operator=(const RangeAllocator&) = delete;
  RangeAllocator(RangeAllocator&&) noexcept = default;
  RangeAllocator& operator=(RangeAllocator&&) noexcept = default;
  ~RangeAllocator() = default;

  // Reserves `bytes` at an offset that is a multiple of `alignment`. `tag` names the owner
  // (e.g. "resnet152/weights") in describe() and in error messages; it is copied.
  // Preconditions: none (bad arguments are reported).
  // Returns the range, which stays reserved until free(). Errors: kInvalidArgument when bytes is
  // 0 or alignment is not a power of two; kOutOfMemory naming the request, the largest free block
  // and the free total when no free block can hold it (the allocator is unchanged then).
  Result<Range> allocate(uint64_t bytes, uint64_t alignment, std::string_view tag);

  // Returns `range` to the free space, coalescing it with free neighbours.
  // Errors: kInvalidArgument, with the allocator unchanged, when `range` is not exactly a live
  // allocation (never allocated, already freed, or a different size than was allocated).
  Status free(const Range& range);

  // Frees the live allocation that starts at `offset`, whatever its size.
  // Errors: kInvalidArgument when no live allocation starts there.
  Status free_at(uint64_t offset);

  // Frees every live allocation: one free block of the whole capacity remains. Keeps the
  // high-water mark and the counters of past calls.
  void reset();

  uint64_t capacity() const { return capacity_; }
  RangeAllocatorStats stats() const;

  // Live allocations in offset order.
  std::vector<AllocationInfo> allocations() const;
  // Free blocks in offset order.
  std::vector<Range> free_blocks() const;

  // A human-readable listing for STATS and debugging: one summary line, then every live
  // allocation and free block in offset order, one per line (each line ends with '\n').
  std::string describe() const;

 private:
  struct Allocation {
    uint64_t size;
    std::string tag;
  };

  void insert_free_block(uint64_t offset, uint64_t size);
  void erase_free_block(std::map<uint64_t, uint64_t>::iterator it);
  // Puts [offset, offset + size) back into the free space, merging with adjacent free blocks.
  void release(uint64_t offset, uint64_t size);

  uint64_t capacity_ = 0;
  uint64_t used_bytes_ = 0;
  uint64_t high_water_mark_ = 0;
  uint64_t total_allocations_ = 0;
  uint64_t failed_allocations_ = 0;
  // Free blocks twice: by offset (to find neighbours when freeing) and by (size, offset) (best
  // fit is a lower_bound). Both always hold the same blocks.
  std::map<uint64_t, uint64_t> free_by_offset_;           // offset -> size
  std::set<std::pair<uint64_t, uint64_t>> free_by_size_;  // (size, offset)
  std::map<uint64_t, Allocation> live_;                   // offset -> allocation
};

// "512 B", "4.00 KiB", "1.50 GiB": for messages and listings.
std::string format_bytes(uint64_t bytes);

}  // namespace ps::cuda
