#include "models/gpu/kernel_op_util.h"

#include <algorithm>
#include <cstring>

#include "models/gpu/runtime.h"

namespace ps::models::gpu {

Result<const TensorSpec*> required_input(const OpSpec& spec, size_t i, std::string_view what) {
  if (i >= spec.inputs.size() || !spec.inputs[i].present()) {
    return invalid_argument("input ", i, " (", what, ") is missing");
  }
  return &spec.inputs[i];
}

const TensorSpec* optional_input(const OpSpec& spec, size_t i) {
  return i < spec.inputs.size() && spec.inputs[i].present() ? &spec.inputs[i] : nullptr;
}

Result<std::vector<int64_t>> static_ints(const TensorSpec& t, std::string_view what) {
  if (t.numel() == 0) return std::vector<int64_t>{};  // an empty list needs no bytes
  if (t.host_data == nullptr) {
    return invalid_argument(what, " is read at plan time, but its values were not given (it must "
                            "be a weight with TensorSpec::host_data set)");
  }
  if (t.shape.size() > 1) return invalid_argument(what, " must be rank 0 or 1, got ", shape_string(t.shape));
  std::vector<int64_t> v(static_cast<size_t>(t.numel()));
  for (size_t i = 0; i < v.size(); ++i) {
    if (t.dtype == DType::kInt64) {
      std::memcpy(&v[i], static_cast<const char*>(t.host_data) + i * 8, 8);
    } else if (t.dtype == DType::kInt32) {
      int32_t x;
      std::memcpy(&x, static_cast<const char*>(t.host_data) + i * 4, 4);
      v[i] = x;
    } else {
      return invalid_argument(what, " must be int32 or int64, got ", dtype_name(t.dtype));
    }
  }
  return v;
}

Result<double> static_scalar(const TensorSpec& t, std::string_view what) {
  if (t.host_data == nullptr) {
    return invalid_argument(what, " is read at plan time, but its value was not given (it must "
                            "be a weight with TensorSpec::host_data set)");
  }
  if (t.numel() != 1) return invalid_argument(what, " must hold one element, got ", shape_string(t.shape));
  const auto* p = static_cast<const char*>(t.host_data);
  switch (t.dtype) {
    case DType::kFloat32: { float v; std::memcpy(&v, p, 4); return static_cast<double>(v); }
    case DType::kFloat64: { double v; std::memcpy(&v, p, 8); return v; }
    case DType::kFloat16: { uint16_t v; std::memcpy(&v, p, 2); return static_cast<double>(float16_to_float(v)); }
    case DType::kBFloat16: { uint16_t v; std::memcpy(&v, p, 2); return static_cast<double>(bfloat16_to_float(v)); }
    case DType::kInt64: { int64_t v; std::memcpy(&v, p, 8); return static_cast<double>(v); }
    case DType::kInt32: { int32_t v; std::memcpy(&v, p, 4); return v; }
    case DType::kInt8: return static_cast<int8_t>(*p);
    case DType::kUInt8: return static_cast<uint8_t>(*p);
    case DType::kBool: return *p != 0 ? 1.0 : 0.0;
    default: return invalid_argument(what, " has no value (dtype ", dtype_name(t.dtype), ")");
  }
}

Result<int64_t> static_int_scalar(const TensorSpec& t, std::string_view what) {
  if (t.dtype == DType::kInt64 || t.dtype == DType::kInt32) {
    if (t.numel() != 1) return invalid_argument(what, " must hold one element, got ", shape_string(t.shape));
    PS_ASSIGN_OR_RETURN(std::vector<int64_t> v, static_ints(TensorSpec{t.dtype, {1}, t.is_weight, t.host_data}, what));
    return v[0];
  }
  PS_ASSIGN_OR_RETURN(double v, static_scalar(t, what));
  return static_cast<int64_t>(v);
}

Status check_output(const OpSpec& spec, size_t i, DType dtype, const Shape& shape) {
  if (i >= spec.outputs.size()) return invalid_argument("output ", i, " is missing");
  const TensorSpec& o = spec.outputs[i];
  if (!o.present()) return Status::OK();
  if (o.dtype != dtype || o.shape != shape) {
    return invalid_argument("output ", i, " is ", dtype_name(o.dtype), shape_string(o.shape),
                            " but the op computes ", dtype_name(dtype), shape_string(shape));
  }
  return Status::OK();
}

Status check_arity(const OpSpec& spec, size_t min_inputs, size_t max_inputs, size_t min_outputs,
                   size_t max_outputs) {
  if (spec.inputs.size() < min_inputs || spec.inputs.size() > max_inputs) {
    return invalid_argument(spec.inputs.size(), " inputs (expected ", min_inputs, " to ",
                            max_inputs, ")");
  }
  if (spec.outputs.size() < min_outputs || spec.outputs.size() > max_outputs) {
    return invalid_argument(spec.outputs.size(), " outputs (expected ", min_outputs, " to ",
                            max_outputs, ")");
  }
  for (size_t i = 0; i < min_inputs; ++i) {
    if (!spec.inputs[i].present()) return invalid_argument("input ", i, " is missing");
  }
  return Status::OK();
}

int32_t kernel_dtype(DType dtype) { return static_cast<int32_t>(dtype); }

unsigned grid_for(int64_t items) {
  // ~32 resident blocks of 256 threads per SM on kTargetSms SMs; grid-stride loops do the rest.
  constexpr int64_t kMaxBlocks = kTargetSms * 32;
  const int64_t blocks = (items + kBlock - 1) / kBlock;
  return static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, kMaxBlocks));
}

int warp_row_share(int64_t n) {
  for (int k : {1, 2, 4, 8, 16, 24, 32}) {
    if (32 * static_cast<int64_t>(k) >= n) return k;
  }
  return 0;
}

Result<cuda::Kernel> warp_row_kernel(const OpEnv& env, const char* family, int share,
                                     const char* fallback) {
  return find_kernel(env, share > 0 ? str_cat(family, "_warp", share, "_f32") : fallback);
}

LaunchShape reduce_launch_shape(const ReducePlan& plan) {
  const int64_t outputs = plan.params.out_count;
  switch (plan.mode) {
    case ReduceMode::kThreadPerOutput:
      return {grid_for(outputs), kBlock};
    case ReduceMode::kWarpPerOutput:
      return {grid_for(outputs * 32), kBlock};
    case ReduceMode::kColumnTiles: {
      // grid_for's cap, one block per tile; 1 to 32 warps, each for ~8 elements of the group
      // a lane (a warp's load reads 32 / width rows: 8 * 32 / width rows a warp).
      const int64_t width = plan.params.tile_columns;
      const int64_t tiles = (outputs + width - 1) / width;
      const int64_t rows_per_warp = 8 * 32 / width;
      const int64_t warps =
          std::clamp<int64_t>((plan.params.group + rows_per_warp - 1) / rows_per_warp, 1, 32);
      return {grid_for(tiles * kBlock), static_cast<unsigned>(32 * warps)};
    }
  }
  return {};
}

Status launch_reduce(const cuda::Kernel& kernel, const cuda::Stream& stream,
                     const ReducePlan& plan, CUdeviceptr x, CUdeviceptr y) {
  if (plan.params.out_count == 0) return Status::OK();
  const LaunchShape shape = reduce_launch_shape(plan);
  return kernel.launch(stream, shape.grid, shape.block, 0, x, y, plan.params,
                       static_cast<int32_t>(plan.mode));
}

const char* unit_suffix(size_t bytes) {
  switch (bytes) {
    case 1: return "u8";
    case 2: return "u16";
    case 4: return "u32";
    case 8: return "u64";
    default: return "u128";
  }
}

Result<cuda::Kernel> find_kernel(const OpEnv& env, const std::string& name) {
  return env.runtime.kernel(name.c_str());
}

}  // namespace ps::models::gpu
