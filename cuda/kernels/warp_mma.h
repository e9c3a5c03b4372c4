// Warp-level tensor-core products and asynchronous copies for our hand-written kernels
// (attention.cu), in raw PTX so the fragments' layouts are known and a kernel can keep its
// operands and results in registers (WMMA's fragments are opaque: results go through shared
// memory).
//
// mma_m16n8k8: D (16 x 8) = A (16 x 8, row-major) B (8 x 8, col-major) + C, TF32 inputs, fp32
// accumulation (PTX mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32). With g = lane / 4 and
// t = lane % 4, a lane holds
//   a[0] = A[g][t]     a[1] = A[g + 8][t]     a[2] = A[g][t + 4]     a[3] = A[g + 8][t + 4]
//   b[0] = B[t][g]     b[1] = B[t + 4][g]
//   c[0] = C[g][2t]    c[1] = C[g][2t + 1]    c[2] = C[g + 8][2t]    c[3] = C[g + 8][2t + 1]
// Split3: fp32 accuracy from TF32 products ("3xTF32"): x = hi + lo, both TF32, and
// a b ~ a.hi b.hi + a.hi b.lo + a.lo b.hi (the dropped a.lo b.lo is ~2^-22 of the product).
//
// load_shared / store_global4: one vector load or store (float2 / float4) of a lane's
// contiguous values.
//
// copy_async: cp.async of 16 (or 4) bytes from global to shared memory, zero-filled when
// `valid` is false; copy_async_commit / copy_async_wait<N> group them (wait until at most N
// groups are in flight).
//
// Off the GPU (the kernel emulation in tests/models/kernel_emulation.h, which must be included
// first) the product is emu_mma_m16n8k8 and the copies are plain copies.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace ps::kernels::warp {

// x as an mma operand rounded to TF32 (10 mantissa bits; to nearest, ties away from zero, as
// cvt.rna.tf32.f32 rounds): half a TF32 ulp is added to the bits and the tensor core ignores
// (truncates) the low 13 bits, CUTLASS's round_half_ulp_truncate. One integer add, where cvt.rna
// costs 3 to 4 instructions on sm_90 (this kernel converts every K and V value it reads).
// The low bits stay in the register, so the result is for an mma only (to_tf32_exact for a
// value used again). Infinities stay infinite and overflow rounds to infinity; a NaN whose
// payload lies only in the low 13 bits would read as infinity (arithmetic NaNs set the top bit).
__device__ inline uint32_t to_tf32(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return u + 0x1000u;
}

// x rounded to TF32 as above with the low 13 bits cleared: the value the mma reads, exactly.
__device__ inline uint32_t to_tf32_exact(float x) { return to_tf32(x) & 0xffffe000u; }

__device__ inline float tf32_value(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// x as hi + lo, both TF32 (lo's low bits left for the mma to drop).
struct Split3 {
  uint32_t hi, lo;
  __device__ explicit Split3(float x) : hi(to_tf32_exact(x)), lo(to_tf32(x - tf32_value(hi))) {}
};

__device__ inline void mma_m16n8k8(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if defined(__CUDACC__)
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  emu_mma_m16n8k8(d, a, b);
#endif
}

// d += A B with A and B given as hi/lo pairs: fp32 accuracy (three products, the small ones
// first).
__device__ inline void mma_m16n8k8_3x(float (&d)[4], const uint32_t (&a_hi)[4],
                                      const uint32_t (&a_lo)[4], const uint32_t (&b_hi)[2],
                                      const uint32_t (&b_lo)[2]) {
  mma_m16n8k8(d, a_lo, b_hi);
  mma_m16n8k8(d, a_hi, b_lo);
  mma_m16n8k8(d, a_hi, b_hi);
}

// 2^x by the special-function unit (ex2.approx.ftz.f32: ~2 ulp, results below 2^-126 flushed
// to zero, exp2(-inf) = 0); exp2f adds a scaling around it for subnormal results. For softmax
// weights, where a term below 2^-126 of the largest is nothing.
__device__ inline float exp2_approx(float x) {
#if defined(__CUDACC__)
  float r;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
  return r;
#else
  return std::exp2(x);
#endif
}

// v[0..kN) = p[0..kN), kN = 2 or 4 floats in one shared-memory load (p aligned to 4 kN bytes).
template <int kN>
__device__ inline void load_shared(const float* p, float* v) {
  static_assert(kN == 2 || kN == 4, "one 8- or 16-byte load");
#if defined(__CUDACC__)
  if constexpr (kN == 4) {
    const float4 x = *reinterpret_cast<const float4*>(p);
    v[0] = x.x, v[1] = x.y, v[2] = x.z, v[3] = x.w;
  } else {
    const float2 x = *reinterpret_cast<const float2*>(p);
    v[0] = x.x, v[1] = x.y;
  }
#else
  std::memcpy(v, p, kN * sizeof(float));
#endif
}

// p[0..4) = v in one 16-byte global store (p aligned to 16 bytes).
__device__ inline void store_global4(float* p, const float (&v)[4]) {
#if defined(__CUDACC__)
  *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
#else
  std::memcpy(p, v, sizeof(v));
#endif
}

template <int kBytes>
__device__ inline void copy_async(float* dst_shared, const float* src, bool valid) {
  static_assert(kBytes == 16 || kBytes == 4, "cp.async copies 16 or 4 bytes here");
#if defined(__CUDACC__)
  const auto dst = static_cast<unsigned>(__cvta_generic_to_shared(dst_shared));
  const int src_bytes = valid ? kBytes : 0;
  if constexpr (kBytes == 16) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src),
                 "r"(src_bytes));
  } else {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(dst), "l"(src),
                 "r"(src_bytes));
  }
#else
  if (valid) {
    std::memcpy(dst_shared, src, kBytes);
  } else {
    std::memset(dst_shared, 0, kBytes);
  }
#endif
}

__device__ inline void copy_async_commit() {
#if defined(__CUDACC__)
  asm volatile("cp.async.commit_group;");
#endif
}

template <int kInFlight>
__device__ inline void copy_async_wait() {
#if defined(__CUDACC__)
  asm volatile("cp.async.wait_group %0;" ::"n"(kInFlight));
#endif
}

}  // namespace ps::kernels::warp
