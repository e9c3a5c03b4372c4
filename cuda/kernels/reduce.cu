// Reductions (ReduceSum, ReduceMean, ReduceProd, ReduceMax, ReduceMin) over any set of axes.
//
// The launcher merges adjacent dimensions and splits them into kept dimensions (the output,
// contiguous) and reduced ones. When the input's innermost dimension is reduced, a warp
// reduces each output element (its lanes read consecutive addresses); otherwise one thread
// reduces each output element (consecutive threads read consecutive addresses), or, when the
// outputs are few and the groups long, a block takes 8 to 32 outputs and its lanes split the group. Float sums and
// products accumulate in double, integer ones in wrapping 64-bit, as the CPU reference does;
// Max/Min propagate NaN. Launchers: models/gpu/reduce_op.cc.
#include <cstdint>

#include "cuda/kernels/kernel_params.h"

namespace reduce {

using ps::kernels::kMaxRank;
using ps::kernels::ReduceParams;

template <typename T>
struct Acc {
  using type = long long;
};
template <>
struct Acc<float> {
  using type = double;
};

template <typename T>
__device__ inline bool is_nan(T v) {
  if constexpr (__is_same(T, float) || __is_same(T, double)) {
    return isnan(v);
  } else {
    return false;
  }
}

// The accumulator of one reduction, with the CPU reference's initial values and NaN rules.
template <typename T>
struct Reducer {
  using A = typename Acc<T>::type;
  int32_t op;
  A acc;

  __device__ explicit Reducer(int32_t op_) : op(op_) {
    if (op == ps::kernels::kReduceProd) {
      acc = 1;
    } else if (op == ps::kernels::kReduceMax) {
      if constexpr (__is_same(A, double)) {
        acc = -INFINITY;
      } else {
        acc = __is_same(T, int32_t) ? -2147483647LL - 1 : -9223372036854775807LL - 1;
      }
    } else if (op == ps::kernels::kReduceMin) {
      if constexpr (__is_same(A, double)) {
        acc = INFINITY;
      } else {
        acc = __is_same(T, int32_t) ? 2147483647LL : 9223372036854775807LL;
      }
    } else {
      acc = 0;
    }
  }

  __device__ static A combine(int32_t op, A a, A b) {
    switch (op) {
      case ps::kernels::kReduceSum:
      case ps::kernels::kReduceMean:
        if constexpr (__is_same(A, double)) {
          return a + b;
        } else {
          return static_cast<A>(static_cast<unsigned long long>(a) + static_cast<unsigned long long>(b));
        }
      case ps::kernels::kReduceProd:
        if constexpr (__is_same(A, double)) {
          return a * b;
        } else {
          return static_cast<A>(static_cast<unsigned long long>(a) * static_cast<unsigned long long>(b));
        }
      case ps::kernels::kReduceMax:
        if (is_nan(a) || is_nan(b)) return is_nan(a) ? a : b;
        return a < b ? b : a;
      default:
        if (is_nan(a) || is_nan(b)) return is_nan(a) ? a : b;
        return b < a ? b : a;
    }
  }

  __device__ void add(T v) { acc = combine(op, acc, static_cast<A>(v)); }

  __device__ T result(int64_t group) const {
    if (op == ps::kernels::kReduceMean) {
      if constexpr (__is_same(A, double)) {
        return static_cast<T>(acc / static_cast<double>(group));
      } else {
        return static_cast<T>(group != 0 ? acc / group : 0);
      }
    }
    return static_cast<T>(acc);
  }
};

__device__ inline int64_t kept_offset(const ReduceParams& p, int64_t j) {
  int64_t off = 0;
#pragma unroll
  for (int d = kMaxRank - 1; d >= 0; --d) {
    if (d < p.kept_rank) {
      off += (j % p.kept_dims[d]) * p.kept_strides[d];
      j /= p.kept_dims[d];
    }
  }
  return off;
}

__device__ inline int64_t reduced_offset(const ReduceParams& p, int64_t r) {
  int64_t off = 0;
#pragma unroll
  for (int d = kMaxRank - 1; d >= 0; --d) {
    if (d < p.reduced_rank) {
      off += (r % p.reduced_dims[d]) * p.reduced_strides[d];
      r /= p.reduced_dims[d];
    }
  }
  return off;
}

template <typename T>
__device__ void reduce_threads(const T* x, T* y, const ReduceParams& p) {
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < p.out_count;
       j += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const T* base = x + kept_offset(p, j);
    Reducer<T> r(p.op);
    for (int64_t k = 0; k < p.group; ++k) r.add(base[reduced_offset(p, k)]);
    y[j] = r.result(p.group);
  }
}

template <typename T>
__device__ void reduce_warps(const T* x, T* y, const ReduceParams& p) {
  using A = typename Acc<T>::type;
  const int lane = threadIdx.x % 32;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * blockDim.x / 32;
  for (int64_t j = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
       j < p.out_count; j += warps) {
    const T* base = x + kept_offset(p, j);
    Reducer<T> r(p.op);
    for (int64_t k = lane; k < p.group; k += 32) r.add(base[reduced_offset(p, k)]);
    A acc = r.acc;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      acc = Reducer<T>::combine(p.op, acc, __shfl_xor_sync(0xffffffffu, acc, o));
    }
    r.acc = acc;
    if (lane == 0) y[j] = r.result(p.group);
  }
}

// A block per p.tile_columns (8, 16 or 32: T) consecutive outputs, for reductions whose
// innermost input dimension is kept and whose outputs are too few to fill the GPU (a bias
// gradient: [rows, columns] summed over rows, where a thread per output leaves most SMs idle and
// walks every row alone). Lane l of warp w takes output tile * T + l % T and the group's
// elements w * (32 / T) + l / T, then every warps * (32 / T)-th after it: one load of a warp
// reads 32 / T rows of T consecutive elements. The lanes of an output combine by shuffles, then
// warp 0 combines the warps' results in warp order (a fixed order: deterministic).
// blockDim.x: a multiple of 32, at most 1024.
// The tile width (index_plan.cc's plan_reduce) trades blocks for row length: a 768-wide bias
// gradient over 2008 rows in 32-wide tiles ran on 24 blocks (24 of 132 SMs), ~19.5 us where the
// bytes take ~2; in 8-wide tiles (96 blocks), ~11 us. A 3072-wide one went from 21.7 us in
// 32-wide tiles (96 blocks) to 26 us in 8-wide (384): 32-byte row pieces halve what each DRAM
// access brings (BERT-base training, H100).
// A thread's elements are read kColumnBatch at a time, every load unconditional (indices past
// the group clamped to its last element, whose value is then not added), so the batch's loads
// are in flight together; one at a time, each waited for the one before, a warp of the 2008-row
// gradient issued 63 memory latencies (~45 us).
constexpr int kColumnBatch = 8;

// reduced_offset without the divisions when the reduced dimensions merged into one.
__device__ inline int64_t reduced_offset_of(const ReduceParams& p, int64_t r) {
  return p.reduced_rank == 1 ? r * p.reduced_strides[0] : reduced_offset(p, r);
}

template <typename T>
__device__ void reduce_columns(const T* x, T* y, const ReduceParams& p) {
  using A = typename Acc<T>::type;
  __shared__ A partial[32][32];
  const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  const int tile_columns = p.tile_columns, tile_rows = 32 / tile_columns;
  const unsigned column = lane % tile_columns;
  const int64_t first = warp * tile_rows + lane / tile_columns;
  const int64_t stride = static_cast<int64_t>(warps) * tile_rows;
  for (int64_t tile = blockIdx.x; tile * tile_columns < p.out_count; tile += gridDim.x) {
    const int64_t j = tile * tile_columns + column;
    Reducer<T> r(p.op);
    if (j < p.out_count) {
      const T* base = x + kept_offset(p, j);
      for (int64_t k0 = first; k0 < p.group; k0 += kColumnBatch * stride) {
        T v[kColumnBatch];
#pragma unroll
        for (int u = 0; u < kColumnBatch; ++u) {
          const int64_t k = k0 + u * stride;
          v[u] = base[reduced_offset_of(p, k < p.group ? k : p.group - 1)];
        }
#pragma unroll
        for (int u = 0; u < kColumnBatch; ++u) {
          if (k0 + u * stride < p.group) r.add(v[u]);
        }
      }
    }
    // Lanes column, column + T, ... hold the output's rows; every lane takes part.
    A acc = r.acc;
    for (int o = 16; o >= tile_columns; o >>= 1) {
      acc = Reducer<T>::combine(p.op, acc, __shfl_xor_sync(0xffffffffu, acc, o));
    }
    if (lane < static_cast<unsigned>(tile_columns)) partial[warp][lane] = acc;
    __syncthreads();
    if (warp == 0 && lane < static_cast<unsigned>(tile_columns)) {
      acc = partial[0][lane];
      for (unsigned w = 1; w < warps; ++w) acc = Reducer<T>::combine(p.op, acc, partial[w][lane]);
      r.acc = acc;
      if (j < p.out_count) y[j] = r.result(p.group);
    }
    __syncthreads();  // partial is rewritten by the next tile
  }
}

}  // namespace reduce

// mode 0: a thread per output element; mode 1: a warp per output element; mode 2: a block per
// p.tile_columns output elements (models/gpu/index_plan.h: ReduceMode).
#define PS_REDUCE_KERNEL(NAME, T)                                                               \
  extern "C" __global__ void NAME(const T* x, T* y, ps::kernels::ReduceParams p, int32_t mode) { \
    if (mode == 1) {                                                                            \
      reduce::reduce_warps(x, y, p);                                                            \
    } else if (mode == 2) {                                                                     \
      reduce::reduce_columns(x, y, p);                                                          \
    } else {                                                                                    \
      reduce::reduce_threads(x, y, p);                                                          \
    }                                                                                           \
  }
PS_REDUCE_KERNEL(ps_reduce_f32, float)
PS_REDUCE_KERNEL(ps_reduce_i64, int64_t)
PS_REDUCE_KERNEL(ps_reduce_i32, int32_t)
#undef PS_REDUCE_KERNEL
