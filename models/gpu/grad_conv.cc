// Conv backward on cuDNN: dX by cudnnConvolutionBackwardData, dW by
// cudnnConvolutionBackwardFilter, dB by cudnnConvolutionBackwardBias, each with beta = 1 when
// its gradient accumulates. Descriptors as the forward's (conv_op.cc; 1-D as 2-D). Algorithms:
// cudnnFind*AlgorithmEx on plan scratch once per (geometry, precision, device), cached for the
// process; within kConvGradWorkspaceCap the fastest DETERMINISTIC algorithm is taken (two runs of
// a step give the same bits), the fastest of any kind only when none is deterministic.
// kFp32 admits FMA math only, kTf32 also tensor-op math (as the forward).
#include <array>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "cuda/dnn.h"
#include "models/gpu/choice_cache.h"
#include "models/gpu/conv_algo.h"
#include "models/gpu/dnn_descriptors.h"
#include "models/gpu/grad_builders.h"
#include "models/gpu/runtime.h"
#include "models/gpu/window_plan.h"

namespace ps::models::gpu {
namespace {

struct BwdChoice {
  int algo = 0;  // cudnnConvolutionBwdDataAlgo_t or cudnnConvolutionBwdFilterAlgo_t
  cudnnMathType_t math = CUDNN_FMA_MATH;
  size_t workspace_bytes = 0;
  bool deterministic = true;
  bool cached = false;
};

ChoiceCache<BwdChoice>& cache() {
  static ChoiceCache<BwdChoice> c;
  return c;
}

// PS_CONV_FIND_LOG=1: every cudnnFind*AlgorithmEx result on stderr (what the backward could
// have had: the deterministic choice against the fastest of any kind).
template <typename Perf>
void log_find(const std::string& key, const Perf* perf, int returned) {
  static const bool on = [] {
    const char* v = std::getenv("PS_CONV_FIND_LOG");
    return v != nullptr && v[0] == '1';
  }();
  if (!on) return;
  for (int i = 0; i < returned; ++i) {
    const Perf& p = perf[i];
    std::fprintf(stderr, "conv find %s: algo %d math %d %s %.3f ms %zu B status %d\n", key.c_str(),
                 static_cast<int>(p.algo), static_cast<int>(p.mathType),
                 p.determinism == CUDNN_DETERMINISTIC ? "det" : "nondet", p.time, p.memory,
                 static_cast<int>(p.status));
  }
}

// Picks from perf results sorted fastest first: the first deterministic acceptable one, else
// the first acceptable one.
template <typename Perf>
const Perf* pick(const Perf* perf, int returned, Precision precision, size_t cap) {
  const Perf* any = nullptr;
  for (int i = 0; i < returned; ++i) {
    const Perf& p = perf[i];
    if (p.status != CUDNN_STATUS_SUCCESS || p.memory > cap ||
        !acceptable_math(precision, p.mathType)) {
      continue;
    }
    if (p.determinism == CUDNN_DETERMINISTIC) return &p;
    if (any == nullptr) any = &p;
  }
  return any;
}

class ConvGradOp final : public GpuOp {
 public:
  Status init(const ConvPlan& plan, const GradSpec& spec, const OpEnv& env);
  size_t workspace_bytes() const override { return workspace_bytes_; }
  Status enqueue(const LaunchArgs& args) const override;
  std::string describe() const override { return description_; }

 private:
  // Finds (or takes from the cache) the backward-data or backward-filter algorithm.
  Result<BwdChoice> choose(bool data, const OpEnv& env, const std::string& key);

  cudnnHandle_t dnn_ = nullptr;
  bool want_dx_ = false, want_dw_ = false, want_db_ = false;
  bool acc_dx_ = false, acc_dw_ = false, acc_db_ = false;
  TensorDesc x_desc_, y_desc_, bias_desc_;
  FilterDesc w_desc_;
  ConvDesc data_conv_, filter_conv_;  // one per direction: each carries its own math type
  cudnnConvolutionBwdDataAlgo_t data_algo_ = CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
  cudnnConvolutionBwdFilterAlgo_t filter_algo_ = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1;
  size_t workspace_bytes_ = 0;
  size_t x_bytes_ = 0, w_bytes_ = 0, y_bytes_ = 0;
  std::string description_;
};

Result<BwdChoice> ConvGradOp::choose(bool data, const OpEnv& env, const std::string& key) {
  GpuRuntime& runtime = env.runtime;
  const std::string full_key =
      str_cat(data ? "bwd_data" : "bwd_filter", "|dev", runtime.device().ordinal(), "|",
              precision_name(env.precision), "|", key);
  const ConvDesc& conv = data ? data_conv_ : filter_conv_;
  if (std::optional<BwdChoice> cached = cache().find(full_key)) {
    cached->cached = true;
    CUDNN_TRY(cudnnSetConvolutionMathType(conv.get(), cached->math));
    return *cached;
  }
  CUDNN_TRY(cudnnSetConvolutionMathType(
      conv.get(), env.precision == Precision::kFp32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH));
  PS_TRY(runtime.bind(runtime.plan_stream(), 0, 0));
  PS_ASSIGN_OR_RETURN(const FindScratch scratch,
                      find_scratch(runtime, x_bytes_, w_bytes_, y_bytes_, kConvGradWorkspaceCap));
  const size_t cap = scratch.workspace_cap;
  BwdChoice c;
  int returned = 0;
  if (data) {
    std::array<cudnnConvolutionBwdDataAlgoPerf_t, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT> perf{};
    CUDNN_TRY(cudnnFindConvolutionBackwardDataAlgorithmEx(
        runtime.dnn(), w_desc_.get(), scratch.w, y_desc_.get(), scratch.y, conv.get(),
        x_desc_.get(), scratch.x, static_cast<int>(perf.size()), &returned, perf.data(),
        scratch.workspace, cap));
    PS_TRY(runtime.plan_stream().synchronize());
    log_find(full_key, perf.data(), returned);
    const auto* best = pick(perf.data(), returned, env.precision, cap);
    if (best == nullptr) {
      return unsupported("cuDNN found no backward-data algorithm within ", cap >> 20, " MiB");
    }
    c.algo = best->algo;
    c.math = env.precision == Precision::kFp32 ? CUDNN_FMA_MATH : best->mathType;
    c.deterministic = best->determinism == CUDNN_DETERMINISTIC;
    CUDNN_TRY(cudnnSetConvolutionMathType(conv.get(), c.math));
    size_t needed = 0;
    CUDNN_TRY(cudnnGetConvolutionBackwardDataWorkspaceSize(
        runtime.dnn(), w_desc_.get(), y_desc_.get(), conv.get(), x_desc_.get(),
        static_cast<cudnnConvolutionBwdDataAlgo_t>(c.algo), &needed));
    c.workspace_bytes = round_up_256(std::max(needed, best->memory));
  } else {
    std::array<cudnnConvolutionBwdFilterAlgoPerf_t, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT> perf{};
    CUDNN_TRY(cudnnFindConvolutionBackwardFilterAlgorithmEx(
        runtime.dnn(), x_desc_.get(), scratch.x, y_desc_.get(), scratch.y, conv.get(),
        w_desc_.get(), scratch.w, static_cast<int>(perf.size()), &returned, perf.data(),
        scratch.workspace, cap));
    PS_TRY(runtime.plan_stream().synchronize());
    log_find(full_key, perf.data(), returned);
    const auto* best = pick(perf.data(), returned, env.precision, cap);
    if (best == nullptr) {
      return unsupported("cuDNN found no backward-filter algorithm within ", cap >> 20, " MiB");
    }
    c.algo = best->algo;
    c.math = env.precision == Precision::kFp32 ? CUDNN_FMA_MATH : best->mathType;
    c.deterministic = best->determinism == CUDNN_DETERMINISTIC;
    CUDNN_TRY(cudnnSetConvolutionMathType(conv.get(), c.math));
    size_t needed = 0;
    CUDNN_TRY(cudnnGetConvolutionBackwardFilterWorkspaceSize(
        runtime.dnn(), x_desc_.get(), y_desc_.get(), conv.get(), w_desc_.get(),
        static_cast<cudnnConvolutionBwdFilterAlgo_t>(c.algo), &needed));
    c.workspace_bytes = round_up_256(std::max(needed, best->memory));
  }
  cache().store(full_key, c);
  return c;
}

Status ConvGradOp::init(const ConvPlan& plan, const GradSpec& spec, const OpEnv& env) {
  dnn_ = env.runtime.dnn();
  if (plan.relu || plan.has_residual) {
    return unsupported(
        "FusedConv with an activation or residual (training manifests keep Conv "
        "unfused)");
  }
  want_dx_ = spec.wants(0);
  want_dw_ = spec.wants(1);
  want_db_ = plan.has_bias && spec.wants(2);
  acc_dx_ = spec.accumulates(0);
  acc_dw_ = spec.accumulates(1);
  acc_db_ = spec.accumulates(2);
  const CudnnConvShape shape = cudnn_conv_shape(plan);
  const std::vector<int64_t>& x_dims = shape.x;
  const std::vector<int64_t>& w_dims = shape.w;
  const std::vector<int64_t>& y_dims = shape.y;
  if (element_count(x_dims) == 0 || element_count(y_dims) == 0) {
    return unsupported("an empty X or Y (", shape_string(x_dims), ", ", shape_string(y_dims), ")");
  }
  x_bytes_ = static_cast<size_t>(element_count(x_dims)) * 4;
  w_bytes_ = static_cast<size_t>(element_count(w_dims)) * 4;
  y_bytes_ = static_cast<size_t>(element_count(y_dims)) * 4;
  PS_ASSIGN_OR_RETURN(x_desc_, make_tensor_desc(x_dims));
  PS_ASSIGN_OR_RETURN(w_desc_, make_filter_desc(w_dims));
  PS_ASSIGN_OR_RETURN(y_desc_, make_tensor_desc(y_dims));
  const cudnnMathType_t math =
      env.precision == Precision::kFp32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH;
  PS_ASSIGN_OR_RETURN(data_conv_,
                      make_conv_desc(shape.pads, shape.strides, shape.dilations, plan.group, math));
  PS_ASSIGN_OR_RETURN(filter_conv_,
                      make_conv_desc(shape.pads, shape.strides, shape.dilations, plan.group, math));
  if (want_db_) {
    PS_ASSIGN_OR_RETURN(bias_desc_, make_tensor_desc(shape.bias));
  }
  const std::string& key = shape.key;
  std::string parts;
  if (want_dx_) {
    PS_ASSIGN_OR_RETURN(const BwdChoice c, choose(true, env, key));
    data_algo_ = static_cast<cudnnConvolutionBwdDataAlgo_t>(c.algo);
    workspace_bytes_ = std::max(workspace_bytes_, c.workspace_bytes);
    parts += str_cat("dX algo ", c.algo, c.deterministic ? "" : " (non-deterministic)",
                     acc_dx_ ? " +=" : "", c.cached ? " cached" : "", "; ");
  }
  if (want_dw_) {
    PS_ASSIGN_OR_RETURN(const BwdChoice c, choose(false, env, key));
    filter_algo_ = static_cast<cudnnConvolutionBwdFilterAlgo_t>(c.algo);
    workspace_bytes_ = std::max(workspace_bytes_, c.workspace_bytes);
    parts += str_cat("dW algo ", c.algo, c.deterministic ? "" : " (non-deterministic)",
                     acc_dw_ ? " +=" : "", c.cached ? " cached" : "", "; ");
  }
  if (want_db_) parts += str_cat("dB", acc_db_ ? " +=" : "", "; ");
  description_ = str_cat("cudnn conv backward (", precision_name(env.precision), "): ", parts,
                         "ws ", workspace_bytes_, " B");
  return Status::OK();
}

Status ConvGradOp::enqueue(const LaunchArgs& args) const {
  // inputs {X, W, B?, dY}: dY is the last; outputs {dX, dW, dB?}.
  if (args.inputs.size() < 3 || args.outputs.size() < 2 || (want_db_ && args.outputs.size() < 3)) {
    return invalid_argument("Conv backward enqueue: ", args.inputs.size(), " inputs, ",
                            args.outputs.size(), " outputs bound");
  }
  if (args.workspace_bytes < workspace_bytes_) {
    return invalid_argument("Conv backward enqueue: workspace of ", args.workspace_bytes,
                            " bytes, needs ", workspace_bytes_);
  }
  const float one = 1.0f, zero = 0.0f;
  auto p = [](CUdeviceptr a) { return reinterpret_cast<void*>(a); };
  const CUdeviceptr x = args.inputs[0], w = args.inputs[1], dy = args.inputs.back();
  void* ws = p(args.workspace);
  if (want_dx_) {
    CUDNN_TRY(cudnnConvolutionBackwardData(
        dnn_, &one, w_desc_.get(), p(w), y_desc_.get(), p(dy), data_conv_.get(), data_algo_, ws,
        workspace_bytes_, acc_dx_ ? &one : &zero, x_desc_.get(), p(args.outputs[0])));
  }
  if (want_dw_) {
    CUDNN_TRY(cudnnConvolutionBackwardFilter(
        dnn_, &one, x_desc_.get(), p(x), y_desc_.get(), p(dy), filter_conv_.get(), filter_algo_, ws,
        workspace_bytes_, acc_dw_ ? &one : &zero, w_desc_.get(), p(args.outputs[1])));
  }
  if (want_db_) {
    CUDNN_TRY(cudnnConvolutionBackwardBias(dnn_, &one, y_desc_.get(), p(dy), acc_db_ ? &one : &zero,
                                           bias_desc_.get(), p(args.outputs[2])));
  }
  return Status::OK();
}

}  // namespace

Result<std::unique_ptr<GpuOp>> build_conv_grad(const GradSpec& spec, const OpEnv& env) {
  PS_ASSIGN_OR_RETURN(const ConvPlan plan, plan_conv(spec.forward));
  auto op = std::make_unique<ConvGradOp>();
  PS_TRY(op->init(plan, spec, env));
  return std::unique_ptr<GpuOp>(std::move(op));
}

}  // namespace ps::models::gpu
