// MatMul backward with numpy semantics: per batch element dA = dY B^T and dB = A^T dY, computed
// over the broadcast batch and then summed over the batch dims each operand was broadcast on
// (reduce_to_shape). A 1-D A is [1, K] and a 1-D B is [K, 1] throughout; dY lacks those dims.
// MatMulTransB (B 2-D [N, K], Y = A B^T): dA = dY B, dB = sum over the batch of dY^T A.
#include <algorithm>

#include "models/cpu/grad.h"
#include "models/cpu/grad_util.h"

namespace ps::models::cpu {

Result<MatMulGrads> matmul_backward(const Tensor& a, const Tensor& b, const Tensor& dy) {
  PS_TRY(require_f64(a, "MatMul backward: A"));
  PS_TRY(require_f64(b, "MatMul backward: B"));
  PS_TRY(require_f64(dy, "MatMul backward: dY"));
  if (a.rank() == 0 || b.rank() == 0) {
    return invalid_argument("MatMul backward: A ", a.description(), " and B ", b.description(),
                            " must have rank >= 1");
  }
  const int64_t m = a.rank() == 1 ? 1 : a.dim(a.rank() - 2);
  const int64_t k = a.dim(a.rank() - 1);
  const int64_t kb = b.rank() == 1 ? b.dim(0) : b.dim(b.rank() - 2);
  const int64_t n = b.rank() == 1 ? 1 : b.dim(b.rank() - 1);
  const Shape a_batch(a.shape().begin(), a.shape().end() - std::min<int64_t>(a.rank(), 2));
  const Shape b_batch(b.shape().begin(), b.shape().end() - std::min<int64_t>(b.rank(), 2));
  const Result<Shape> batch_or = broadcast_shapes(a_batch, b_batch);
  Shape out_shape = batch_or.ok() ? *batch_or : Shape{};
  if (a.rank() > 1) out_shape.push_back(m);
  if (b.rank() > 1) out_shape.push_back(n);
  if (k != kb || !batch_or.ok() || dy.shape() != out_shape) {
    return invalid_argument("MatMul backward: A ", a.description(), " x B ", b.description(),
                            " does not give dY ", dy.description());
  }
  const Shape& batch = *batch_or;
  Shape a_full = batch, b_full = batch, a_promoted = a_batch, b_promoted = b_batch;
  for (Shape* s : {&a_full, &a_promoted}) s->insert(s->end(), {m, k});
  for (Shape* s : {&b_full, &b_promoted}) s->insert(s->end(), {k, n});
  PS_ASSIGN_OR_RETURN(Tensor da_full, zeros_f64(a_full));
  PS_ASSIGN_OR_RETURN(Tensor db_full, zeros_f64(b_full));
  const std::vector<int64_t> a_strides = broadcast_strides(a_batch, batch);
  const std::vector<int64_t> b_strides = broadcast_strides(b_batch, batch);
  const double* ap = a.data<double>();
  const double* bp = b.data<double>();
  const double* dyp = dy.data<double>();
  for (int64_t e = 0; e < element_count(batch); ++e) {
    const double* ae = ap + strided_offset(e, batch, a_strides) * m * k;
    const double* be = bp + strided_offset(e, batch, b_strides) * k * n;
    const double* ge = dyp + e * m * n;
    double* dae = da_full.mutable_data<double>() + e * m * k;
    double* dbe = db_full.mutable_data<double>() + e * k * n;
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t p = 0; p < k; ++p) {
        double s = 0;
        for (int64_t j = 0; j < n; ++j) s += ge[i * n + j] * be[p * n + j];
        dae[i * k + p] = s;
      }
    }
    for (int64_t p = 0; p < k; ++p) {
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t i = 0; i < m; ++i) s += ae[i * k + p] * ge[i * n + j];
        dbe[p * n + j] = s;
      }
    }
  }
  MatMulGrads g;
  PS_ASSIGN_OR_RETURN(Tensor da, reduce_to_shape(da_full, a_promoted));
  PS_ASSIGN_OR_RETURN(Tensor db, reduce_to_shape(db_full, b_promoted));
  PS_ASSIGN_OR_RETURN(const Tensor da_view, da.reshaped(a.shape()));
  PS_ASSIGN_OR_RETURN(const Tensor db_view, db.reshaped(b.shape()));
  PS_ASSIGN_OR_RETURN(g.da, da_view.clone());
  PS_ASSIGN_OR_RETURN(g.db, db_view.clone());
  return g;
}

Result<MatMulGrads> matmul_scale_backward(const Tensor& a, const Tensor& b, const Tensor& dy,
                                          double alpha) {
  PS_ASSIGN_OR_RETURN(MatMulGrads g, matmul_backward(a, b, dy));
  for (Tensor* t : {&g.da, &g.db}) {
    double* p = t->mutable_data<double>();
    for (int64_t i = 0; i < t->numel(); ++i) p[i] *= alpha;
  }
  return g;
}

Result<MatMulGrads> matmul_trans_b_backward(const Tensor& a, const Tensor& b, const Tensor& dy) {
  PS_TRY(require_f64(a, "MatMulTransB backward: A"));
  PS_TRY(require_f64(b, "MatMulTransB backward: B"));
  PS_TRY(require_f64(dy, "MatMulTransB backward: dY"));
  if (a.rank() == 0 || b.rank() != 2) {
    return invalid_argument("MatMulTransB backward: A ", a.description(),
                            " must have rank >= 1 and B ", b.description(), " must be 2-D [N, K]");
  }
  const int64_t k = a.dim(a.rank() - 1);
  const int64_t n = b.dim(0);
  // B is shared by every row of A: A is [rows, K] and dY [rows, N], rows the product of A's
  // leading dims (1 for a 1-D A).
  Shape out_shape(a.shape().begin(), a.shape().end() - 1);
  const int64_t rows = element_count(out_shape);
  out_shape.push_back(n);
  if (b.dim(1) != k || dy.shape() != out_shape) {
    return invalid_argument("MatMulTransB backward: A ", a.description(), " x B ", b.description(),
                            " (transposed) does not give dY ", dy.description());
  }
  PS_ASSIGN_OR_RETURN(Tensor da, zeros_f64(a.shape()));
  PS_ASSIGN_OR_RETURN(Tensor db, zeros_f64(b.shape()));
  const double* ap = a.data<double>();
  const double* bp = b.data<double>();
  const double* dyp = dy.data<double>();
  double* dap = da.mutable_data<double>();
  double* dbp = db.mutable_data<double>();
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t p = 0; p < k; ++p) {
      double s = 0;
      for (int64_t j = 0; j < n; ++j) s += dyp[i * n + j] * bp[j * k + p];
      dap[i * k + p] = s;
    }
  }
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t p = 0; p < k; ++p) {
      double s = 0;
      for (int64_t i = 0; i < rows; ++i) s += dyp[i * n + j] * ap[i * k + p];
      dbp[j * k + p] = s;
    }
  }
  MatMulGrads g;
  g.da = std::move(da);
  g.db = std::move(db);
  return g;
}

}  // namespace ps::models::cpu
