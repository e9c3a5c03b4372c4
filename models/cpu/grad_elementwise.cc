// Backward of the layers that only move or mask values: Relu, broadcast reduction (Add),
// Flatten/Reshape, Concat.
#include "models/cpu/grad.h"
#include "models/cpu/grad_util.h"
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

}  // namespace ps::models::cpu
