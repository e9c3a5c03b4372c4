// Shape functions for elementwise ops, comparisons, casts and data movement / shape arithmetic.
#include <algorithm>
#include <map>

#include "onnx_loader/shape_functions.h"
#include "onnx_loader/tensor_data.h"

namespace ps::onnx_loader {
namespace {

using Outputs = std::vector<OutputType>;

Result<Shape> broadcast_inputs(const OpContext& ctx, size_t i, size_t j) {
  auto shape = broadcast_shapes(ctx.shape(i), ctx.shape(j));
  if (!shape) {
    return ctx.error("shapes ", shape_string(ctx.shape(i)), " of '", ctx.input(i).name, "' and ",
                     shape_string(ctx.shape(j)), " of '", ctx.input(j).name, "' do not broadcast");
  }
  return *shape;
}

// --- Elementwise --------------------------------------------------------------------------

Result<Outputs> float_unary(const OpContext& ctx) {
  PS_TRY(ctx.expect_arity(1, 1, 1));
  PS_TRY(ctx.expect_float(0));
  return one_output(ctx.dtype(0), ctx.shape(0));
}

Result<Outputs> numeric_unary(const OpContext& ctx) {
  PS_TRY(ctx.expect_arity(1, 1, 1));
  PS_TRY(ctx.expect_numeric(0));
  return one_output(ctx.dtype(0), ctx.shape(0));
}

Result<Outputs> identity(const OpContext& ctx) {
  PS_TRY(ctx.expect_arity(1, 1, 1));
  return one_output(ctx.dtype(0), ctx.shape(0));
}

Result<Outputs> logical_not(const OpContext& ctx) {
  PS_TRY(ctx.expect_arity(1, 1, 1));
  PS_TRY(ctx.expect_dtype(0, {DType::kBool}));
  return one_output(DType::kBool, ctx.shape(0));
}

Result<Outputs> float_predicate(const OpContext& ctx) {  // IsNaN, IsInf
  PS_TRY(ctx.expect_arity(1, 1, 1));
  PS_TRY(ctx.expect_float(0));
  return one_output(DType::kBool, ctx.shape(0));
}

Result<Outputs> arithmetic(const OpContext& ctx) {  // Add, Sub, Mul, Div
  PS_TRY(ctx.expect_arity(2, 2, 1));
  PS_TRY(ctx.expect_numeric(0));
  PS_TRY(ctx.expect_same_dtype(0, 1));
  PS_ASSIGN_OR_RETURN(Shape shape, broadcast_inputs(ctx, 0, 1));
  return one_output(ctx.dtype(0), std::move(shape));
}

Result<Outputs> power(const OpContext& ctx) {  // the exponent may have another numeric type
  PS_TRY(ctx.expect_arity(2, 2, 1));
  PS_TRY(ctx.expect_numeric(0));
  PS_TRY(ctx.expect_numeric(1));
  PS_ASSIGN_OR_RETURN(Shape shape, broadcast_inputs(ctx, 0, 1));
  return one_output(ctx.dtype(0), std::move(shape));
}

Result<Outputs> comparison(const OpContext& ctx) {  // Equal, Less, Greater, ...
  PS_TRY(ctx.expect_arity(2, 2, 1));
  PS_TRY(ctx.expect_same_dtype(0, 1));
  if (ctx.node().op != "Equal") PS_TRY(ctx.expect_numeric(0));
  PS_ASSIGN_OR_RETURN(Shape shape, broadcast_inputs(ctx, 0, 1));
  return one_output(DType::kBool, std::move(shape));
}

Result<Outputs> logical_binary(const OpContext& ctx) {  // And, Or, Xor
  PS_TRY(ctx.expect_arity(2, 2, 1));
  PS_TRY(ctx.expect_dtype(0, {DType::kBool}));
  PS_TRY(ctx.expect_dtype(1, {DType::kBool}));
  PS_ASSIGN_OR_RETURN(Shape shape, broadcast_inputs(ctx, 0, 1));
  return one_output(DType::kBool, std::move(shape));
}

Result<Outputs> where(const OpContext& ctx) {
  PS_TRY(ctx.expect_arity(3, 3, 1));
  PS_TRY(ctx.expect_dtype(0, {DType::kBool}));
  PS_TRY(ctx.expect_same_dtype(1, 2));
  PS_ASSIGN_OR_RETURN(Shape xy, broadcast_inputs(ctx, 1, 2));
  auto shape = broadcast_shapes(ctx.shape(0), xy);
  if (!shape) {
    return ctx.error("condition shape ", shape_string(ctx.shape(0)), " does not broadcast with ",
                     shape_string(xy));
  }
  return one_output(ctx.dtype(1), std::move(*shape));
}

Result<Outputs> clip(const OpContext& ctx) {
  PS_TRY(ctx.expect_arity(1, 3, 1));
  PS_TRY(ctx.expect_numeric(0));
  for (size_t i = 1; i < 3; ++i) {
    if (!ctx.has_input(i)) continue;
    PS_TRY(ctx.expect_same_dtype(0, i));
    if (element_count(ctx.shape(i)) != 1) {
      return ctx.error("input ", i, " '", ctx.input(i).name, "' must be a scalar");
    }
  }
  return one_output(ctx.dtype(0), ctx.shape(0));
}

Result<Outputs> cast(const OpContext& ctx) {
  PS_TRY(ctx.expect_arity(1, 1, 1));
  if (!ctx.node().has_attr("to")) return ctx.error("attribute 'to' is missing");
  PS_ASSIGN_OR_RETURN(
      DType to, dtype_from_onnx(static_cast<int32_t>(ctx.node().attr_int("to", 0)), ctx.label()));
  return one_output(to, ctx.shape(0));
}

Result<Outputs> dropout(const OpContext& ctx) {
  PS_TRY(ctx.expect_arity(1, 3, 2));
  PS_TRY(ctx.expect_float(0));
  Outputs out = one_output(ctx.dtype(0), ctx.shape(0));
  if (ctx.output_count() == 2) out.push_back(OutputType{DType::kBool, ctx.shape(0)});
  return out;
}

Result<Outputs> reduce(const OpContext& ctx) {  // ReduceMean, ReduceSum, ...
  PS_TRY(ctx.expect_arity(1, 2, 1));
  PS_TRY(ctx.expect_numeric(0));
  PS_ASSIGN_OR_RETURN(ReduceParams p, reduce_params(ctx));
  return one_output(ctx.dtype(0), std::move(p.output));
}

// --- Shape arithmetic ----------------------------------------------------------------------

Result<Outputs> shape_of(const OpContext& ctx) {
  PS_TRY(ctx.expect_arity(1, 1, 1));
  const ShapeWindow w = shape_window(ctx);
  return one_output(DType::kInt64, Shape{w.last - w.first});
}

Result<Outputs> size_of(const OpContext& ctx) {
  PS_TRY(ctx.expect_arity(1, 1, 1));
  return one_output(DType::kInt64, Shape{});
}

Result<Outputs> constant_of_shape(const OpContext& ctx) {
  PS_TRY(ctx.expect_arity(1, 1, 1));
  if (ctx.rank(0) != 1)
    return ctx.error("input must be 1-D, has shape ", shape_string(ctx.shape(0)));
  PS_ASSIGN_OR_RETURN(Shape shape, ctx.const_ints(0, "shape"));
  for (int64_t dim : shape) {
    if (dim < 0) return ctx.error("negative dimension in shape ", shape_string(shape));
  }
  DType dtype = DType::kFloat32;
  auto it = ctx.node().attrs.find("value");
  if (it != ctx.node().attrs.end()) {
    const auto* value = std::get_if<ConstTensor>(&it->second.value);
    if (value == nullptr || *value == nullptr || (*value)->elements() != 1) {
      return ctx.error("attribute 'value' must be a one-element tensor");
    }
    dtype = (*value)->dtype;
  }
  return one_output(dtype, std::move(shape));
}

Result<Outputs> range(const OpContext& ctx) {
  PS_TRY(ctx.expect_arity(3, 3, 1));
  PS_TRY(ctx.expect_numeric(0));
  PS_TRY(ctx.expect_same_dtype(0, 1));
  PS_TRY(ctx.expect_same_dtype(0, 2));
  PS_ASSIGN_OR_RETURN(int64_t count, range_count(ctx));
  return one_output(ctx.dtype(0), Shape{count});
}

// --- Data movement -------------------------------------------------------------------------

Result<Outputs> reshape(const OpContext& ctx) {
  PS_TRY(ctx.expect_arity(2, 2, 1));
  PS_ASSIGN_OR_RETURN(Shape target, ctx.const_ints(1, "shape"));
  const Shape& in = ctx.shape(0);
  const bool allow_zero = ctx.node().attr_int("allowzero", 0) != 0;
  int infer_at = -1;
  int64_t known = 1;
  for (size_t i = 0; i < target.size(); ++i) {
    if (target[i] == -1) {
      if (infer_at != -1)
        return ctx.error("more than one -1 in target shape ", shape_string(target));
      infer_at = static_cast<int>(i);
      continue;
    }
    if (target[i] == 0 && !allow_zero) {
      if (i >= in.size()) {
        return ctx.error("target shape ", shape_string(target), " copies dimension ", i,
                         " of input shape ", shape_string(in), " which has no such dimension");
      }
      target[i] = in[i];
    }
    if (target[i] < 0) return ctx.error("invalid dimension in target shape ", shape_string(target));
    if (__builtin_mul_overflow(known, target[i], &known)) {
      return ctx.error("target shape ", shape_string(target), " overflows");
    }
  }
  const int64_t elements = element_count(in);
  if (infer_at != -1) {
    if (known == 0 || elements % known != 0) {
      return ctx.error("cannot reshape ", shape_string(in), " into ", shape_string(target));
    }
    target[infer_at] = elements / known;
  } else if (known != elements) {
    return ctx.error("cannot reshape ", shape_string(in), " (", elements, " elements) into ",
                     shape_string(target), " (", known, " elements)");
  }
  return one_output(ctx.dtype(0), std::move(target));
}

Result<Outputs> flatten(const OpContext& ctx) {
  PS_TRY(ctx.expect_arity(1, 1, 1));
  const int64_t rank = ctx.rank(0);
  int64_t axis = ctx.node().attr_int("axis", 1);
  if (axis < -rank || axis > rank) return ctx.error("axis ", axis, " out of range for rank ", rank);
  if (axis < 0) axis += rank;
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < rank; ++i) (i < axis ? outer : inner) *= ctx.shape(0)[i];
  return one_output(ctx.dtype(0), Shape{outer, inner});
}

Result<Outputs> transpose(const OpContext& ctx) {
  PS_TRY(ctx.expect_arity(1, 1, 1));
  PS_ASSIGN_OR_RETURN(auto perm, transpose_perm(ctx));
  Shape out;
  for (int64_t p : perm) out.push_back(ctx.shape(0)[p]);
  return one_output(ctx.dtype(0), std::move(out));
}

Result<Outputs> squeeze(const OpContext& ctx) {
  PS_TRY(ctx.expect_arity(1, 2, 1));
  const Shape& in = ctx.shape(0);
  PS_ASSIGN_OR_RETURN(auto axes, ctx.axes(1, "axes"));
  std::vector<bool> drop(in.size(), false);
  if (!axes || axes->empty()) {
    for (size_t i = 0; i < in.size(); ++i) drop[i] = in[i] == 1;
  } else {
    PS_ASSIGN_OR_RETURN(auto normal, ctx.normalize_axes(*axes, ctx.rank(0)));
    for (int64_t a : normal) {
      if (in[a] != 1) {
        return ctx.error("cannot squeeze axis ", a, " of shape ", shape_string(in),
                         ": its size is not 1");
      }
      drop[a] = true;
    }
  }
  Shape out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (!drop[i]) out.push_back(in[i]);
  }
  return one_output(ctx.dtype(0), std::move(out));
}

Result<Outputs> unsqueeze(const OpContext& ctx) {
  PS_TRY(ctx.expect_arity(1, 2, 1));
  PS_ASSIGN_OR_RETURN(auto axes, ctx.axes(1, "axes"));
  if (!axes || axes->empty()) return ctx.error("no axes given");
  const int64_t out_rank = ctx.rank(0) + static_cast<int64_t>(axes->size());
  PS_ASSIGN_OR_RETURN(auto normal, ctx.normalize_axes(*axes, out_rank));
  std::vector<bool> inserted(out_rank, false);
  for (int64_t a : normal) inserted[a] = true;
  Shape out;
  size_t next = 0;
  for (int64_t i = 0; i < out_rank; ++i) out.push_back(inserted[i] ? 1 : ctx.shape(0)[next++]);
  return one_output(ctx.dtype(0), std::move(out));
}

Result<Outputs> concat(const OpContext& ctx) {
  if (ctx.input_count() == 0) return ctx.error("needs at least one input");
  PS_TRY(ctx.expect_arity(ctx.input_count(), ctx.input_count(), 1));
  if (!ctx.node().has_attr("axis")) return ctx.error("attribute 'axis' is missing");
  const int64_t rank = ctx.rank(0);
  PS_ASSIGN_OR_RETURN(int64_t axis, ctx.normalize_axis(ctx.node().attr_int("axis", 0), rank));
  Shape out = ctx.shape(0);
  for (size_t i = 1; i < ctx.input_count(); ++i) {
    PS_TRY(ctx.expect_same_dtype(0, i));
    const Shape& s = ctx.shape(i);
    bool compatible = static_cast<int64_t>(s.size()) == rank;
    for (int64_t d = 0; compatible && d < rank; ++d) compatible = d == axis || s[d] == out[d];
    if (!compatible) {
      return ctx.error("cannot concatenate ", shape_string(ctx.shape(0)), " ('", ctx.input(0).name,
                       "') and ", shape_string(s), " ('", ctx.input(i).name, "') on axis ", axis);
    }
    out[axis] += s[axis];
  }
  return one_output(ctx.dtype(0), std::move(out));
}

Result<Outputs> split(const OpContext& ctx) {
  PS_TRY(ctx.expect_arity(1, 2, ctx.output_count()));
  PS_ASSIGN_OR_RETURN(SplitParams p, split_params(ctx));
  Outputs out;
  for (int64_t size : p.sizes) {
    Shape s = ctx.shape(0);
    s[p.axis] = size;
    out.push_back(OutputType{ctx.dtype(0), std::move(s)});
  }
  return out;
}

Result<Outputs> slice(const OpContext& ctx) {
  PS_TRY(ctx.expect_arity(1, 5, 1));
  PS_ASSIGN_OR_RETURN(SliceParams p, slice_params(ctx));
  return one_output(ctx.dtype(0), std::move(p.output));
}

Result<Outputs> gather(const OpContext& ctx) {
  PS_TRY(ctx.expect_arity(2, 2, 1));
  PS_TRY(ctx.expect_dtype(1, {DType::kInt64, DType::kInt32}));
  const Shape& data = ctx.shape(0);
  if (data.empty()) return ctx.error("cannot gather from a scalar");
  PS_ASSIGN_OR_RETURN(int64_t axis,
                      ctx.normalize_axis(ctx.node().attr_int("axis", 0), ctx.rank(0)));
  if (ctx.input(1).constant != nullptr) {
    PS_ASSIGN_OR_RETURN(auto indices, ctx.const_ints(1, "indices"));
    for (int64_t index : indices) {
      if (index < -data[axis] || index >= data[axis]) {
        return ctx.error("index ", index, " is out of range for axis ", axis, " of size ",
                         data[axis]);
      }
    }
  }
  Shape out(data.begin(), data.begin() + axis);
  out.insert(out.end(), ctx.shape(1).begin(), ctx.shape(1).end());
  out.insert(out.end(), data.begin() + axis + 1, data.end());
  return one_output(ctx.dtype(0), std::move(out));
}

Result<Outputs> expand(const OpContext& ctx) {
  PS_TRY(ctx.expect_arity(2, 2, 1));
  PS_ASSIGN_OR_RETURN(Shape target, ctx.const_ints(1, "shape"));
  for (int64_t dim : target) {
    if (dim < 0) return ctx.error("negative dimension in target shape ", shape_string(target));
  }
  auto shape = broadcast_shapes(ctx.shape(0), target);
  if (!shape) {
    return ctx.error("cannot expand ", shape_string(ctx.shape(0)), " to ", shape_string(target));
  }
  return one_output(ctx.dtype(0), std::move(*shape));
}

const std::map<std::string_view, ShapeFunction>& table() {
  static const std::map<std::string_view, ShapeFunction> kTable = {
      {"Abs", numeric_unary},
      {"Add", arithmetic},
      {"And", logical_binary},
      {"Cast", cast},
      {"Ceil", float_unary},
      {"Clip", clip},
      {"Concat", concat},
      {"ConstantOfShape", constant_of_shape},
      {"Div", arithmetic},
      {"Dropout", dropout},
      {"Equal", comparison},
      {"Erf", float_unary},
      {"Exp", float_unary},
      {"Expand", expand},
      {"Flatten", flatten},
      {"Floor", float_unary},
      {"Gather", gather},
      {"Greater", comparison},
      {"GreaterOrEqual", comparison},
      {"Identity", identity},
      {"IsInf", float_predicate},
      {"IsNaN", float_predicate},
      {"Less", comparison},
      {"LessOrEqual", comparison},
      {"Log", float_unary},
      {"Mul", arithmetic},
      {"Neg", numeric_unary},
      {"Not", logical_not},
      {"Or", logical_binary},
      {"Pow", power},
      {"Range", range},
      {"Reciprocal", float_unary},
      {"ReduceMax", reduce},
      {"ReduceMean", reduce},
      {"ReduceMin", reduce},
      {"ReduceProd", reduce},
      {"ReduceSum", reduce},
      {"Relu", numeric_unary},
      {"Reshape", reshape},
      {"Shape", shape_of},
      {"Sigmoid", float_unary},
      {"Size", size_of},
      {"Slice", slice},
      {"Split", split},
      {"Sqrt", float_unary},
      {"Squeeze", squeeze},
      {"Sub", arithmetic},
      {"Tanh", float_unary},
      {"Transpose", transpose},
      {"Unsqueeze", unsqueeze},
      {"Where", where},
      {"Xor", logical_binary},
  };
  return kTable;
}

}  // namespace

ShapeFunction find_tensor_shape_function(std::string_view op_type) {
  auto it = table().find(op_type);
  return it == table().end() ? nullptr : it->second;
}

}  // namespace ps::onnx_loader
