// Shape functions for convolution, pooling, normalisation, matrix products and softmax.
#include <map>

#include "onnx_loader/shape_functions.h"

namespace ps::onnx_loader {
namespace {

using Outputs = std::vector<OutputType>;

// Bound on strides, dilations and pads, so that window arithmetic cannot overflow (kernel
// extents are bounded by the weight's size).
constexpr int64_t kMaxWindowAttribute = int64_t{1} << 31;

Status expect_rank_at_least(const OpContext& ctx, size_t i, int64_t rank) {
  if (ctx.rank(i) >= rank) return Status::OK();
  return ctx.error("input ", i, " '", ctx.input(i).name, "' must have rank >= ", rank,
                   ", has shape ", shape_string(ctx.shape(i)));
}

// A per-spatial-axis attribute (strides, dilations) with its default, checked for length.
Result<std::vector<int64_t>> spatial_attr(const OpContext& ctx, const char* name, size_t count,
                                          int64_t fallback) {
  std::vector<int64_t> values = ctx.node().attr_ints(name);
  if (values.empty()) return std::vector<int64_t>(count, fallback);
  if (values.size() != count) {
    return ctx.error("attribute '", name, "' has ", values.size(), " values for ", count,
                     " spatial axes");
  }
  for (int64_t v : values) {
    if (v < 1 || v > kMaxWindowAttribute) {
      return ctx.error("attribute '", name, "' must be in 1..", kMaxWindowAttribute);
    }
  }
  return values;
}

// Output spatial sizes of a sliding window (Conv, MaxPool, AveragePool), per the ONNX formulas
// (the ceil_mode rule is the one of the ONNX spec and libonnx 1.12: ceil of the division).
Result<Shape> window_output(const OpContext& ctx, const Shape& input_spatial,
                            const std::vector<int64_t>& kernel, bool ceil_mode) {
  const size_t n = input_spatial.size();
  PS_ASSIGN_OR_RETURN(auto strides, spatial_attr(ctx, "strides", n, 1));
  PS_ASSIGN_OR_RETURN(auto dilations, spatial_attr(ctx, "dilations", n, 1));
  std::vector<int64_t> pads = ctx.node().attr_ints("pads");
  if (pads.empty()) pads.assign(2 * n, 0);
  if (pads.size() != 2 * n)
    return ctx.error("'pads' has ", pads.size(), " values, expected ", 2 * n);
  for (int64_t p : pads) {
    if (p < 0 || p > kMaxWindowAttribute) return ctx.error("padding ", p, " out of range");
  }
  const std::string auto_pad = ctx.node().attr_string("auto_pad", "NOTSET");
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t in = input_spatial[i];
    const int64_t effective = (kernel[i] - 1) * dilations[i] + 1;
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      out[i] = (in + strides[i] - 1) / strides[i];
      continue;
    }
    int64_t span = in - effective;
    if (auto_pad == "NOTSET") {
      span += pads[i] + pads[i + n];
    } else if (auto_pad != "VALID") {
      return ctx.error("unknown auto_pad '", auto_pad, "'");
    }
    if (span < 0) {
      return ctx.error("kernel of extent ", effective, " does not fit spatial axis ", i,
                       " of size ", in, " (with padding)");
    }
    out[i] = (ceil_mode ? (span + strides[i] - 1) / strides[i] : span / strides[i]) + 1;
  }
  return out;
}

Result<Outputs> conv(const OpContext& ctx) {
  PS_TRY(ctx.expect_arity(2, 3, 1));
  PS_TRY(ctx.expect_float(0));
  PS_TRY(ctx.expect_same_dtype(0, 1));
  PS_TRY(expect_rank_at_least(ctx, 0, 3));
  const Shape& x = ctx.shape(0);
  const Shape& w = ctx.shape(1);
  if (w.size() != x.size()) {
    return ctx.error("weight shape ", shape_string(w), " does not match input shape ",
                     shape_string(x));
  }
  const int64_t group = ctx.node().attr_int("group", 1);
  if (group < 1 || w[0] % group != 0 || x[1] != w[1] * group) {
    return ctx.error("input channels ", x[1], " do not match weight shape ", shape_string(w),
                     " with group ", group);
  }
  const std::vector<int64_t> kernel(w.begin() + 2, w.end());
  std::vector<int64_t> kernel_attr = ctx.node().attr_ints("kernel_shape");
  if (!kernel_attr.empty() && kernel_attr != kernel) {
    return ctx.error("kernel_shape ", shape_string(kernel_attr), " disagrees with weight shape ",
                     shape_string(w));
  }
  if (ctx.has_input(2)) {
    PS_TRY(ctx.expect_same_dtype(0, 2));
    if (ctx.shape(2) != Shape{w[0]}) {
      return ctx.error("bias shape ", shape_string(ctx.shape(2)), " should be [", w[0], "]");
    }
  }
  PS_ASSIGN_OR_RETURN(Shape spatial,
                      window_output(ctx, Shape(x.begin() + 2, x.end()), kernel, false));
  Shape out = {x[0], w[0]};
  out.insert(out.end(), spatial.begin(), spatial.end());
  return one_output(ctx.dtype(0), std::move(out));
}

Result<Outputs> pool(const OpContext& ctx) {  // MaxPool, AveragePool
  const bool max_pool = ctx.node().op == "MaxPool";
  PS_TRY(ctx.expect_arity(1, 1, max_pool ? 2 : 1));
  PS_TRY(ctx.expect_float(0));
  PS_TRY(expect_rank_at_least(ctx, 0, 3));
  const Shape& x = ctx.shape(0);
  const std::vector<int64_t> kernel = ctx.node().attr_ints("kernel_shape");
  if (kernel.size() != x.size() - 2) {
    return ctx.error("kernel_shape ", shape_string(kernel), " does not fit input shape ",
                     shape_string(x));
  }
  for (int64_t k : kernel) {
    if (k < 1 || k > kMaxWindowAttribute) return ctx.error("kernel_shape ", k, " out of range");
  }
  const bool ceil_mode = ctx.node().attr_int("ceil_mode", 0) != 0;
  PS_ASSIGN_OR_RETURN(Shape spatial,
                      window_output(ctx, Shape(x.begin() + 2, x.end()), kernel, ceil_mode));
  Shape out = {x[0], x[1]};
  out.insert(out.end(), spatial.begin(), spatial.end());
  Outputs outputs = one_output(ctx.dtype(0), out);
  if (ctx.output_count() == 2) outputs.push_back(OutputType{DType::kInt64, out});
  return outputs;
}

Result<Outputs> global_pool(const OpContext& ctx) {
  PS_TRY(ctx.expect_arity(1, 1, 1));
  PS_TRY(ctx.expect_float(0));
  PS_TRY(expect_rank_at_least(ctx, 0, 3));
  Shape out = ctx.shape(0);
  for (size_t i = 2; i < out.size(); ++i) out[i] = 1;
  return one_output(ctx.dtype(0), std::move(out));
}

Result<Outputs> batch_norm(const OpContext& ctx) {
  // Outputs beyond Y: running mean and variance in training mode (opset 14+), plus the saved
  // mean and variance before opset 14.
  PS_TRY(ctx.expect_arity(5, 5, 5));
  PS_TRY(ctx.expect_float(0));
  PS_TRY(expect_rank_at_least(ctx, 0, 2));
  const int64_t channels = ctx.shape(0)[1];
  for (size_t i = 1; i < 5; ++i) {
    PS_TRY(ctx.expect_float(i));
    if (ctx.shape(i) != Shape{channels}) {
      return ctx.error("input ", i, " '", ctx.input(i).name, "' has shape ",
                       shape_string(ctx.shape(i)), ", expected [", channels, "]");
    }
  }
  Outputs out = one_output(ctx.dtype(0), ctx.shape(0));
  for (size_t i = 1; i < ctx.output_count(); ++i) {
    out.push_back(OutputType{ctx.dtype(3), Shape{channels}});
  }
  return out;
}

Result<Outputs> layer_norm(const OpContext& ctx) {
  PS_TRY(ctx.expect_arity(2, 3, 3));
  PS_TRY(ctx.expect_float(0));
  const Shape& x = ctx.shape(0);
  PS_ASSIGN_OR_RETURN(int64_t axis,
                      ctx.normalize_axis(ctx.node().attr_int("axis", -1), ctx.rank(0)));
  const Shape normalized(x.begin() + axis, x.end());
  for (size_t i = 1; i < 3; ++i) {
    if (!ctx.has_input(i)) continue;
    PS_TRY(ctx.expect_same_dtype(0, i));
    auto b = broadcast_shapes(ctx.shape(i), normalized);
    if (!b || *b != normalized) {
      return ctx.error("input ", i, " '", ctx.input(i).name, "' of shape ",
                       shape_string(ctx.shape(i)), " does not broadcast to the normalized shape ",
                       shape_string(normalized));
    }
  }
  Outputs out = one_output(ctx.dtype(0), x);
  // Mean and InvStdDev keep the leading axes and have size 1 on the normalized ones.
  Shape stats(x.begin(), x.begin() + axis);
  stats.resize(x.size(), 1);
  const DType stash = ctx.node().attr_int("stash_type", 1) == 1 ? DType::kFloat32 : ctx.dtype(0);
  for (size_t i = 1; i < ctx.output_count(); ++i) out.push_back(OutputType{stash, stats});
  return out;
}

Result<Outputs> softmax(const OpContext& ctx) {
  PS_TRY(ctx.expect_arity(1, 1, 1));
  PS_TRY(ctx.expect_float(0));
  PS_TRY(ctx.normalize_axis(ctx.node().attr_int("axis", -1), ctx.rank(0)).status());
  return one_output(ctx.dtype(0), ctx.shape(0));
}

Result<Outputs> matmul(const OpContext& ctx) {
  PS_TRY(ctx.expect_arity(2, 2, 1));
  PS_TRY(ctx.expect_same_dtype(0, 1));
  Shape a = ctx.shape(0), b = ctx.shape(1);
  if (a.empty() || b.empty()) return ctx.error("MatMul of a scalar");
  // 1-D operands are promoted to matrices and the added axis removed afterwards.
  const bool a_vector = a.size() == 1, b_vector = b.size() == 1;
  if (a_vector) a.insert(a.begin(), 1);
  if (b_vector) b.push_back(1);
  if (a.back() != b[b.size() - 2]) {
    return ctx.error("inner dimensions differ: ", shape_string(ctx.shape(0)), " x ",
                     shape_string(ctx.shape(1)));
  }
  auto batch = broadcast_shapes(Shape(a.begin(), a.end() - 2), Shape(b.begin(), b.end() - 2));
  if (!batch) {
    return ctx.error("batch dimensions of ", shape_string(ctx.shape(0)), " and ",
                     shape_string(ctx.shape(1)), " do not broadcast");
  }
  Shape out = *batch;
  if (!a_vector) out.push_back(a[a.size() - 2]);
  if (!b_vector) out.push_back(b.back());
  return one_output(ctx.dtype(0), std::move(out));
}

Result<Outputs> gemm(const OpContext& ctx) {
  PS_TRY(ctx.expect_arity(2, 3, 1));
  PS_TRY(ctx.expect_same_dtype(0, 1));
  const Shape& a = ctx.shape(0);
  const Shape& b = ctx.shape(1);
  if (a.size() != 2 || b.size() != 2) {
    return ctx.error("A and B must be matrices, are ", shape_string(a), " and ", shape_string(b));
  }
  const bool trans_a = ctx.node().attr_int("transA", 0) != 0;
  const bool trans_b = ctx.node().attr_int("transB", 0) != 0;
  const int64_t m = trans_a ? a[1] : a[0], k = trans_a ? a[0] : a[1];
  const int64_t kb = trans_b ? b[1] : b[0], n = trans_b ? b[0] : b[1];
  if (k != kb) {
    return ctx.error("inner dimensions differ: A ", shape_string(a), (trans_a ? "^T" : ""), " x B ",
                     shape_string(b), (trans_b ? "^T" : ""));
  }
  const Shape out = {m, n};
  if (ctx.has_input(2)) {
    PS_TRY(ctx.expect_same_dtype(0, 2));
    auto c = broadcast_shapes(ctx.shape(2), out);
    if (!c || *c != out) {
      return ctx.error("C of shape ", shape_string(ctx.shape(2)), " does not broadcast to ",
                       shape_string(out));
    }
  }
  return one_output(ctx.dtype(0), out);
}

const std::map<std::string_view, ShapeFunction>& table() {
  static const std::map<std::string_view, ShapeFunction> kTable = {
      {"AveragePool", pool},
      {"BatchNormalization", batch_norm},
      {"Conv", conv},
      {"Gemm", gemm},
      {"GlobalAveragePool", global_pool},
      {"LayerNormalization", layer_norm},
      {"MatMul", matmul},
      {"MaxPool", pool},
      {"Softmax", softmax},
  };
  return kTable;
}

}  // namespace

ShapeFunction find_nn_shape_function(std::string_view op_type) {
  auto it = table().find(op_type);
  return it == table().end() ? nullptr : it->second;
}

}  // namespace ps::onnx_loader
