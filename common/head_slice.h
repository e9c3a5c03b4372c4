// HeadSlice, one of our ops (made by onnx_loader/passes/fuse_head_projections.h): one
// attention head tensor read out of a fused projection's product. For X [..., C]:
//   Y = Transpose(Reshape(X[..., start : start + size], [..., heads, size / heads]), perm)
// i.e. what Split (or Slice) on the last axis, Reshape and Transpose compute, as ONE strided
// copy that reads X in place. Its gradient dX is dY scattered back into X's columns
// [start, start + size) and zeros elsewhere (a reader of another slice adds its own part).
// The geometry is shared by the CPU references and the GPU ops (models/cpu, models/gpu).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/shape.h"
#include "common/status.h"

namespace ps {

struct HeadSliceLayout {
  Shape y;                         // Y's shape
  std::vector<int64_t> x_strides;  // for each of Y's dims, X's element stride along it
  int64_t x_base = 0;              // X's element offset of Y's first element (= start)
  // The same walk in X's order (the reshaped slice [..., heads, size / heads], contiguous in
  // X innermost): its dims, X's strides and Y's strides along them. The backward copies along
  // this order, so that its writes into dX are the contiguous ones.
  Shape sliced;
  std::vector<int64_t> sliced_x_strides;
  std::vector<int64_t> sliced_y_strides;
};

// Checks the attributes against X's shape and returns the layout. Errors (kInvalidArgument):
// X of rank 0; start < 0, size < 1 or start + size beyond X's last dim; heads < 1 or not
// dividing size; perm not a permutation of rank(X) + 1 axes.
Result<HeadSliceLayout> head_slice_layout(const Shape& x, int64_t start, int64_t size,
                                          int64_t heads, std::span<const int64_t> perm);

}  // namespace ps
