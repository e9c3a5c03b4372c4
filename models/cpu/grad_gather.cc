// Gather backward: dData is zero except at the slices the indices picked, which receive dY's
// slices, added up where an index repeats (an embedding table's gradient). Indices get none.
#include "models/cpu/grad.h"
#include "models/cpu/grad_util.h"
#include "models/cpu/op_context.h"

namespace ps::models::cpu {

Result<Tensor> gather_backward(const Attributes& attrs, const Shape& data_shape,
                               const Tensor& indices, const Tensor& dy) {
  PS_TRY(require_f64(dy, "Gather backward: dY"));
  if (indices.dtype() != DType::kInt64 && indices.dtype() != DType::kInt32) {
    return invalid_argument("Gather backward: indices ", indices.description(),
                            " must be int64 or int32");
  }
  if (data_shape.empty()) return invalid_argument("Gather backward: data must have rank >= 1");
  const std::string op = "Gather";
  const OpContext ctx(op, attrs, {}, {});
  PS_ASSIGN_OR_RETURN(const int64_t axis_attr, ctx.attr_int("axis", 0));
  const int64_t rank = static_cast<int64_t>(data_shape.size());
  PS_ASSIGN_OR_RETURN(const int64_t axis, normalize_axis(axis_attr, rank));
  Shape out_shape(data_shape.begin(), data_shape.begin() + axis);
  out_shape.insert(out_shape.end(), indices.shape().begin(), indices.shape().end());
  out_shape.insert(out_shape.end(), data_shape.begin() + axis + 1, data_shape.end());
  if (dy.shape() != out_shape) {
    return invalid_argument("Gather backward: dY ", dy.description(), " is not data ",
                            shape_string(data_shape), " gathered by indices ",
                            indices.description(), " on axis ", axis);
  }
  const int64_t dim = data_shape[static_cast<size_t>(axis)];
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= data_shape[static_cast<size_t>(d)];
  for (int64_t d = axis + 1; d < rank; ++d) inner *= data_shape[static_cast<size_t>(d)];
  const int64_t count = indices.numel();
  PS_ASSIGN_OR_RETURN(Tensor dd, zeros_f64(data_shape));
  const double* dyp = dy.data<double>();
  double* ddp = dd.mutable_data<double>();
  for (int64_t j = 0; j < count; ++j) {
    int64_t v =
        indices.dtype() == DType::kInt64 ? indices.data<int64_t>()[j] : indices.data<int32_t>()[j];
    if (v < -dim || v >= dim) {
      return out_of_range("Gather backward: index ", v, " (at position ", j,
                          ") is out of range for axis ", axis, " of size ", dim);
    }
    if (v < 0) v += dim;
    for (int64_t o = 0; o < outer; ++o) {
      const double* src = dyp + (o * count + j) * inner;
      double* dst = ddp + (o * dim + v) * inner;
      for (int64_t i = 0; i < inner; ++i) dst[i] += src[i];
    }
  }
  return dd;
}

}  // namespace ps::models::cpu
