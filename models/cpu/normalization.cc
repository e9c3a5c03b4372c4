// Normalisations: BatchNormalization (inference: running statistics), LayerNormalization
// (opset 17: normalise over axes [axis, rank), optional Mean and InvStdDev outputs), and
// Softmax / LogSoftmax along one axis (opset 13 semantics; AddSoftmax: of X + M). Statistics
// are computed in double.
#include <cmath>

#include "models/cpu/dispatch.h"
#include "models/cpu/kernels.h"

namespace ps::models::cpu {

namespace {

// The elements of a float32/float64 tensor as doubles.
Result<std::vector<double>> as_doubles(const Tensor& t, std::string_view what) {
  std::vector<double> v(static_cast<size_t>(t.numel()));
  PS_TRY(dispatch(FloatTypes{}, t.dtype(), what, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* p = t.data<T>();
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(p[i]);
    return Status::OK();
  }));
  return v;
}

// `t` (unidirectionally broadcast to `shape`) expanded to element_count(shape) doubles.
Result<std::vector<double>> expanded_doubles(const Tensor& t, const Shape& shape,
                                             std::string_view what) {
  const Result<Shape> b = broadcast_shapes(t.shape(), shape);
  if (!b.ok() || *b != shape) {
    return invalid_argument(what, " ", t.description(), " does not broadcast to ",
                            shape_string(shape));
  }
  PS_ASSIGN_OR_RETURN(const std::vector<double> values, as_doubles(t, what));
  std::vector<double> out(static_cast<size_t>(element_count(shape)));
  for_each_run<2>(
      shape, {broadcast_strides(t.shape(), shape), contiguous_strides(shape)}, {0, 0},
      [&](const std::array<int64_t, 2>& off, const std::array<int64_t, 2>& run, int64_t count) {
        for (int64_t i = 0; i < count; ++i) out[off[1] + i] = values[off[0] + i * run[0]];
      });
  return out;
}

}  // namespace

Status run_batch_norm(const OpContext& ctx) {
  PS_TRY(ctx.check_arity(5, 5, 1, 3));
  PS_TRY(ctx.check_attrs({"epsilon", "momentum", "training_mode", "spatial"}));
  PS_ASSIGN_OR_RETURN(const float epsilon, ctx.attr_float("epsilon", 1e-5f));
  PS_ASSIGN_OR_RETURN(const int64_t training_mode, ctx.attr_int("training_mode", 0));
  PS_ASSIGN_OR_RETURN(const int64_t spatial, ctx.attr_int("spatial", 1));
  if (training_mode != 0) {
    return unsupported("training_mode=1 (the CPU reference implements inference only)");
  }
  if (spatial != 1) return unsupported("spatial=", spatial);
  if (ctx.output(1) != nullptr || ctx.output(2) != nullptr) {
    return invalid_argument("running_mean/running_var outputs exist only in training mode");
  }
  const Tensor& x = *ctx.input(0);
  if (x.rank() < 2) return invalid_argument("X ", x.description(), " must be [N, C, ...]");
  const int64_t channels = x.dim(1);
  const char* names[] = {"scale", "B", "input_mean", "input_var"};
  std::vector<double> params[4];
  for (int k = 0; k < 4; ++k) {
    const Tensor& p = *ctx.input(k + 1);
    if (p.rank() != 1 || p.dim(0) != channels) {
      return invalid_argument(names[k], " ", p.description(), " must have shape [", channels, "]");
    }
    PS_ASSIGN_OR_RETURN(params[k], as_doubles(p, names[k]));
  }
  PS_ASSIGN_OR_RETURN(Tensor * y, ctx.output_checked(0, x.dtype(), x.shape()));
  const int64_t inner = channels == 0 || x.dim(0) == 0 ? 0 : x.numel() / (x.dim(0) * channels);
  return dispatch(FloatTypes{}, x.dtype(), "X", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* in = x.data<T>();
    T* out = y->mutable_data<T>();
    for (int64_t n = 0; n < x.dim(0); ++n) {
      for (int64_t c = 0; c < channels; ++c) {
        const double a = params[0][c] / std::sqrt(params[3][c] + static_cast<double>(epsilon));
        const double mean = params[2][c];
        const double b = params[1][c];
        const int64_t base = (n * channels + c) * inner;
        for (int64_t i = 0; i < inner; ++i) {
          out[base + i] = static_cast<T>((static_cast<double>(in[base + i]) - mean) * a + b);
        }
      }
    }
    return Status::OK();
  });
}

Status run_layer_norm(const OpContext& ctx) {
  // AddLayerNormalization: inputs [A, B, Scale, B?], X = A + B (each sum rounded to the dtype,
  // as the Add it replaces), one output.
  const bool add = ctx.op() == "AddLayerNormalization";
  const int first = add ? 1 : 0;  // where Scale's input index is shifted by
  PS_TRY(add ? ctx.check_arity(3, 4, 1, 1) : ctx.check_arity(2, 3, 1, 3));
  PS_TRY(ctx.check_attrs({"axis", "epsilon", "stash_type"}));
  Tensor sum;
  if (add) {
    const Tensor& a = *ctx.input(0);
    const Tensor& b = *ctx.input(1);
    if (a.dtype() != b.dtype() || a.shape() != b.shape()) {
      return invalid_argument("the addends differ: ", a.description(), " and ", b.description());
    }
    PS_ASSIGN_OR_RETURN(sum, Tensor::allocate(a.dtype(), a.shape()));
    PS_TRY(dispatch(FloatTypes{}, a.dtype(), "A", [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* pa = a.data<T>();
      const T* pb = b.data<T>();
      T* ps = sum.mutable_data<T>();
      for (int64_t i = 0; i < a.numel(); ++i) {
        ps[i] = static_cast<T>(static_cast<double>(pa[i]) + static_cast<double>(pb[i]));
      }
      return Status::OK();
    }));
  }
  const Tensor& x = add ? sum : *ctx.input(0);
  PS_ASSIGN_OR_RETURN(const int64_t axis_attr, ctx.attr_int("axis", -1));
  PS_ASSIGN_OR_RETURN(const float epsilon, ctx.attr_float("epsilon", 1e-5f));
  PS_ASSIGN_OR_RETURN(const int64_t stash_type, ctx.attr_int("stash_type", 1));
  if (stash_type != 1) return unsupported("stash_type=", stash_type, " (only 1, float32)");
  PS_ASSIGN_OR_RETURN(const int64_t axis, normalize_axis(axis_attr, x.rank()));
  const Shape norm_shape(x.shape().begin() + axis, x.shape().end());
  const int64_t inner = element_count(norm_shape);
  const int64_t outer = inner == 0 ? 0 : x.numel() / inner;
  PS_ASSIGN_OR_RETURN(const std::vector<double> scale,
                      expanded_doubles(*ctx.input(1 + first), norm_shape, "Scale"));
  std::vector<double> bias(static_cast<size_t>(inner), 0.0);
  if (ctx.input(2 + first) != nullptr) {
    PS_ASSIGN_OR_RETURN(bias, expanded_doubles(*ctx.input(2 + first), norm_shape, "B"));
  }
  PS_ASSIGN_OR_RETURN(Tensor * y, ctx.output_checked(0, x.dtype(), x.shape()));
  Shape stat_shape(x.shape().begin(), x.shape().begin() + axis);
  stat_shape.resize(x.shape().size(), 1);
  PS_ASSIGN_OR_RETURN(Tensor * mean_out,
                      ctx.optional_output_checked(1, DType::kFloat32, stat_shape));
  PS_ASSIGN_OR_RETURN(Tensor * inv_std_out,
                      ctx.optional_output_checked(2, DType::kFloat32, stat_shape));
  return dispatch(FloatTypes{}, x.dtype(), "X", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* in = x.data<T>();
    T* out = y->mutable_data<T>();
    for (int64_t o = 0; o < outer; ++o) {
      const T* v = in + o * inner;
      double sum = 0;
      for (int64_t i = 0; i < inner; ++i) sum += static_cast<double>(v[i]);
      const double mean = sum / static_cast<double>(inner);
      double sq = 0;
      for (int64_t i = 0; i < inner; ++i) {
        const double d = static_cast<double>(v[i]) - mean;
        sq += d * d;
      }
      const double inv_std = 1.0 / std::sqrt(sq / static_cast<double>(inner) + epsilon);
      for (int64_t i = 0; i < inner; ++i) {
        out[o * inner + i] =
            static_cast<T>((static_cast<double>(v[i]) - mean) * inv_std * scale[i] + bias[i]);
      }
      if (mean_out) mean_out->mutable_data<float>()[o] = static_cast<float>(mean);
      if (inv_std_out) inv_std_out->mutable_data<float>()[o] = static_cast<float>(inv_std);
    }
    return Status::OK();
  });
}

Status run_softmax(const OpContext& ctx) {
  // AddSoftmax: inputs [X, M], the softmax of X + M (M unidirectionally broadcast to X; each sum
  // rounded to the dtype, as the Add it replaces).
  const bool add = ctx.op() == "AddSoftmax";
  PS_TRY(add ? ctx.check_arity(2, 2, 1, 1) : ctx.check_arity(1, 1, 1, 1));
  PS_TRY(ctx.check_attrs({"axis"}));
  const bool log = ctx.op() == "LogSoftmax";
  const Tensor* x = ctx.input(0);
  Tensor added;
  if (add) {
    const Tensor& m = *ctx.input(1);
    if (m.dtype() != x->dtype()) {
      return invalid_argument("the addends differ: ", x->description(), " and ", m.description());
    }
    PS_ASSIGN_OR_RETURN(const std::vector<double> mask, expanded_doubles(m, x->shape(), "M"));
    PS_ASSIGN_OR_RETURN(added, Tensor::allocate(x->dtype(), x->shape()));
    PS_TRY(dispatch(FloatTypes{}, x->dtype(), "X", [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* px = x->data<T>();
      T* ps = added.mutable_data<T>();
      for (size_t i = 0; i < mask.size(); ++i)
        ps[i] = static_cast<T>(px[i] + static_cast<T>(mask[i]));
      return Status::OK();
    }));
    x = &added;
  }
  PS_ASSIGN_OR_RETURN(const int64_t axis_attr, ctx.attr_int("axis", -1));
  PS_ASSIGN_OR_RETURN(const int64_t axis, normalize_axis(axis_attr, x->rank()));
  PS_ASSIGN_OR_RETURN(Tensor * y, ctx.output_checked(0, x->dtype(), x->shape()));
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x->dim(d);
  for (int64_t d = axis + 1; d < x->rank(); ++d) inner *= x->dim(d);
  const int64_t n = x->dim(axis);
  return dispatch(FloatTypes{}, x->dtype(), "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* in = x->data<T>();
    T* out = y->mutable_data<T>();
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t i = 0; i < inner; ++i) {
        const int64_t base = o * n * inner + i;
        double max = -INFINITY;
        for (int64_t k = 0; k < n; ++k)
          max = std::max(max, static_cast<double>(in[base + k * inner]));
        double sum = 0;
        for (int64_t k = 0; k < n; ++k)
          sum += std::exp(static_cast<double>(in[base + k * inner]) - max);
        const double log_sum = std::log(sum);
        for (int64_t k = 0; k < n; ++k) {
          const double shifted = static_cast<double>(in[base + k * inner]) - max;
          out[base + k * inner] = static_cast<T>(log ? shifted - log_sum : std::exp(shifted) / sum);
        }
      }
    }
    return Status::OK();
  });
}

}  // namespace ps::models::cpu
