// The backward ops on our own kernels: Relu, MaxPool, AveragePool, GlobalAveragePool, Add (any
// broadcast), Flatten/Reshape/Identity, Concat; softmax cross-entropy; SGD and accumulation.
// Kernels: cuda/kernels/train.cu (and reduce.cu's ps_reduce_f32 for broadcast sums, layout.cu's
// strided copies for Concat). Plans: grad_kernel_plan.h.
#include <algorithm>

#include "cuda/copy.h"
#include "cuda/stream.h"
#include "models/gpu/copy_launch.h"
#include "models/gpu/grad_builders.h"
#include "models/gpu/grad_kernel_plan.h"
#include "models/gpu/grad_op_util.h"
#include "models/gpu/kernel_op_util.h"
#include "models/gpu/runtime.h"

namespace ps::models::gpu {
namespace {

uint32_t flag(bool b) { return b ? 1u : 0u; }

class ReluGradOp final : public GpuOp {
 public:
  ReluGradOp(cuda::Kernel k, int64_t count, bool accumulate)
      : kernel_(k), count_(static_cast<uint64_t>(count)), accumulate_(accumulate) {}
  Status enqueue(const LaunchArgs& args) const override {
    PS_TRY(check_bound(args, 2, 1, "Relu"));
    if (count_ == 0) return Status::OK();
    // Four elements per thread (the kernel's aligned path).
    return kernel_.launch(args.stream, grid_for(static_cast<int64_t>((count_ + 3) / 4)), kBlock, 0,
                          args.inputs[0], args.inputs[1], args.outputs[0], count_,
                          flag(accumulate_));
  }
  std::string describe() const override {
    return str_cat("kernel ps_relu_backward_f32", accumulate_ ? " (accumulating)" : "");
  }

 private:
  cuda::Kernel kernel_;
  uint64_t count_;
  bool accumulate_;
};

class PoolGradOp final : public GpuOp {
 public:
  PoolGradOp(bool max, cuda::Kernel argmax, cuda::Kernel backward, dnn_kernels::PoolParams p,
             bool accumulate)
      : max_(max), argmax_(argmax), backward_(backward), params_(p), accumulate_(accumulate) {
    out_count_ = static_cast<uint64_t>(p.out[0] * p.out[1] * p.out[2] * p.planes);
    in_count_ = static_cast<uint64_t>(p.in[0] * p.in[1] * p.in[2] * p.planes);
  }
  size_t workspace_bytes() const override { return max_ ? round_up_256(out_count_ * 4) : 0; }
  Status enqueue(const LaunchArgs& args) const override {
    PS_TRY(check_bound(args, 2, 1, max_ ? "MaxPool" : "AveragePool"));
    if (in_count_ == 0) return Status::OK();
    const unsigned in_grid = grid_for(static_cast<int64_t>(in_count_));
    if (!max_) {
      return backward_.launch(args.stream, in_grid, kBlock, 0, args.inputs[1], args.outputs[0],
                              params_, flag(accumulate_));
    }
    if (args.workspace_bytes < workspace_bytes()) {
      return invalid_argument("MaxPool backward enqueue: workspace of ", args.workspace_bytes,
                              " bytes, needs ", workspace_bytes());
    }
    if (out_count_ > 0) {
      PS_TRY(argmax_.launch(args.stream, grid_for(static_cast<int64_t>(out_count_)), kBlock, 0,
                            args.inputs[0], args.workspace, params_));
    }
    return backward_.launch(args.stream, in_grid, kBlock, 0, args.workspace, args.inputs[1],
                            args.outputs[0], params_, flag(accumulate_));
  }
  std::string describe() const override {
    return str_cat(max_ ? "kernels ps_max_pool_argmax_f32 + ps_max_pool_backward_f32"
                        : "kernel ps_avg_pool_backward_f32",
                   " (gather, deterministic)", accumulate_ ? ", accumulating" : "");
  }

 private:
  bool max_;
  cuda::Kernel argmax_, backward_;
  dnn_kernels::PoolParams params_;
  bool accumulate_;
  uint64_t out_count_ = 0, in_count_ = 0;
};

// MaxPool / AveragePool backward over 2-D windows: one launch of the banded gather
// (cuda/kernels/pool_band.h), no workspace.
class PoolBandGradOp final : public GpuOp {
 public:
  PoolBandGradOp(cuda::Kernel k, pool_band::PoolBandParams bp, bool accumulate)
      : kernel_(k), params_(bp), accumulate_(accumulate), blocks_(pool_band_blocks(bp)) {}
  Status enqueue(const LaunchArgs& args) const override {
    const bool max = params_.p.kind == dnn_kernels::kPoolMax;
    PS_TRY(check_bound(args, 2, 1, max ? "MaxPool" : "AveragePool"));
    return kernel_.launch(args.stream, static_cast<unsigned>(blocks_), pool_band::kBlock, 0,
                          args.inputs[0], args.inputs[1], args.outputs[0], params_,
                          flag(accumulate_));
  }
  std::string describe() const override {
    return str_cat("kernel ps_pool_backward_band_f32 (",
                   params_.p.kind == dnn_kernels::kPoolMax ? "max" : "average", ", ", blocks_,
                   " bands of ", params_.rows, " rows, deterministic)",
                   accumulate_ ? ", accumulating" : "");
  }

 private:
  cuda::Kernel kernel_;
  pool_band::PoolBandParams params_;
  bool accumulate_;
  int64_t blocks_;
};

class GlobalAveragePoolGradOp final : public GpuOp {
 public:
  GlobalAveragePoolGradOp(cuda::Kernel k, int64_t planes, int64_t inner, bool accumulate)
      : kernel_(k),
        planes_(static_cast<uint64_t>(planes)),
        inner_(static_cast<uint64_t>(inner)),
        accumulate_(accumulate) {}
  Status enqueue(const LaunchArgs& args) const override {
    PS_TRY(check_bound(args, 2, 1, "GlobalAveragePool"));
    if (planes_ * inner_ == 0) return Status::OK();
    return kernel_.launch(args.stream, grid_for(static_cast<int64_t>(planes_ * inner_)), kBlock,
                          0, args.inputs[1], args.outputs[0], planes_, inner_,
                          flag(accumulate_));
  }
  std::string describe() const override {
    return str_cat("kernel ps_global_avg_pool_backward_f32 (inner ", inner_, ")",
                   accumulate_ ? ", accumulating" : "");
  }

 private:
  cuda::Kernel kernel_;
  uint64_t planes_, inner_;
  bool accumulate_;
};

// dX = dY with another shape (or summed over broadcast dimensions), written or accumulated:
// one per gradient an Add or a view op produces.
struct PassGrad {
  size_t slot = 0;  // forward input index = output index
  int64_t count = 0;  // elements of the gradient
  bool reduce = false;
  ReducePlan plan;
  bool accumulate = false;
};

class PassGradOp final : public GpuOp {
 public:
  PassGradOp(std::vector<PassGrad> grads, size_t dy_input, cuda::Kernel reduce,
             cuda::Kernel accumulate, std::string what)
      : grads_(std::move(grads)),
        dy_input_(dy_input),
        reduce_(reduce),
        accumulate_(accumulate),
        what_(std::move(what)) {
    for (const PassGrad& g : grads_) {
      if (g.reduce && g.accumulate) {
        workspace_ = std::max(workspace_, round_up_256(static_cast<size_t>(g.count) * 4));
      }
    }
  }
  size_t workspace_bytes() const override { return workspace_; }
  Status enqueue(const LaunchArgs& args) const override {
    PS_TRY(check_bound(args, dy_input_ + 1, grads_.empty() ? 0 : grads_.back().slot + 1, what_));
    if (args.workspace_bytes < workspace_) {
      return invalid_argument(what_, " backward enqueue: workspace of ", args.workspace_bytes,
                              " bytes, needs ", workspace_);
    }
    const CUdeviceptr dy = args.inputs[dy_input_];
    for (const PassGrad& g : grads_) {
      const CUdeviceptr dx = args.outputs[g.slot];
      if (g.count == 0) continue;
      if (!g.reduce) {
        if (g.accumulate) {
          PS_TRY(accumulate_.launch(args.stream, grid_for((g.count + 3) / 4), kBlock, 0, dx, dy,
                                    static_cast<uint64_t>(g.count)));
        } else if (dx != dy) {
          PS_TRY(cuda::copy_device_async(dx, dy, static_cast<size_t>(g.count) * 4, args.stream));
        }
        continue;
      }
      const CUdeviceptr target = g.accumulate ? args.workspace : dx;
      PS_TRY(launch_reduce(reduce_, args.stream, g.plan, dy, target));
      if (g.accumulate) {
        PS_TRY(accumulate_.launch(args.stream, grid_for((g.count + 3) / 4), kBlock, 0, dx,
                                  args.workspace, static_cast<uint64_t>(g.count)));
      }
    }
    return Status::OK();
  }
  std::string describe() const override {
    std::string parts;
    for (const PassGrad& g : grads_) {
      parts += str_cat(parts.empty() ? "" : ", ", "d", g.slot, g.reduce ? " ps_reduce_f32" : " copy",
                       g.accumulate ? " accumulated" : "");
    }
    return str_cat(what_, " backward: ", parts);
  }

 private:
  std::vector<PassGrad> grads_;
  size_t dy_input_;
  cuda::Kernel reduce_, accumulate_;
  std::string what_;
  size_t workspace_ = 0;
};

// Concat: each input's gradient is its slice of dY along the axis (a strided copy).
struct SliceCopy {
  size_t slot = 0;
  StridedCopy copy;
};

class ConcatGradOp final : public GpuOp {
 public:
  ConcatGradOp(std::vector<SliceCopy> copies, size_t dy_input)
      : copies_(std::move(copies)), dy_input_(dy_input) {}
  Status enqueue(const LaunchArgs& args) const override {
    PS_TRY(check_bound(args, dy_input_ + 1, dy_input_, "Concat"));
    const CUdeviceptr dy = args.inputs[dy_input_];
    // Nothing where dX is dY's slice itself (a Concat of weights side by side).
    for (const SliceCopy& c : copies_) PS_TRY(c.copy.launch(args.stream, dy, args.outputs[c.slot]));
    return Status::OK();
  }
  std::string describe() const override {
    return str_cat("Concat backward: ", copies_.size(), " strided copies of dY");
  }

 private:
  std::vector<SliceCopy> copies_;
  size_t dy_input_;
};

class SoftmaxXentOp final : public GpuOp {
 public:
  SoftmaxXentOp(cuda::Kernel k, train_kernels::SoftmaxXentParams p) : kernel_(k), params_(p) {}
  Status enqueue(const LaunchArgs& args) const override {
    if (args.inputs.size() < 2 || args.outputs.size() < 2) {
      return invalid_argument("softmax cross-entropy enqueue: needs {logits, labels} and "
                              "{dlogits, loss}");
    }
    // One block: the loss is summed in a fixed order. 1024 threads = 32 warps of rows.
    const unsigned threads = static_cast<unsigned>(
        std::clamp<int64_t>((params_.rows + 1) / 2 * 32, 32, 1024));
    return kernel_.launch(args.stream, 1u, threads, 0, args.inputs[0], args.inputs[1],
                          args.outputs[0], args.outputs[1], params_);
  }
  std::string describe() const override {
    return str_cat("kernel ps_softmax_xent_f32 (one block, ", params_.rows, " rows of ",
                   params_.classes, ")");
  }

 private:
  cuda::Kernel kernel_;
  train_kernels::SoftmaxXentParams params_;
};

}  // namespace

Result<std::unique_ptr<GpuOp>> build_relu_grad(const GradSpec& spec, const OpEnv& env) {
  const OpSpec& f = spec.forward;
  PS_ASSIGN_OR_RETURN(const TensorSpec* x, required_input(f, 0, "X"));
  PS_TRY(require_f32(*x, "X"));
  PS_ASSIGN_OR_RETURN(cuda::Kernel k, find_kernel(env, "ps_relu_backward_f32"));
  return std::unique_ptr<GpuOp>(new ReluGradOp(k, x->numel(), spec.accumulates(0)));
}

Result<std::unique_ptr<GpuOp>> build_pool_grad(const GradSpec& spec, const OpEnv& env) {
  PS_ASSIGN_OR_RETURN(const PoolPlan plan, plan_pool(spec.forward));
  const bool max = plan.mode == PoolMode::kMax;
  const dnn_kernels::PoolParams p = pool_kernel_params(plan);
  const pool_band::PoolBandParams band = plan_pool_band(p);
  if (band.rows > 0) {
    PS_ASSIGN_OR_RETURN(cuda::Kernel k, find_kernel(env, "ps_pool_backward_band_f32"));
    return std::unique_ptr<GpuOp>(new PoolBandGradOp(k, band, spec.accumulates(0)));
  }
  if (max && p.in[0] * p.in[1] * p.in[2] >= (int64_t{1} << 31)) {
    return unsupported("a pooling plane of ", p.in[0] * p.in[1] * p.in[2],
                       " elements (the argmax is int32)");
  }
  cuda::Kernel argmax;
  if (max) {
    PS_ASSIGN_OR_RETURN(argmax, find_kernel(env, "ps_max_pool_argmax_f32"));
  }
  PS_ASSIGN_OR_RETURN(cuda::Kernel backward,
                      find_kernel(env, max ? "ps_max_pool_backward_f32" : "ps_avg_pool_backward_f32"));
  return std::unique_ptr<GpuOp>(new PoolGradOp(max, argmax, backward, p, spec.accumulates(0)));
}

Result<std::unique_ptr<GpuOp>> build_global_average_pool_grad(const GradSpec& spec,
                                                              const OpEnv& env) {
  const OpSpec& f = spec.forward;
  PS_ASSIGN_OR_RETURN(const TensorSpec* x, required_input(f, 0, "X"));
  PS_TRY(require_f32(*x, "X"));
  if (x->shape.size() < 3) return invalid_argument("X must be [N, C, spatial...]");
  const int64_t planes = x->shape[0] * x->shape[1];
  const int64_t inner = planes == 0 ? 0 : x->numel() / planes;
  PS_ASSIGN_OR_RETURN(cuda::Kernel k, find_kernel(env, "ps_global_avg_pool_backward_f32"));
  return std::unique_ptr<GpuOp>(
      new GlobalAveragePoolGradOp(k, planes, inner, spec.accumulates(0)));
}

Result<std::unique_ptr<GpuOp>> build_add_grad(const GradSpec& spec, const OpEnv& env) {
  const OpSpec& f = spec.forward;
  PS_TRY(check_arity(f, 2, 2, 1, 1));
  PS_ASSIGN_OR_RETURN(const TensorSpec* y, forward_output(f));
  std::vector<PassGrad> grads;
  for (size_t i = 0; i < 2; ++i) {
    PS_TRY(require_f32(f.inputs[i], i == 0 ? "A" : "B"));
    if (!spec.wants(i)) continue;
    PassGrad g;
    g.slot = i;
    g.count = f.inputs[i].numel();
    g.accumulate = spec.accumulates(i);
    g.reduce = f.inputs[i].shape != y->shape;
    if (g.reduce) {
      PS_ASSIGN_OR_RETURN(g.plan, plan_broadcast_backward(f.inputs[i].shape, y->shape));
    }
    grads.push_back(std::move(g));
  }
  PS_ASSIGN_OR_RETURN(cuda::Kernel reduce, find_kernel(env, "ps_reduce_f32"));
  PS_ASSIGN_OR_RETURN(cuda::Kernel accumulate, find_kernel(env, "ps_accumulate_f32"));
  return std::unique_ptr<GpuOp>(new PassGradOp(std::move(grads), 2, reduce, accumulate, "Add"));
}

Result<std::unique_ptr<GpuOp>> build_reshape_grad(const GradSpec& spec, const OpEnv& env) {
  const OpSpec& f = spec.forward;
  PS_ASSIGN_OR_RETURN(const TensorSpec* x, required_input(f, 0, "X"));
  PS_TRY(require_f32(*x, "X"));
  PS_ASSIGN_OR_RETURN(const TensorSpec* y, forward_output(f));
  if (y->numel() != x->numel()) {
    return invalid_argument("Y ", shape_string(y->shape), " is not a view of X ",
                            shape_string(x->shape));
  }
  std::vector<PassGrad> grads;
  if (spec.wants(0)) {
    PassGrad g;
    g.count = x->numel();
    g.accumulate = spec.accumulates(0);
    grads.push_back(g);
  }
  PS_ASSIGN_OR_RETURN(cuda::Kernel reduce, find_kernel(env, "ps_reduce_f32"));
  PS_ASSIGN_OR_RETURN(cuda::Kernel accumulate, find_kernel(env, "ps_accumulate_f32"));
  // dY follows every forward input (Reshape's shape input included).
  return std::unique_ptr<GpuOp>(
      new PassGradOp(std::move(grads), f.inputs.size(), reduce, accumulate, std::string(f.op)));
}

Result<std::unique_ptr<GpuOp>> build_concat_grad(const GradSpec& spec, const OpEnv& env) {
  const OpSpec& f = spec.forward;
  PS_ASSIGN_OR_RETURN(const TensorSpec* y, forward_output(f));
  AttrReader attrs(f);
  PS_ASSIGN_OR_RETURN(const int64_t axis_attr, attrs->attr_int("axis", 0));
  const auto rank = static_cast<int64_t>(y->shape.size());
  if (axis_attr < -rank || axis_attr >= rank) return invalid_argument("axis ", axis_attr);
  const int64_t axis = axis_attr < 0 ? axis_attr + rank : axis_attr;
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= y->shape[static_cast<size_t>(d)];
  for (int64_t d = axis + 1; d < rank; ++d) inner *= y->shape[static_cast<size_t>(d)];
  const int64_t y_axis = y->shape[static_cast<size_t>(axis)];
  std::vector<SliceCopy> copies;
  int64_t offset = 0;
  for (size_t i = 0; i < f.inputs.size(); ++i) {
    const TensorSpec& in = f.inputs[i];
    PS_TRY(require_f32(in, "an input"));
    if (static_cast<int64_t>(in.shape.size()) != rank) return invalid_argument("input ranks differ");
    const int64_t width = in.shape[static_cast<size_t>(axis)];
    if (spec.wants(i)) {
      if (spec.accumulates(i)) {
        return unsupported("accumulating a Concat input's gradient (input ", i, ")");
      }
      PS_ASSIGN_OR_RETURN(const CopyPlan plan,
                          plan_strided_copy(Shape{outer, width * inner}, {y_axis * inner, 1},
                                            {width * inner, 1}, offset * inner, 0, 4));
      PS_ASSIGN_OR_RETURN(StridedCopy copy, StridedCopy::make(env, plan));
      copies.push_back(SliceCopy{i, std::move(copy)});
    }
    offset += width;
  }
  if (offset != y_axis) {
    return invalid_argument("the inputs add up to ", offset, " on axis ", axis, ", Y has ", y_axis);
  }
  return std::unique_ptr<GpuOp>(new ConcatGradOp(std::move(copies), f.inputs.size()));
}

Result<std::unique_ptr<GpuOp>> build_softmax_cross_entropy(const Shape& logits, const OpEnv& env) {
  PS_ASSIGN_OR_RETURN(const train_kernels::SoftmaxXentParams p, plan_softmax_xent(logits));
  PS_ASSIGN_OR_RETURN(cuda::Kernel k, find_kernel(env, "ps_softmax_xent_f32"));
  return std::unique_ptr<GpuOp>(new SoftmaxXentOp(k, p));
}

Result<TrainKernels> TrainKernels::load(const OpEnv& env) {
  TrainKernels t;
  PS_ASSIGN_OR_RETURN(t.sgd_group_, find_kernel(env, "ps_sgd_group_f32"));
  PS_ASSIGN_OR_RETURN(t.accumulate_, find_kernel(env, "ps_accumulate_f32"));
  return t;
}

Status TrainKernels::sgd_group(const cuda::Stream& stream,
                               const train_kernels::SgdGroupParams& p) const {
  for (int t = 0; t < p.count; ++t) {
    if (p.n[t] == 0) continue;
    if (p.param[t] == 0 || p.grad[t] == 0 || (p.momentum != 0.0f && p.buf[t] == 0)) {
      return invalid_argument("SGD group: tensor ", t, " of ", p.count,
                              " lacks its parameter, gradient or momentum buffer");
    }
  }
  const uint32_t blocks = p.block_start[p.count];
  if (blocks == 0) return Status::OK();
  return sgd_group_.launch(stream, blocks, kBlock, 0, p);
}

Status TrainKernels::accumulate(const cuda::Stream& stream, CUdeviceptr dst, CUdeviceptr src,
                                int64_t count) const {
  if (count == 0) return Status::OK();
  return accumulate_.launch(stream, grid_for(count), kBlock, 0, dst, src,
                            static_cast<uint64_t>(count));
}

}  // namespace ps::models::gpu
