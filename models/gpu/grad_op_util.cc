#include "models/gpu/grad_op_util.h"

namespace ps::models::gpu {

Status require_f32(const TensorSpec& t, std::string_view what) {
  if (t.dtype != DType::kFloat32) {
    return unsupported(what, " is ", dtype_name(t.dtype), ": training is float32 only");
  }
  return Status::OK();
}

Status check_bound(const LaunchArgs& args, size_t inputs, size_t outputs, std::string_view what) {
  if (args.inputs.size() < inputs || args.outputs.size() < outputs) {
    return invalid_argument(what, " backward enqueue: ", args.inputs.size(), " inputs and ",
                            args.outputs.size(), " outputs bound, needs ", inputs, " and ",
                            outputs);
  }
  return Status::OK();
}

Result<const TensorSpec*> forward_output(const OpSpec& f) {
  if (f.outputs.empty() || !f.outputs[0].present()) return invalid_argument("no output Y");
  PS_TRY(require_f32(f.outputs[0], "Y"));
  return &f.outputs[0];
}

namespace {

class NoGradOp final : public GpuOp {
 public:
  explicit NoGradOp(std::string op) : op_(std::move(op)) {}
  Status enqueue(const LaunchArgs&) const override { return Status::OK(); }
  std::string describe() const override { return str_cat(op_, " backward: no gradient wanted"); }

 private:
  std::string op_;
};

}  // namespace

std::unique_ptr<GpuOp> no_grad_op(std::string op) {
  return std::unique_ptr<GpuOp>(new NoGradOp(std::move(op)));
}

}  // namespace ps::models::gpu
