// Reductions over a set of axes: ReduceMean, ReduceSum, ReduceProd (accumulated in double for
// floats, int64 for integers) and ReduceMax, ReduceMin (NaN propagates). Axes come from the
// `axes` attribute (before opset 18) or the optional second input (ReduceSum from 13, all from
// 18); keepdims and noop_with_empty_axes as ONNX defines them.
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "models/cpu/dispatch.h"
#include "models/cpu/kernels.h"

namespace ps::models::cpu {

namespace {

enum class Reduction { kSum, kMean, kProd, kMax, kMin };

// Integer sums and products wrap around in two's complement, as numpy's and the GPU kernels'
// do; done in the unsigned type, since signed overflow is undefined behaviour.
template <typename Acc>
Acc add(Acc a, Acc b) {
  if constexpr (kIsFloat<Acc>) {
    return a + b;
  } else {
    using U = std::make_unsigned_t<Acc>;
    return static_cast<Acc>(static_cast<U>(a) + static_cast<U>(b));
  }
}
template <typename Acc>
Acc multiply(Acc a, Acc b) {
  if constexpr (kIsFloat<Acc>) {
    return a * b;
  } else {
    using U = std::make_unsigned_t<Acc>;
    return static_cast<Acc>(static_cast<U>(a) * static_cast<U>(b));
  }
}

template <typename T, typename Acc>
void reduce_kernel(Reduction kind, const Tensor& x, const std::vector<int64_t>& out_strides,
                   int64_t group_size, T* out, int64_t out_numel) {
  Acc init = 0;
  if (kind == Reduction::kProd) init = 1;
  if constexpr (kIsFloat<Acc>) {
    if (kind == Reduction::kMax) init = -std::numeric_limits<Acc>::infinity();
    if (kind == Reduction::kMin) init = std::numeric_limits<Acc>::infinity();
  } else {
    if (kind == Reduction::kMax) init = std::numeric_limits<T>::lowest();
    if (kind == Reduction::kMin) init = std::numeric_limits<T>::max();
  }
  std::vector<Acc> acc(static_cast<size_t>(out_numel), init);
  const T* in = x.data<T>();
  for_each_run<2>(
      x.shape(), {contiguous_strides(x.shape()), out_strides}, {0, 0},
      [&](const std::array<int64_t, 2>& off, const std::array<int64_t, 2>& run, int64_t count) {
        const T* v = in + off[0];
        Acc* a = acc.data() + off[1];
        const int64_t s = run[1];
        switch (kind) {
          case Reduction::kSum:
          case Reduction::kMean:
            for (int64_t i = 0; i < count; ++i) a[i * s] = add(a[i * s], static_cast<Acc>(v[i]));
            break;
          case Reduction::kProd:
            for (int64_t i = 0; i < count; ++i) {
              a[i * s] = multiply(a[i * s], static_cast<Acc>(v[i]));
            }
            break;
          case Reduction::kMax:
          case Reduction::kMin:
            for (int64_t i = 0; i < count; ++i) {
              const Acc value = static_cast<Acc>(v[i]);
              Acc& r = a[i * s];
              if constexpr (kIsFloat<Acc>) {
                if (std::isnan(r)) continue;
                if (std::isnan(value)) {
                  r = value;
                  continue;
                }
              }
              r = kind == Reduction::kMax ? std::max(r, value) : std::min(r, value);
            }
            break;
        }
      });
  for (int64_t j = 0; j < out_numel; ++j) {
    Acc r = acc[j];
    if (kind == Reduction::kMean) {
      if constexpr (kIsFloat<Acc>) {
        r = r / static_cast<Acc>(group_size);  // 0/0 is NaN for an empty reduction
      } else {
        r = group_size != 0 ? r / group_size : 0;
      }
    }
    out[j] = static_cast<T>(r);
  }
}

}  // namespace

Status run_reduce(const OpContext& ctx) {
  PS_TRY(ctx.check_arity(1, 2, 1, 1));
  PS_TRY(ctx.check_attrs({"axes", "keepdims", "noop_with_empty_axes"}));
  const std::string& op = ctx.op();
  const Reduction kind = op == "ReduceSum"    ? Reduction::kSum
                         : op == "ReduceMean" ? Reduction::kMean
                         : op == "ReduceProd" ? Reduction::kProd
                         : op == "ReduceMax"  ? Reduction::kMax
                                              : Reduction::kMin;
  const Tensor& x = *ctx.input(0);
  PS_ASSIGN_OR_RETURN(const int64_t keepdims, ctx.attr_int("keepdims", 1));
  PS_ASSIGN_OR_RETURN(const int64_t noop_with_empty_axes, ctx.attr_int("noop_with_empty_axes", 0));
  PS_ASSIGN_OR_RETURN(std::vector<int64_t> axes, ctx.attr_ints("axes"));
  if (ctx.input(1) != nullptr) {
    if (ctx.has_attr("axes")) return invalid_argument("axes given both as attribute and input");
    PS_ASSIGN_OR_RETURN(axes, read_int_values(*ctx.input(1), "axes"));
  }
  std::vector<bool> reduced(x.shape().size(), false);
  if (axes.empty()) {
    if (noop_with_empty_axes != 0) {
      PS_ASSIGN_OR_RETURN(Tensor * y, ctx.output_checked(0, x.dtype(), x.shape()));
      if (x.byte_size() > 0) std::memcpy(y->mutable_raw(), x.raw(), x.byte_size());
      return Status::OK();
    }
    reduced.assign(reduced.size(), true);
  }
  for (int64_t axis : axes) {
    PS_ASSIGN_OR_RETURN(const int64_t a, normalize_axis(axis, x.rank()));
    if (reduced[a]) return invalid_argument("axis ", axis, " is repeated");
    reduced[a] = true;
  }
  Shape out_shape;
  Shape kept_shape;  // the output shape with keepdims=1
  int64_t group_size = 1;
  for (int64_t d = 0; d < x.rank(); ++d) {
    if (reduced[d]) {
      group_size *= x.dim(d);
      kept_shape.push_back(1);
      if (keepdims) out_shape.push_back(1);
    } else {
      kept_shape.push_back(x.dim(d));
      out_shape.push_back(x.dim(d));
    }
  }
  PS_ASSIGN_OR_RETURN(Tensor * y, ctx.output_checked(0, x.dtype(), out_shape));
  const std::vector<int64_t> out_strides = broadcast_strides(kept_shape, x.shape());
  const bool arithmetic =
      kind == Reduction::kSum || kind == Reduction::kMean || kind == Reduction::kProd;
  return dispatch(NumericTypes{}, x.dtype(), "input", [&](auto tag) -> Status {
    using T = typename decltype(tag)::type;
    if constexpr (kIsFloat<T>) {
      reduce_kernel<T, double>(kind, x, out_strides, group_size, y->mutable_data<T>(), y->numel());
    } else {
      if (arithmetic && sizeof(T) < 4) {
        return unsupported("input dtype ", dtype_name(x.dtype()), " is not supported");
      }
      reduce_kernel<T, int64_t>(kind, x, out_strides, group_size, y->mutable_data<T>(), y->numel());
    }
    return Status::OK();
  });
}

}  // namespace ps::models::cpu
