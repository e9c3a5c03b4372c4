// Operators that move elements without arithmetic, for every dtype: Transpose, Concat, Slice,
// Split, Expand, Gather (embeddings).
#include <algorithm>
#include <cstring>
#include <limits>

#include "models/cpu/dispatch.h"
#include "models/cpu/kernels.h"

namespace ps::models::cpu {

void strided_copy(const Tensor& in, const std::vector<int64_t>& in_strides, int64_t in_base,
                  const Shape& out_shape, Tensor& out) {
  dispatch_by_size(in.dtype(), [&](auto tag) {
    using U = typename decltype(tag)::type;
    const U* src = static_cast<const U*>(in.raw());
    U* dst = static_cast<U*>(out.mutable_raw());
    for_each_run<2>(
        out_shape, {in_strides, contiguous_strides(out_shape)}, {in_base, 0},
        [&](const std::array<int64_t, 2>& off, const std::array<int64_t, 2>& run, int64_t count) {
          const U* s = src + off[0];
          U* d = dst + off[1];
          if (run[0] == 1) {
            std::memcpy(d, s, static_cast<size_t>(count) * sizeof(U));
          } else {
            for (int64_t i = 0; i < count; ++i) d[i] = s[i * run[0]];
          }
        });
  });
}

namespace {

// Splits `shape` around `axis` into the element counts before and after it.
void outer_inner(const Shape& shape, int64_t axis, int64_t* outer, int64_t* inner) {
  *outer = 1;
  *inner = 1;
  for (int64_t d = 0; d < axis; ++d) *outer *= shape[d];
  for (size_t d = static_cast<size_t>(axis) + 1; d < shape.size(); ++d) *inner *= shape[d];
}

}  // namespace

Status run_transpose(const OpContext& ctx) {
  PS_TRY(ctx.check_arity(1, 1, 1, 1));
  PS_TRY(ctx.check_attrs({"perm"}));
  const Tensor& x = *ctx.input(0);
  std::vector<int64_t> reversed(x.shape().size());
  for (size_t i = 0; i < reversed.size(); ++i) reversed[i] = x.rank() - 1 - static_cast<int64_t>(i);
  PS_ASSIGN_OR_RETURN(const std::vector<int64_t> perm, ctx.attr_ints("perm", reversed));
  std::vector<bool> seen(x.shape().size(), false);
  if (perm.size() != seen.size()) {
    return invalid_argument("perm ", shape_string(perm), " does not fit X ", x.description());
  }
  for (int64_t p : perm) {
    if (p < 0 || p >= x.rank() || seen[p]) {
      return invalid_argument("perm ", shape_string(perm), " is not a permutation of the ",
                              x.rank(), " axes");
    }
    seen[p] = true;
  }
  const std::vector<int64_t> strides = contiguous_strides(x.shape());
  Shape out_shape;
  std::vector<int64_t> in_strides;
  for (int64_t p : perm) {
    out_shape.push_back(x.dim(p));
    in_strides.push_back(strides[p]);
  }
  PS_ASSIGN_OR_RETURN(Tensor * y, ctx.output_checked(0, x.dtype(), out_shape));
  strided_copy(x, in_strides, 0, out_shape, *y);
  return Status::OK();
}

Result<HeadSliceLayout> head_slice_attrs(const OpContext& ctx, const Shape& x) {
  PS_TRY(ctx.check_attrs({"start", "size", "heads", "perm"}));
  PS_TRY(ctx.require_attrs({"start", "size", "heads", "perm"}));
  PS_ASSIGN_OR_RETURN(const int64_t start, ctx.attr_int("start", 0));
  PS_ASSIGN_OR_RETURN(const int64_t size, ctx.attr_int("size", 0));
  PS_ASSIGN_OR_RETURN(const int64_t heads, ctx.attr_int("heads", 0));
  PS_ASSIGN_OR_RETURN(const std::vector<int64_t> perm, ctx.attr_ints("perm"));
  return head_slice_layout(x, start, size, heads, perm);
}

Status run_head_slice(const OpContext& ctx) {
  PS_TRY(ctx.check_arity(1, 1, 1, 1));
  const Tensor& x = *ctx.input(0);
  PS_ASSIGN_OR_RETURN(const HeadSliceLayout l, head_slice_attrs(ctx, x.shape()));
  PS_ASSIGN_OR_RETURN(Tensor * y, ctx.output_checked(0, x.dtype(), l.y));
  strided_copy(x, l.x_strides, l.x_base, l.y, *y);
  return Status::OK();
}

Status run_concat(const OpContext& ctx) {
  PS_TRY(ctx.check_attrs({"axis"}));
  if (ctx.num_inputs() == 0) return invalid_argument("at least one input is required");
  PS_TRY(ctx.check_arity(ctx.num_inputs(), ctx.num_inputs(), 1, 1));
  PS_TRY(ctx.require_attrs({"axis"}));
  const Tensor& first = *ctx.input(0);
  PS_ASSIGN_OR_RETURN(const int64_t axis_attr, ctx.attr_int("axis", 0));
  PS_ASSIGN_OR_RETURN(const int64_t axis, normalize_axis(axis_attr, first.rank()));
  Shape out_shape = first.shape();
  out_shape[axis] = 0;
  for (size_t k = 0; k < ctx.num_inputs(); ++k) {
    const Tensor& in = *ctx.input(k);
    bool fits = in.dtype() == first.dtype() && in.rank() == first.rank();
    for (int64_t d = 0; fits && d < in.rank(); ++d) fits = d == axis || in.dim(d) == first.dim(d);
    if (!fits) {
      return invalid_argument("input ", k, " ", in.description(), " does not fit input 0 ",
                              first.description(), " along axis ", axis);
    }
    out_shape[axis] += in.dim(axis);
  }
  PS_ASSIGN_OR_RETURN(Tensor * y, ctx.output_checked(0, first.dtype(), out_shape));
  int64_t outer, inner;
  outer_inner(out_shape, axis, &outer, &inner);
  const size_t esize = dtype_size(first.dtype());
  const size_t out_chunk = static_cast<size_t>(out_shape[axis] * inner) * esize;
  auto* dst = static_cast<std::byte*>(y->mutable_raw());
  size_t offset = 0;
  for (size_t k = 0; k < ctx.num_inputs(); ++k) {
    const Tensor& in = *ctx.input(k);
    const size_t chunk = static_cast<size_t>(in.dim(axis) * inner) * esize;
    const auto* src = static_cast<const std::byte*>(in.raw());
    if (chunk > 0) {
      for (int64_t o = 0; o < outer; ++o)
        std::memcpy(dst + o * out_chunk + offset, src + o * chunk, chunk);
    }
    offset += chunk;
  }
  return Status::OK();
}

Status run_slice(const OpContext& ctx) {
  PS_TRY(ctx.check_arity(3, 5, 1, 1));
  PS_TRY(ctx.check_attrs({}));
  const Tensor& x = *ctx.input(0);
  PS_ASSIGN_OR_RETURN(const std::vector<int64_t> starts, read_int_values(*ctx.input(1), "starts"));
  PS_ASSIGN_OR_RETURN(const std::vector<int64_t> ends, read_int_values(*ctx.input(2), "ends"));
  std::vector<int64_t> axes(starts.size());
  for (size_t i = 0; i < axes.size(); ++i) axes[i] = static_cast<int64_t>(i);
  std::vector<int64_t> steps(starts.size(), 1);
  if (ctx.input(3)) {
    PS_ASSIGN_OR_RETURN(axes, read_int_values(*ctx.input(3), "axes"));
  }
  if (ctx.input(4)) {
    PS_ASSIGN_OR_RETURN(steps, read_int_values(*ctx.input(4), "steps"));
  }
  if (ends.size() != starts.size() || axes.size() != starts.size() ||
      steps.size() != starts.size()) {
    return invalid_argument("starts, ends, axes and steps have different lengths (", starts.size(),
                            ", ", ends.size(), ", ", axes.size(), ", ", steps.size(), ")");
  }
  const std::vector<int64_t> strides = contiguous_strides(x.shape());
  Shape out_shape = x.shape();
  std::vector<int64_t> in_strides = strides;
  std::vector<bool> seen(x.shape().size(), false);
  int64_t base = 0;
  for (size_t i = 0; i < starts.size(); ++i) {
    PS_ASSIGN_OR_RETURN(const int64_t axis, normalize_axis(axes[i], x.rank()));
    if (seen[axis]) return invalid_argument("axis ", axes[i], " is repeated");
    seen[axis] = true;
    const int64_t step = steps[i];
    if (step == 0) return invalid_argument("step of axis ", axes[i], " is 0");
    const int64_t dim = x.dim(axis);
    int64_t start = starts[i] < 0 ? starts[i] + dim : starts[i];
    int64_t end = ends[i] < 0 ? ends[i] + dim : ends[i];
    int64_t count;
    if (dim == 0) {
      count = 0;
    } else if (step > 0) {
      start = std::clamp<int64_t>(start, 0, dim);
      end = std::clamp<int64_t>(end, 0, dim);
      count = end > start ? (end - start + step - 1) / step : 0;
    } else {
      start = std::clamp<int64_t>(start, 0, dim - 1);
      end = std::clamp<int64_t>(end, -1, dim - 1);
      count = start > end ? (start - end + (-step) - 1) / (-step) : 0;
    }
    out_shape[axis] = count;
    if (count > 0) base += start * strides[axis];
    in_strides[axis] = strides[axis] * step;
  }
  PS_ASSIGN_OR_RETURN(Tensor * y, ctx.output_checked(0, x.dtype(), out_shape));
  strided_copy(x, in_strides, base, out_shape, *y);
  return Status::OK();
}

Status run_split(const OpContext& ctx) {
  PS_TRY(ctx.check_attrs({"axis", "split", "num_outputs"}));
  const size_t outputs = ctx.num_outputs();
  if (outputs == 0) return invalid_argument("at least one output is required");
  PS_TRY(ctx.check_arity(1, 2, outputs, outputs));
  const Tensor& x = *ctx.input(0);
  PS_ASSIGN_OR_RETURN(const int64_t axis_attr, ctx.attr_int("axis", 0));
  PS_ASSIGN_OR_RETURN(const int64_t axis, normalize_axis(axis_attr, x.rank()));
  PS_ASSIGN_OR_RETURN(const int64_t num_outputs,
                      ctx.attr_int("num_outputs", static_cast<int64_t>(outputs)));
  if (num_outputs != static_cast<int64_t>(outputs)) {
    return invalid_argument("num_outputs=", num_outputs, " but ", outputs, " outputs are given");
  }
  PS_ASSIGN_OR_RETURN(std::vector<int64_t> sizes, ctx.attr_ints("split"));
  if (ctx.input(1) != nullptr) {
    if (ctx.has_attr("split")) return invalid_argument("split given both as attribute and input");
    PS_ASSIGN_OR_RETURN(sizes, read_int_values(*ctx.input(1), "split"));
  }
  const int64_t dim = x.dim(axis);
  const auto n = static_cast<int64_t>(outputs);
  if (sizes.empty()) {
    // Equal parts; when dim does not divide, the last part is smaller (opset 18).
    const int64_t part = (dim + n - 1) / n;
    for (int64_t k = 0; k < n; ++k) sizes.push_back(std::clamp<int64_t>(dim - k * part, 0, part));
  }
  int64_t total = 0;
  for (int64_t s : sizes) {
    if (s < 0) return invalid_argument("split ", shape_string(sizes), " has a negative size");
    total += s;
  }
  if (sizes.size() != outputs || total != dim) {
    return invalid_argument("split ", shape_string(sizes), " does not cut axis ", axis, " of ",
                            x.description(), " into ", outputs, " parts");
  }
  int64_t outer, inner;
  outer_inner(x.shape(), axis, &outer, &inner);
  const size_t esize = dtype_size(x.dtype());
  const size_t in_chunk = static_cast<size_t>(dim * inner) * esize;
  const auto* src = static_cast<const std::byte*>(x.raw());
  size_t offset = 0;
  for (size_t k = 0; k < outputs; ++k) {
    Shape shape = x.shape();
    shape[axis] = sizes[k];
    PS_ASSIGN_OR_RETURN(Tensor * y, ctx.output_checked(k, x.dtype(), shape));
    const size_t chunk = static_cast<size_t>(sizes[k] * inner) * esize;
    auto* dst = static_cast<std::byte*>(y->mutable_raw());
    if (chunk > 0) {
      for (int64_t o = 0; o < outer; ++o)
        std::memcpy(dst + o * chunk, src + o * in_chunk + offset, chunk);
    }
    offset += chunk;
  }
  return Status::OK();
}

Status run_expand(const OpContext& ctx) {
  PS_TRY(ctx.check_arity(2, 2, 1, 1));
  PS_TRY(ctx.check_attrs({}));
  const Tensor& x = *ctx.input(0);
  PS_ASSIGN_OR_RETURN(const Shape shape, read_int_values(*ctx.input(1), "shape"));
  PS_ASSIGN_OR_RETURN(const Shape out_shape, broadcast_shapes(x.shape(), shape));
  PS_ASSIGN_OR_RETURN(Tensor * y, ctx.output_checked(0, x.dtype(), out_shape));
  strided_copy(x, broadcast_strides(x.shape(), out_shape), 0, out_shape, *y);
  return Status::OK();
}

Status run_gather(const OpContext& ctx) {
  PS_TRY(ctx.check_arity(2, 2, 1, 1));
  PS_TRY(ctx.check_attrs({"axis"}));
  const Tensor& data = *ctx.input(0);
  const Tensor& indices_t = *ctx.input(1);
  if (data.rank() == 0) return invalid_argument("data must have rank >= 1");
  PS_ASSIGN_OR_RETURN(const int64_t axis_attr, ctx.attr_int("axis", 0));
  PS_ASSIGN_OR_RETURN(const int64_t axis, normalize_axis(axis_attr, data.rank()));
  if (indices_t.dtype() != DType::kInt64 && indices_t.dtype() != DType::kInt32) {
    return invalid_argument("indices must be int64 or int32, got ", indices_t.description());
  }
  Shape out_shape(data.shape().begin(), data.shape().begin() + axis);
  out_shape.insert(out_shape.end(), indices_t.shape().begin(), indices_t.shape().end());
  out_shape.insert(out_shape.end(), data.shape().begin() + axis + 1, data.shape().end());
  PS_ASSIGN_OR_RETURN(Tensor * y, ctx.output_checked(0, data.dtype(), out_shape));
  const int64_t dim = data.dim(axis);
  std::vector<int64_t> indices(static_cast<size_t>(indices_t.numel()));
  for (size_t j = 0; j < indices.size(); ++j) {
    int64_t v = indices_t.dtype() == DType::kInt64 ? indices_t.data<int64_t>()[j]
                                                   : indices_t.data<int32_t>()[j];
    if (v < -dim || v >= dim) {
      return out_of_range("index ", v, " (at position ", j, ") is out of range for axis ", axis,
                          " of size ", dim);
    }
    indices[j] = v < 0 ? v + dim : v;
  }
  int64_t outer, inner;
  outer_inner(data.shape(), axis, &outer, &inner);
  const size_t row = static_cast<size_t>(inner) * dtype_size(data.dtype());
  const auto* src = static_cast<const std::byte*>(data.raw());
  auto* dst = static_cast<std::byte*>(y->mutable_raw());
  if (row == 0) return Status::OK();
  for (int64_t o = 0; o < outer; ++o) {
    for (size_t j = 0; j < indices.size(); ++j) {
      std::memcpy(dst + (o * static_cast<int64_t>(indices.size()) + static_cast<int64_t>(j)) * row,
                  src + (o * dim + indices[j]) * row, row);
    }
  }
  return Status::OK();
}

}  // namespace ps::models::cpu
