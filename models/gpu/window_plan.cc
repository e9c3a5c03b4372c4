#include "models/gpu/window_plan.h"

#include <array>
#include <string>

#include "models/cpu/op_context.h"

namespace ps::models::gpu {
namespace {

std::string spec_string(const TensorSpec& t) {
  return str_cat(dtype_name(t.dtype), shape_string(t.shape));
}

Status require_float32(const TensorSpec& t, std::string_view what) {
  if (t.dtype != DType::kFloat32) {
    return unsupported(what, " is ", spec_string(t), ": only float32 runs on cuDNN here");
  }
  return Status::OK();
}

Status check_output(const OpSpec& spec, const Shape& shape) {
  if (spec.outputs.empty() || !spec.outputs[0].present()) {
    return invalid_argument("output 0 (Y) is missing");
  }
  const TensorSpec& y = spec.outputs[0];
  if (y.dtype != DType::kFloat32 || y.shape != shape) {
    return invalid_argument("output Y is ", spec_string(y), ", the op computes float32",
                            shape_string(shape));
  }
  return Status::OK();
}

const TensorSpec* optional_input(const OpSpec& spec, size_t i) {
  return i < spec.inputs.size() && spec.inputs[i].present() ? &spec.inputs[i] : nullptr;
}

// The floor-mode output size of a window with symmetric padding `pad`.
int64_t symmetric_out(const cpu::SpatialWindow& w, int64_t pad) {
  const int64_t effective = (w.kernel - 1) * w.dilation + 1;
  const int64_t span = w.in + 2 * pad - effective;
  return span < 0 ? 0 : span / w.stride + 1;
}

}  // namespace

CudnnConvShape cudnn_conv_shape(const ConvPlan& plan) {
  std::vector<cpu::SpatialWindow> windows = plan.windows;
  CudnnConvShape s;
  s.pads = plan.cudnn_pads;
  if (windows.size() == 1) {
    windows.insert(windows.begin(), cpu::SpatialWindow{});
    s.pads.insert(s.pads.begin(), 0);
  }
  s.x = {plan.batch, plan.in_channels};
  s.w = {plan.out_channels, plan.in_channels / plan.group};
  s.y = {plan.batch, plan.out_channels};
  s.bias = {1, plan.out_channels};
  for (const cpu::SpatialWindow& w : windows) {
    s.x.push_back(w.in);
    s.w.push_back(w.kernel);
    s.y.push_back(w.out);
    s.bias.push_back(1);
    s.strides.push_back(w.stride);
    s.dilations.push_back(w.dilation);
  }
  s.key = str_cat("x", shape_string(s.x), "w", shape_string(s.w), "p", shape_string(s.pads), "s",
                  shape_string(s.strides), "d", shape_string(s.dilations), "g", plan.group);
  return s;
}

Result<ConvPlan> plan_conv(const OpSpec& spec) {
  const std::string op(spec.op);
  const bool fused = op == "FusedConv";
  const cpu::OpContext ctx(op, spec.attrs, {}, {});
  if (fused) {
    PS_TRY(ctx.check_attrs({"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides",
                            "activation", "has_residual"}));
  } else {
    PS_TRY(ctx.check_attrs({"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"}));
  }
  const size_t max_inputs = fused ? 4 : 3;
  if (spec.inputs.size() < 2 || spec.inputs.size() > max_inputs || !spec.inputs[0].present() ||
      !spec.inputs[1].present()) {
    return invalid_argument("needs inputs X and W and at most ", max_inputs, " inputs, got ",
                            spec.inputs.size());
  }
  const TensorSpec& x = spec.inputs[0];
  const TensorSpec& w = spec.inputs[1];
  const TensorSpec* bias = optional_input(spec, 2);
  const TensorSpec* residual = optional_input(spec, 3);
  PS_TRY(require_float32(x, "X"));
  PS_TRY(require_float32(w, "W"));
  if (bias) PS_TRY(require_float32(*bias, "B"));
  if (residual) PS_TRY(require_float32(*residual, "residual"));

  ConvPlan plan;
  PS_ASSIGN_OR_RETURN(const bool relu, cpu::fused_conv_relu(ctx, residual != nullptr));
  const size_t rank = x.shape.size();
  if (rank < 3 || rank > 5) {
    return unsupported("X ", spec_string(x), ": rank must be 3 to 5 (N, C, 1-3 spatial dims)");
  }
  if (w.shape.size() != rank) {
    return invalid_argument("W ", spec_string(w), " must have the rank of X ", spec_string(x));
  }
  PS_ASSIGN_OR_RETURN(plan.group, ctx.attr_int("group", 1));
  plan.batch = x.shape[0];
  plan.in_channels = x.shape[1];
  plan.out_channels = w.shape[0];
  if (plan.group < 1 || plan.in_channels % plan.group != 0 || plan.out_channels % plan.group != 0 ||
      w.shape[1] * plan.group != plan.in_channels) {
    return invalid_argument("group=", plan.group, " does not fit X ", spec_string(x), " and W ",
                            spec_string(w), " (need C = W.dim(1) * group, M divisible by group)");
  }
  if (bias && (bias->shape.size() != 1 || bias->shape[0] != plan.out_channels)) {
    return invalid_argument("B ", spec_string(*bias), " must have shape [", plan.out_channels, "]");
  }
  const Shape in_spatial(x.shape.begin() + 2, x.shape.end());
  const Shape kernel(w.shape.begin() + 2, w.shape.end());
  PS_ASSIGN_OR_RETURN(const std::vector<int64_t> kernel_attr,
                      ctx.attr_ints("kernel_shape", kernel));
  if (kernel_attr != kernel) {
    return invalid_argument("kernel_shape ", shape_string(kernel_attr), " differs from W ",
                            spec_string(w));
  }
  PS_ASSIGN_OR_RETURN(plan.windows,
                      cpu::window_geometry(ctx, in_spatial, kernel, cpu::WindowOptions{}));
  plan.out_shape = {plan.batch, plan.out_channels};
  for (size_t d = 0; d < plan.windows.size(); ++d) {
    const cpu::SpatialWindow& sw = plan.windows[d];
    plan.out_shape.push_back(sw.out);
    // cuDNN pads both ends alike. Extra end padding that no window reaches changes nothing.
    if (sw.pad_begin != sw.pad_end &&
        !(sw.pad_end > sw.pad_begin && symmetric_out(sw, sw.pad_begin) == sw.out)) {
      return unsupported("asymmetric padding in spatial dimension ", d, " (begin ", sw.pad_begin,
                         ", end ", sw.pad_end, ") that cuDNN's symmetric padding cannot express");
    }
    plan.cudnn_pads.push_back(sw.pad_begin);
  }
  if (residual && residual->shape != plan.out_shape) {
    return invalid_argument("residual ", spec_string(*residual), " must have the output shape ",
                            shape_string(plan.out_shape));
  }
  PS_TRY(check_output(spec, plan.out_shape));
  if (spec.outputs.size() != 1)
    return invalid_argument("has one output, got ", spec.outputs.size());
  plan.relu = relu;
  plan.has_bias = bias != nullptr;
  plan.has_residual = residual != nullptr;
  return plan;
}

Result<PoolPlan> plan_pool(const OpSpec& spec) {
  const std::string op(spec.op);
  const cpu::OpContext ctx(op, spec.attrs, {}, {});
  const bool global = op == "GlobalAveragePool" || op == "GlobalMaxPool";
  const bool max = op == "MaxPool" || op == "GlobalMaxPool";
  if (!global && op != "MaxPool" && op != "AveragePool") {
    return invalid_argument("plan_pool: ", op, " is not a pooling op");
  }
  if (spec.inputs.size() != 1 || !spec.inputs[0].present()) {
    return invalid_argument("needs exactly one input X, got ", spec.inputs.size());
  }
  const TensorSpec& x = spec.inputs[0];
  PS_TRY(require_float32(x, "X"));
  for (size_t i = 1; i < spec.outputs.size(); ++i) {
    if (spec.outputs[i].present()) {
      return unsupported("output ", i, " (MaxPool's Indices) is not computed on the GPU");
    }
  }
  PoolPlan plan;
  const size_t rank = x.shape.size();
  if (global) {
    PS_TRY(ctx.check_attrs({}));
    if (rank < 3) return invalid_argument("X ", spec_string(x), " must be [N, C, spatial...]");
    plan.batch = x.shape[0];
    plan.channels = x.shape[1];
    cpu::SpatialWindow w;
    w.in = element_count(Shape(x.shape.begin() + 2, x.shape.end()));
    w.kernel = w.in;
    w.out = w.out_ceil_clipped = 1;
    plan.windows = {w};
    plan.mode = max ? PoolMode::kMax : PoolMode::kAverageExcludePad;
    plan.out_shape = Shape(rank, 1);
    plan.out_shape[0] = plan.batch;
    plan.out_shape[1] = plan.channels;
    if (w.in == 0) return invalid_argument("X ", spec_string(x), " has no spatial elements");
    PS_TRY(check_output(spec, plan.out_shape));
    return plan;
  }

  if (max) {
    PS_TRY(ctx.check_attrs({"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads",
                            "storage_order", "strides"}));
  } else {
    PS_TRY(ctx.check_attrs({"auto_pad", "ceil_mode", "count_include_pad", "dilations",
                            "kernel_shape", "pads", "strides"}));
  }
  if (rank < 3 || rank > 5) {
    return unsupported("X ", spec_string(x), ": rank must be 3 to 5 (N, C, 1-3 spatial dims)");
  }
  plan.batch = x.shape[0];
  plan.channels = x.shape[1];
  PS_ASSIGN_OR_RETURN(const int64_t ceil_mode, ctx.attr_int("ceil_mode", 0));
  PS_ASSIGN_OR_RETURN(const int64_t count_include_pad, ctx.attr_int("count_include_pad", 0));
  if (ceil_mode != 0 && ceil_mode != 1) return invalid_argument("ceil_mode=", ceil_mode);
  if (count_include_pad != 0 && count_include_pad != 1) {
    return invalid_argument("count_include_pad=", count_include_pad);
  }
  plan.mode =
      max ? PoolMode::kMax
          : (count_include_pad ? PoolMode::kAverageIncludePad : PoolMode::kAverageExcludePad);
  const Shape in_spatial(x.shape.begin() + 2, x.shape.end());
  PS_ASSIGN_OR_RETURN(const std::vector<int64_t> kernel, ctx.attr_ints("kernel_shape"));
  if (kernel.size() != in_spatial.size()) {
    return invalid_argument("kernel_shape ", shape_string(kernel), " must have one value per ",
                            "spatial dimension of X ", spec_string(x));
  }
  PS_ASSIGN_OR_RETURN(plan.windows, cpu::window_geometry(ctx, in_spatial, kernel,
                                                         cpu::WindowOptions{ceil_mode != 0, max}));
  // The output spec decides between ONNX's ceil-mode size and PyTorch's clipped one.
  Shape onnx_shape{plan.batch, plan.channels};
  Shape clipped_shape = onnx_shape;
  for (const cpu::SpatialWindow& w : plan.windows) {
    onnx_shape.push_back(w.out);
    clipped_shape.push_back(w.out_ceil_clipped);
  }
  plan.out_shape = onnx_shape;
  if (!spec.outputs.empty() && spec.outputs[0].present() &&
      spec.outputs[0].shape == clipped_shape && clipped_shape != onnx_shape) {
    for (cpu::SpatialWindow& w : plan.windows) w.out = w.out_ceil_clipped;
    plan.out_shape = clipped_shape;
  }
  PS_TRY(check_output(spec, plan.out_shape));

  for (size_t d = 0; d < plan.windows.size() && plan.cudnn_exact; ++d) {
    const cpu::SpatialWindow& w = plan.windows[d];
    if (w.dilation != 1) {
      plan.cudnn_exact = false;
      plan.why_not_cudnn = str_cat("dilation ", w.dilation, " in spatial dimension ", d);
    } else if (w.pad_begin != w.pad_end) {
      plan.cudnn_exact = false;
      plan.why_not_cudnn =
          str_cat("asymmetric pads ", w.pad_begin, "/", w.pad_end, " in spatial dimension ", d);
    } else if (symmetric_out(w, w.pad_begin) != w.out) {
      plan.cudnn_exact = false;
      plan.why_not_cudnn =
          str_cat("ceil mode adds a window in spatial dimension ", d, " (", w.out,
                  " outputs, floor mode gives ", symmetric_out(w, w.pad_begin), ")");
    } else if (w.pad_begin >= w.kernel) {
      plan.cudnn_exact = false;  // cuDNN refuses padding not smaller than the window
      plan.why_not_cudnn =
          str_cat("padding ", w.pad_begin, " >= window ", w.kernel, " in spatial dimension ", d);
    }
  }
  return plan;
}

dnn_kernels::PoolParams pool_kernel_params(const PoolPlan& plan) {
  dnn_kernels::PoolParams p{};
  const std::array<cpu::SpatialWindow, 3> w = cpu::as_3d(plan.windows);
  for (int d = 0; d < 3; ++d) {
    p.in[d] = w[d].in;
    p.out[d] = w[d].out;
    p.kernel[d] = w[d].kernel;
    p.stride[d] = w[d].stride;
    p.dilation[d] = w[d].dilation;
    p.pad_begin[d] = w[d].pad_begin;
    p.pad_end[d] = w[d].pad_end;
  }
  p.planes = plan.batch * plan.channels;
  p.kind = plan.mode == PoolMode::kMax                 ? dnn_kernels::kPoolMax
           : plan.mode == PoolMode::kAverageIncludePad ? dnn_kernels::kPoolAverageIncludePad
                                                       : dnn_kernels::kPoolAverageExcludePad;
  return p;
}

}  // namespace ps::models::gpu
