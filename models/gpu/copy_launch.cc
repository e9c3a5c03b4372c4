#include "models/gpu/copy_launch.h"

#include <algorithm>

#include "models/gpu/kernel_op_util.h"

namespace ps::models::gpu {

Result<StridedCopy> StridedCopy::make(const OpEnv& env, CopyPlan plan, bool add) {
  StridedCopy c;
  c.add = add;
  if (add) {
    plan.wide = plan.narrow;
    plan.wide_unit = plan.narrow_unit;
  }
  c.plan = plan;
  const std::string wide =
      add ? "ps_strided_add_f32" : str_cat("ps_strided_copy_", unit_suffix(plan.wide_unit));
  const std::string narrow =
      add ? wide : str_cat("ps_strided_copy_", unit_suffix(plan.narrow_unit));
  PS_ASSIGN_OR_RETURN(c.wide, find_kernel(env, wide));
  PS_ASSIGN_OR_RETURN(c.narrow, find_kernel(env, narrow));
  return c;
}

Status StridedCopy::launch(const cuda::Stream& stream, CUdeviceptr src, CUdeviceptr dst) const {
  const bool use_wide = aligned({src, dst}, plan.wide_alignment());
  const kernels::StridedCopyParams& p = use_wide ? plan.wide : plan.narrow;
  if (p.count == 0 ||
      (!add && copies_onto_itself(p, use_wide ? plan.wide_unit : plan.narrow_unit, src, dst))) {
    return Status::OK();
  }
  return (use_wide ? wide : narrow).launch(stream, grid_for(p.count), kBlock, 0, src, dst, p);
}

std::string StridedCopy::describe() const {
  return str_cat(add ? "strided add" : "strided copy", " (units ", plan.wide_unit, " B)");
}

Result<TiledCopy> TiledCopy::make(const OpEnv& env, const kernels::TransposeParams& params,
                                  size_t esize, bool add) {
  TiledCopy c;
  c.params = params;
  const std::string name =
      add ? "ps_transpose_tiled_add_f32" : str_cat("ps_transpose_tiled_", unit_suffix(esize));
  PS_ASSIGN_OR_RETURN(c.kernel, find_kernel(env, name));
  return c;
}

Status TiledCopy::launch(const cuda::Stream& stream, CUdeviceptr src, CUdeviceptr dst) const {
  if (params.count == 0) return Status::OK();
  const int64_t tiles = params.tiles_rows * params.tiles_cols * params.batch;
  const auto grid = static_cast<unsigned>(std::min<int64_t>(tiles, 65535 * 8));
  return kernel.launch(stream, grid, cuda::Dim3(32, 8), 0, src, dst, params);
}

std::string TiledCopy::describe() const {
  return str_cat("kernel ", kernel.name(), " (tiled 32x32, batch ", params.batch, ")");
}

}  // namespace ps::models::gpu
