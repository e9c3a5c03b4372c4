// HeadSlice (common/head_slice.h) on our kernels (cuda/kernels/layout.cu), forward and
// backward: each one copy between X's columns [start, start + size) and Y, tiled where the
// innermost dimension moves (BERT's key, [B, S, H, D] -> [B, H, D, S]), else strided and
// widened to 16-byte units (query and value keep D innermost).
//
// The backward writes dX whole: zeros in the columns outside the slice (a 2-D memset) and dY
// put back in its own; or, when another reader of X wrote dX first (GradSpec accumulate), adds
// dY into its columns only (the other columns' gradient from this reader is zero); or, when
// the trainer found HeadSlices writing all of dX between them (GradSpec partial), writes its
// columns alone.
#include <algorithm>

#include "cuda/copy.h"
#include "cuda/stream.h"
#include "models/cpu/kernels.h"
#include "models/gpu/copy_launch.h"
#include "models/gpu/grad_builders.h"
#include "models/gpu/grad_op_util.h"
#include "models/gpu/index_plan.h"
#include "models/gpu/kernel_op_util.h"

namespace ps::models::gpu {
namespace {

// One copy (or add) over `dims` from src to dst: tiled where the innermost dimension moves,
// else strided (copy_launch.h).
class HeadCopy {
 public:
  static Result<HeadCopy> plan(const OpEnv& env, const Shape& dims, std::vector<int64_t> in_strides,
                               std::vector<int64_t> out_strides, size_t esize, bool add) {
    HeadCopy c;
    const TiledTransposePlan tiled = plan_tiled_copy(dims, in_strides, out_strides);
    if (tiled.ok && esize <= 8) {
      c.tiled_ = true;
      PS_ASSIGN_OR_RETURN(c.tile_, TiledCopy::make(env, tiled.params, esize, add));
      return c;
    }
    PS_ASSIGN_OR_RETURN(CopyPlan plan, plan_strided_copy(dims, std::move(in_strides),
                                                         std::move(out_strides), 0, 0, esize));
    PS_ASSIGN_OR_RETURN(c.strided_, StridedCopy::make(env, plan, add));
    return c;
  }

  Status launch(const cuda::Stream& stream, CUdeviceptr src, CUdeviceptr dst) const {
    return tiled_ ? tile_.launch(stream, src, dst) : strided_.launch(stream, src, dst);
  }

  std::string describe() const { return tiled_ ? tile_.describe() : strided_.describe(); }

 private:
  bool tiled_ = false;
  TiledCopy tile_;
  StridedCopy strided_;
};

class HeadSliceOp final : public GpuOp {
 public:
  HeadSliceOp(HeadCopy copy, size_t x_offset) : copy_(std::move(copy)), x_offset_(x_offset) {}
  Status enqueue(const LaunchArgs& args) const override {
    return copy_.launch(args.stream, args.inputs[0] + x_offset_, args.outputs[0]);
  }
  std::string describe() const override { return str_cat("HeadSlice: ", copy_.describe()); }

 private:
  HeadCopy copy_;
  size_t x_offset_;  // bytes
};

// LaunchArgs: inputs {X, dY}, outputs {dX}.
class HeadSliceGradOp final : public GpuOp {
 public:
  // X is [rows, columns] flattened; the slice its columns [start, start + size).
  // zero_others: write zeros in the columns outside the slice first.
  HeadSliceGradOp(HeadCopy copy, size_t rows, size_t columns, size_t start, size_t size,
                  bool zero_others)
      : copy_(std::move(copy)),
        rows_(rows),
        columns_(columns),
        start_(start),
        size_(size),
        zero_others_(zero_others) {}
  Status enqueue(const LaunchArgs& args) const override {
    PS_TRY(check_bound(args, 2, 1, "HeadSlice"));
    const CUdeviceptr dx = args.outputs[0];
    if (zero_others_) {
      const size_t pitch = columns_ * 4;
      PS_TRY(cuda::memset_2d_d32_async(dx, pitch, 0, start_, rows_, args.stream));
      const size_t end = start_ + size_;
      PS_TRY(cuda::memset_2d_d32_async(dx + end * 4, pitch, 0, columns_ - end, rows_, args.stream));
    }
    return copy_.launch(args.stream, args.inputs[1], dx + start_ * 4);
  }
  std::string describe() const override {
    return str_cat("HeadSlice backward: ", zero_others_ ? "2-D memsets and " : "",
                   copy_.describe());
  }

 private:
  HeadCopy copy_;
  size_t rows_, columns_, start_, size_;
  bool zero_others_;
};

Result<HeadSliceLayout> layout_of(const OpSpec& spec) {
  PS_TRY(check_arity(spec, 1, 1, 1, 1));
  AttrReader attrs(spec);
  return cpu::head_slice_attrs(*attrs, spec.inputs[0].shape);
}

}  // namespace

BuildResult build_head_slice(const OpSpec& spec, const OpEnv& env) {
  PS_ASSIGN_OR_RETURN(const HeadSliceLayout l, layout_of(spec));
  const TensorSpec& x = spec.inputs[0];
  PS_TRY(check_output(spec, 0, x.dtype, l.y));
  const size_t esize = dtype_size(x.dtype);
  PS_ASSIGN_OR_RETURN(HeadCopy copy,
                      HeadCopy::plan(env, l.y, l.x_strides, row_major_strides(l.y), esize, false));
  return std::unique_ptr<GpuOp>(
      new HeadSliceOp(std::move(copy), static_cast<size_t>(l.x_base) * esize));
}

Result<std::unique_ptr<GpuOp>> build_head_slice_grad(const GradSpec& spec, const OpEnv& env) {
  const OpSpec& f = spec.forward;
  PS_ASSIGN_OR_RETURN(const HeadSliceLayout l, layout_of(f));
  PS_TRY(require_f32(f.inputs[0], "X"));
  PS_ASSIGN_OR_RETURN(const TensorSpec* y, forward_output(f));
  if (y->shape != l.y)
    return invalid_argument("Y ", shape_string(y->shape), " is not ", shape_string(l.y));
  if (!spec.wants(0)) return no_grad_op("HeadSlice");
  if (spec.partial && spec.accumulates(0)) {
    return invalid_argument("a partial gradient cannot also accumulate");
  }
  // Along X's order, so that the tiled kernel's contiguous writes are dX's.
  PS_ASSIGN_OR_RETURN(HeadCopy copy, HeadCopy::plan(env, l.sliced, l.sliced_y_strides,
                                                    l.sliced_x_strides, 4, spec.accumulates(0)));
  const Shape& x = f.inputs[0].shape;
  const auto columns = static_cast<size_t>(x.back());
  const auto rows = static_cast<size_t>(element_count(x)) / columns;
  const auto size = static_cast<size_t>(l.sliced[l.sliced.size() - 2] * l.sliced.back());
  return std::unique_ptr<GpuOp>(new HeadSliceGradOp(std::move(copy), rows, columns,
                                                    static_cast<size_t>(l.x_base), size,
                                                    !spec.accumulates(0) && !spec.partial));
}

}  // namespace ps::models::gpu
