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

}  // namespace ps::models::gpu
