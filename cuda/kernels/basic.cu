// Basic kernels: fills, an index pattern and its checker, and two stream-control helpers.
//
// Every kernel is extern "C" so its name in the fatbin is stable (cuModuleGetFunction looks it
// up by that name); host-side wrappers with typed arguments are in cuda/basic_kernels.h. All
// .cu files are compiled as ONE translation unit (cuda/CMakeLists.txt), so file-local helpers
// live in a namespace named after the file.
#include <cstdint>

namespace basic {

__device__ inline uint64_t global_thread_index() {
  return static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

__device__ inline uint64_t grid_stride() { return static_cast<uint64_t>(gridDim.x) * blockDim.x; }

}  // namespace basic

// dst[i] = value for i < count.
extern "C" __global__ void ps_fill_u32(uint32_t* dst, uint64_t count, uint32_t value) {
  for (uint64_t i = basic::global_thread_index(); i < count; i += basic::grid_stride()) {
    dst[i] = value;
  }
}

// dst[i] = value for i < count.
extern "C" __global__ void ps_fill_f32(float* dst, uint64_t count, float value) {
  for (uint64_t i = basic::global_thread_index(); i < count; i += basic::grid_stride()) {
    dst[i] = value;
  }
}

// dst[i] = i * a + b (mod 2^32) for i < count: a pattern in which every word differs from its
// neighbours (a odd), so a copy that drops, repeats or shifts data is caught by the checker.
extern "C" __global__ void ps_iota_u32(uint32_t* dst, uint64_t count, uint32_t a, uint32_t b) {
  for (uint64_t i = basic::global_thread_index(); i < count; i += basic::grid_stride()) {
    dst[i] = static_cast<uint32_t>(i) * a + b;
  }
}

// Counts the i < count with src[i] != i * a + b (mod 2^32): adds the number of mismatches to
// result[0] and lowers result[1] to the smallest mismatching index. The caller sets result to
// {0, UINT64_MAX} before the launch.
extern "C" __global__ void ps_check_iota_u32(const uint32_t* src, uint64_t count, uint32_t a,
                                             uint32_t b, unsigned long long* result) {
  unsigned long long mismatches = 0;
  unsigned long long first = ~0ull;
  for (uint64_t i = basic::global_thread_index(); i < count; i += basic::grid_stride()) {
    if (src[i] != static_cast<uint32_t>(i) * a + b) {
      if (mismatches == 0) first = i;
      ++mismatches;
    }
  }
  // Mismatches are rare (a correct copy has none), so one atomic per failing thread is cheap.
  if (mismatches != 0) {
    atomicAdd(&result[0], mismatches);
    atomicMin(&result[1], first);
  }
}

// Holds a stream until the host writes a non-zero value to *flag (pinned host memory, read
// through unified addressing) or about `max_cycles` GPU clock cycles pass; on time-out it sets
// *timed_out to 1. Lets tests and benchmarks keep a stream busy for exactly as long as they
// need (stream ordering, priorities) without guessing durations. Launch with one thread.
extern "C" __global__ void ps_wait_flag(const volatile uint32_t* flag, uint64_t max_cycles,
                                        uint32_t* timed_out) {
  const long long start = clock64();
  while (*flag == 0) {
    if (static_cast<uint64_t>(clock64() - start) > max_cycles) {
      *timed_out = 1;
      return;
    }
    __nanosleep(1000);
  }
}

// Busy-waits about `cycles` GPU clock cycles in every launched thread: a stand-in for compute
// of a known length in scheduler and preemption benchmarks.
extern "C" __global__ void ps_spin_cycles(uint64_t cycles) {
  const long long start = clock64();
  while (static_cast<uint64_t>(clock64() - start) < cycles) {
  }
}
