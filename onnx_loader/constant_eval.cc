// The constant evaluator: dispatch, and the ops that only move bytes (Shape, Reshape, Gather,
// Concat, Split, Slice, Transpose, Expand, Where, ConstantOfShape...), whatever the dtype.
#include "onnx_loader/constant_eval.h"

#include <cstring>
#include <map>

#include "onnx_loader/constant_eval_internal.h"
#include "onnx_loader/tensor_data.h"

namespace ps::onnx_loader {
namespace eval {

TensorData make_output(const OutputType& type) {
  TensorData t;
  t.dtype = type.dtype;
  t.shape = type.shape;
  t.bytes.assign(static_cast<size_t>(element_count(type.shape)) * dtype_size(type.dtype), 0);
  return t;
}

const TensorData& value(const OpContext& ctx, size_t i) { return *ctx.input(i).constant; }

std::vector<int64_t> row_strides(const Shape& shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (size_t d = shape.size(); d-- > 1;) strides[d - 1] = strides[d] * shape[d];
  return strides;
}

std::vector<int64_t> strided_indices(const Shape& out, std::span<const int64_t> strides,
                                     int64_t base) {
  const int64_t count = element_count(out);
  std::vector<int64_t> result(count);
  if (count == 0) return result;
  const size_t rank = out.size();
  std::vector<int64_t> index(rank, 0);
  int64_t offset = base;
  for (int64_t i = 0; i < count; ++i) {
    result[i] = offset;
    // Odometer step: bump the last axis, carrying into earlier ones.
    for (size_t d = rank; d-- > 0;) {
      offset += strides[d];
      if (++index[d] < out[d]) break;
      offset -= strides[d] * out[d];
      index[d] = 0;
    }
  }
  return result;
}

std::vector<int64_t> broadcast_indices(const Shape& in, const Shape& out) {
  const std::vector<int64_t> in_strides = row_strides(in);
  std::vector<int64_t> strides(out.size(), 0);
  const size_t lead = out.size() - in.size();
  for (size_t d = 0; d < in.size(); ++d) strides[lead + d] = in[d] == 1 ? 0 : in_strides[d];
  return strided_indices(out, strides, 0);
}

namespace {

// out[i] = in[indices[i]], element by element, for any dtype.
void gather_elements(const TensorData& in, const std::vector<int64_t>& indices, TensorData& out) {
  const size_t size = dtype_size(in.dtype);
  for (size_t i = 0; i < indices.size(); ++i) {
    std::memcpy(out.bytes.data() + i * size, in.bytes.data() + indices[i] * size, size);
  }
}

// Identity, Reshape, Flatten, Squeeze, Unsqueeze, Dropout: the bytes do not move.
Result<Outputs> same_bytes(const OpContext& ctx, std::span<const OutputType> types) {
  Outputs out;
  TensorData data = value(ctx, 0);
  data.shape = types[0].shape;
  out.push_back(std::move(data));
  if (types.size() == 2) {  // Dropout's mask: everything kept in inference
    TensorData mask = make_output(types[1]);
    std::fill(mask.bytes.begin(), mask.bytes.end(), 1);
    out.push_back(std::move(mask));
  }
  return out;
}

Result<Outputs> dropout(const OpContext& ctx, std::span<const OutputType> types) {
  if (ctx.has_input(2) && value(ctx, 2).elements() == 1 && value(ctx, 2).bytes[0] != 0) {
    return unsupported(ctx.label(), ": Dropout in training mode is random, not a constant");
  }
  return same_bytes(ctx, types);
}

Result<Outputs> shape_of(const OpContext& ctx, std::span<const OutputType> types) {
  TensorData out = make_output(types[0]);
  const ShapeWindow w = shape_window(ctx);
  auto dst = out.as_mutable<int64_t>();
  for (int64_t d = w.first; d < w.last; ++d) dst[d - w.first] = ctx.shape(0)[d];
  return Outputs{std::move(out)};
}

Result<Outputs> size_of(const OpContext& ctx, std::span<const OutputType> types) {
  TensorData out = make_output(types[0]);
  out.as_mutable<int64_t>()[0] = element_count(ctx.shape(0));
  return Outputs{std::move(out)};
}

Result<Outputs> constant_of_shape(const OpContext& ctx, std::span<const OutputType> types) {
  TensorData out = make_output(types[0]);
  auto it = ctx.node().attrs.find("value");
  if (it == ctx.node().attrs.end()) return Outputs{std::move(out)};  // float 0
  const TensorData& fill = *std::get<ConstTensor>(it->second.value);
  for (size_t at = 0; at < out.bytes.size(); at += fill.bytes.size()) {
    std::memcpy(out.bytes.data() + at, fill.bytes.data(), fill.bytes.size());
  }
  return Outputs{std::move(out)};
}

Result<Outputs> transpose(const OpContext& ctx, std::span<const OutputType> types) {
  PS_ASSIGN_OR_RETURN(auto perm, transpose_perm(ctx));
  const std::vector<int64_t> in_strides = row_strides(ctx.shape(0));
  std::vector<int64_t> strides;
  for (int64_t p : perm) strides.push_back(in_strides[p]);
  TensorData out = make_output(types[0]);
  gather_elements(value(ctx, 0), strided_indices(out.shape, strides, 0), out);
  return Outputs{std::move(out)};
}

Result<Outputs> slice(const OpContext& ctx, std::span<const OutputType> types) {
  PS_ASSIGN_OR_RETURN(SliceParams p, slice_params(ctx));
  const std::vector<int64_t> in_strides = row_strides(ctx.shape(0));
  std::vector<int64_t> strides(in_strides.size());
  int64_t base = 0;
  for (size_t d = 0; d < in_strides.size(); ++d) {
    strides[d] = in_strides[d] * p.steps[d];
    base += p.starts[d] * in_strides[d];
  }
  TensorData out = make_output(types[0]);
  gather_elements(value(ctx, 0), strided_indices(out.shape, strides, base), out);
  return Outputs{std::move(out)};
}

Result<Outputs> expand(const OpContext& ctx, std::span<const OutputType> types) {
  TensorData out = make_output(types[0]);
  gather_elements(value(ctx, 0), broadcast_indices(ctx.shape(0), out.shape), out);
  return Outputs{std::move(out)};
}

Result<Outputs> where(const OpContext& ctx, std::span<const OutputType> types) {
  TensorData out = make_output(types[0]);
  const auto cond = broadcast_indices(ctx.shape(0), out.shape);
  const auto x = broadcast_indices(ctx.shape(1), out.shape);
  const auto y = broadcast_indices(ctx.shape(2), out.shape);
  const auto c = value(ctx, 0).as<uint8_t>();
  const size_t size = dtype_size(out.dtype);
  for (size_t i = 0; i < cond.size(); ++i) {
    const TensorData& from = c[cond[i]] ? value(ctx, 1) : value(ctx, 2);
    const int64_t at = c[cond[i]] ? x[i] : y[i];
    std::memcpy(out.bytes.data() + i * size, from.bytes.data() + at * size, size);
  }
  return Outputs{std::move(out)};
}

// Sizes of the axes before `axis`, at it, and after it.
struct AxisSplit {
  int64_t outer = 1, inner = 1;
};
AxisSplit around_axis(const Shape& shape, int64_t axis) {
  AxisSplit s;
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    if (d < axis) s.outer *= shape[d];
    if (d > axis) s.inner *= shape[d];
  }
  return s;
}

Result<Outputs> gather(const OpContext& ctx, std::span<const OutputType> types) {
  const Shape& data = ctx.shape(0);
  PS_ASSIGN_OR_RETURN(int64_t axis,
                      ctx.normalize_axis(ctx.node().attr_int("axis", 0), ctx.rank(0)));
  PS_ASSIGN_OR_RETURN(auto indices, ctx.const_ints(1, "indices"));
  const AxisSplit s = around_axis(data, axis);
  const int64_t dim = data[axis];
  const size_t chunk = s.inner * dtype_size(ctx.dtype(0));
  TensorData out = make_output(types[0]);
  uint8_t* dst = out.bytes.data();
  for (int64_t o = 0; o < s.outer; ++o) {
    for (int64_t index : indices) {
      if (index < -dim || index >= dim) {
        return ctx.error("index ", index, " is out of range for axis ", axis, " of size ", dim);
      }
      if (index < 0) index += dim;
      copy_bytes(dst, value(ctx, 0).bytes.data() + (o * dim + index) * chunk, chunk);
      dst += chunk;
    }
  }
  return Outputs{std::move(out)};
}

Result<Outputs> concat(const OpContext& ctx, std::span<const OutputType> types) {
  PS_ASSIGN_OR_RETURN(int64_t axis,
                      ctx.normalize_axis(ctx.node().attr_int("axis", 0), ctx.rank(0)));
  TensorData out = make_output(types[0]);
  const AxisSplit s = around_axis(out.shape, axis);
  const size_t size = dtype_size(out.dtype);
  uint8_t* dst = out.bytes.data();
  for (int64_t o = 0; o < s.outer; ++o) {
    for (size_t i = 0; i < ctx.input_count(); ++i) {
      const size_t chunk = ctx.shape(i)[axis] * s.inner * size;
      copy_bytes(dst, value(ctx, i).bytes.data() + o * chunk, chunk);
      dst += chunk;
    }
  }
  return Outputs{std::move(out)};
}

Result<Outputs> split(const OpContext& ctx, std::span<const OutputType> types) {
  PS_ASSIGN_OR_RETURN(SplitParams p, split_params(ctx));
  const AxisSplit s = around_axis(ctx.shape(0), p.axis);
  const size_t size = dtype_size(ctx.dtype(0));
  const size_t row = ctx.shape(0)[p.axis] * s.inner * size;
  Outputs out;
  int64_t first = 0;
  for (size_t k = 0; k < types.size(); ++k) {
    TensorData part = make_output(types[k]);
    const size_t chunk = p.sizes[k] * s.inner * size;
    for (int64_t o = 0; o < s.outer; ++o) {
      copy_bytes(part.bytes.data() + o * chunk,
                 value(ctx, 0).bytes.data() + o * row + first * s.inner * size, chunk);
    }
    first += p.sizes[k];
    out.push_back(std::move(part));
  }
  return out;
}

eval::EvalFunction find_movement_function(std::string_view op_type) {
  static const std::map<std::string_view, eval::EvalFunction> kTable = {
      {"Concat", concat},        {"ConstantOfShape", constant_of_shape},
      {"Dropout", dropout},      {"Expand", expand},
      {"Flatten", same_bytes},   {"Gather", gather},
      {"Identity", same_bytes},  {"Reshape", same_bytes},
      {"Shape", shape_of},       {"Size", size_of},
      {"Slice", slice},          {"Split", split},
      {"Squeeze", same_bytes},   {"Transpose", transpose},
      {"Unsqueeze", same_bytes}, {"Where", where},
  };
  auto it = kTable.find(op_type);
  return it == kTable.end() ? nullptr : it->second;
}

eval::EvalFunction find_function(std::string_view op_type) {
  if (auto f = find_movement_function(op_type)) return f;
  return find_math_function(op_type);
}

}  // namespace
}  // namespace eval

bool can_evaluate(std::string_view op_type) { return eval::find_function(op_type) != nullptr; }

bool needs_only_shapes(std::string_view op_type) { return op_type == "Shape" || op_type == "Size"; }

Result<std::vector<TensorData>> evaluate_node(const OpContext& ctx,
                                              std::span<const OutputType> outputs) {
  const std::string& op = ctx.node().op;
  eval::EvalFunction f = ctx.node().domain.empty() ? eval::find_function(op) : nullptr;
  if (f == nullptr) return unsupported(ctx.label(), ": the constant evaluator cannot run ", op);
  if (!needs_only_shapes(op)) {
    for (size_t i = 0; i < ctx.input_count(); ++i) {
      if (ctx.has_input(i) && ctx.input(i).constant == nullptr) {
        return internal_error(ctx.label(), ": input ", i, " '", ctx.input(i).name,
                              "' is not known for evaluation");
      }
    }
  }
  if (outputs.size() != ctx.output_count()) {
    return internal_error(ctx.label(), ": ", outputs.size(), " output types for ",
                          ctx.output_count(), " outputs");
  }
  return f(ctx, outputs);
}

}  // namespace ps::onnx_loader
