// AttentionScores and AttentionContext (ours, common/attention.h) on the CPU, each run as the
// reference ops it stands for, on temporaries: the HeadSlice copies of X, then MatMulScale
// (AttentionScores) or MatMul and Transpose (AttentionContext). FusedAttention (inference) runs
// AttentionScores, Softmax (last axis) and AttentionContext in turn. A fused package then
// computes what the unfused one does to the bit, which is what its tests hold it to; the CPU
// executor runs the tiny models, where the extra copies cost nothing that matters.
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "models/cpu/kernels.h"

namespace ps::models::cpu {

namespace {

pipeswitch::psm::Attribute int_attribute(const std::string& name, int64_t value) {
  pipeswitch::psm::Attribute a;
  a.set_name(name);
  a.set_i(value);
  return a;
}

pipeswitch::psm::Attribute ints_attribute(const std::string& name,
                                          std::initializer_list<int64_t> values) {
  pipeswitch::psm::Attribute a;
  a.set_name(name);
  for (int64_t v : values) a.mutable_ints()->add_values(v);
  return a;
}

pipeswitch::psm::Attribute float_attribute(const std::string& name, float value) {
  pipeswitch::psm::Attribute a;
  a.set_name(name);
  a.set_f(value);
  return a;
}

// HeadSlice(X; start, size, heads, perm)'s attributes.
Attributes head_slice(int64_t start, int64_t size, int64_t heads,
                      std::initializer_list<int64_t> perm) {
  Attributes out;
  *out.Add() = int_attribute("start", start);
  *out.Add() = int_attribute("size", size);
  *out.Add() = int_attribute("heads", heads);
  *out.Add() = ints_attribute("perm", perm);
  return out;
}

}  // namespace

Result<Tensor> attention_slice(const Attributes& slice, const Tensor& x) {
  const Tensor* in[] = {&x};
  PS_ASSIGN_OR_RETURN(std::vector<Tensor> out, run_op_allocating("HeadSlice", slice, in, 1));
  return std::move(out[0]);
}

Result<AttentionAttrs> attention_attrs(const OpContext& ctx, const Shape& x) {
  const bool scores = ctx.op() == "AttentionScores";
  if (scores) {
    PS_TRY(ctx.check_attrs({"heads", "size", "q_start", "k_start", "alpha"}));
    PS_TRY(ctx.require_attrs({"heads", "size", "q_start", "k_start"}));
  } else {
    PS_TRY(ctx.check_attrs({"heads", "size", "v_start"}));
    PS_TRY(ctx.require_attrs({"heads", "size", "v_start"}));
  }
  PS_ASSIGN_OR_RETURN(const int64_t heads, ctx.attr_int("heads", 0));
  PS_ASSIGN_OR_RETURN(const int64_t size, ctx.attr_int("size", 0));
  AttentionAttrs a;
  if (scores) {
    PS_ASSIGN_OR_RETURN(const int64_t q_start, ctx.attr_int("q_start", 0));
    PS_ASSIGN_OR_RETURN(const int64_t k_start, ctx.attr_int("k_start", 0));
    PS_ASSIGN_OR_RETURN(a.alpha, ctx.attr_float("alpha", 1.0f));
    PS_ASSIGN_OR_RETURN(a.layout,
                        attention_layout("AttentionScores", x, heads, size, {q_start, k_start}));
    a.starts = {q_start, k_start};
    a.slices.push_back(head_slice(q_start, size, heads, {0, 2, 1, 3}));
    a.slices.push_back(head_slice(k_start, size, heads, {0, 2, 3, 1}));
    *a.product.Add() = float_attribute("alpha", a.alpha);
  } else {
    PS_ASSIGN_OR_RETURN(const int64_t v_start, ctx.attr_int("v_start", 0));
    PS_ASSIGN_OR_RETURN(a.layout, attention_layout("AttentionContext", x, heads, size, {v_start}));
    a.starts = {v_start};
    a.slices.push_back(head_slice(v_start, size, heads, {0, 2, 1, 3}));
    *a.transpose.Add() = ints_attribute("perm", {0, 2, 1, 3});
  }
  return a;
}

Status run_attention_scores(const OpContext& ctx) {
  PS_TRY(ctx.check_arity(1, 1, 1, 1));
  const Tensor& x = *ctx.input(0);
  PS_ASSIGN_OR_RETURN(const AttentionAttrs a, attention_attrs(ctx, x.shape()));
  const AttentionLayout& l = a.layout;
  PS_ASSIGN_OR_RETURN(const Tensor q, attention_slice(a.slices[0], x));
  PS_ASSIGN_OR_RETURN(const Tensor k, attention_slice(a.slices[1], x));
  PS_ASSIGN_OR_RETURN(Tensor * y,
                      ctx.output_checked(0, x.dtype(), {l.batch, l.heads, l.seq, l.seq}));
  const Tensor* in[] = {&q, &k};
  Tensor* out[] = {y};
  return run_op("MatMulScale", a.product, in, out);
}

Status run_attention_context(const OpContext& ctx) {
  PS_TRY(ctx.check_arity(2, 2, 1, 1));
  const Tensor& p = *ctx.input(0);
  const Tensor& x = *ctx.input(1);
  PS_ASSIGN_OR_RETURN(const AttentionAttrs a, attention_attrs(ctx, x.shape()));
  const AttentionLayout& l = a.layout;
  PS_ASSIGN_OR_RETURN(const int64_t m, attention_context_rows(l, p.shape()));
  PS_ASSIGN_OR_RETURN(const Tensor v, attention_slice(a.slices[0], x));
  const Tensor* product_in[] = {&p, &v};
  PS_ASSIGN_OR_RETURN(std::vector<Tensor> product,
                      run_op_allocating("MatMul", a.product, product_in, 1));
  PS_ASSIGN_OR_RETURN(Tensor * y,
                      ctx.output_checked(0, x.dtype(), {l.batch, m, l.heads, l.head_size}));
  const Tensor* in[] = {&product[0]};
  Tensor* out[] = {y};
  return run_op("Transpose", a.transpose, in, out);
}

Result<FusedAttentionAttrs> fused_attention_attrs(const OpContext& ctx, const Shape& x) {
  PS_TRY(ctx.check_attrs({"heads", "size", "q_start", "k_start", "v_start", "alpha"}));
  PS_TRY(ctx.require_attrs({"heads", "size", "q_start", "k_start", "v_start"}));
  PS_ASSIGN_OR_RETURN(const int64_t heads, ctx.attr_int("heads", 0));
  PS_ASSIGN_OR_RETURN(const int64_t size, ctx.attr_int("size", 0));
  FusedAttentionAttrs a;
  PS_ASSIGN_OR_RETURN(a.q_start, ctx.attr_int("q_start", 0));
  PS_ASSIGN_OR_RETURN(a.k_start, ctx.attr_int("k_start", 0));
  PS_ASSIGN_OR_RETURN(a.v_start, ctx.attr_int("v_start", 0));
  PS_ASSIGN_OR_RETURN(a.alpha, ctx.attr_float("alpha", 1.0f));
  PS_ASSIGN_OR_RETURN(a.layout, attention_layout("FusedAttention", x, heads, size,
                                                 {a.q_start, a.k_start, a.v_start}));
  *a.scores.Add() = int_attribute("heads", heads);
  *a.scores.Add() = int_attribute("size", size);
  *a.scores.Add() = int_attribute("q_start", a.q_start);
  *a.scores.Add() = int_attribute("k_start", a.k_start);
  *a.scores.Add() = float_attribute("alpha", a.alpha);
  *a.softmax.Add() = int_attribute("axis", -1);
  *a.context.Add() = int_attribute("heads", heads);
  *a.context.Add() = int_attribute("size", size);
  *a.context.Add() = int_attribute("v_start", a.v_start);
  return a;
}

Status run_fused_attention(const OpContext& ctx) {
  PS_TRY(ctx.check_arity(1, 1, 1, 1));
  const Tensor& x = *ctx.input(0);
  PS_ASSIGN_OR_RETURN(const FusedAttentionAttrs a, fused_attention_attrs(ctx, x.shape()));
  const AttentionLayout& l = a.layout;
  const Tensor* scores_in[] = {&x};
  PS_ASSIGN_OR_RETURN(std::vector<Tensor> scores,
                      run_op_allocating("AttentionScores", a.scores, scores_in, 1));
  const Tensor* softmax_in[] = {&scores[0]};
  PS_ASSIGN_OR_RETURN(std::vector<Tensor> probs,
                      run_op_allocating("Softmax", a.softmax, softmax_in, 1));
  PS_ASSIGN_OR_RETURN(Tensor * y,
                      ctx.output_checked(0, x.dtype(), {l.batch, l.seq, l.heads, l.head_size}));
  const Tensor* in[] = {&probs[0], &x};
  Tensor* out[] = {y};
  return run_op("AttentionContext", a.context, in, out);
}

}  // namespace ps::models::cpu
