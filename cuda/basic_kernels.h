// BasicKernels: typed launchers for the kernels of cuda/kernels/basic.cu (fills, the iota
// pattern and its checker, stream-control helpers), looked up once from a loaded Module.
//
// Used by the tests and by the copy benchmark to put known data on the GPU and verify it there
// without copying it back. Every launcher only queues work on the given stream.
#pragma once

#include <cuda.h>

#include <cstdint>

#include "common/status.h"
#include "cuda/module.h"

namespace ps::cuda {

class Stream;

// What ps_check_iota_u32 leaves in device memory (16 bytes): copy it back to read it.
struct PatternCheck {
  uint64_t mismatches = 0;
  uint64_t first_mismatch = UINT64_MAX;  // UINT64_MAX when there is none
};

class BasicKernels {
 public:
  static constexpr unsigned kBlock = 256;

  // Looks every kernel up in `module` (Module::load_embedded()). The module must outlive this.
  // Errors: kNotFound when the module lacks one of them.
  static Result<BasicKernels> load(const Module& module);

  // dst[i] = value, i < count (dst: 4-byte aligned device memory).
  Status fill_u32(const Stream& stream, CUdeviceptr dst, uint64_t count, uint32_t value) const;
  Status fill_f32(const Stream& stream, CUdeviceptr dst, uint64_t count, float value) const;

  // dst[i] = i * a + b (mod 2^32), i < count.
  Status iota_u32(const Stream& stream, CUdeviceptr dst, uint64_t count, uint32_t a,
                  uint32_t b) const;

  // Resets the PatternCheck at `result` (16 bytes of device memory, 8-byte aligned) and counts
  // the words of src that differ from the iota pattern (a, b) into it.
  Status check_iota_u32(const Stream& stream, CUdeviceptr src, uint64_t count, uint32_t a,
                        uint32_t b, CUdeviceptr result) const;

  // Holds `stream` until the host stores non-zero in *flag, which must be pinned host memory
  // (PinnedBuffer: with unified addressing the GPU reads it through the same pointer), or about
  // `max_cycles` GPU clock cycles pass, in which case it stores 1 in the u32 at `timed_out`.
  Status wait_flag(const Stream& stream, const volatile uint32_t* flag, uint64_t max_cycles,
                   CUdeviceptr timed_out) const;

  // Keeps `blocks` blocks of one warp busy for about `cycles` GPU clock cycles.
  Status spin_cycles(const Stream& stream, uint64_t cycles, unsigned blocks = 1) const;

 private:
  Kernel fill_u32_;
  Kernel fill_f32_;
  Kernel iota_u32_;
  Kernel check_iota_u32_;
  Kernel wait_flag_;
  Kernel spin_cycles_;
};

}  // namespace ps::cuda
