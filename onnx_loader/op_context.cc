#include "onnx_loader/op_context.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace ps::onnx_loader {

bool is_integer_dtype(DType dtype) {
  return dtype == DType::kInt64 || dtype == DType::kInt32 || dtype == DType::kInt8 ||
         dtype == DType::kUInt8;
}

Status OpContext::expect_arity(size_t required, size_t max_inputs, size_t max_outputs) const {
  if (inputs_.size() < required || inputs_.size() > max_inputs) {
    return error("takes ",
                 required == max_inputs ? str_cat(required) : str_cat(required, " to ", max_inputs),
                 " inputs, got ", inputs_.size());
  }
  for (size_t i = 0; i < required; ++i) {
    if (!inputs_[i].present) return error("required input ", i, " is missing");
  }
  if (node_.outputs.empty() || node_.outputs.size() > max_outputs) {
    return error("takes 1 to ", max_outputs, " outputs, got ", node_.outputs.size());
  }
  return Status::OK();
}

Status OpContext::expect_dtype(size_t i, std::initializer_list<DType> allowed) const {
  for (DType d : allowed) {
    if (inputs_[i].dtype == d) return Status::OK();
  }
  std::string names;
  for (DType d : allowed) names += str_cat(names.empty() ? "" : ", ", dtype_name(d));
  return error("input ", i, " '", inputs_[i].name, "' is ", dtype_name(inputs_[i].dtype),
               ", expected one of: ", names);
}

Status OpContext::expect_same_dtype(size_t i, size_t j) const {
  if (inputs_[i].dtype == inputs_[j].dtype) return Status::OK();
  return error("inputs '", inputs_[i].name, "' (", dtype_name(inputs_[i].dtype), ") and '",
               inputs_[j].name, "' (", dtype_name(inputs_[j].dtype),
               ") must have the same element type");
}

Status OpContext::expect_float(size_t i) const {
  if (is_floating(inputs_[i].dtype)) return Status::OK();
  return error("input ", i, " '", inputs_[i].name, "' must be a floating-point tensor, is ",
               dtype_name(inputs_[i].dtype));
}

Status OpContext::expect_numeric(size_t i) const {
  if (is_floating(inputs_[i].dtype) || is_integer_dtype(inputs_[i].dtype)) return Status::OK();
  return error("input ", i, " '", inputs_[i].name, "' must be numeric, is ",
               dtype_name(inputs_[i].dtype));
}

Result<std::vector<int64_t>> OpContext::const_ints(size_t i, std::string_view what) const {
  if (!has_input(i)) return error("input ", i, " (", what, ") is missing");
  const InputInfo& in = inputs_[i];
  if (in.constant == nullptr) {
    return error("input ", i, " '", in.name, "' (", what,
                 ") must be known at import time: a constant, or computed from shapes only");
  }
  const TensorData& t = *in.constant;
  if (t.dtype == DType::kInt64) {
    auto span = t.as<int64_t>();
    return std::vector<int64_t>(span.begin(), span.end());
  }
  if (t.dtype == DType::kInt32) {
    auto span = t.as<int32_t>();
    return std::vector<int64_t>(span.begin(), span.end());
  }
  return error("input ", i, " '", in.name, "' (", what, ") must be int64 or int32, not ",
               dtype_name(t.dtype));
}

Result<double> OpContext::const_scalar(size_t i, std::string_view what) const {
  if (!has_input(i)) return error("input ", i, " (", what, ") is missing");
  const InputInfo& in = inputs_[i];
  if (in.constant == nullptr) {
    return error("input ", i, " '", in.name, "' (", what, ") must be known at import time");
  }
  const TensorData& t = *in.constant;
  if (t.elements() != 1) {
    return error("input ", i, " '", in.name, "' (", what, ") must be a scalar, has shape ",
                 shape_string(t.shape));
  }
  switch (t.dtype) {
    case DType::kFloat32:
      return static_cast<double>(t.as<float>()[0]);
    case DType::kFloat64:
      return t.as<double>()[0];
    case DType::kInt64:
      return static_cast<double>(t.as<int64_t>()[0]);
    case DType::kInt32:
      return static_cast<double>(t.as<int32_t>()[0]);
    case DType::kInt8:
      return static_cast<double>(t.as<int8_t>()[0]);
    case DType::kUInt8:
      return static_cast<double>(t.as<uint8_t>()[0]);
    default:
      break;
  }
  return error("input ", i, " '", in.name, "' (", what, ") has unsupported type ",
               dtype_name(t.dtype));
}

Result<std::optional<std::vector<int64_t>>> OpContext::axes(size_t input, const char* attr) const {
  if (has_input(input)) {
    PS_ASSIGN_OR_RETURN(auto values, const_ints(input, "axes"));
    return std::optional<std::vector<int64_t>>(std::move(values));
  }
  if (node_.has_attr(attr)) return std::optional<std::vector<int64_t>>(node_.attr_ints(attr));
  return std::optional<std::vector<int64_t>>();
}

Result<int64_t> OpContext::normalize_axis(int64_t axis, int64_t rank) const {
  if (axis < -rank || axis >= rank) {
    return error("axis ", axis, " is out of range for rank ", rank);
  }
  return axis < 0 ? axis + rank : axis;
}

Result<std::vector<int64_t>> OpContext::normalize_axes(const std::vector<int64_t>& axes,
                                                       int64_t rank) const {
  std::vector<int64_t> out;
  std::vector<bool> seen(rank, false);
  for (int64_t axis : axes) {
    PS_ASSIGN_OR_RETURN(int64_t a, normalize_axis(axis, rank));
    if (seen[a]) return error("axis ", axis, " is listed twice");
    seen[a] = true;
    out.push_back(a);
  }
  return out;
}

Result<SliceParams> slice_params(const OpContext& ctx) {
  const Shape& in = ctx.shape(0);
  const int64_t rank = ctx.rank(0);
  std::vector<int64_t> starts, ends, axes, steps;
  if (ctx.input_count() >= 3) {
    PS_ASSIGN_OR_RETURN(starts, ctx.const_ints(1, "starts"));
    PS_ASSIGN_OR_RETURN(ends, ctx.const_ints(2, "ends"));
    if (ctx.has_input(3)) {
      PS_ASSIGN_OR_RETURN(axes, ctx.const_ints(3, "axes"));
    }
    if (ctx.has_input(4)) {
      PS_ASSIGN_OR_RETURN(steps, ctx.const_ints(4, "steps"));
    }
  } else {
    // Opset 1-9: bounds as attributes.
    starts = ctx.node().attr_ints("starts");
    ends = ctx.node().attr_ints("ends");
    axes = ctx.node().attr_ints("axes");
  }
  if (starts.size() != ends.size()) {
    return ctx.error(starts.size(), " starts but ", ends.size(), " ends");
  }
  if (axes.empty()) {
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  }
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (axes.size() != starts.size() || steps.size() != starts.size()) {
    return ctx.error("starts, ends, axes and steps must have the same length (", starts.size(),
                     ", ", ends.size(), ", ", axes.size(), ", ", steps.size(), ")");
  }
  PS_ASSIGN_OR_RETURN(axes, ctx.normalize_axes(axes, rank));

  SliceParams p;
  p.starts.assign(rank, 0);
  p.steps.assign(rank, 1);
  p.output = in;
  for (size_t i = 0; i < axes.size(); ++i) {
    const int64_t axis = axes[i];
    const int64_t dim = in[axis];
    const int64_t step = steps[i];
    if (step == 0) return ctx.error("slice step is 0 on axis ", axis);
    // Negative bounds count from the end; then clamp into the range the step can reach.
    int64_t start = starts[i] < 0 ? starts[i] + dim : starts[i];
    int64_t end = ends[i] < 0 ? ends[i] + dim : ends[i];
    int64_t count = 0;
    if (step > 0) {
      start = std::clamp<int64_t>(start, 0, dim);
      end = std::clamp<int64_t>(end, 0, dim);
      count = end > start ? (end - start - 1) / step + 1 : 0;
    } else {
      start = std::clamp<int64_t>(start, 0, dim - 1);
      end = std::clamp<int64_t>(end, -1, dim - 1);
      // -step without overflow: any step past the dimension takes one element anyway.
      const int64_t back =
          step == std::numeric_limits<int64_t>::min() ? std::numeric_limits<int64_t>::max() : -step;
      count = start > end ? (start - end - 1) / back + 1 : 0;
    }
    p.starts[axis] = start;
    p.steps[axis] = count > 1 ? step : 1;  // a step that is never taken cannot overflow
    p.output[axis] = count;
  }
  return p;
}

Result<SplitParams> split_params(const OpContext& ctx) {
  SplitParams p;
  PS_ASSIGN_OR_RETURN(p.axis, ctx.normalize_axis(ctx.node().attr_int("axis", 0), ctx.rank(0)));
  const int64_t dim = ctx.shape(0)[p.axis];
  const int64_t outputs = static_cast<int64_t>(ctx.output_count());
  if (ctx.has_input(1)) {
    PS_ASSIGN_OR_RETURN(p.sizes, ctx.const_ints(1, "split"));
  } else if (ctx.node().has_attr("split")) {
    p.sizes = ctx.node().attr_ints("split");
  } else if (ctx.node().has_attr("num_outputs")) {
    // Opset 18: equal chunks of ceil(dim / n), the last one smaller.
    const int64_t n = ctx.node().attr_int("num_outputs", 0);
    if (n != outputs) return ctx.error("num_outputs is ", n, " but the node has ", outputs);
    const int64_t chunk = (dim + n - 1) / n;
    for (int64_t i = 0; i < n; ++i)
      p.sizes.push_back(std::clamp<int64_t>(dim - i * chunk, 0, chunk));
  } else {
    if (dim % outputs != 0) {
      return ctx.error("cannot split dimension ", dim, " into ", outputs, " equal parts");
    }
    p.sizes.assign(outputs, dim / outputs);
  }
  if (static_cast<int64_t>(p.sizes.size()) != outputs) {
    return ctx.error(p.sizes.size(), " split sizes for ", outputs, " outputs");
  }
  int64_t sum = 0;
  for (int64_t size : p.sizes) {
    if (size < 0) return ctx.error("negative split size ", size);
    sum += size;
  }
  if (sum != dim) {
    return ctx.error("split sizes add up to ", sum, " but axis ", p.axis, " has ", dim);
  }
  return p;
}

Result<ReduceParams> reduce_params(const OpContext& ctx) {
  const int64_t rank = ctx.rank(0);
  PS_ASSIGN_OR_RETURN(auto axes, ctx.axes(1, "axes"));
  const bool keepdims = ctx.node().attr_int("keepdims", 1) != 0;
  const bool noop_if_empty = ctx.node().attr_int("noop_with_empty_axes", 0) != 0;
  ReduceParams p;
  if (!axes || axes->empty()) {
    p.reduced.assign(rank, !noop_if_empty);
  } else {
    p.reduced.assign(rank, false);
    PS_ASSIGN_OR_RETURN(auto normal, ctx.normalize_axes(*axes, rank));
    for (int64_t a : normal) p.reduced[a] = true;
  }
  for (int64_t i = 0; i < rank; ++i) {
    if (!p.reduced[i]) {
      p.output.push_back(ctx.shape(0)[i]);
    } else if (keepdims) {
      p.output.push_back(1);
    }
  }
  return p;
}

Result<std::vector<int64_t>> transpose_perm(const OpContext& ctx) {
  const int64_t rank = ctx.rank(0);
  std::vector<int64_t> perm = ctx.node().attr_ints("perm");
  if (perm.empty()) {
    for (int64_t i = rank - 1; i >= 0; --i) perm.push_back(i);
  }
  if (static_cast<int64_t>(perm.size()) != rank) {
    return ctx.error("perm has ", perm.size(), " entries for rank ", rank);
  }
  std::vector<bool> seen(rank, false);
  for (int64_t p : perm) {
    if (p < 0 || p >= rank || seen[p])
      return ctx.error("perm is not a permutation of 0..", rank - 1);
    seen[p] = true;
  }
  return perm;
}

Result<int64_t> range_count(const OpContext& ctx) {
  for (size_t i = 0; i < 3; ++i) {
    if (ctx.has_input(i) && ctx.rank(i) != 0 && element_count(ctx.shape(i)) != 1) {
      return ctx.error("input ", i, " must be a scalar, has shape ", shape_string(ctx.shape(i)));
    }
  }
  if (ctx.dtype(0) == DType::kInt64 || ctx.dtype(0) == DType::kInt32) {
    PS_ASSIGN_OR_RETURN(auto start, ctx.const_ints(0, "start"));
    PS_ASSIGN_OR_RETURN(auto limit, ctx.const_ints(1, "limit"));
    PS_ASSIGN_OR_RETURN(auto delta, ctx.const_ints(2, "delta"));
    if (delta[0] == 0) return ctx.error("delta is 0");
    // In 128 bits so that extreme bounds cannot overflow.
    const __int128 diff = static_cast<__int128>(limit[0]) - start[0];
    const __int128 step = delta[0];
    __int128 count = 0;
    if (step > 0 && diff > 0) count = (diff - 1) / step + 1;
    if (step < 0 && diff < 0) count = (-diff - 1) / -step + 1;
    return static_cast<int64_t>(count);
  }
  PS_ASSIGN_OR_RETURN(double start, ctx.const_scalar(0, "start"));
  PS_ASSIGN_OR_RETURN(double limit, ctx.const_scalar(1, "limit"));
  PS_ASSIGN_OR_RETURN(double delta, ctx.const_scalar(2, "delta"));
  if (delta == 0) return ctx.error("delta is 0");
  const double count = std::ceil((limit - start) / delta);
  if (!(count < 9.0e18)) return ctx.error("range of ", count, " elements");
  return count > 0 ? static_cast<int64_t>(count) : 0;
}

ShapeWindow shape_window(const OpContext& ctx) {
  const int64_t rank = ctx.rank(0);
  // Negative bounds count from the end; both are clamped into [0, rank].
  auto clamp_bound = [rank](int64_t v) {
    return std::clamp<int64_t>(v < 0 ? v + rank : v, 0, rank);
  };
  ShapeWindow w;
  w.first = clamp_bound(ctx.node().attr_int("start", 0));
  w.last = std::max(w.first, clamp_bound(ctx.node().attr_int("end", rank)));
  return w;
}

}  // namespace ps::onnx_loader
