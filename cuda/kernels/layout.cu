// Data-movement kernels, independent of the element type (they move units of 1, 2, 4, 8 or 16
// bytes): the strided copy behind Transpose, Slice, Expand, Concat and Split; a tiled
// transpose for permutations that move the innermost dimension; Gather; and the small fills
// behind Shape, Size, ConstantOfShape and Range. Launchers: models/gpu/layout_ops.cc and
// models/gpu/shape_ops.cc.
#include <cstdint>

#include "cuda/kernels/kernel_params.h"

namespace layout {

using ps::kernels::kMaxRank;
using ps::kernels::StridedCopyParams;
using ps::kernels::TransposeParams;

__device__ inline int64_t thread_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline int64_t thread_count() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

// kAdd: dst += src (float32 only: the accumulating backward of a copy), else dst = src.
template <bool kAdd, typename I, typename U>
__device__ void strided_copy_loop(const U* src, U* dst, const StridedCopyParams& p) {
  for (int64_t i = thread_index(); i < p.count; i += thread_count()) {
    I rem = static_cast<I>(i);
    I in_off = static_cast<I>(p.in_base);
    I out_off = static_cast<I>(p.out_base);
#pragma unroll
    for (int d = kMaxRank - 1; d >= 0; --d) {
      if (d < p.rank) {
        const I dim = static_cast<I>(p.dims[d]);
        const I idx = rem % dim;
        rem /= dim;
        in_off += idx * static_cast<I>(p.in_strides[d]);
        out_off += idx * static_cast<I>(p.out_strides[d]);
      }
    }
    if constexpr (kAdd) {
      dst[out_off] += src[in_off];
    } else {
      dst[out_off] = src[in_off];
    }
  }
}

template <bool kAdd = false, typename U>
__device__ void strided_copy(const U* src, U* dst, const StridedCopyParams& p) {
  if (p.small_index) {
    strided_copy_loop<kAdd, uint32_t>(src, dst, p);
  } else {
    strided_copy_loop<kAdd, int64_t>(src, dst, p);
  }
}

constexpr int kTile = 32;
constexpr int kTileRows = 8;

// One block per 32x32 tile of (row_dim, last dim) in one batch position: reads along row_dim
// (in-stride 1), writes along the output's last dimension (out-stride 1).
template <bool kAdd = false, typename U>
__device__ void tiled_transpose(const U* src, U* dst, const TransposeParams& p) {
  __shared__ U tile[kTile][kTile + 1];
  const int col_dim = p.rank - 1;
  const int64_t tiles = p.tiles_rows * p.tiles_cols;
  for (int64_t t = blockIdx.x; t < tiles * p.batch; t += gridDim.x) {
    const int64_t b = t / tiles;
    const int64_t tt = t % tiles;
    const int64_t row0 = (tt / p.tiles_cols) * kTile;
    const int64_t col0 = (tt % p.tiles_cols) * kTile;
    // Batch offsets: decompose b over the dims other than row_dim and col_dim.
    int64_t in_base = 0, out_base = 0, rem = b;
    for (int d = col_dim - 1; d >= 0; --d) {
      if (d == p.row_dim) continue;
      const int64_t idx = rem % p.dims[d];
      rem /= p.dims[d];
      in_base += idx * p.in_strides[d];
      out_base += idx * p.out_strides[d];
    }
    const int64_t rows = p.dims[p.row_dim], cols = p.dims[col_dim];
    // Load: threadIdx.x walks rows (contiguous in the input).
    for (int k = threadIdx.y; k < kTile; k += kTileRows) {
      const int64_t r = row0 + threadIdx.x, c = col0 + k;
      if (r < rows && c < cols) {
        tile[k][threadIdx.x] = src[in_base + r * p.in_strides[p.row_dim] + c * p.in_strides[col_dim]];
      }
    }
    __syncthreads();
    // Store: threadIdx.x walks columns (contiguous in the output).
    for (int k = threadIdx.y; k < kTile; k += kTileRows) {
      const int64_t r = row0 + k, c = col0 + threadIdx.x;
      if (r < rows && c < cols) {
        U& out = dst[out_base + r * p.out_strides[p.row_dim] + c];
        if constexpr (kAdd) {
          out += tile[threadIdx.x][k];
        } else {
          out = tile[threadIdx.x][k];
        }
      }
    }
    __syncthreads();
  }
}

template <typename U, typename Index>
__device__ void gather(const U* data, const Index* indices, U* out,
                       const ps::kernels::GatherParams& p) {
  for (int64_t i = thread_index(); i < p.count; i += thread_count()) {
    const int64_t inner_i = i % p.inner;
    const int64_t rest = i / p.inner;
    const int64_t j = rest % p.num_indices;
    const int64_t o = rest / p.num_indices;
    int64_t idx = static_cast<int64_t>(indices[j]);
    if (idx < 0) idx += p.axis_dim;
    if (idx < 0 || idx >= p.axis_dim) {
      out[i] = U{};  // out of range: zeros, never an out-of-bounds read
    } else {
      out[i] = data[(o * p.axis_dim + idx) * p.inner + inner_i];
    }
  }
}

struct alignas(16) U128 {
  unsigned long long lo, hi;
};

}  // namespace layout

#define PS_LAYOUT_KERNELS(SUFFIX, U)                                                              \
  extern "C" __global__ void ps_strided_copy_##SUFFIX(const U* src, U* dst,                      \
                                                      ps::kernels::StridedCopyParams p) {        \
    layout::strided_copy(src, dst, p);                                                           \
  }                                                                                              \
  extern "C" __global__ void ps_transpose_tiled_##SUFFIX(const U* src, U* dst,                   \
                                                         ps::kernels::TransposeParams p) {       \
    layout::tiled_transpose(src, dst, p);                                                        \
  }                                                                                              \
  extern "C" __global__ void ps_gather_i64_##SUFFIX(const U* data, const int64_t* indices,       \
                                                    U* out, ps::kernels::GatherParams p) {       \
    layout::gather(data, indices, out, p);                                                       \
  }                                                                                              \
  extern "C" __global__ void ps_gather_i32_##SUFFIX(const U* data, const int32_t* indices,       \
                                                    U* out, ps::kernels::GatherParams p) {       \
    layout::gather(data, indices, out, p);                                                       \
  }
PS_LAYOUT_KERNELS(u8, uint8_t)
PS_LAYOUT_KERNELS(u16, uint16_t)
PS_LAYOUT_KERNELS(u32, uint32_t)
PS_LAYOUT_KERNELS(u64, unsigned long long)
PS_LAYOUT_KERNELS(u128, layout::U128)
#undef PS_LAYOUT_KERNELS

// The adding forms, float32: dst += the copy (HeadSlice's backward adding its columns of dX
// to what another reader of X wrote there; models/gpu/grad_kernel_ops.cc).
extern "C" __global__ void ps_strided_add_f32(const float* src, float* dst,
                                              ps::kernels::StridedCopyParams p) {
  layout::strided_copy<true>(src, dst, p);
}
extern "C" __global__ void ps_transpose_tiled_add_f32(const float* src, float* dst,
                                                      ps::kernels::TransposeParams p) {
  layout::tiled_transpose<true>(src, dst, p);
}

// The pointer arrays of a pointer-array batched product (kernel_params.h's
// BatchPointerParams): one thread an entry.
extern "C" __global__ void ps_batch_pointers(uint64_t* out, ps::kernels::BatchPointerParams p) {
  const int64_t n = p.batch * p.heads;
  for (int64_t i = layout::thread_index(); i < n * p.arrays; i += layout::thread_count()) {
    const int64_t a = i / n, j = i - a * n, b = j / p.heads, h = j - b * p.heads;
    out[a * p.array_stride + j] =
        p.base[a] + static_cast<uint64_t>(b * p.batch_stride[a] + h * p.head_stride[a]);
  }
}

// Writes p.count elements of type p.dtype: mode 0 (Shape, Size) the int64 p.values;
// mode 1 (ConstantOfShape) the element whose bytes are p.value_bits; mode 2 (Range)
// start + i * delta (in double for floating types, int64 for integers, as the CPU reference).
extern "C" __global__ void ps_fill_pattern(void* out, ps::kernels::FillParams p, int32_t mode) {
  using namespace ps::kernels;
  for (int64_t i = layout::thread_index(); i < p.count; i += layout::thread_count()) {
    if (mode == 0) {
      static_cast<int64_t*>(out)[i] = p.values[i < kMaxRank ? i : 0];
      continue;
    }
    if (mode == 1) {
      switch (p.dtype) {
        case kKFloat64:
        case kKInt64:
          static_cast<uint64_t*>(out)[i] = p.value_bits;
          break;
        case kKFloat32:
        case kKInt32:
          static_cast<uint32_t*>(out)[i] = static_cast<uint32_t>(p.value_bits);
          break;
        case kKFloat16:
        case kKBFloat16:
          static_cast<uint16_t*>(out)[i] = static_cast<uint16_t>(p.value_bits);
          break;
        default:
          static_cast<uint8_t*>(out)[i] = static_cast<uint8_t>(p.value_bits);
          break;
      }
      continue;
    }
    switch (p.dtype) {
      case kKFloat32:
        static_cast<float*>(out)[i] = static_cast<float>(p.start + static_cast<double>(i) * p.delta);
        break;
      case kKFloat64:
        static_cast<double*>(out)[i] = p.start + static_cast<double>(i) * p.delta;
        break;
      case kKInt64:
        static_cast<int64_t*>(out)[i] = static_cast<int64_t>(
            static_cast<unsigned long long>(p.istart) +
            static_cast<unsigned long long>(i) * static_cast<unsigned long long>(p.idelta));
        break;
      case kKInt32:
        static_cast<int32_t*>(out)[i] = static_cast<int32_t>(p.istart + i * p.idelta);
        break;
      default:
        break;
    }
  }
}
