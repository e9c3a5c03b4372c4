// ReduceSum, ReduceMean, ReduceProd, ReduceMax, ReduceMin on our kernel
// (cuda/kernels/reduce.cu): axes from the attribute (before opset 18) or the static second
// input, keepdims, noop_with_empty_axes; float32, int64 and int32.
#include "cuda/copy.h"
#include "cuda/stream.h"
#include "models/gpu/index_plan.h"
#include "models/gpu/kernel_op_util.h"

namespace ps::models::gpu {
namespace {

class ReduceOp final : public GpuOp {
 public:
  ReduceOp(cuda::Kernel kernel, ReducePlan plan, std::string what)
      : kernel_(kernel), plan_(plan), what_(std::move(what)) {}
  Status enqueue(const LaunchArgs& args) const override {
    return launch_reduce(kernel_, args.stream, plan_, args.inputs[0], args.outputs[0]);
  }
  std::string describe() const override {
    return str_cat(what_, " (", reduce_mode_name(plan_.mode), ", group ", plan_.params.group, ")");
  }

 private:
  cuda::Kernel kernel_;
  ReducePlan plan_;
  std::string what_;
};

class CopyThroughOp final : public GpuOp {
 public:
  explicit CopyThroughOp(size_t bytes) : bytes_(bytes) {}
  Status enqueue(const LaunchArgs& args) const override {
    if (bytes_ == 0 || args.outputs[0] == args.inputs[0]) return Status::OK();
    return cuda::copy_device_async(args.outputs[0], args.inputs[0], bytes_, args.stream);
  }
  std::string describe() const override { return "reduction over no axes: a copy"; }

 private:
  size_t bytes_;
};

}  // namespace

BuildResult build_reduce(const OpSpec& spec, const OpEnv& env) {
  PS_TRY(check_arity(spec, 1, 2, 1, 1));
  AttrReader attrs(spec);
  PS_TRY(attrs->check_attrs({"axes", "keepdims", "noop_with_empty_axes"}));
  const TensorSpec& x = spec.inputs[0];
  PS_ASSIGN_OR_RETURN(const int64_t keepdims, attrs->attr_int("keepdims", 1));
  PS_ASSIGN_OR_RETURN(const int64_t noop_with_empty_axes, attrs->attr_int("noop_with_empty_axes", 0));
  PS_ASSIGN_OR_RETURN(std::vector<int64_t> axes, attrs->attr_ints("axes"));
  if (const TensorSpec* t = optional_input(spec, 1)) {
    if (attrs->has_attr("axes")) return invalid_argument("axes given both as attribute and input");
    PS_ASSIGN_OR_RETURN(axes, static_ints(*t, "axes"));
  }
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  std::vector<bool> reduced(x.shape.size(), axes.empty());
  if (axes.empty() && noop_with_empty_axes != 0) {
    PS_TRY(check_output(spec, 0, x.dtype, x.shape));
    return std::unique_ptr<GpuOp>(new CopyThroughOp(x.bytes()));
  }
  for (int64_t axis : axes) {
    if (axis < -rank || axis >= rank) return invalid_argument("axis ", axis, " is out of range for rank ", rank);
    const int64_t a = axis < 0 ? axis + rank : axis;
    if (!axes.empty() && reduced[a]) return invalid_argument("axis ", axis, " is repeated");
    reduced[a] = true;
  }
  Shape out;
  for (int64_t d = 0; d < rank; ++d) {
    if (!reduced[d]) {
      out.push_back(x.shape[d]);
    } else if (keepdims) {
      out.push_back(1);
    }
  }
  PS_TRY(check_output(spec, 0, x.dtype, out));
  const char* suffix = x.dtype == DType::kFloat32 ? "f32"
                       : x.dtype == DType::kInt64 ? "i64"
                       : x.dtype == DType::kInt32 ? "i32"
                                                  : nullptr;
  if (suffix == nullptr) {
    return unsupported("input dtype ", dtype_name(x.dtype), " (the GPU ", spec.op,
                       " supports float32, int64 and int32)");
  }
  PS_ASSIGN_OR_RETURN(ReducePlan plan, plan_reduce(x.shape, reduced));
  const std::string_view op = spec.op;
  plan.params.op = op == "ReduceSum"    ? kernels::kReduceSum
                   : op == "ReduceMean" ? kernels::kReduceMean
                   : op == "ReduceProd" ? kernels::kReduceProd
                   : op == "ReduceMax"  ? kernels::kReduceMax
                                        : kernels::kReduceMin;
  const std::string name = str_cat("ps_reduce_", suffix);
  PS_ASSIGN_OR_RETURN(cuda::Kernel k, find_kernel(env, name));
  return std::unique_ptr<GpuOp>(new ReduceOp(k, plan, str_cat("kernel ", name)));
}

}  // namespace ps::models::gpu
