// DevicePool: one pre-mapped range of device memory per GPU, sub-allocated without driver calls.
//
// Why virtual memory management (cuMemAddressReserve / cuMemCreate / cuMemMap / cuMemSetAccess)
// rather than cuMemAlloc:
//   - One reservation. The whole pool is one contiguous virtual range, mapped once at start-up.
//     Model weight slots, activation arenas and workspaces are offsets into it, so a pointer is
//     base + offset and a slot keeps the same address for the life of the server: an execution
//     plan (or a captured CUDA graph) can bind its addresses once, and a model switch only copies
//     bytes into a known slot (the paper's "unified memory management", PIPESWITCH.md).
//   - No cuMemAlloc/cuMemFree on the request path. Those calls can synchronise the device and
//     take milliseconds; allocate()/free() here are host bookkeeping (RangeAllocator) only.
//   - Failure moves to start-up. If the GPU cannot hold the pool, create() says so before the
//     server accepts work, instead of an out-of-memory in the middle of a switch.
//   - The physical memory is created in chunks (multiples of the allocation granularity), each
//     mapped at its place in the reservation. Chunking keeps each cuMemCreate bounded, lets a
//     failure part-way report how much was obtained, and leaves room to grow or shrink the pool
//     later by mapping or unmapping chunks at the end of the reservation.
//
// Threading: not thread-safe; the pool belongs to the thread that drives its device (the loop).
#pragma once

#include <cuda.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "cuda/range_allocator.h"

namespace ps::cuda {

class Device;

// A sub-allocation of a DevicePool: device address `ptr` = pool base + range.offset.
// A plain value; the pool owns the memory and the caller returns the range with free().
struct PoolRange {
  CUdeviceptr ptr = 0;
  Range range;

  uint64_t size() const { return range.size; }
  uint64_t offset() const { return range.offset; }
};

struct DevicePoolStats {
  int device_ordinal = -1;
  CUdeviceptr base = 0;
  uint64_t requested_bytes = 0;  // what create() was asked for
  uint64_t mapped_bytes = 0;     // rounded up to the granularity: the allocator's capacity
  uint64_t granularity = 0;      // the driver's allocation granularity for this device
  uint64_t chunk_bytes = 0;      // size of each physical chunk (the last may be smaller)
  uint64_t chunk_count = 0;
  RangeAllocatorStats allocator;
};

struct DevicePoolOptions {
  // Size of each physical chunk (cuMemCreate + cuMemMap), rounded up to the granularity.
  // 0 picks kDefaultChunkBytes. Tests use the granularity itself to map many chunks.
  uint64_t chunk_bytes = 0;

  static constexpr uint64_t kDefaultChunkBytes = uint64_t{1} << 30;  // 1 GiB
};

class DevicePool {
 public:
  // The alignment allocate() uses when the caller has no stronger need (cuMemAlloc's).
  static constexpr uint64_t kDefaultAlignment = 256;
  // The largest alignment allocate() accepts: the reservation's own alignment.
  static constexpr uint64_t kMaxAlignment = uint64_t{2} << 20;  // 2 MiB

  // Reserves a virtual range for `bytes` (rounded up to the allocation granularity) on
  // `device`, creates the physical memory in chunks, maps it and enables read/write access
  // for the device. All driver work happens here.
  // Preconditions: `device` is open and outlives the pool; its context is current on this
  // thread (Device::open makes it so).
  // Errors: kInvalidArgument for 0 bytes; kUnsupported when the device has no virtual memory
  // management; kOutOfMemory naming the request and the device's free and total memory when
  // the GPU has less free memory than requested, or when a chunk cannot be created (everything
  // obtained so far is released); kDevice for other driver failures (the call is named).
  static Result<DevicePool> create(const Device& device, uint64_t bytes,
                                   const DevicePoolOptions& options = {});

  DevicePool(DevicePool&&) noexcept;
  DevicePool& operator=(DevicePool&&) noexcept;
  DevicePool(const DevicePool&) = delete;
  DevicePool& operator=(const DevicePool&) = delete;
  // Synchronises the pool's context (so no queued copy or kernel still touches the memory),
  // unmaps every chunk, releases the physical memory and frees the reservation. Ranges handed
  // out become invalid.
  ~DevicePool();

  // Hands out `bytes` of device memory at an address that is a multiple of `alignment`. Makes
  // no driver call. `tag` names the owner in describe() and in errors.
  // Preconditions: the pool is not moved-from.
  // Returns the range; the pool owns the memory, the caller gives the range back with free().
  // The memory's contents are whatever the previous user left.
  // Errors: kInvalidArgument for 0 bytes, an alignment that is not a power of two or that is
  // larger than kMaxAlignment; kOutOfMemory naming the request, the largest free block and the
  // pool's size when it does not fit (the pool is unchanged and stays usable).
  Result<PoolRange> allocate(uint64_t bytes, uint64_t alignment, std::string_view tag);
  Result<PoolRange> allocate(uint64_t bytes, std::string_view tag) {
    return allocate(bytes, kDefaultAlignment, tag);
  }

  // Returns a range obtained from allocate() on this pool. Makes no driver call; the caller
  // makes sure no queued work still uses the memory (or that the next user is ordered after
  // it on the GPU).
  // Errors: kInvalidArgument when `range` is not a live allocation of this pool.
  Status free(const PoolRange& range);

  // Lets GPU `device_ordinal`'s work (its copy engines and kernels) read and write the whole
  // pool (cuMemSetAccess on the mapping): what a peer GPU needs to forward weights into this
  // pool over NVLink (parallel transmission). The pool's own device: nothing to do. Errors: the
  // driver's (e.g. when the two GPUs cannot be peers).
  Status grant_access(int device_ordinal);

  CUdeviceptr base() const;
  // The usable bytes: create()'s request rounded up to the granularity.
  uint64_t capacity() const;
  int device_ordinal() const;
  // True when [ptr, ptr + bytes) lies inside the pool's mapped range.
  bool contains(CUdeviceptr ptr, uint64_t bytes) const;

  DevicePoolStats stats() const;
  // One line about the mapping, then the allocator's listing (RangeAllocator::describe()).
  std::string describe() const;

 private:
  struct Mapping;  // the driver objects: reservation, chunks; released by its destructor

  DevicePool(std::unique_ptr<Mapping> mapping, uint64_t requested_bytes);

  std::unique_ptr<Mapping> mapping_;
  uint64_t requested_bytes_ = 0;
  RangeAllocator allocator_;
};

}  // namespace ps::cuda
