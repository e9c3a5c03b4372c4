// Backward of the elementwise and layout layers: Relu, broadcast reduction, the binary
// arithmetic ops (Add, Sub, Mul, Div, Pow), Expand, Flatten/Reshape, Transpose, Concat,
// ReduceMean.
#include <algorithm>
#include <cmath>

#include "models/cpu/grad.h"
#include "models/cpu/grad_util.h"
#include "models/cpu/kernels.h"
#include "models/cpu/op_context.h"

namespace ps::models::cpu {

Result<Tensor> relu_backward(const Tensor& x, const Tensor& dy) {
  PS_TRY(require_f64(x, "Relu backward: X"));
  PS_TRY(require_f64(dy, "Relu backward: dY"));
  if (x.shape() != dy.shape()) {
    return invalid_argument("Relu backward: X ", x.description(), " and dY ", dy.description(),
                            " differ");
  }
  PS_ASSIGN_OR_RETURN(Tensor dx, zeros_f64(x.shape()));
  const double* xp = x.data<double>();
  const double* dyp = dy.data<double>();
  double* dxp = dx.mutable_data<double>();
  for (int64_t i = 0; i < x.numel(); ++i) dxp[i] = xp[i] > 0 ? dyp[i] : 0.0;
  return dx;
}

Result<Tensor> reduce_to_shape(const Tensor& dy, const Shape& shape) {
  PS_TRY(require_f64(dy, "broadcast backward: dY"));
  const Result<Shape> b = broadcast_shapes(shape, dy.shape());
  if (!b.ok() || *b != dy.shape()) {
    return invalid_argument("broadcast backward: ", shape_string(shape),
                            " does not broadcast to dY ", dy.description());
  }
  PS_ASSIGN_OR_RETURN(Tensor out, zeros_f64(shape));
  const std::vector<int64_t> strides = broadcast_strides(shape, dy.shape());
  const double* dyp = dy.data<double>();
  double* op = out.mutable_data<double>();
  std::vector<int64_t> index(dy.shape().size(), 0);
  int64_t at = 0;  // offset into out of the current dY element
  for (int64_t i = 0; i < dy.numel(); ++i) {
    op[at] += dyp[i];
    for (int64_t d = dy.rank() - 1; d >= 0; --d) {  // row-major increment
      if (++index[d] < dy.dim(d)) {
        at += strides[d];
        break;
      }
      at -= strides[d] * (dy.dim(d) - 1);
      index[d] = 0;
    }
  }
  return out;
}

Result<Tensor> reshape_backward(const Shape& input_shape, const Tensor& dy) {
  PS_TRY(require_f64(dy, "Reshape backward: dY"));
  if (element_count(input_shape) != dy.numel()) {
    return invalid_argument("Reshape backward: dY ", dy.description(), " cannot take shape ",
                            shape_string(input_shape));
  }
  PS_ASSIGN_OR_RETURN(Tensor dx, dy.clone());
  PS_ASSIGN_OR_RETURN(Tensor view, dx.reshaped(input_shape));
  return view.clone();
}

Result<std::vector<Tensor>> concat_backward(const Attributes& attrs,
                                            std::span<const Shape> input_shapes, const Tensor& dy) {
  PS_TRY(require_f64(dy, "Concat backward: dY"));
  const std::string op = "Concat";
  const OpContext ctx(op, attrs, {}, {});
  PS_ASSIGN_OR_RETURN(const int64_t axis_attr, ctx.attr_int("axis", 0));
  PS_ASSIGN_OR_RETURN(const int64_t axis, normalize_axis(axis_attr, dy.rank()));
  int64_t outer = 1, inner = 1, total = 0;
  for (int64_t d = 0; d < axis; ++d) outer *= dy.dim(d);
  for (int64_t d = axis + 1; d < dy.rank(); ++d) inner *= dy.dim(d);
  for (const Shape& s : input_shapes) {
    Shape expect = dy.shape();
    if (static_cast<int64_t>(s.size()) == dy.rank()) expect[static_cast<size_t>(axis)] = s[axis];
    if (s != expect) {
      return invalid_argument("Concat backward: input shape ", shape_string(s), " does not fit dY ",
                              dy.description(), " on axis ", axis);
    }
    total += s[static_cast<size_t>(axis)];
  }
  if (total != dy.dim(axis)) {
    return invalid_argument("Concat backward: the inputs add up to ", total, " on axis ", axis,
                            ", dY ", dy.description());
  }
  std::vector<Tensor> grads;
  int64_t offset = 0;
  for (const Shape& s : input_shapes) {
    PS_ASSIGN_OR_RETURN(Tensor g, zeros_f64(s));
    const int64_t width = s[static_cast<size_t>(axis)] * inner;
    double* gp = g.mutable_data<double>();
    for (int64_t o = 0; o < outer; ++o) {
      const double* src = dy.data<double>() + o * dy.dim(axis) * inner + offset * inner;
      std::copy(src, src + width, gp + o * width);
    }
    offset += s[static_cast<size_t>(axis)];
    grads.push_back(std::move(g));
  }
  return grads;
}

Result<BinaryGrads> binary_backward(const std::string& op, const Tensor& a, const Tensor& b,
                                    const Tensor& dy) {
  PS_TRY(require_f64(a, op + " backward: A"));
  PS_TRY(require_f64(b, op + " backward: B"));
  PS_TRY(require_f64(dy, op + " backward: dY"));
  if (op != "Add" && op != "Sub" && op != "Mul" && op != "Div" && op != "Pow") {
    return invalid_argument("binary backward: no gradient for op ", op);
  }
  const Result<Shape> out = broadcast_shapes(a.shape(), b.shape());
  if (!out.ok() || *out != dy.shape()) {
    return invalid_argument(op, " backward: A ", a.description(), " and B ", b.description(),
                            " do not broadcast to dY ", dy.description());
  }
  // The gradients with respect to the broadcast operands (dY's shape), then reduced.
  PS_ASSIGN_OR_RETURN(Tensor ga, zeros_f64(dy.shape()));
  PS_ASSIGN_OR_RETURN(Tensor gb, zeros_f64(dy.shape()));
  const std::vector<int64_t> sa = broadcast_strides(a.shape(), dy.shape());
  const std::vector<int64_t> sb = broadcast_strides(b.shape(), dy.shape());
  const double* ap = a.data<double>();
  const double* bp = b.data<double>();
  const double* dyp = dy.data<double>();
  double* gap = ga.mutable_data<double>();
  double* gbp = gb.mutable_data<double>();
  for (int64_t i = 0; i < dy.numel(); ++i) {
    const double x = ap[strided_offset(i, dy.shape(), sa)];
    const double y = bp[strided_offset(i, dy.shape(), sb)];
    const double g = dyp[i];
    if (op == "Add") {
      gap[i] = g;
      gbp[i] = g;
    } else if (op == "Sub") {
      gap[i] = g;
      gbp[i] = -g;
    } else if (op == "Mul") {
      gap[i] = g * y;
      gbp[i] = g * x;
    } else if (op == "Div") {
      gap[i] = g / y;
      gbp[i] = -g * x / (y * y);
    } else {  // Pow
      gap[i] = g * y * std::pow(x, y - 1);
      gbp[i] = x > 0 ? g * std::pow(x, y) * std::log(x) : 0.0;
    }
  }
  BinaryGrads grads;
  PS_ASSIGN_OR_RETURN(grads.da, reduce_to_shape(ga, a.shape()));
  PS_ASSIGN_OR_RETURN(grads.db, reduce_to_shape(gb, b.shape()));
  return grads;
}

Result<Tensor> expand_backward(const Shape& input_shape, const Tensor& dy) {
  return reduce_to_shape(dy, input_shape);
}

Result<Tensor> transpose_backward(const Attributes& attrs, const Tensor& dy) {
  PS_TRY(require_f64(dy, "Transpose backward: dY"));
  const std::string op = "Transpose";
  const OpContext ctx(op, attrs, {}, {});
  std::vector<int64_t> reversed(dy.shape().size());
  for (size_t i = 0; i < reversed.size(); ++i) {
    reversed[i] = dy.rank() - 1 - static_cast<int64_t>(i);
  }
  PS_ASSIGN_OR_RETURN(const std::vector<int64_t> perm, ctx.attr_ints("perm", reversed));
  std::vector<bool> seen(dy.shape().size(), false);
  if (perm.size() != seen.size()) {
    return invalid_argument("Transpose backward: perm ", shape_string(perm), " does not fit dY ",
                            dy.description());
  }
  for (int64_t p : perm) {
    if (p < 0 || p >= dy.rank() || seen[static_cast<size_t>(p)]) {
      return invalid_argument("Transpose backward: perm ", shape_string(perm),
                              " is not a permutation of the ", dy.rank(), " axes");
    }
    seen[static_cast<size_t>(p)] = true;
  }
  // Y[i] = X[perm applied to i]: X's dim perm[d] is Y's dim d, so dX walks dY with dY's stride
  // of d on X's axis perm[d].
  Shape x_shape(perm.size());
  for (size_t d = 0; d < perm.size(); ++d) x_shape[static_cast<size_t>(perm[d])] = dy.dim(d);
  const std::vector<int64_t> dy_strides = contiguous_strides(dy.shape());
  std::vector<int64_t> read(perm.size());
  for (size_t d = 0; d < perm.size(); ++d) read[static_cast<size_t>(perm[d])] = dy_strides[d];
  PS_ASSIGN_OR_RETURN(Tensor dx, zeros_f64(x_shape));
  const double* dyp = dy.data<double>();
  double* dxp = dx.mutable_data<double>();
  for (int64_t i = 0; i < dx.numel(); ++i) dxp[i] = dyp[strided_offset(i, x_shape, read)];
  return dx;
}

Result<Tensor> head_slice_backward(const Attributes& attrs, const Shape& x_shape,
                                   const Tensor& dy) {
  PS_TRY(require_f64(dy, "HeadSlice backward: dY"));
  const std::string op = "HeadSlice";
  const OpContext ctx(op, attrs, {}, {});
  PS_ASSIGN_OR_RETURN(const HeadSliceLayout l, head_slice_attrs(ctx, x_shape));
  if (dy.shape() != l.y) {
    return invalid_argument("HeadSlice backward: dY ", dy.description(), " is not Y ",
                            shape_string(l.y));
  }
  PS_ASSIGN_OR_RETURN(Tensor dx, zeros_f64(x_shape));
  const double* dyp = dy.data<double>();
  double* dxp = dx.mutable_data<double>();
  for (int64_t i = 0; i < dy.numel(); ++i)
    dxp[l.x_base + strided_offset(i, l.y, l.x_strides)] = dyp[i];
  return dx;
}

Result<Tensor> reduce_mean_backward(const Attributes& attrs, std::span<const int64_t> axes_input,
                                    const Shape& input_shape, const Tensor& dy) {
  PS_TRY(require_f64(dy, "ReduceMean backward: dY"));
  const std::string op = "ReduceMean";
  const OpContext ctx(op, attrs, {}, {});
  PS_ASSIGN_OR_RETURN(std::vector<int64_t> axes, ctx.attr_ints("axes", {}));
  if (axes.empty()) axes.assign(axes_input.begin(), axes_input.end());
  PS_ASSIGN_OR_RETURN(const int64_t keepdims, ctx.attr_int("keepdims", 1));
  PS_ASSIGN_OR_RETURN(const int64_t noop, ctx.attr_int("noop_with_empty_axes", 0));
  const int64_t rank = static_cast<int64_t>(input_shape.size());
  std::vector<bool> reduced(input_shape.size(), axes.empty() && noop == 0);
  for (int64_t axis : axes) {
    PS_ASSIGN_OR_RETURN(const int64_t a, normalize_axis(axis, rank));
    reduced[static_cast<size_t>(a)] = true;
  }
  // dY with the reduced axes kept as 1, and the number of values each mean took.
  Shape kept;
  Shape dropped;
  int64_t count = 1;
  for (size_t d = 0; d < input_shape.size(); ++d) {
    kept.push_back(reduced[d] ? 1 : input_shape[d]);
    if (!reduced[d]) dropped.push_back(input_shape[d]);
    if (reduced[d]) count *= input_shape[d];
  }
  if (dy.shape() != (keepdims ? kept : dropped)) {
    return invalid_argument("ReduceMean backward: dY ", dy.description(), " does not fit X ",
                            shape_string(input_shape), " reduced (keepdims ", keepdims, ")");
  }
  PS_ASSIGN_OR_RETURN(Tensor dx, zeros_f64(input_shape));
  const std::vector<int64_t> read = broadcast_strides(kept, input_shape);
  const double* dyp = dy.data<double>();
  double* dxp = dx.mutable_data<double>();
  for (int64_t i = 0; i < dx.numel(); ++i) {
    dxp[i] = dyp[strided_offset(i, input_shape, read)] / static_cast<double>(count);
  }
  return dx;
}

}  // namespace ps::models::cpu
