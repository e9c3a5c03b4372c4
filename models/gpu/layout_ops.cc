// Data-movement ops on our kernels (cuda/kernels/layout.cu), for every dtype: Transpose (a
// tiled kernel when the innermost dimension moves), Slice, Expand, Concat, Split (strided
// copies, widened to 16-byte units where the layout and the addresses allow), Gather, and the
// views Reshape/Flatten/Squeeze/Unsqueeze/Identity/Dropout (nothing when the output is the
// input's bytes, else one device-to-device copy).
#include <algorithm>
#include <numeric>

#include "cuda/copy.h"
#include "cuda/stream.h"
#include "models/gpu/copy_launch.h"
#include "models/gpu/index_plan.h"
#include "models/gpu/kernel_op_util.h"

namespace ps::models::gpu {
namespace {

// One strided copy between input `in` and output `out` of the op.
struct CopyStep {
  int in = 0;
  int out = 0;
  StridedCopy copy;
};

Result<CopyStep> make_step(const OpEnv& env, int in, int out, CopyPlan plan) {
  PS_ASSIGN_OR_RETURN(StridedCopy copy, StridedCopy::make(env, plan));
  return CopyStep{in, out, std::move(copy)};
}

class CopyOp final : public GpuOp {
 public:
  CopyOp(std::vector<CopyStep> steps, std::string what)
      : steps_(std::move(steps)), what_(std::move(what)) {}
  Status enqueue(const LaunchArgs& args) const override {
    for (const CopyStep& s : steps_) {
      PS_TRY(s.copy.launch(args.stream, args.inputs[s.in], args.outputs[s.out]));
    }
    return Status::OK();
  }
  std::string describe() const override {
    std::string units;
    for (const CopyStep& s : steps_) {
      units += str_cat(units.empty() ? "" : ",", s.copy.plan.wide_unit);
    }
    return str_cat(what_, " (", steps_.size(), " strided copies, units ", units, " B)");
  }

 private:
  std::vector<CopyStep> steps_;
  std::string what_;
};

class TiledTransposeOp final : public GpuOp {
 public:
  explicit TiledTransposeOp(TiledCopy copy) : copy_(std::move(copy)) {}
  Status enqueue(const LaunchArgs& args) const override {
    return copy_.launch(args.stream, args.inputs[0], args.outputs[0]);
  }
  std::string describe() const override { return copy_.describe(); }

 private:
  TiledCopy copy_;
};

class GatherOp final : public GpuOp {
 public:
  GatherOp(cuda::Kernel wide, cuda::Kernel narrow, kernels::GatherParams wide_p,
           kernels::GatherParams narrow_p, size_t wide_unit)
      : wide_(wide), narrow_(narrow), wide_p_(wide_p), narrow_p_(narrow_p), wide_unit_(wide_unit) {}
  Status enqueue(const LaunchArgs& args) const override {
    if (narrow_p_.count == 0) return Status::OK();
    const bool wide = aligned({args.inputs[0], args.outputs[0]}, wide_unit_);
    const kernels::GatherParams& p = wide ? wide_p_ : narrow_p_;
    return (wide ? wide_ : narrow_)
        .launch(args.stream, grid_for(p.count), kBlock, 0, args.inputs[0], args.inputs[1],
                args.outputs[0], p);
  }
  std::string describe() const override {
    return str_cat("kernel ", wide_.name(), " (", narrow_p_.num_indices, " indices, rows of ",
                   wide_p_.inner, " units)");
  }

 private:
  cuda::Kernel wide_, narrow_;
  kernels::GatherParams wide_p_, narrow_p_;
  size_t wide_unit_;
};

// Reshape and friends: a no-op on the input's own bytes, else a copy.
class ViewOp final : public GpuOp {
 public:
  ViewOp(size_t bytes, int64_t mask_elements) : bytes_(bytes), mask_elements_(mask_elements) {}
  Status enqueue(const LaunchArgs& args) const override {
    if (args.outputs[0] != args.inputs[0] && bytes_ > 0) {
      PS_TRY(cuda::copy_device_async(args.outputs[0], args.inputs[0], bytes_, args.stream));
    }
    // Dropout's optional mask: all true in inference.
    if (mask_elements_ > 0 && args.outputs.size() > 1 && args.outputs[1] != 0) {
      PS_TRY(cuda::memset_d8_async(args.outputs[1], 1, static_cast<size_t>(mask_elements_), args.stream));
    }
    return Status::OK();
  }
  std::string describe() const override {
    return str_cat("view (no-op in place, else a ", bytes_, "-byte copy)");
  }

 private:
  size_t bytes_;
  int64_t mask_elements_;
};

Result<int64_t> axis_of(const AttrReader& attrs, int64_t fallback, int64_t rank) {
  PS_ASSIGN_OR_RETURN(const int64_t axis, attrs->attr_int("axis", fallback));
  if (axis < -rank || axis >= rank) {
    return invalid_argument("axis ", axis, " is out of range for rank ", rank);
  }
  return axis < 0 ? axis + rank : axis;
}

}  // namespace

BuildResult build_transpose(const OpSpec& spec, const OpEnv& env) {
  PS_TRY(check_arity(spec, 1, 1, 1, 1));
  AttrReader attrs(spec);
  PS_TRY(attrs->check_attrs({"perm"}));
  const TensorSpec& x = spec.inputs[0];
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  std::vector<int64_t> reversed(x.shape.size());
  for (int64_t i = 0; i < rank; ++i) reversed[i] = rank - 1 - i;
  PS_ASSIGN_OR_RETURN(const std::vector<int64_t> perm, attrs->attr_ints("perm", reversed));
  std::vector<bool> seen(x.shape.size(), false);
  if (perm.size() != seen.size()) {
    return invalid_argument("perm ", shape_string(perm), " does not fit X ", shape_string(x.shape));
  }
  for (int64_t p : perm) {
    if (p < 0 || p >= rank || seen[p]) {
      return invalid_argument("perm ", shape_string(perm), " is not a permutation of ", rank, " axes");
    }
    seen[p] = true;
  }
  Shape out;
  std::vector<int64_t> in_strides;
  const std::vector<int64_t> strides = row_major_strides(x.shape);
  for (int64_t p : perm) {
    out.push_back(x.shape[p]);
    in_strides.push_back(strides[p]);
  }
  PS_TRY(check_output(spec, 0, x.dtype, out));
  const size_t esize = dtype_size(x.dtype);
  const TiledTransposePlan tiled = plan_tiled_transpose(x.shape, perm);
  if (tiled.ok && esize <= 8) {
    PS_ASSIGN_OR_RETURN(TiledCopy copy, TiledCopy::make(env, tiled.params, esize));
    return std::unique_ptr<GpuOp>(new TiledTransposeOp(std::move(copy)));
  }
  PS_ASSIGN_OR_RETURN(CopyPlan plan, plan_strided_copy(out, in_strides, row_major_strides(out), 0, 0, esize));
  PS_ASSIGN_OR_RETURN(CopyStep step, make_step(env, 0, 0, plan));
  return std::unique_ptr<GpuOp>(new CopyOp({step}, str_cat("transpose ", shape_string(perm))));
}

BuildResult build_slice(const OpSpec& spec, const OpEnv& env) {
  PS_TRY(check_arity(spec, 3, 5, 1, 1));
  AttrReader attrs(spec);
  PS_TRY(attrs->check_attrs({}));
  const TensorSpec& x = spec.inputs[0];
  PS_ASSIGN_OR_RETURN(const std::vector<int64_t> starts, static_ints(spec.inputs[1], "starts"));
  PS_ASSIGN_OR_RETURN(const std::vector<int64_t> ends, static_ints(spec.inputs[2], "ends"));
  std::vector<int64_t> axes(starts.size());
  std::iota(axes.begin(), axes.end(), 0);
  std::vector<int64_t> steps(starts.size(), 1);
  if (const TensorSpec* t = optional_input(spec, 3)) {
    PS_ASSIGN_OR_RETURN(axes, static_ints(*t, "axes"));
  }
  if (const TensorSpec* t = optional_input(spec, 4)) {
    PS_ASSIGN_OR_RETURN(steps, static_ints(*t, "steps"));
  }
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size()) {
    return invalid_argument("starts, ends, axes and steps have different lengths (", starts.size(),
                            ", ", ends.size(), ", ", axes.size(), ", ", steps.size(), ")");
  }
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  const std::vector<int64_t> strides = row_major_strides(x.shape);
  Shape out = x.shape;
  std::vector<int64_t> in_strides = strides;
  std::vector<bool> seen(x.shape.size(), false);
  int64_t base = 0;
  for (size_t i = 0; i < starts.size(); ++i) {
    int64_t axis = axes[i];
    if (axis < -rank || axis >= rank) return invalid_argument("axis ", axes[i], " is out of range for rank ", rank);
    if (axis < 0) axis += rank;
    if (seen[axis]) return invalid_argument("axis ", axes[i], " is repeated");
    seen[axis] = true;
    PS_ASSIGN_OR_RETURN(const SliceAxis s, normalize_slice(starts[i], ends[i], steps[i], x.shape[axis]));
    out[axis] = s.count;
    base += s.start * strides[axis];
    in_strides[axis] = strides[axis] * steps[i];
  }
  PS_TRY(check_output(spec, 0, x.dtype, out));
  if (element_count(out) == 0) base = 0;
  PS_ASSIGN_OR_RETURN(CopyPlan plan, plan_strided_copy(out, in_strides, row_major_strides(out), base, 0,
                                                       dtype_size(x.dtype)));
  PS_ASSIGN_OR_RETURN(CopyStep step, make_step(env, 0, 0, plan));
  return std::unique_ptr<GpuOp>(new CopyOp({step}, "slice"));
}

BuildResult build_expand(const OpSpec& spec, const OpEnv& env) {
  PS_TRY(check_arity(spec, 2, 2, 1, 1));
  AttrReader attrs(spec);
  PS_TRY(attrs->check_attrs({}));
  const TensorSpec& x = spec.inputs[0];
  if (spec.outputs.empty() || !spec.outputs[0].present()) return invalid_argument("output 0 is missing");
  // The target shape is the output's (docs/operators.md); when the shape input's values are
  // given, they must broadcast with X to it.
  const Shape& out = spec.outputs[0].shape;
  if (spec.inputs[1].host_data != nullptr) {
    PS_ASSIGN_OR_RETURN(const std::vector<int64_t> shape, static_ints(spec.inputs[1], "shape"));
    const std::optional<Shape> b = broadcast_shapes(x.shape, shape);
    if (!b) return invalid_argument("X ", shape_string(x.shape), " does not broadcast with shape ", shape_string(shape));
    PS_TRY(check_output(spec, 0, x.dtype, *b));
  }
  const std::optional<Shape> b = broadcast_shapes(x.shape, out);
  if (!b || *b != out) {
    return invalid_argument("X ", shape_string(x.shape), " does not expand to ", shape_string(out));
  }
  PS_TRY(check_output(spec, 0, x.dtype, out));
  PS_ASSIGN_OR_RETURN(CopyPlan plan, plan_strided_copy(out, broadcast_strides_to(x.shape, out),
                                                       row_major_strides(out), 0, 0, dtype_size(x.dtype)));
  PS_ASSIGN_OR_RETURN(CopyStep step, make_step(env, 0, 0, plan));
  return std::unique_ptr<GpuOp>(new CopyOp({step}, "expand"));
}

BuildResult build_concat(const OpSpec& spec, const OpEnv& env) {
  if (spec.inputs.empty()) return invalid_argument("at least one input is required");
  PS_TRY(check_arity(spec, spec.inputs.size(), spec.inputs.size(), 1, 1));
  AttrReader attrs(spec);
  PS_TRY(attrs->check_attrs({"axis"}));
  PS_TRY(attrs->require_attrs({"axis"}));
  const TensorSpec& first = spec.inputs[0];
  const int64_t rank = static_cast<int64_t>(first.shape.size());
  PS_ASSIGN_OR_RETURN(const int64_t axis, axis_of(attrs, 0, rank));
  Shape out = first.shape;
  out[axis] = 0;
  for (size_t k = 0; k < spec.inputs.size(); ++k) {
    const TensorSpec& in = spec.inputs[k];
    bool fits = in.dtype == first.dtype && in.shape.size() == first.shape.size();
    for (int64_t d = 0; fits && d < rank; ++d) fits = d == axis || in.shape[d] == first.shape[d];
    if (!fits) {
      return invalid_argument("input ", k, " ", dtype_name(in.dtype), shape_string(in.shape),
                              " does not fit input 0 ", shape_string(first.shape), " along axis ", axis);
    }
    out[axis] += in.shape[axis];
  }
  PS_TRY(check_output(spec, 0, first.dtype, out));
  const std::vector<int64_t> out_strides = row_major_strides(out);
  std::vector<CopyStep> steps;
  int64_t offset = 0;
  for (size_t k = 0; k < spec.inputs.size(); ++k) {
    const Shape& s = spec.inputs[k].shape;
    if (element_count(s) > 0) {
      PS_ASSIGN_OR_RETURN(CopyPlan plan, plan_strided_copy(s, row_major_strides(s), out_strides, 0,
                                                           offset * out_strides[axis], dtype_size(first.dtype)));
      PS_ASSIGN_OR_RETURN(CopyStep step, make_step(env, static_cast<int>(k), 0, plan));
      steps.push_back(step);
    }
    offset += s[axis];
  }
  return std::unique_ptr<GpuOp>(new CopyOp(std::move(steps), str_cat("concat axis ", axis)));
}

BuildResult build_split(const OpSpec& spec, const OpEnv& env) {
  if (spec.outputs.empty()) return invalid_argument("at least one output is required");
  PS_TRY(check_arity(spec, 1, 2, spec.outputs.size(), spec.outputs.size()));
  AttrReader attrs(spec);
  PS_TRY(attrs->check_attrs({"axis", "split", "num_outputs"}));
  const TensorSpec& x = spec.inputs[0];
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  PS_ASSIGN_OR_RETURN(const int64_t axis, axis_of(attrs, 0, rank));
  // Sizes: from `split` (attribute or static input) when given, else the outputs' own shapes
  // (the importer inferred them: equal parts, the last one smaller).
  PS_ASSIGN_OR_RETURN(std::vector<int64_t> sizes, attrs->attr_ints("split"));
  if (const TensorSpec* t = optional_input(spec, 1)) {
    PS_ASSIGN_OR_RETURN(sizes, static_ints(*t, "split"));
  }
  if (sizes.empty()) {
    const int64_t n = static_cast<int64_t>(spec.outputs.size());
    const int64_t part = (x.shape[axis] + n - 1) / n;
    for (int64_t k = 0; k < n; ++k) sizes.push_back(std::clamp<int64_t>(x.shape[axis] - k * part, 0, part));
  }
  if (sizes.size() != spec.outputs.size() ||
      std::accumulate(sizes.begin(), sizes.end(), int64_t{0}) != x.shape[axis]) {
    return invalid_argument("split ", shape_string(sizes), " does not cut axis ", axis, " of ",
                            shape_string(x.shape), " into ", spec.outputs.size(), " parts");
  }
  const std::vector<int64_t> in_strides = row_major_strides(x.shape);
  std::vector<CopyStep> steps;
  int64_t offset = 0;
  for (size_t k = 0; k < sizes.size(); ++k) {
    if (sizes[k] < 0) return invalid_argument("split ", shape_string(sizes), " has a negative size");
    Shape s = x.shape;
    s[axis] = sizes[k];
    PS_TRY(check_output(spec, k, x.dtype, s));
    if (spec.outputs[k].present() && element_count(s) > 0) {
      PS_ASSIGN_OR_RETURN(CopyPlan plan, plan_strided_copy(s, in_strides, row_major_strides(s),
                                                           offset * in_strides[axis], 0, dtype_size(x.dtype)));
      PS_ASSIGN_OR_RETURN(CopyStep step, make_step(env, 0, static_cast<int>(k), plan));
      steps.push_back(step);
    }
    offset += sizes[k];
  }
  return std::unique_ptr<GpuOp>(new CopyOp(std::move(steps), str_cat("split axis ", axis)));
}

BuildResult build_gather(const OpSpec& spec, const OpEnv& env) {
  PS_TRY(check_arity(spec, 2, 2, 1, 1));
  AttrReader attrs(spec);
  PS_TRY(attrs->check_attrs({"axis"}));
  const TensorSpec& data = spec.inputs[0];
  const TensorSpec& idx = spec.inputs[1];
  if (data.shape.empty()) return invalid_argument("data must have rank >= 1");
  const int64_t rank = static_cast<int64_t>(data.shape.size());
  PS_ASSIGN_OR_RETURN(const int64_t axis, axis_of(attrs, 0, rank));
  if (idx.dtype != DType::kInt64 && idx.dtype != DType::kInt32) {
    return invalid_argument("indices must be int64 or int32, got ", dtype_name(idx.dtype));
  }
  Shape out(data.shape.begin(), data.shape.begin() + axis);
  out.insert(out.end(), idx.shape.begin(), idx.shape.end());
  out.insert(out.end(), data.shape.begin() + axis + 1, data.shape.end());
  PS_TRY(check_output(spec, 0, data.dtype, out));
  kernels::GatherParams p;
  p.outer = element_count(Shape(data.shape.begin(), data.shape.begin() + axis));
  p.axis_dim = data.shape[axis];
  p.num_indices = idx.numel();
  p.inner = element_count(Shape(data.shape.begin() + axis + 1, data.shape.end()));
  p.count = p.outer * p.num_indices * p.inner;
  const size_t esize = dtype_size(data.dtype);
  // Widest unit dividing a row (embedding rows of 768 floats move as 16-byte units).
  size_t unit = esize;
  while (unit < 16 && p.inner % static_cast<int64_t>(unit * 2 / esize) == 0) unit *= 2;
  kernels::GatherParams wide = p;
  wide.inner = p.inner / static_cast<int64_t>(unit / esize);
  wide.count = p.outer * p.num_indices * wide.inner;
  const char* itype = idx.dtype == DType::kInt64 ? "i64" : "i32";
  PS_ASSIGN_OR_RETURN(cuda::Kernel kw, find_kernel(env, str_cat("ps_gather_", itype, "_", unit_suffix(unit))));
  PS_ASSIGN_OR_RETURN(cuda::Kernel kn, find_kernel(env, str_cat("ps_gather_", itype, "_", unit_suffix(esize))));
  return std::unique_ptr<GpuOp>(new GatherOp(kw, kn, wide, p, unit));
}

BuildResult build_reshape_like(const OpSpec& spec, const OpEnv& env) {
  (void)env;
  const bool dropout = spec.op == "Dropout";
  if (spec.inputs.empty() || !spec.inputs[0].present()) return invalid_argument("input 0 (data) is missing");
  if (spec.outputs.empty() || !spec.outputs[0].present()) return invalid_argument("output 0 is missing");
  const TensorSpec& x = spec.inputs[0];
  const TensorSpec& y = spec.outputs[0];
  AttrReader attrs(spec);
  if (spec.op == "Reshape") {
    PS_TRY(check_arity(spec, 2, 2, 1, 1));
    PS_TRY(attrs->check_attrs({"allowzero"}));
  } else if (spec.op == "Flatten") {
    PS_TRY(check_arity(spec, 1, 1, 1, 1));
    PS_TRY(attrs->check_attrs({"axis"}));
    PS_ASSIGN_OR_RETURN(int64_t axis, attrs->attr_int("axis", 1));
    const int64_t rank = static_cast<int64_t>(x.shape.size());
    if (axis < -rank || axis > rank) return invalid_argument("axis ", axis, " is out of range for rank ", rank);
    if (axis < 0) axis += rank;
    const int64_t outer = element_count(Shape(x.shape.begin(), x.shape.begin() + axis));
    PS_TRY(check_output(spec, 0, x.dtype, Shape{outer, outer == 0 ? 0 : x.numel() / outer}));
  } else if (spec.op == "Squeeze" || spec.op == "Unsqueeze") {
    PS_TRY(check_arity(spec, 1, 2, 1, 1));
    PS_TRY(attrs->check_attrs({"axes"}));
  } else if (dropout) {
    PS_TRY(check_arity(spec, 1, 3, 1, 2));
    PS_TRY(attrs->check_attrs({"seed", "ratio", "is_test"}));
    if (const TensorSpec* t = optional_input(spec, 2)) {
      // training_mode: refused when true (random masks are not implemented).
      if (t->host_data == nullptr) return unsupported("training_mode is not a static input");
      PS_ASSIGN_OR_RETURN(const double training, static_scalar(*t, "training_mode"));
      double ratio = 0.5;
      if (const TensorSpec* r = optional_input(spec, 1)) {
        PS_ASSIGN_OR_RETURN(ratio, static_scalar(*r, "ratio"));
      }
      if (training != 0 && ratio != 0) return unsupported("training mode with ratio ", ratio, " (inference only)");
    }
    if (spec.outputs.size() > 1) PS_TRY(check_output(spec, 1, DType::kBool, x.shape));
  } else {  // Identity
    PS_TRY(check_arity(spec, 1, 1, 1, 1));
    PS_TRY(attrs->check_attrs({}));
  }
  // The output shape is the manifest's (docs/operators.md); it must hold the same elements.
  if (y.dtype != x.dtype || y.numel() != x.numel()) {
    return invalid_argument("output ", dtype_name(y.dtype), shape_string(y.shape),
                            " does not hold the elements of input ", dtype_name(x.dtype),
                            shape_string(x.shape));
  }
  if (dropout || spec.op == "Identity") PS_TRY(check_output(spec, 0, x.dtype, x.shape));
  return std::unique_ptr<GpuOp>(new ViewOp(x.bytes(), dropout && spec.outputs.size() > 1 ? x.numel() : 0));
}

}  // namespace ps::models::gpu
