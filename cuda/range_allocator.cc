#include "cuda/range_allocator.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

namespace ps::cuda {
namespace {

bool is_power_of_two(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

// Bytes to skip from `offset` to reach a multiple of `alignment` (a power of two).
uint64_t padding_for(uint64_t offset, uint64_t alignment) {
  return (alignment - (offset & (alignment - 1))) & (alignment - 1);
}

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "0x%" PRIx64, v);
  return buf;
}

}  // namespace

std::string format_bytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return str_cat(bytes, " B");
  double v = static_cast<double>(bytes) / 1024.0;
  size_t unit = 0;
  while (v >= 1024.0 && unit + 1 < std::size(kUnits)) {
    v /= 1024.0;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f %s", v, kUnits[unit]);
  return buf;
}

RangeAllocator::RangeAllocator(uint64_t capacity) : capacity_(capacity) {
  if (capacity_ > 0) insert_free_block(0, capacity_);
}

void RangeAllocator::insert_free_block(uint64_t offset, uint64_t size) {
  free_by_offset_.emplace(offset, size);
  free_by_size_.emplace(size, offset);
}

void RangeAllocator::erase_free_block(std::map<uint64_t, uint64_t>::iterator it) {
  free_by_size_.erase({it->second, it->first});
  free_by_offset_.erase(it);
}

Result<Range> RangeAllocator::allocate(uint64_t bytes, uint64_t alignment, std::string_view tag) {
  if (bytes == 0) return invalid_argument("allocation of 0 bytes for '", tag, "'");
  if (!is_power_of_two(alignment)) {
    return invalid_argument("alignment ", alignment, " for '", tag, "' is not a power of two");
  }
  // Smallest blocks first: the first one that holds the request after its alignment padding is
  // the best fit.
  for (auto it = free_by_size_.lower_bound({bytes, 0}); it != free_by_size_.end(); ++it) {
    const auto [block_size, block_offset] = *it;
    const uint64_t padding = padding_for(block_offset, alignment);
    if (padding > block_size || block_size - padding < bytes) continue;

    free_by_size_.erase(it);
    free_by_offset_.erase(block_offset);
    if (padding > 0) insert_free_block(block_offset, padding);
    const uint64_t offset = block_offset + padding;
    const uint64_t tail = block_size - padding - bytes;
    if (tail > 0) insert_free_block(offset + bytes, tail);

    live_.emplace(offset, Allocation{bytes, std::string(tag)});
    used_bytes_ += bytes;
    high_water_mark_ = std::max(high_water_mark_, used_bytes_);
    ++total_allocations_;
    return Range{offset, bytes};
  }
  ++failed_allocations_;
  const uint64_t largest = free_by_size_.empty() ? 0 : free_by_size_.rbegin()->first;
  return out_of_memory("cannot allocate ", bytes, " bytes (", format_bytes(bytes), ", alignment ",
                       alignment, ") for '", tag, "': largest free block is ", largest, " bytes (",
                       format_bytes(largest), "), ", capacity_ - used_bytes_, " of ", capacity_,
                       " bytes free in ", free_by_offset_.size(), " blocks");
}

void RangeAllocator::release(uint64_t offset, uint64_t size) {
  uint64_t start = offset;
  uint64_t end = offset + size;
  auto next = free_by_offset_.lower_bound(offset);
  if (next != free_by_offset_.end() && next->first == end) {
    end += next->second;
    auto after = std::next(next);
    erase_free_block(next);
    next = after;
  }
  if (next != free_by_offset_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == start) {
      start = prev->first;
      erase_free_block(prev);
    }
  }
  insert_free_block(start, end - start);
}

Status RangeAllocator::free(const Range& range) {
  auto it = live_.find(range.offset);
  if (it == live_.end()) {
    return invalid_argument("free of [", hex(range.offset), ", +", range.size,
                            "): no live allocation starts at this offset");
  }
  if (it->second.size != range.size) {
    return invalid_argument("free of [", hex(range.offset), ", +", range.size,
                            "): the allocation '", it->second.tag, "' there has ", it->second.size,
                            " bytes");
  }
  return free_at(range.offset);
}

Status RangeAllocator::free_at(uint64_t offset) {
  auto it = live_.find(offset);
  if (it == live_.end()) {
    return invalid_argument("free at ", hex(offset), ": no live allocation starts at this offset");
  }
  const uint64_t size = it->second.size;
  live_.erase(it);
  used_bytes_ -= size;
  release(offset, size);
  return Status::OK();
}

void RangeAllocator::reset() {
  live_.clear();
  free_by_offset_.clear();
  free_by_size_.clear();
  used_bytes_ = 0;
  if (capacity_ > 0) insert_free_block(0, capacity_);
}

RangeAllocatorStats RangeAllocator::stats() const {
  RangeAllocatorStats s;
  s.capacity = capacity_;
  s.used_bytes = used_bytes_;
  s.free_bytes = capacity_ - used_bytes_;
  s.largest_free_block = free_by_size_.empty() ? 0 : free_by_size_.rbegin()->first;
  s.free_block_count = free_by_offset_.size();
  s.allocation_count = live_.size();
  s.high_water_mark = high_water_mark_;
  s.total_allocations = total_allocations_;
  s.failed_allocations = failed_allocations_;
  return s;
}

std::vector<AllocationInfo> RangeAllocator::allocations() const {
  std::vector<AllocationInfo> out;
  out.reserve(live_.size());
  for (const auto& [offset, a] : live_) out.push_back({Range{offset, a.size}, a.tag});
  return out;
}

std::vector<Range> RangeAllocator::free_blocks() const {
  std::vector<Range> out;
  out.reserve(free_by_offset_.size());
  for (const auto& [offset, size] : free_by_offset_) out.push_back({offset, size});
  return out;
}

std::string RangeAllocator::describe() const {
  const RangeAllocatorStats s = stats();
  std::string out =
      str_cat("capacity ", format_bytes(s.capacity), ", used ", format_bytes(s.used_bytes), " in ",
              s.allocation_count, " allocations, free ", format_bytes(s.free_bytes), " in ",
              s.free_block_count, " blocks (largest ", format_bytes(s.largest_free_block),
              "), high-water ", format_bytes(s.high_water_mark), "\n");
  // Merge the two offset-ordered maps into one address-ordered listing.
  auto live = live_.begin();
  auto free = free_by_offset_.begin();
  while (live != live_.end() || free != free_by_offset_.end()) {
    const bool take_live =
        free == free_by_offset_.end() || (live != live_.end() && live->first < free->first);
    if (take_live) {
      out += str_cat("  ", hex(live->first), " +", live->second.size, " (",
                     format_bytes(live->second.size), ") ", live->second.tag, "\n");
      ++live;
    } else {
      out += str_cat("  ", hex(free->first), " +", free->second, " (", format_bytes(free->second),
                     ") <free>\n");
      ++free;
    }
  }
  return out;
}

}  // namespace ps::cuda
