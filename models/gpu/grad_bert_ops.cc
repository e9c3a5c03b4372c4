// The backward ops of BERT's training graph on our kernels (cuda/kernels/train_bert.cu, plans
// in grad_bert_plan.h): Erf/Tanh/Sqrt/Gelu/Neg/Exp, Sub/Mul/Div/Pow (any broadcast; the
// element-wise gradient at dY's shape, then reduce.cu's ps_reduce_f32 to each input's shape,
// as Add's backward), ReduceMean, Softmax (from its output Y), LayerNormalization (statistics
// recomputed from X), Gather (deterministic scatter-add), Transpose (the forward transpose op
// built with the inverse perm). Squeeze/Unsqueeze are views: build_reshape_grad.
#include <algorithm>

#include "cuda/copy.h"
#include "cuda/stream.h"
#include "models/gpu/grad_bert_plan.h"
#include "models/gpu/grad_builders.h"
#include "models/gpu/grad_kernel_plan.h"
#include "models/gpu/grad_op_util.h"
#include "models/gpu/kernel_op_util.h"
#include "models/gpu/runtime.h"

namespace ps::models::gpu {
namespace {

Status check_workspace(const LaunchArgs& args, size_t needed, std::string_view what) {
  if (args.workspace_bytes < needed) {
    return invalid_argument(what, " backward enqueue: workspace of ", args.workspace_bytes,
                            " bytes, needs ", needed);
  }
  return Status::OK();
}

// ps_reduce_f32 of `from` (dY-shaped) into dx, through `scratch` + ps_accumulate_f32 when the
// gradient accumulates.
Status reduce_into(const LaunchArgs& args, const cuda::Kernel& reduce,
                   const cuda::Kernel& accumulate, const ReducePlan& plan, int64_t count,
                   CUdeviceptr from, CUdeviceptr dx, bool accumulating, CUdeviceptr scratch) {
  const CUdeviceptr sum = accumulating ? scratch : dx;
  PS_TRY(launch_reduce(reduce, args.stream, plan, from, sum));
  if (accumulating) {
    PS_TRY(accumulate.launch(args.stream, grid_for(count), kBlock, 0, dx, sum,
                             static_cast<uint64_t>(count)));
  }
  return Status::OK();
}

// ---- unary ----------------------------------------------------------------------------------

class UnaryGradOp final : public GpuOp {
 public:
  UnaryGradOp(cuda::Kernel k, train_kernels::UnaryGradParams p, bool wanted, std::string op)
      : kernel_(k), params_(p), wanted_(wanted), op_(std::move(op)) {}
  Status enqueue(const LaunchArgs& args) const override {
    PS_TRY(check_bound(args, 2, 1, op_));
    if (!wanted_ || params_.count == 0) return Status::OK();
    return kernel_.launch(args.stream, grid_for(params_.count), kBlock, 0, args.inputs[0],
                          args.inputs[1], args.outputs[0], params_);
  }
  std::string describe() const override {
    return str_cat("kernel ps_unary_backward_f32 (", op_, ")",
                   params_.accumulate ? ", accumulating" : "");
  }

 private:
  cuda::Kernel kernel_;
  train_kernels::UnaryGradParams params_;
  bool wanted_;
  std::string op_;
};

// ---- Sub / Mul / Div / Pow ------------------------------------------------------------------

struct BinaryOut {
  bool wanted = false;
  bool direct = false;  // same shape as dY: the kernel writes the gradient itself
  bool accumulate = false;
  int64_t count = 0;
  ReducePlan plan;
  size_t full_at = 0;
};

class BinaryGradOp final : public GpuOp {
 public:
  BinaryGradOp(cuda::Kernel k, cuda::Kernel reduce, cuda::Kernel accumulate,
               train_kernels::BinaryGradParams p, BinaryOut a, BinaryOut b, size_t scratch_at,
               size_t workspace, std::string op)
      : kernel_(k),
        reduce_(reduce),
        accumulate_(accumulate),
        params_(p),
        out_{a, b},
        scratch_at_(scratch_at),
        workspace_(workspace),
        op_(std::move(op)) {}
  size_t workspace_bytes() const override { return workspace_; }
  Status enqueue(const LaunchArgs& args) const override {
    PS_TRY(check_bound(args, 3, 2, op_));
    PS_TRY(check_workspace(args, workspace_, op_));
    if (params_.count == 0 || (!out_[0].wanted && !out_[1].wanted)) return Status::OK();
    CUdeviceptr g[2] = {0, 0};
    for (size_t i = 0; i < 2; ++i) {
      if (!out_[i].wanted) continue;
      g[i] = out_[i].direct ? args.outputs[i] : args.workspace + out_[i].full_at;
    }
    PS_TRY(kernel_.launch(args.stream, grid_for(params_.count), kBlock, 0, args.inputs[0],
                          args.inputs[1], args.inputs[2], g[0], g[1], params_));
    for (size_t i = 0; i < 2; ++i) {
      const BinaryOut& o = out_[i];
      if (!o.wanted || o.direct || o.count == 0) continue;
      PS_TRY(reduce_into(args, reduce_, accumulate_, o.plan, o.count, g[i], args.outputs[i],
                         o.accumulate, args.workspace + scratch_at_));
    }
    return Status::OK();
  }
  std::string describe() const override {
    std::string parts;
    const char* names[2] = {"dA", "dB"};
    for (size_t i = 0; i < 2; ++i) {
      if (!out_[i].wanted) continue;
      parts += str_cat(" ", names[i], out_[i].direct ? "" : " + ps_reduce_f32",
                       out_[i].accumulate ? " (accumulating)" : "");
    }
    return str_cat("kernel ps_binary_backward_f32 (", op_, "):", parts);
  }

 private:
  cuda::Kernel kernel_, reduce_, accumulate_;
  train_kernels::BinaryGradParams params_;
  BinaryOut out_[2];
  size_t scratch_at_, workspace_;
  std::string op_;
};

// ---- ReduceMean -----------------------------------------------------------------------------

class SpreadGradOp final : public GpuOp {
 public:
  SpreadGradOp(cuda::Kernel k, train_kernels::SpreadParams p, size_t dy_input, bool wanted)
      : kernel_(k), params_(p), dy_input_(dy_input), wanted_(wanted) {}
  Status enqueue(const LaunchArgs& args) const override {
    PS_TRY(check_bound(args, dy_input_ + 1, 1, "ReduceMean"));
    if (!wanted_ || params_.count == 0) return Status::OK();
    return kernel_.launch(args.stream, grid_for(params_.count), kBlock, 0,
                          args.inputs[dy_input_], args.outputs[0], params_);
  }
  std::string describe() const override {
    return str_cat("kernel ps_spread_backward_f32 (ReduceMean, scale ", params_.scale, ")",
                   params_.accumulate ? ", accumulating" : "");
  }

 private:
  cuda::Kernel kernel_;
  train_kernels::SpreadParams params_;
  size_t dy_input_;
  bool wanted_;
};

// ---- Softmax --------------------------------------------------------------------------------

class SoftmaxGradOp final : public GpuOp {
 public:
  // inputs: the forward's (X, or AddSoftmax's X and M), dY, then the forward's output Y.
  SoftmaxGradOp(cuda::Kernel k, train_kernels::SoftmaxGradParams p, bool wanted, size_t dy_input)
      : kernel_(k), params_(p), wanted_(wanted), dy_input_(dy_input) {}
  Status enqueue(const LaunchArgs& args) const override {
    PS_TRY(check_bound(args, dy_input_ + 2, 1, "Softmax"));
    const int64_t rows = params_.outer * params_.inner;
    if (!wanted_ || rows == 0 || params_.n == 0) return Status::OK();
    return kernel_.launch(args.stream, grid_for(rows * 32), kBlock, 0, args.inputs[dy_input_ + 1],
                          args.inputs[dy_input_], args.outputs[0], params_);
  }
  std::string describe() const override {
    return str_cat("kernel ps_softmax_backward_f32 (warp per row of ", params_.n, ", inner ",
                   params_.inner, ")", params_.accumulate ? ", accumulating" : "");
  }

 private:
  cuda::Kernel kernel_;
  train_kernels::SoftmaxGradParams params_;
  bool wanted_;
  size_t dy_input_;
};

// ---- LayerNormalization ---------------------------------------------------------------------

class LayerNormGradOp final : public GpuOp {
 public:
  // share > 0: rows of up to 32 * share values, one pass (ps_layer_norm_backward_warpN_f32: dX
  // and the chunks' partial sums), `rows` that kernel; share 0: ps_layer_norm_backward_dx_f32
  // (`rows`) then ps_layer_norm_param_partials_f32. Then ps_layer_norm_param_final_f32.
  LayerNormGradOp(cuda::Kernel rows, int share, cuda::Kernel partials, cuda::Kernel final_sum,
                  train_kernels::LayerNormGradParams p, bool want_dx, bool want_scale,
                  bool want_bias, size_t dy_input)
      : rows_(rows),
        share_(share),
        partials_(partials),
        final_(final_sum),
        params_(p),
        want_dx_(want_dx),
        want_scale_(want_scale),
        want_bias_(want_bias),
        dy_input_(dy_input),
        ws_(layer_norm_grad_workspace(p, want_scale || want_bias)) {}
  size_t workspace_bytes() const override { return ws_.total; }
  Status enqueue(const LaunchArgs& args) const override {
    PS_TRY(check_bound(args, dy_input_ + 1, want_bias_ ? 3 : 2, "LayerNormalization"));
    PS_TRY(check_workspace(args, ws_.total, "LayerNormalization"));
    const bool want_params = want_scale_ || want_bias_;
    if ((!want_dx_ && !want_params) || params_.rows * params_.inner == 0) return Status::OK();
    const CUdeviceptr x = args.inputs[0], scale = args.inputs[1], dy = args.inputs[dy_input_];
    const CUdeviceptr dx = want_dx_ ? args.outputs[0] : CUdeviceptr{0};
    const CUdeviceptr partial = want_params ? args.workspace + ws_.partial : CUdeviceptr{0};
    constexpr unsigned kThreads = 32 * train_kernels::kLayerNormBlockWarps;
    if (share_ > 0) {
      const auto grid = static_cast<unsigned>(std::min<int64_t>(params_.chunks, 65535));
      PS_TRY(rows_.launch(args.stream, grid, kThreads, 0, x, scale, dy, dx, partial, params_));
    } else {
      const CUdeviceptr stats = args.workspace + ws_.stats;
      PS_TRY(rows_.launch(args.stream, grid_for(params_.rows * 32), kBlock, 0, x, scale, dy, dx,
                          stats, params_));
      if (want_params) {
        PS_TRY(partials_.launch(args.stream, grid_for(params_.chunks * params_.inner), kBlock, 0, x,
                                dy, stats, partial, params_));
      }
    }
    if (!want_params) return Status::OK();
    const auto grid = static_cast<unsigned>(std::min<int64_t>((params_.inner + 31) / 32, 65535));
    return final_.launch(args.stream, grid, 32 * train_kernels::kLayerNormFinalWarps, 0, partial,
                         want_scale_ ? args.outputs[1] : CUdeviceptr{0},
                         want_bias_ ? args.outputs[2] : CUdeviceptr{0}, params_);
  }
  std::string describe() const override {
    const bool params = want_scale_ || want_bias_;
    if (share_ > 0) {
      return str_cat("kernels ps_layer_norm_backward_warp", share_, "_f32 (one pass, ",
                     params_.chunks, " chunks of ", params_.rows_per_chunk, " rows",
                     params ? ") + ps_layer_norm_param_final_f32" : ", dX only)");
    }
    return str_cat("kernels ps_layer_norm_backward_dx_f32",
                   params ? str_cat(" + ps_layer_norm_param_partials_f32 (", params_.chunks,
                                    " chunks) + ps_layer_norm_param_final_f32")
                          : std::string(),
                   " (statistics recomputed from X)");
  }

 private:
  cuda::Kernel rows_;
  int share_;
  cuda::Kernel partials_, final_;
  train_kernels::LayerNormGradParams params_;
  bool want_dx_, want_scale_, want_bias_;
  size_t dy_input_;
  LayerNormGradWorkspace ws_;
};

// ---- Gather ---------------------------------------------------------------------------------

class GatherGradOp final : public GpuOp {
 public:
  GatherGradOp(cuda::Kernel links, cuda::Kernel scatter, train_kernels::GatherGradParams p,
               bool accumulate)
      : links_(links),
        scatter_(scatter),
        params_(p),
        accumulate_(accumulate),
        ws_(gather_grad_workspace(p)) {}
  size_t workspace_bytes() const override { return ws_.total; }
  Status enqueue(const LaunchArgs& args) const override {
    // inputs {data, indices, dY}; outputs {dData, (indices: none)}.
    PS_TRY(check_bound(args, 3, 1, "Gather"));
    PS_TRY(check_workspace(args, ws_.total, "Gather"));
    const CUdeviceptr dd = args.outputs[0];
    const int64_t data_count = params_.outer * params_.dim * params_.inner;
    if (!accumulate_ && data_count > 0) {
      PS_TRY(cuda::memset_d32_async(dd, 0u, static_cast<size_t>(data_count), args.stream));
    }
    const int64_t work = params_.outer * params_.count * params_.inner;
    if (params_.count == 0 || work == 0) return Status::OK();
    const CUdeviceptr rows = args.workspace + ws_.rows, first = args.workspace + ws_.first,
                      next = args.workspace + ws_.next;
    PS_TRY(links_.launch(args.stream, grid_for(params_.count * 32), kBlock, 0, args.inputs[1], rows,
                         first, next, params_));  // a warp per index position
    return scatter_.launch(args.stream, grid_for(work), kBlock, 0, args.inputs[2], rows, first,
                           next, dd, params_);
  }
  std::string describe() const override {
    return str_cat("kernels ps_gather_backward_links + ps_gather_backward_f32 (", params_.count,
                   " indices, repeated ones chained: deterministic)",
                   accumulate_ ? ", accumulating" : "");
  }

 private:
  cuda::Kernel links_, scatter_;
  train_kernels::GatherGradParams params_;
  bool accumulate_;
  GatherGradWorkspace ws_;
};

// A table of at most kGatherSmallTable rows (train_bert_params.h): one kernel, blocks of
// 32 x kGatherSmallWarps threads, every dData element written (or added to) once.
class GatherSmallGradOp final : public GpuOp {
 public:
  GatherSmallGradOp(cuda::Kernel kernel, train_kernels::GatherGradParams p, bool accumulate)
      : kernel_(kernel), params_(p), accumulate_(accumulate) {}
  size_t workspace_bytes() const override { return 0; }
  Status enqueue(const LaunchArgs& args) const override {
    PS_TRY(check_bound(args, 3, 1, "Gather"));
    const int64_t data_count = params_.outer * params_.dim * params_.inner;
    if (data_count == 0) return Status::OK();
    const int64_t blocks = params_.outer * params_.dim * ((params_.inner + 31) / 32);
    return kernel_.launch(args.stream,
                          static_cast<unsigned>(std::min<int64_t>(blocks, kMaxGatherBlocks)),
                          cuda::Dim3{32, train_kernels::kGatherSmallWarps, 1}, 0, args.inputs[2],
                          args.inputs[1], args.outputs[0], params_, uint32_t{accumulate_});
  }
  std::string describe() const override {
    return str_cat("kernel ps_gather_backward_small (", params_.dim, " rows, ", params_.count,
                   " indices over ", train_kernels::kGatherSmallWarps,
                   " warps a block: deterministic)", accumulate_ ? ", accumulating" : "");
  }

 private:
  static constexpr int64_t kMaxGatherBlocks = 65535;
  cuda::Kernel kernel_;
  train_kernels::GatherGradParams params_;
  bool accumulate_;
};

// ---- Transpose ------------------------------------------------------------------------------

class TransposeGradOp final : public GpuOp {
 public:
  TransposeGradOp(std::unique_ptr<GpuOp> transpose, cuda::Kernel accumulate, int64_t count,
                  bool accumulating)
      : transpose_(std::move(transpose)),
        accumulate_(accumulate),
        count_(count),
        accumulating_(accumulating),
        inner_ws_(round_up_256(transpose_->workspace_bytes())),
        workspace_(inner_ws_ + (accumulating ? round_up_256(static_cast<size_t>(count) * 4) : 0)) {}
  size_t workspace_bytes() const override { return workspace_; }
  Status enqueue(const LaunchArgs& args) const override {
    PS_TRY(check_bound(args, 2, 1, "Transpose"));
    PS_TRY(check_workspace(args, workspace_, "Transpose"));
    if (count_ == 0) return Status::OK();
    const CUdeviceptr target = accumulating_ ? args.workspace + inner_ws_ : args.outputs[0];
    const CUdeviceptr in[1] = {args.inputs[1]};
    const CUdeviceptr out[1] = {target};
    PS_TRY(transpose_->enqueue(
        LaunchArgs{args.stream, in, out, args.workspace, inner_ws_}));
    if (!accumulating_) return Status::OK();
    return accumulate_.launch(args.stream, grid_for(count_), kBlock, 0, args.outputs[0], target,
                              static_cast<uint64_t>(count_));
  }
  std::string describe() const override {
    return str_cat("Transpose backward: ", transpose_->describe(), " by the inverse perm",
                   accumulating_ ? " + ps_accumulate_f32" : "");
  }

 private:
  std::unique_ptr<GpuOp> transpose_;
  cuda::Kernel accumulate_;
  int64_t count_;
  bool accumulating_;
  size_t inner_ws_, workspace_;
};

// A GpuOp that does nothing (every gradient of the layer unwanted).
}  // namespace

Result<std::unique_ptr<GpuOp>> build_unary_grad(const GradSpec& spec, const OpEnv& env) {
  const OpSpec& f = spec.forward;
  PS_TRY(check_arity(f, 1, 1, 1, 1));
  PS_TRY(require_f32(f.inputs[0], "X"));
  PS_ASSIGN_OR_RETURN(const TensorSpec* y, forward_output(f));
  if (y->shape != f.inputs[0].shape) return invalid_argument("Y and X shapes differ");
  PS_ASSIGN_OR_RETURN(const train_kernels::UnaryGradParams p,
                      plan_unary_grad(f.op, f.inputs[0].numel(), spec.accumulates(0)));
  PS_ASSIGN_OR_RETURN(cuda::Kernel k, find_kernel(env, "ps_unary_backward_f32"));
  return std::unique_ptr<GpuOp>(new UnaryGradOp(k, p, spec.wants(0), std::string(f.op)));
}

Result<std::unique_ptr<GpuOp>> build_binary_grad(const GradSpec& spec, const OpEnv& env) {
  const OpSpec& f = spec.forward;
  PS_TRY(check_arity(f, 2, 2, 1, 1));
  PS_TRY(require_f32(f.inputs[0], "A"));
  PS_TRY(require_f32(f.inputs[1], "B"));
  PS_ASSIGN_OR_RETURN(const TensorSpec* y, forward_output(f));
  PS_ASSIGN_OR_RETURN(train_kernels::BinaryGradParams p,
                      plan_binary_grad(f.op, f.inputs[0].shape, f.inputs[1].shape, y->shape));
  BinaryOut out[2];
  size_t at = 0, scratch = 0;
  for (size_t i = 0; i < 2; ++i) {
    BinaryOut& o = out[i];
    o.wanted = spec.wants(i);
    if (!o.wanted) continue;
    o.accumulate = spec.accumulates(i);
    o.count = f.inputs[i].numel();
    o.direct = f.inputs[i].shape == y->shape;
    if (o.direct) {
      (i == 0 ? p.accumulate_a : p.accumulate_b) = o.accumulate ? 1u : 0u;
      continue;
    }
    PS_ASSIGN_OR_RETURN(o.plan, plan_broadcast_backward(f.inputs[i].shape, y->shape));
    o.full_at = at;
    at += round_up_256(static_cast<size_t>(y->numel()) * 4);
    if (o.accumulate) scratch = std::max(scratch, round_up_256(static_cast<size_t>(o.count) * 4));
  }
  if (!out[0].wanted && !out[1].wanted) {
    return no_grad_op(std::string(f.op));
  }
  PS_ASSIGN_OR_RETURN(cuda::Kernel k, find_kernel(env, "ps_binary_backward_f32"));
  PS_ASSIGN_OR_RETURN(cuda::Kernel reduce, find_kernel(env, "ps_reduce_f32"));
  PS_ASSIGN_OR_RETURN(cuda::Kernel accumulate, find_kernel(env, "ps_accumulate_f32"));
  return std::unique_ptr<GpuOp>(new BinaryGradOp(k, reduce, accumulate, p, out[0], out[1], at,
                                                 at + scratch, std::string(f.op)));
}

Result<std::unique_ptr<GpuOp>> build_reduce_mean_grad(const GradSpec& spec, const OpEnv& env) {
  const OpSpec& f = spec.forward;
  PS_TRY(check_arity(f, 1, 2, 1, 1));
  PS_TRY(require_f32(f.inputs[0], "X"));
  PS_ASSIGN_OR_RETURN(const TensorSpec* y, forward_output(f));
  AttrReader attrs(f);
  PS_TRY(attrs->check_attrs({"axes", "keepdims", "noop_with_empty_axes"}));
  PS_ASSIGN_OR_RETURN(const int64_t noop, attrs->attr_int("noop_with_empty_axes", 0));
  PS_ASSIGN_OR_RETURN(std::vector<int64_t> axes, attrs->attr_ints("axes"));
  if (const TensorSpec* t = optional_input(f, 1)) {
    if (attrs->has_attr("axes")) return invalid_argument("axes given both as attribute and input");
    PS_ASSIGN_OR_RETURN(axes, static_ints(*t, "axes"));
  }
  const Shape& x = f.inputs[0].shape;
  const auto rank = static_cast<int64_t>(x.size());
  std::vector<bool> reduced(x.size(), axes.empty() && noop == 0);
  for (int64_t axis : axes) {
    if (axis < -rank || axis >= rank) return invalid_argument("axis ", axis, " for rank ", rank);
    const int64_t a = axis < 0 ? axis + rank : axis;
    if (reduced[static_cast<size_t>(a)]) return invalid_argument("axis ", axis, " is repeated");
    reduced[static_cast<size_t>(a)] = true;
  }
  int64_t kept = 1;
  for (size_t d = 0; d < x.size(); ++d) kept *= reduced[d] ? 1 : x[d];
  if (y->numel() != kept) {
    return invalid_argument("Y ", shape_string(y->shape), " is not X ", shape_string(x),
                            " averaged over the axes");
  }
  PS_ASSIGN_OR_RETURN(const train_kernels::SpreadParams p,
                      plan_reduce_mean_grad(x, reduced, spec.accumulates(0)));
  PS_ASSIGN_OR_RETURN(cuda::Kernel k, find_kernel(env, "ps_spread_backward_f32"));
  return std::unique_ptr<GpuOp>(new SpreadGradOp(k, p, f.inputs.size(), spec.wants(0)));
}

Result<std::unique_ptr<GpuOp>> build_softmax_grad(const GradSpec& spec, const OpEnv& env) {
  // AddSoftmax (Y = Softmax(X + M)): dX is the sum's gradient; M's is not made.
  const OpSpec& f = spec.forward;
  const bool add = f.op == "AddSoftmax";
  PS_TRY(add ? check_arity(f, 2, 2, 1, 1) : check_arity(f, 1, 1, 1, 1));
  PS_TRY(require_f32(f.inputs[0], "X"));
  if (add && spec.wants(1)) {
    return unsupported(
        "the mask's gradient (the GPU AddSoftmax backward makes dX only; "
        "fuse_add_softmax takes masks no parameter reaches)");
  }
  PS_ASSIGN_OR_RETURN(const TensorSpec* y, forward_output(f));
  if (y->shape != f.inputs[0].shape) return invalid_argument("Y and X shapes differ");
  AttrReader attrs(f);
  PS_TRY(attrs->check_attrs({"axis"}));
  PS_ASSIGN_OR_RETURN(const int64_t axis, attrs->attr_int("axis", -1));
  PS_ASSIGN_OR_RETURN(const train_kernels::SoftmaxGradParams p,
                      plan_softmax_grad(y->shape, axis, spec.accumulates(0)));
  PS_ASSIGN_OR_RETURN(cuda::Kernel k, find_kernel(env, "ps_softmax_backward_f32"));
  return std::unique_ptr<GpuOp>(new SoftmaxGradOp(k, p, spec.wants(0), f.inputs.size()));
}

Result<std::unique_ptr<GpuOp>> build_layer_norm_grad(const GradSpec& spec, const OpEnv& env) {
  const OpSpec& f = spec.forward;
  PS_TRY(check_arity(f, 2, 3, 1, 3));
  PS_TRY(require_f32(f.inputs[0], "X"));
  PS_TRY(require_f32(f.inputs[1], "Scale"));
  const TensorSpec* bias = optional_input(f, 2);
  if (bias != nullptr) PS_TRY(require_f32(*bias, "B"));
  PS_ASSIGN_OR_RETURN(const TensorSpec* y, forward_output(f));
  if (y->shape != f.inputs[0].shape) return invalid_argument("Y and X shapes differ");
  AttrReader attrs(f);
  PS_TRY(attrs->check_attrs({"axis", "epsilon", "stash_type"}));
  PS_ASSIGN_OR_RETURN(const int64_t axis, attrs->attr_int("axis", -1));
  PS_ASSIGN_OR_RETURN(const float epsilon, attrs->attr_float("epsilon", 1e-5f));
  PS_ASSIGN_OR_RETURN(const train_kernels::LayerNormGradParams planned,
                      plan_layer_norm_grad(f.inputs[0].shape, axis, epsilon,
                                           f.inputs[1].numel(), bias ? bias->numel() : -1));
  train_kernels::LayerNormGradParams p = planned;
  p.accumulate_dx = spec.accumulates(0) ? 1u : 0u;
  p.accumulate_scale = spec.accumulates(1) ? 1u : 0u;
  p.accumulate_bias = spec.accumulates(2) ? 1u : 0u;
  const int share = warp_row_share(p.inner);
  PS_ASSIGN_OR_RETURN(cuda::Kernel rows, warp_row_kernel(env, "ps_layer_norm_backward", share,
                                                         "ps_layer_norm_backward_dx_f32"));
  PS_ASSIGN_OR_RETURN(cuda::Kernel partials, find_kernel(env, "ps_layer_norm_param_partials_f32"));
  PS_ASSIGN_OR_RETURN(cuda::Kernel final_sum, find_kernel(env, "ps_layer_norm_param_final_f32"));
  return std::unique_ptr<GpuOp>(
      new LayerNormGradOp(rows, share, partials, final_sum, p, spec.wants(0), spec.wants(1),
                          bias != nullptr && spec.wants(2), f.inputs.size()));
}

Result<std::unique_ptr<GpuOp>> build_gather_grad(const GradSpec& spec, const OpEnv& env) {
  const OpSpec& f = spec.forward;
  PS_TRY(check_arity(f, 2, 2, 1, 1));
  PS_TRY(require_f32(f.inputs[0], "data"));
  const TensorSpec& indices = f.inputs[1];
  if (indices.dtype != DType::kInt64 && indices.dtype != DType::kInt32) {
    return unsupported("indices of ", dtype_name(indices.dtype), " (int64 or int32)");
  }
  PS_ASSIGN_OR_RETURN(const TensorSpec* y, forward_output(f));
  AttrReader attrs(f);
  PS_TRY(attrs->check_attrs({"axis"}));
  PS_ASSIGN_OR_RETURN(const int64_t axis, attrs->attr_int("axis", 0));
  const Shape& data = f.inputs[0].shape;
  PS_ASSIGN_OR_RETURN(const train_kernels::GatherGradParams p,
                      plan_gather_grad(data, indices.shape, axis));
  const int64_t a = axis < 0 ? axis + static_cast<int64_t>(data.size()) : axis;
  Shape expected(data.begin(), data.begin() + a);
  expected.insert(expected.end(), indices.shape.begin(), indices.shape.end());
  expected.insert(expected.end(), data.begin() + a + 1, data.end());
  if (y->shape != expected) {
    return invalid_argument("Y ", shape_string(y->shape), " is not data ", shape_string(data),
                            " gathered by indices ", shape_string(indices.shape), " on axis ",
                            axis);
  }
  if (!spec.wants(0)) return no_grad_op("Gather");
  const bool int64 = indices.dtype == DType::kInt64;
  if (p.dim <= train_kernels::kGatherSmallTable) {
    PS_ASSIGN_OR_RETURN(
        cuda::Kernel small,
        find_kernel(env, int64 ? "ps_gather_backward_small_i64" : "ps_gather_backward_small_i32"));
    return std::unique_ptr<GpuOp>(new GatherSmallGradOp(small, p, spec.accumulates(0)));
  }
  PS_ASSIGN_OR_RETURN(cuda::Kernel links, find_kernel(env, int64 ? "ps_gather_backward_links_i64"
                                                                 : "ps_gather_backward_links_i32"));
  PS_ASSIGN_OR_RETURN(cuda::Kernel scatter, find_kernel(env, "ps_gather_backward_f32"));
  return std::unique_ptr<GpuOp>(new GatherGradOp(links, scatter, p, spec.accumulates(0)));
}

Result<std::unique_ptr<GpuOp>> build_transpose_grad(const GradSpec& spec, const OpEnv& env) {
  const OpSpec& f = spec.forward;
  PS_TRY(check_arity(f, 1, 1, 1, 1));
  PS_TRY(require_f32(f.inputs[0], "X"));
  PS_ASSIGN_OR_RETURN(const TensorSpec* y, forward_output(f));
  AttrReader attrs(f);
  PS_TRY(attrs->check_attrs({"perm"}));
  const Shape& x = f.inputs[0].shape;
  std::vector<int64_t> reversed(x.size());
  for (size_t i = 0; i < x.size(); ++i) reversed[i] = static_cast<int64_t>(x.size() - 1 - i);
  PS_ASSIGN_OR_RETURN(const std::vector<int64_t> perm, attrs->attr_ints("perm", reversed));
  PS_ASSIGN_OR_RETURN(const std::vector<int64_t> inverse, inverse_permutation(perm));
  if (!spec.wants(0)) return no_grad_op("Transpose");
  // The forward Transpose of dY (Y's shape) by the inverse perm gives X's shape.
  cpu::Attributes inv_attrs;
  pipeswitch::psm::Attribute* attr = inv_attrs.Add();
  attr->set_name("perm");
  attr->mutable_ints();
  for (int64_t v : inverse) attr->mutable_ints()->add_values(v);
  const TensorSpec dy{DType::kFloat32, y->shape, false};
  const TensorSpec dx{DType::kFloat32, x, false};
  const OpSpec backward{"Transpose", f.name, inv_attrs, std::span<const TensorSpec>(&dy, 1),
                        std::span<const TensorSpec>(&dx, 1)};
  PS_ASSIGN_OR_RETURN(std::unique_ptr<GpuOp> transpose, build_transpose(backward, env));
  PS_ASSIGN_OR_RETURN(cuda::Kernel accumulate, find_kernel(env, "ps_accumulate_f32"));
  return std::unique_ptr<GpuOp>(new TransposeGradOp(std::move(transpose), accumulate,
                                                    element_count(x),
                                                    spec.accumulates(0)));
}

}  // namespace ps::models::gpu
