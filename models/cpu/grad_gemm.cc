// Gemm backward: Y = alpha * A' B' + beta * C, with A' = op(A), B' = op(B) by transA/transB.
// dA' = alpha * dY B'^T, dB' = alpha * A'^T dY, transposed back when the input was; dC is
// beta * dY reduced over C's broadcast dimensions.
#include "models/cpu/grad.h"
#include "models/cpu/grad_util.h"
#include "models/cpu/op_context.h"

namespace ps::models::cpu {

Result<GemmGrads> gemm_backward(const Attributes& attrs, const Tensor& a, const Tensor& b,
                                const Shape* c_shape, const Tensor& dy) {
  PS_TRY(require_f64(a, "Gemm backward: A"));
  PS_TRY(require_f64(b, "Gemm backward: B"));
  PS_TRY(require_f64(dy, "Gemm backward: dY"));
  const std::string op = "Gemm";
  const OpContext ctx(op, attrs, {}, {});
  PS_ASSIGN_OR_RETURN(const float alpha, ctx.attr_float("alpha", 1.0f));
  PS_ASSIGN_OR_RETURN(const float beta, ctx.attr_float("beta", 1.0f));
  PS_ASSIGN_OR_RETURN(const int64_t trans_a, ctx.attr_int("transA", 0));
  PS_ASSIGN_OR_RETURN(const int64_t trans_b, ctx.attr_int("transB", 0));
  if (a.rank() != 2 || b.rank() != 2 || dy.rank() != 2) {
    return invalid_argument("Gemm backward: A ", a.description(), ", B ", b.description(), ", dY ",
                            dy.description(), " must be 2-D");
  }
  const int64_t m = trans_a ? a.dim(1) : a.dim(0), k = trans_a ? a.dim(0) : a.dim(1);
  const int64_t n = trans_b ? b.dim(0) : b.dim(1);
  if ((trans_b ? b.dim(1) : b.dim(0)) != k || dy.dim(0) != m || dy.dim(1) != n) {
    return invalid_argument("Gemm backward: A ", a.description(), ", B ", b.description(),
                            " (transA ", trans_a, ", transB ", trans_b, ") do not give dY ",
                            dy.description());
  }
  // Element (i, j) of A' and B' in their stored layout.
  auto a_at = [&](int64_t i, int64_t j) { return trans_a ? j * m + i : i * k + j; };
  auto b_at = [&](int64_t i, int64_t j) { return trans_b ? j * k + i : i * n + j; };
  GemmGrads g;
  PS_ASSIGN_OR_RETURN(g.da, zeros_f64(a.shape()));
  PS_ASSIGN_OR_RETURN(g.db, zeros_f64(b.shape()));
  const double* ap = a.data<double>();
  const double* bp = b.data<double>();
  const double* dyp = dy.data<double>();
  double* dap = g.da.mutable_data<double>();
  double* dbp = g.db.mutable_data<double>();
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t p = 0; p < k; ++p) {
      double s = 0;
      for (int64_t j = 0; j < n; ++j) s += dyp[i * n + j] * bp[b_at(p, j)];
      dap[a_at(i, p)] = alpha * s;
    }
  }
  for (int64_t p = 0; p < k; ++p) {
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t i = 0; i < m; ++i) s += ap[a_at(i, p)] * dyp[i * n + j];
      dbp[b_at(p, j)] = alpha * s;
    }
  }
  if (c_shape != nullptr) {
    PS_ASSIGN_OR_RETURN(g.dc, reduce_to_shape(dy, *c_shape));
    double* dcp = g.dc.mutable_data<double>();
    for (int64_t i = 0; i < g.dc.numel(); ++i) dcp[i] *= beta;
  }
  return g;
}

}  // namespace ps::models::cpu
