// How the copy ops launch layout.cu's copies, in one place: a planned strided copy (or add)
// with its two kernels, launched in its wide units (up to 16 bytes) where both addresses allow
// and in its narrow ones otherwise; and the tiled transpose's blocks of 32 x 8 threads over its
// 32 x 32 tiles. Transpose, Slice, Expand, Concat, Split (layout_ops.cc), Concat's backward
// (grad_kernel_ops.cc) and HeadSlice both ways (head_slice_op.cc) use them.
#pragma once

#include <string>

#include "common/status.h"
#include "cuda/kernels/kernel_params.h"
#include "cuda/module.h"
#include "cuda/stream.h"
#include "models/gpu/index_plan.h"
#include "models/gpu/op.h"

namespace ps::models::gpu {

struct StridedCopy {
  CopyPlan plan;
  cuda::Kernel wide, narrow;
  bool add = false;

  // ps_strided_copy_<unit> for the plan's wide and narrow units; `add`: ps_strided_add_f32
  // (float32 only: the narrow plan serves both).
  static Result<StridedCopy> make(const OpEnv& env, CopyPlan plan, bool add = false);
  // src -> dst (addresses of element 0 of the plan's bases). Nothing when the copy is empty or
  // puts every element where it already is (copies_onto_itself: a Concat of weights side by
  // side); an add always runs.
  Status launch(const cuda::Stream& stream, CUdeviceptr src, CUdeviceptr dst) const;
  // "strided copy (units N B)" or "strided add (units 4 B)".
  std::string describe() const;
};

struct TiledCopy {
  kernels::TransposeParams params;
  cuda::Kernel kernel;

  // ps_transpose_tiled_<unit> for `esize`-byte elements (1 to 8), or ps_transpose_tiled_add_f32.
  static Result<TiledCopy> make(const OpEnv& env, const kernels::TransposeParams& params,
                                size_t esize, bool add = false);
  Status launch(const cuda::Stream& stream, CUdeviceptr src, CUdeviceptr dst) const;
  // "kernel NAME (tiled 32x32, batch N)".
  std::string describe() const;
};

}  // namespace ps::models::gpu
