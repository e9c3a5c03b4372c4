#include "cuda/basic_kernels.h"

#include "cuda/copy.h"

namespace ps::cuda {
namespace {

// Enough blocks to fill an H100 several times over; the kernels loop over the rest.
constexpr unsigned kMaxBlocks = 4096;

}  // namespace

Result<BasicKernels> BasicKernels::load(const Module& module) {
  BasicKernels k;
  PS_ASSIGN_OR_RETURN(k.fill_u32_, module.function("ps_fill_u32"));
  PS_ASSIGN_OR_RETURN(k.fill_f32_, module.function("ps_fill_f32"));
  PS_ASSIGN_OR_RETURN(k.iota_u32_, module.function("ps_iota_u32"));
  PS_ASSIGN_OR_RETURN(k.check_iota_u32_, module.function("ps_check_iota_u32"));
  PS_ASSIGN_OR_RETURN(k.wait_flag_, module.function("ps_wait_flag"));
  PS_ASSIGN_OR_RETURN(k.spin_cycles_, module.function("ps_spin_cycles"));
  return k;
}

Status BasicKernels::fill_u32(const Stream& stream, CUdeviceptr dst, uint64_t count,
                              uint32_t value) const {
  if (count == 0) return Status::OK();
  return fill_u32_.launch(stream, blocks_for(count, kBlock, kMaxBlocks), kBlock, 0, dst, count,
                          value);
}

Status BasicKernels::fill_f32(const Stream& stream, CUdeviceptr dst, uint64_t count,
                              float value) const {
  if (count == 0) return Status::OK();
  return fill_f32_.launch(stream, blocks_for(count, kBlock, kMaxBlocks), kBlock, 0, dst, count,
                          value);
}

Status BasicKernels::iota_u32(const Stream& stream, CUdeviceptr dst, uint64_t count, uint32_t a,
                              uint32_t b) const {
  if (count == 0) return Status::OK();
  return iota_u32_.launch(stream, blocks_for(count, kBlock, kMaxBlocks), kBlock, 0, dst, count, a,
                          b);
}

Status BasicKernels::check_iota_u32(const Stream& stream, CUdeviceptr src, uint64_t count,
                                    uint32_t a, uint32_t b, CUdeviceptr result) const {
  if (result % 8 != 0) return invalid_argument("check_iota_u32: result is not 8-byte aligned");
  PS_TRY(memset_d32_async(result, 0, 2, stream));                // mismatches = 0
  PS_TRY(memset_d32_async(result + 8, 0xffffffffu, 2, stream));  // first = UINT64_MAX
  if (count == 0) return Status::OK();
  return check_iota_u32_.launch(stream, blocks_for(count, kBlock, kMaxBlocks), kBlock, 0, src,
                                count, a, b, result);
}

Status BasicKernels::wait_flag(const Stream& stream, const volatile uint32_t* flag,
                               uint64_t max_cycles, CUdeviceptr timed_out) const {
  return wait_flag_.launch(stream, 1, 1, 0, flag, max_cycles, timed_out);
}

Status BasicKernels::spin_cycles(const Stream& stream, uint64_t cycles, unsigned blocks) const {
  return spin_cycles_.launch(stream, blocks, 32, 0, cycles);
}

}  // namespace ps::cuda
