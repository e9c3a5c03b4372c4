#include "cuda/device_pool.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "cuda/context.h"
#include "cuda/device.h"
#include "cuda/driver.h"

namespace ps::cuda {
namespace {

uint64_t round_up(uint64_t v, uint64_t multiple) {
  return (v + multiple - 1) / multiple * multiple;
}

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "0x%" PRIx64, v);
  return buf;
}

// Makes `context` current for the life of the guard and restores the previous one after.
// Teardown may run on a thread (or at a moment) where another device's context is current.
class ScopedCurrentContext {
 public:
  explicit ScopedCurrentContext(CUcontext context) {
    if (context == nullptr || api().cuCtxGetCurrent(&previous_) != CUDA_SUCCESS) return;
    if (previous_ != context && api().cuCtxSetCurrent(context) == CUDA_SUCCESS) switched_ = true;
  }
  ~ScopedCurrentContext() {
    if (switched_) api().cuCtxSetCurrent(previous_);
  }
  ScopedCurrentContext(const ScopedCurrentContext&) = delete;
  ScopedCurrentContext& operator=(const ScopedCurrentContext&) = delete;

 private:
  CUcontext previous_ = nullptr;
  bool switched_ = false;
};

}  // namespace

struct DevicePool::Mapping {
  struct Chunk {
    CUmemGenericAllocationHandle handle = 0;
    uint64_t offset = 0;
    uint64_t size = 0;
    bool mapped = false;
  };

  CUcontext context = nullptr;
  int ordinal = -1;
  CUdeviceptr base = 0;
  uint64_t reserved_bytes = 0;
  uint64_t granularity = 0;
  uint64_t chunk_bytes = 0;
  std::vector<Chunk> chunks;

  Mapping() = default;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  // Also cleans up after a create() that failed part-way: only what was obtained is released.
  ~Mapping() {
    if (base == 0 && chunks.empty()) return;
    ScopedCurrentContext current(context);
    // Queued copies or kernels may still read or write the pool; unmapping under them would be
    // an illegal address. A failure here means the context is already broken; the unmapping
    // below still runs so the memory is given back.
    if (context != nullptr) api().cuCtxSynchronize();
    for (const Chunk& c : chunks) {
      if (c.mapped) CU_CHECK(api().cuMemUnmap(base + c.offset, c.size));
      CU_CHECK(api().cuMemRelease(c.handle));
    }
    if (base != 0) CU_CHECK(api().cuMemAddressFree(base, reserved_bytes));
  }
};

Result<DevicePool> DevicePool::create(const Device& device, uint64_t bytes,
                                      const DevicePoolOptions& options) {
  const int ordinal = device.ordinal();
  const std::string where = str_cat("device pool on GPU ", ordinal, " (", device.name(), ")");
  if (bytes == 0) return invalid_argument(where, ": a pool of 0 bytes");

  int vmm_supported = 0;
  CU_TRY(api().cuDeviceGetAttribute(
      &vmm_supported, CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, device.handle()));
  if (vmm_supported == 0) {
    return unsupported(where,
                       ": the device does not support virtual memory management "
                       "(cuMemCreate/cuMemMap)");
  }

  CUmemAllocationProp prop;
  std::memset(&prop, 0, sizeof(prop));
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = ordinal;
  size_t granularity = 0;
  CU_TRY(api().cuMemGetAllocationGranularity(&granularity, &prop,
                                             CU_MEM_ALLOC_GRANULARITY_RECOMMENDED));
  if (granularity == 0) return internal_error(where, ": the driver reported granularity 0");

  const uint64_t size = round_up(bytes, granularity);
  uint64_t chunk_bytes =
      options.chunk_bytes == 0 ? DevicePoolOptions::kDefaultChunkBytes : options.chunk_bytes;
  chunk_bytes = std::min(round_up(chunk_bytes, granularity), size);

  // Check first, so an impossible request is answered with the sizes instead of a cuMemCreate
  // failure part-way through.
  PS_ASSIGN_OR_RETURN(auto free_total, device.memory_info());
  const auto [free_bytes, total_bytes] = free_total;
  if (size > free_bytes) {
    return out_of_memory(where, ": cannot create a pool of ", size, " bytes (", format_bytes(size),
                         "): the GPU has ", free_bytes, " bytes (", format_bytes(free_bytes),
                         ") free of ", total_bytes, " (", format_bytes(total_bytes), ")");
  }

  auto mapping = std::make_unique<Mapping>();
  mapping->context = device.context();
  mapping->ordinal = ordinal;
  mapping->granularity = granularity;
  mapping->chunk_bytes = chunk_bytes;

  const uint64_t reserve_alignment = std::max<uint64_t>(granularity, kMaxAlignment);
  CU_TRY(api().cuMemAddressReserve(&mapping->base, size, reserve_alignment, 0, 0));
  mapping->reserved_bytes = size;

  const uint64_t chunk_count = (size + chunk_bytes - 1) / chunk_bytes;
  mapping->chunks.reserve(chunk_count);
  for (uint64_t offset = 0; offset < size; offset += chunk_bytes) {
    Mapping::Chunk chunk;
    chunk.offset = offset;
    chunk.size = std::min(chunk_bytes, size - offset);
    const CUresult created = api().cuMemCreate(&chunk.handle, chunk.size, &prop, 0);
    if (created != CUDA_SUCCESS) {
      // `mapping` releases the chunks obtained so far and the reservation.
      return cu_status(created, "cuMemCreate", __FILE__, __LINE__)
          .with_context(str_cat(where, ": creating chunk ", mapping->chunks.size() + 1, " of ",
                                chunk_count, " (", format_bytes(chunk.size), ") of a ",
                                format_bytes(size), " pool, after ", format_bytes(offset),
                                " were obtained"));
    }
    mapping->chunks.push_back(chunk);
    CU_TRY(api().cuMemMap(mapping->base + offset, chunk.size, 0, chunk.handle, 0));
    mapping->chunks.back().mapped = true;
  }

  CUmemAccessDesc access;
  std::memset(&access, 0, sizeof(access));
  access.location = prop.location;
  access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  CU_TRY(api().cuMemSetAccess(mapping->base, size, &access, 1));

  return DevicePool(std::move(mapping), bytes);
}

Status DevicePool::grant_access(int device_ordinal) {
  PS_CHECK(mapping_);
  if (device_ordinal == mapping_->ordinal) return Status::OK();
  CUdevice peer = 0;
  CU_TRY(api().cuDeviceGet(&peer, device_ordinal));
  CUmemAccessDesc access;
  std::memset(&access, 0, sizeof(access));
  access.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  access.location.id = peer;
  access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  ScopedContext in_context(mapping_->context);
  CU_TRY(api().cuMemSetAccess(mapping_->base, allocator_.capacity(), &access, 1));
  return Status::OK();
}

DevicePool::DevicePool(std::unique_ptr<Mapping> mapping, uint64_t requested_bytes)
    : mapping_(std::move(mapping)),
      requested_bytes_(requested_bytes),
      allocator_(mapping_->reserved_bytes) {}

DevicePool::DevicePool(DevicePool&&) noexcept = default;
DevicePool& DevicePool::operator=(DevicePool&&) noexcept = default;
DevicePool::~DevicePool() = default;

Result<PoolRange> DevicePool::allocate(uint64_t bytes, uint64_t alignment, std::string_view tag) {
  PS_CHECK(mapping_ != nullptr);
  if (alignment > kMaxAlignment) {
    return invalid_argument("device pool on GPU ", mapping_->ordinal, ": alignment ", alignment,
                            " for '", tag, "' is larger than the pool's ", kMaxAlignment);
  }
  auto range = allocator_.allocate(bytes, alignment, tag);
  if (!range.ok()) {
    return range.status().with_context(str_cat("device pool on GPU ", mapping_->ordinal, " (",
                                               format_bytes(allocator_.capacity()), ")"));
  }
  return PoolRange{mapping_->base + range->offset, *range};
}

Status DevicePool::free(const PoolRange& range) {
  PS_CHECK(mapping_ != nullptr);
  if (range.ptr != mapping_->base + range.range.offset) {
    return invalid_argument("device pool on GPU ", mapping_->ordinal, ": free of ", hex(range.ptr),
                            " (+", range.range.size, "), which was not allocated from this pool");
  }
  return allocator_.free(range.range)
      .with_context(str_cat("device pool on GPU ", mapping_->ordinal));
}

CUdeviceptr DevicePool::base() const { return mapping_ ? mapping_->base : 0; }

uint64_t DevicePool::capacity() const { return allocator_.capacity(); }

int DevicePool::device_ordinal() const { return mapping_ ? mapping_->ordinal : -1; }

bool DevicePool::contains(CUdeviceptr ptr, uint64_t bytes) const {
  if (!mapping_ || ptr < mapping_->base) return false;
  const uint64_t offset = ptr - mapping_->base;
  return offset <= capacity() && bytes <= capacity() - offset;
}

DevicePoolStats DevicePool::stats() const {
  DevicePoolStats s;
  s.requested_bytes = requested_bytes_;
  s.allocator = allocator_.stats();
  if (mapping_) {
    s.device_ordinal = mapping_->ordinal;
    s.base = mapping_->base;
    s.mapped_bytes = mapping_->reserved_bytes;
    s.granularity = mapping_->granularity;
    s.chunk_bytes = mapping_->chunk_bytes;
    s.chunk_count = mapping_->chunks.size();
  }
  return s;
}

std::string DevicePool::describe() const {
  const DevicePoolStats s = stats();
  return str_cat("device pool on GPU ", s.device_ordinal, " at ", hex(s.base), ": ",
                 format_bytes(s.mapped_bytes), " mapped in ", s.chunk_count, " chunks of ",
                 format_bytes(s.chunk_bytes), " (granularity ", format_bytes(s.granularity), ")\n",
                 allocator_.describe());
}

}  // namespace ps::cuda
