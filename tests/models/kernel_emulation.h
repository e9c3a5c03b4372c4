// A host emulation of the CUDA execution model, just enough to run our kernels
// (cuda/kernels/*.cu) on the CPU in tests: every thread of a block is a std::thread (so
// __syncthreads is a barrier and warp shuffles exchange through a per-warp barrier), blocks
// run one after another. Slow, and it checks logic only (host libm, not the GPU's math), but
// it runs the kernels' real index arithmetic, shuffles and tiling where CI has no GPU.
//
// Include this, then the .cu files, in ONE test translation unit.
#pragma once

#include <math.h>

#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_fp16.h>


#undef __global__
#define __global__
#undef __shared__
#define __shared__ static  // blocks run one at a time: one copy is the block's shared memory
#undef __launch_bounds__
#define __launch_bounds__(...)

struct EmuDim {
  unsigned x = 1, y = 1, z = 1;
};
inline thread_local EmuDim threadIdx, blockIdx;
inline EmuDim blockDim, gridDim;

inline unsigned __float_as_uint(float f) {
  unsigned u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float __uint_as_float(unsigned u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }

inline std::barrier<>* emu_block_barrier = nullptr;
inline void __syncthreads() { emu_block_barrier->arrive_and_wait(); }

struct EmuWarp {
  std::barrier<> bar{32};
  unsigned long long slot[32] = {};
  float a[16][8], b[8][8];  // emu_mma_m16n8k8's operands, gathered from the lanes
};
inline std::vector<EmuWarp>* emu_warps = nullptr;

template <typename T>
T __shfl_xor_sync(unsigned, T v, int lane_mask) {
  static_assert(sizeof(T) <= 8);
  const unsigned t = threadIdx.y * blockDim.x + threadIdx.x;
  EmuWarp& w = (*emu_warps)[t / 32];
  const unsigned lane = t % 32;
  unsigned long long bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  w.slot[lane] = bits;
  w.bar.arrive_and_wait();
  const unsigned long long other = w.slot[lane ^ static_cast<unsigned>(lane_mask)];
  w.bar.arrive_and_wait();
  T r;
  std::memcpy(&r, &other, sizeof(T));
  return r;
}

// Lane src_lane's v, for every lane of the warp.
template <typename T>
T __shfl_sync(unsigned, T v, int src_lane) {
  static_assert(sizeof(T) <= 8);
  const unsigned t = threadIdx.y * blockDim.x + threadIdx.x;
  EmuWarp& w = (*emu_warps)[t / 32];
  unsigned long long bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  w.slot[t % 32] = bits;
  w.bar.arrive_and_wait();
  const unsigned long long other = w.slot[static_cast<unsigned>(src_lane) % 32];
  w.bar.arrive_and_wait();
  T r;
  std::memcpy(&r, &other, sizeof(T));
  return r;
}
inline void __syncwarp(unsigned = 0xffffffffu) {
  const unsigned t = threadIdx.y * blockDim.x + threadIdx.x;
  (*emu_warps)[t / 32].bar.arrive_and_wait();
}

// The warp's predicates as a bit mask, lane l's in bit l (every lane of the warp takes part).
inline unsigned __ballot_sync(unsigned, int predicate) {
  const unsigned t = threadIdx.y * blockDim.x + threadIdx.x;
  EmuWarp& w = (*emu_warps)[t / 32];
  w.slot[t % 32] = predicate != 0 ? 1 : 0;
  w.bar.arrive_and_wait();
  unsigned mask = 0;
  for (unsigned lane = 0; lane < 32; ++lane) mask |= w.slot[lane] != 0 ? 1u << lane : 0u;
  w.bar.arrive_and_wait();
  return mask;
}
// mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 (cuda/kernels/warp_mma.h has the
// fragments' layout): the lanes' A and B pieces (TF32 bits) gathered, then each lane's four
// sums. The products are exact in fp32 (TF32 has 11 significant bits); the sums run in fp32.
inline void emu_mma_m16n8k8(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  const unsigned t = threadIdx.y * blockDim.x + threadIdx.x;
  EmuWarp& w = (*emu_warps)[t / 32];
  const unsigned lane = t % 32, g = lane / 4, q = lane % 4;
  // The tensor core reads TF32: the low 13 bits of each operand are ignored (truncated).
  auto tf32 = [](uint32_t bits) { return __uint_as_float(bits & 0xffffe000u); };
  w.a[g][q] = tf32(a[0]);
  w.a[g + 8][q] = tf32(a[1]);
  w.a[g][q + 4] = tf32(a[2]);
  w.a[g + 8][q + 4] = tf32(a[3]);
  w.b[q][g] = tf32(b[0]);
  w.b[q + 4][g] = tf32(b[1]);
  w.bar.arrive_and_wait();
  for (int e = 0; e < 4; ++e) {
    const unsigned row = g + (e / 2) * 8, col = 2 * q + e % 2;
    float sum = 0.0f;
    for (int k = 0; k < 8; ++k) sum += w.a[row][k] * w.b[k][col];
    d[e] += sum;
  }
  w.bar.arrive_and_wait();
}

inline int __ffs(unsigned x) { return x == 0 ? 0 : __builtin_ctz(x) + 1; }

// Runs `kernel()` (a lambda calling the kernel function) on grid x block emulated threads.
// Kernels that never synchronise or shuffle may run `cooperative = false`: their threads then
// run one after another on the calling thread (much faster). Precondition: block.x * block.y
// is a multiple of 32.
template <typename F>
void emu_launch(EmuDim grid, EmuDim block, F kernel, bool cooperative = true) {
  gridDim = grid;
  blockDim = block;
  const unsigned n = block.x * block.y;
  if (!cooperative) {
    const EmuDim saved_thread = threadIdx, saved_block = blockIdx;
    for (unsigned b = 0; b < grid.x; ++b) {
      for (unsigned t = 0; t < n; ++t) {
        blockIdx = EmuDim{b, 0, 0};
        threadIdx = EmuDim{t % block.x, t / block.x, 0};
        kernel();
      }
    }
    threadIdx = saved_thread;
    blockIdx = saved_block;
    return;
  }
  for (unsigned b = 0; b < grid.x; ++b) {
    std::barrier<> bar(n);
    std::vector<EmuWarp> warps((n + 31) / 32);
    emu_block_barrier = &bar;
    emu_warps = &warps;
    std::vector<std::thread> threads;
    threads.reserve(n);
    for (unsigned t = 0; t < n; ++t) {
      threads.emplace_back([&, t, b] {
        blockIdx = EmuDim{b, 0, 0};
        threadIdx = EmuDim{t % block.x, t / block.x, 0};
        kernel();
      });
    }
    for (std::thread& th : threads) th.join();
  }
}
