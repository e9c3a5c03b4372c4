// Matrix products: Gemm (2-D, transposes, alpha/beta, broadcast C), MatMul (numpy matmul:
// batched with broadcast batch dimensions, 1-D operands promoted) and our MatMulBias,
// MatMulScale and MatMulTransB (B 2-D [N, K], read transposed: Y = matmul(A, B^T), plus an
// optional bias [N] as MatMulBias's).
// Products and sums are accumulated in double.
#include <algorithm>

#include "models/cpu/dispatch.h"
#include "models/cpu/kernels.h"

namespace ps::models::cpu {

namespace {

// acc[i*N + j] = sum_k A(i,k) * B(k,j) with A(i,k) = a[i*a_rs + k*a_cs] and
// B(k,j) = b[k*b_rs + j*b_cs]. acc holds M*N doubles.
template <typename T>
void matmul_acc(const T* a, int64_t a_rs, int64_t a_cs, const T* b, int64_t b_rs, int64_t b_cs,
                int64_t M, int64_t K, int64_t N, double* acc) {
  if (b_cs == 1) {
    // Row-major B: for each A element, add a scaled row of B (vectorises over j).
    std::fill(acc, acc + M * N, 0.0);
    for (int64_t i = 0; i < M; ++i) {
      double* row = acc + i * N;
      for (int64_t k = 0; k < K; ++k) {
        const double av = static_cast<double>(a[i * a_rs + k * a_cs]);
        const T* brow = b + k * b_rs;
        for (int64_t j = 0; j < N; ++j) row[j] += av * static_cast<double>(brow[j]);
      }
    }
    return;
  }
  // Transposed B: dot products along k.
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      const T* pa = a + i * a_rs;
      const T* pb = b + j * b_cs;
      for (int64_t k = 0; k < K; ++k) {
        s += static_cast<double>(pa[k * a_cs]) * static_cast<double>(pb[k * b_rs]);
      }
      acc[i * N + j] = s;
    }
  }
}

}  // namespace

Status run_gemm(const OpContext& ctx) {
  PS_TRY(ctx.check_arity(2, 3, 1, 1));
  PS_TRY(ctx.check_attrs({"alpha", "beta", "transA", "transB"}));
  const Tensor& a = *ctx.input(0);
  const Tensor& b = *ctx.input(1);
  const Tensor* c = ctx.input(2);
  PS_ASSIGN_OR_RETURN(const float alpha, ctx.attr_float("alpha", 1.0f));
  PS_ASSIGN_OR_RETURN(const float beta, ctx.attr_float("beta", 1.0f));
  PS_ASSIGN_OR_RETURN(const int64_t trans_a, ctx.attr_int("transA", 0));
  PS_ASSIGN_OR_RETURN(const int64_t trans_b, ctx.attr_int("transB", 0));
  if (a.rank() != 2 || b.rank() != 2) {
    return invalid_argument("A and B must be 2-D, got ", a.description(), " and ", b.description());
  }
  if (a.dtype() != b.dtype() || (c != nullptr && c->dtype() != a.dtype())) {
    return invalid_argument("input dtypes differ: A ", a.description(), ", B ", b.description(),
                            c ? ", C " + c->description() : "");
  }
  const int64_t M = trans_a ? a.dim(1) : a.dim(0);
  const int64_t K = trans_a ? a.dim(0) : a.dim(1);
  const int64_t Kb = trans_b ? b.dim(1) : b.dim(0);
  const int64_t N = trans_b ? b.dim(0) : b.dim(1);
  if (K != Kb) {
    return invalid_argument("inner dimensions differ: A ", a.description(),
                            trans_a ? " (transposed)" : "", ", B ", b.description(),
                            trans_b ? " (transposed)" : "");
  }
  const Shape out_shape{M, N};
  std::vector<int64_t> c_strides;
  if (c != nullptr) {
    const Result<Shape> cb = broadcast_shapes(c->shape(), out_shape);
    if (!cb.ok() || *cb != out_shape) {
      return invalid_argument("C ", c->description(), " does not broadcast to ",
                              shape_string(out_shape));
    }
    c_strides = broadcast_strides(c->shape(), out_shape);
  }
  PS_ASSIGN_OR_RETURN(Tensor * y, ctx.output_checked(0, a.dtype(), out_shape));
  return dispatch(FloatTypes{}, a.dtype(), "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    std::vector<double> acc(static_cast<size_t>(M * N));
    matmul_acc(a.data<T>(), trans_a ? 1 : K, trans_a ? M : 1, b.data<T>(), trans_b ? 1 : N,
               trans_b ? K : 1, M, K, N, acc.data());
    T* out = y->mutable_data<T>();
    const T* pc = c ? c->data<T>() : nullptr;
    for (int64_t i = 0; i < M; ++i) {
      for (int64_t j = 0; j < N; ++j) {
        double v = static_cast<double>(alpha) * acc[i * N + j];
        if (pc)
          v += static_cast<double>(beta) *
               static_cast<double>(pc[i * c_strides[0] + j * c_strides[1]]);
        out[i * N + j] = static_cast<T>(v);
      }
    }
    return Status::OK();
  });
}

Status run_matmul(const OpContext& ctx) {
  const bool scaled = ctx.op() == "MatMulScale";
  const bool trans_b = ctx.op() == "MatMulTransB";
  // MatMulTransB's bias is optional (a linear layer's, fused for training).
  const bool with_bias = ctx.op() == "MatMulBias" || (trans_b && ctx.num_inputs() == 3);
  PS_TRY(trans_b     ? ctx.check_arity(2, 3, 1, 1)
         : with_bias ? ctx.check_arity(3, 3, 1, 1)
                     : ctx.check_arity(2, 2, 1, 1));
  PS_TRY(scaled ? ctx.check_attrs({"alpha"}) : ctx.check_attrs({}));
  double alpha = 1.0;
  if (scaled) {
    PS_ASSIGN_OR_RETURN(const float a, ctx.attr_float("alpha", 1.0f));
    alpha = a;
  }
  const Tensor& a = *ctx.input(0);
  const Tensor& b = *ctx.input(1);
  const Tensor* bias = with_bias ? ctx.input(2) : nullptr;
  if (a.rank() == 0 || b.rank() == 0) {
    return invalid_argument("operands must have rank >= 1, got ", a.description(), " and ",
                            b.description());
  }
  if (trans_b && b.rank() != 2) {
    return invalid_argument("B must be 2-D [N, K], got ", b.description());
  }
  if (a.dtype() != b.dtype() || (bias != nullptr && bias->dtype() != a.dtype())) {
    return invalid_argument("input dtypes differ: ", a.description(), ", ", b.description(),
                            bias ? ", bias " + bias->description() : "");
  }
  // numpy promotion: a 1-D A is [1, K] and a 1-D B is [K, 1]; the added dims are dropped.
  // MatMulTransB's B is [N, K], read as the [K, N] matrix B^T.
  const int64_t M = a.rank() == 1 ? 1 : a.dim(a.rank() - 2);
  const int64_t K = a.dim(a.rank() - 1);
  const int64_t Kb = trans_b ? b.dim(1) : b.rank() == 1 ? b.dim(0) : b.dim(b.rank() - 2);
  const int64_t N = trans_b ? b.dim(0) : b.rank() == 1 ? 1 : b.dim(b.rank() - 1);
  if (K != Kb) {
    return invalid_argument("inner dimensions differ: ", a.description(), " x ", b.description(),
                            trans_b ? " (transposed)" : "");
  }
  const Shape a_batch(a.shape().begin(), a.shape().end() - std::min<int64_t>(a.rank(), 2));
  const Shape b_batch(b.shape().begin(), b.shape().end() - std::min<int64_t>(b.rank(), 2));
  const Result<Shape> batch_or = broadcast_shapes(a_batch, b_batch);
  if (!batch_or.ok()) {
    return invalid_argument("batch dimensions of ", a.description(), " and ", b.description(),
                            " do not broadcast");
  }
  const Shape& batch = *batch_or;
  Shape out_shape = batch;
  if (a.rank() > 1) out_shape.push_back(M);
  if (b.rank() > 1) out_shape.push_back(N);
  if (bias != nullptr) {
    const bool ok = bias->numel() == N && bias->rank() >= 1 && bias->dim(bias->rank() - 1) == N;
    if (!ok) {
      return invalid_argument("bias ", bias->description(), " must have shape [", N,
                              "] (the last dimension of the product)");
    }
  }
  PS_ASSIGN_OR_RETURN(Tensor * y, ctx.output_checked(0, a.dtype(), out_shape));

  std::vector<int64_t> a_strides = broadcast_strides(a_batch, batch);
  std::vector<int64_t> b_strides = broadcast_strides(b_batch, batch);
  std::vector<int64_t> y_strides = contiguous_strides(batch);
  for (int64_t& s : a_strides) s *= M * K;
  for (int64_t& s : b_strides) s *= K * N;
  for (int64_t& s : y_strides) s *= M * N;
  return dispatch(FloatTypes{}, a.dtype(), "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    const T* pbias = bias ? bias->data<T>() : nullptr;
    T* py = y->mutable_data<T>();
    std::vector<double> acc(static_cast<size_t>(M * N));
    for_each_run<3>(
        batch, {a_strides, b_strides, y_strides}, {0, 0, 0},
        [&](const std::array<int64_t, 3>& off, const std::array<int64_t, 3>& run, int64_t count) {
          for (int64_t r = 0; r < count; ++r) {
            // B(k, j) is b[k * N + j], or b[j * K + k] when B is stored transposed.
            matmul_acc(pa + off[0] + r * run[0], K, 1, pb + off[1] + r * run[1], trans_b ? 1 : N,
                       trans_b ? K : 1, M, K, N, acc.data());
            T* out = py + off[2] + r * run[2];
            for (int64_t i = 0; i < M; ++i) {
              for (int64_t j = 0; j < N; ++j) {
                double v = acc[i * N + j] * alpha;
                if (pbias) v += static_cast<double>(pbias[j]);
                out[i * N + j] = static_cast<T>(v);
              }
            }
          }
        });
    return Status::OK();
  });
}

}  // namespace ps::models::cpu
