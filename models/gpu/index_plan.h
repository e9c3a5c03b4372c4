// Plan-time index arithmetic of our kernels: merging dimensions, broadcast layouts, strided
// copies (with the widest element unit the layout allows), slice bounds and reduction splits.
// Pure functions of shapes and attributes: no GPU, tested on the CPU (test_gpu_kernel_ops).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/shape.h"
#include "common/status.h"
#include "cuda/kernels/kernel_params.h"

namespace ps::models::gpu {

// Dimensions and, per operand, the stride of each (in elements). Operand k's element at index
// tuple i is at sum_d i_d * strides[k][d].
struct StridedLayout {
  Shape dims;
  std::vector<std::vector<int64_t>> strides;
};

// Drops dimensions of size 1 and merges each pair of adjacent dimensions that every operand
// walks as one (strides[k][d] == strides[k][d + 1] * dims[d + 1]). A zero-element layout keeps
// its zero dimension. The result addresses the same elements in the same order.
StridedLayout merge_dims(const StridedLayout& layout);

// Row-major strides of `shape`.
std::vector<int64_t> row_major_strides(const Shape& shape);

// The strides that read `in` broadcast to `out` (numpy rules: 0 where `in` has a 1 or lacks
// the dimension). Precondition: `in` broadcasts to `out`.
std::vector<int64_t> broadcast_strides_to(const Shape& in, const Shape& out);

// Element-wise operands (up to 3) broadcast to a contiguous output: chooses the fastest mode
// (same shape, scalar operand, operand repeating over the last dimensions, general) and fills
// kernels::BroadcastParams (vectorize is left 0: enqueue sets it after checking alignment).
// Errors: an operand that does not broadcast to `out`, a merged rank above kMaxRank.
Result<kernels::BroadcastParams> plan_broadcast(std::span<const Shape> operands, const Shape& out);

// AddSoftmax's mask M read broadcast over the rows of X (softmax along X's last axis): fills
// p's mask_col, mask_terms and the terms' divisors, extents and strides (size-1 and stride-0
// dimensions dropped, adjacent ones merged). Errors: M does not broadcast to X, X rank 0, more
// than kSoftmaxMaskTerms terms after merging.
Status plan_softmax_mask(const Shape& m, const Shape& x, kernels::SoftmaxParams* p);

// A strided copy planned for a given element size: the params and the unit (bytes) of the
// kernel to run (ps_strided_copy_u8 ... _u128). `wide` moves units of up to 16 bytes where the
// layout allows it; `narrow` moves single elements, for pointers that are not aligned enough.
struct CopyPlan {
  kernels::StridedCopyParams wide;
  size_t wide_unit = 1;
  kernels::StridedCopyParams narrow;
  size_t narrow_unit = 1;
  // Requirements on the byte addresses for `wide` (the base pointers' alignment).
  size_t wide_alignment() const { return wide_unit; }
};

// Plans dst[out_base + i . out_strides] = src[in_base + i . in_strides] over dims (element
// units). Errors: a merged rank above kMaxRank, an element size other than 1, 2, 4, 8, 16.
Result<CopyPlan> plan_strided_copy(const Shape& dims, std::vector<int64_t> in_strides,
                                   std::vector<int64_t> out_strides, int64_t in_base,
                                   int64_t out_base, size_t element_size);

// A transpose that moves the innermost dimension can be done by the tiled kernel: the merged
// layout (contiguous output) and the dimension whose in-stride is 1. nullopt-like: ok == false
// when the tiled kernel does not apply (or would not help: both sides under 8 long).
struct TiledTransposePlan {
  bool ok = false;
  kernels::TransposeParams params;
};
TiledTransposePlan plan_tiled_transpose(const Shape& in_shape, std::span<const int64_t> perm);
// The same for any copy over `dims` (element strides on both sides, bases applied by the
// caller to the addresses): tiled when, merged, the output's innermost stride is 1, the
// input's there is not, and another dimension has input stride 1 (HeadSlice's head copies
// out of a wider row, and back).
TiledTransposePlan plan_tiled_copy(const Shape& dims, std::vector<int64_t> in_strides,
                                   std::vector<int64_t> out_strides);

// ONNX Slice bounds for one axis of length `dim` (negative start/end count from the end, then
// clamped; steps may be negative, never 0): the first index and the element count.
struct SliceAxis {
  int64_t start = 0;
  int64_t count = 0;
};
Result<SliceAxis> normalize_slice(int64_t start, int64_t end, int64_t step, int64_t dim);

// How cuda/kernels/reduce.cu's kernel spreads a reduction (its `mode` argument):
//  - kThreadPerOutput: a thread reduces each output (consecutive threads, consecutive outputs);
//  - kWarpPerOutput: the innermost input dimension is reduced, a warp reduces each output;
//  - kColumnTiles: the innermost input dimension is kept and the group is long while the
//    outputs are too few to fill the GPU (a bias gradient: [rows, columns] summed over rows):
//    a block per 8, 16 or 32 outputs (params.tile_columns: 32 while that gives a block to
//    every SM), its lanes splitting the group, combined in a fixed order.
enum class ReduceMode : int32_t { kThreadPerOutput = 0, kWarpPerOutput = 1, kColumnTiles = 2 };
const char* reduce_mode_name(ReduceMode mode);

// The SMs the launch shapes are sized for (an H100's 132): grid_for's cap, and the column
// tiles' width (plan_reduce gives each of them a block).
inline constexpr int64_t kTargetSms = 132;

// A reduction of `in` over the axes marked in `reduced` (same rank as in), output contiguous
// over the kept dimensions, and the kernel's mode for it (its launch shape:
// kernel_op_util.h's reduce_launch_shape).
struct ReducePlan {
  kernels::ReduceParams params;
  ReduceMode mode = ReduceMode::kThreadPerOutput;
};
Result<ReducePlan> plan_reduce(const Shape& in, const std::vector<bool>& reduced);

// True when every offset of a tensor of `count` elements fits 32-bit index arithmetic.
inline bool fits_int32(int64_t count) { return count < (int64_t{1} << 31); }

}  // namespace ps::models::gpu
