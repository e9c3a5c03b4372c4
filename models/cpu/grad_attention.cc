// AttentionScores and AttentionContext backward (common/attention.h), each composed of the
// backward operators of the ops it replaces, in the unfused graph's order: MatMulScale's (or
// MatMul's and Transpose's), then the HeadSlices', whose dX are zeros outside their columns.
// The trainer then gets the gradients the unfused layers give, to the bit (the q and k parts
// are summed here first; where their columns are disjoint, as in BERT, that sum is exact).
#include "models/cpu/grad.h"
#include "models/cpu/grad_util.h"
#include "models/cpu/kernels.h"
#include "models/cpu/op_context.h"

namespace ps::models::cpu {

Result<Tensor> attention_scores_backward(const Attributes& attrs, const Tensor& x,
                                         const Tensor& dy) {
  PS_TRY(require_f64(x, "AttentionScores backward: X"));
  PS_TRY(require_f64(dy, "AttentionScores backward: dY"));
  const std::string op = "AttentionScores";
  const OpContext ctx(op, attrs, {}, {});
  PS_ASSIGN_OR_RETURN(const AttentionAttrs a, attention_attrs(ctx, x.shape()));
  const AttentionLayout& l = a.layout;
  if (dy.shape() != Shape{l.batch, l.heads, l.seq, l.seq}) {
    return invalid_argument("AttentionScores backward: dY ", dy.description(), " is not [", l.batch,
                            ", ", l.heads, ", ", l.seq, ", ", l.seq, "]");
  }
  PS_ASSIGN_OR_RETURN(const Tensor q, attention_slice(a.slices[0], x));
  PS_ASSIGN_OR_RETURN(const Tensor k, attention_slice(a.slices[1], x));
  PS_ASSIGN_OR_RETURN(const MatMulGrads g,
                      matmul_scale_backward(q, k, dy, static_cast<double>(a.alpha)));
  PS_ASSIGN_OR_RETURN(Tensor dx, head_slice_backward(a.slices[0], x.shape(), g.da));
  PS_ASSIGN_OR_RETURN(const Tensor dk, head_slice_backward(a.slices[1], x.shape(), g.db));
  double* dxp = dx.mutable_data<double>();
  const double* dkp = dk.data<double>();
  for (int64_t i = 0; i < dx.numel(); ++i) dxp[i] += dkp[i];
  return dx;
}

Result<AttentionContextGrads> attention_context_backward(const Attributes& attrs, const Tensor& p,
                                                         const Tensor& x, const Tensor& dy) {
  PS_TRY(require_f64(p, "AttentionContext backward: P"));
  PS_TRY(require_f64(x, "AttentionContext backward: X"));
  PS_TRY(require_f64(dy, "AttentionContext backward: dY"));
  const std::string op = "AttentionContext";
  const OpContext ctx(op, attrs, {}, {});
  PS_ASSIGN_OR_RETURN(const AttentionAttrs a, attention_attrs(ctx, x.shape()));
  const AttentionLayout& l = a.layout;
  PS_ASSIGN_OR_RETURN(const int64_t m, attention_context_rows(l, p.shape()));
  if (dy.shape() != Shape{l.batch, m, l.heads, l.head_size}) {
    return invalid_argument("AttentionContext backward: dY ", dy.description(), " is not [",
                            l.batch, ", ", m, ", ", l.heads, ", ", l.head_size, "]");
  }
  PS_ASSIGN_OR_RETURN(const Tensor v, attention_slice(a.slices[0], x));
  PS_ASSIGN_OR_RETURN(const Tensor dproduct, transpose_backward(a.transpose, dy));
  PS_ASSIGN_OR_RETURN(MatMulGrads g, matmul_backward(p, v, dproduct));
  AttentionContextGrads out;
  out.dp = std::move(g.da);
  PS_ASSIGN_OR_RETURN(out.dx, head_slice_backward(a.slices[0], x.shape(), g.db));
  return out;
}

}  // namespace ps::models::cpu
