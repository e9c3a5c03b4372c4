// Conv backward on cuDNN: dX by cudnnConvolutionBackwardData, dW by
// cudnnConvolutionBackwardFilter, dB by cudnnConvolutionBackwardBias, each with beta = 1 when
// its gradient accumulates. Descriptors as the forward's (conv_op.cc; 1-D as 2-D). Algorithms:
// cudnnFind*AlgorithmEx on plan scratch once per (geometry, precision, device), cached for the
// process; within the workspace cap the fastest DETERMINISTIC algorithm is taken (two runs of
// a step give the same bits), the fastest of any kind only when none is deterministic.
// kFp32 admits FMA math only, kTf32 also tensor-op math (as the forward). Then, for a
// gradient that is overwritten (not accumulated), up to kGraphCandidates plans of the same
// gradient as a cuDNN graph (conv_graph.h; deterministic engines only) are timed against that
// legacy call and the fastest kept if it beats it and agrees with it (conv_graph_trial.h):
// the legacy Find enumerates a handful of algorithms, the graph heuristics offer the sm90
// engines PyTorch's convolutions run (Inception v3's early layers took 3-8x their forward's
// time with the legacy choice). PS_CUDNN_GRAPH=off keeps the legacy calls.
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>

#include "cuda/dnn.h"
#include "models/gpu/conv_algo.h"
#include "models/gpu/conv_graph.h"
#include "models/gpu/conv_graph_trial.h"
#include "models/gpu/dnn_descriptors.h"
#include "models/gpu/grad_builders.h"
#include "models/gpu/runtime.h"
#include "models/gpu/window_plan.h"

namespace ps::models::gpu {
namespace {

size_t round_up(size_t n) { return (n + 255) & ~size_t{255}; }

struct BwdChoice {
  int algo = 0;  // cudnnConvolutionBwdDataAlgo_t or cudnnConvolutionBwdFilterAlgo_t
  cudnnMathType_t math = CUDNN_FMA_MATH;
  size_t workspace_bytes = 0;
  bool deterministic = true;
  bool cached = false;
  // The graph decision for an overwritten gradient: which plan (by its place in the
  // heuristics' order, and its engine, checked when recalled), -1 for the legacy call.
  bool decided_graph = false;
  int64_t graph_plan = -1;
  int64_t graph_engine = -1;
};

constexpr size_t kGraphCandidates = 4;

bool graph_enabled() {
  const char* v = std::getenv("PS_CUDNN_GRAPH");
  return v == nullptr || (std::strcmp(v, "off") != 0 && std::strcmp(v, "0") != 0);
}

std::mutex& cache_mutex() {
  static std::mutex m;
  return m;
}
std::map<std::string, BwdChoice>& cache() {
  static std::map<std::string, BwdChoice> c;
  return c;
}

bool acceptable_math(Precision precision, cudnnMathType_t math) {
  return precision == Precision::kTf32 || math == CUDNN_FMA_MATH || math == CUDNN_DEFAULT_MATH;
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
  // Times graph plans of that gradient against the legacy call in `c` (see the top), keeps
  // the winner in data_graph_ / filter_graph_ and records the decision in the cache.
  Status consider_graph(bool data, const OpEnv& env, const CudnnConvShape& shape,
                        const std::string& key, BwdChoice& c);
  // Queues dX (data) or dW into `out` with the legacy call; beta 1 when `accumulate`.
  Status legacy_call(bool data, CUdeviceptr x, CUdeviceptr w, CUdeviceptr dy, CUdeviceptr out,
                     CUdeviceptr ws, bool accumulate) const;

  cudnnHandle_t dnn_ = nullptr;
  bool want_dx_ = false, want_dw_ = false, want_db_ = false;
  bool acc_dx_ = false, acc_dw_ = false, acc_db_ = false;
  TensorDesc x_desc_, y_desc_, bias_desc_;
  FilterDesc w_desc_;
  ConvDesc data_conv_, filter_conv_;  // one per direction: each carries its own math type
  cudnnConvolutionBwdDataAlgo_t data_algo_ = CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
  cudnnConvolutionBwdFilterAlgo_t filter_algo_ = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1;
  size_t workspace_bytes_ = 0;
  size_t data_ws_ = 0, filter_ws_ = 0;  // each legacy algorithm's own workspace
  std::optional<ConvGraph> data_graph_, filter_graph_;
  size_t x_bytes_ = 0, w_bytes_ = 0, y_bytes_ = 0;
  std::string description_;
};

std::string full_cache_key(bool data, const OpEnv& env, const std::string& key) {
  return str_cat(data ? "bwd_data" : "bwd_filter", "|dev", env.runtime.device().ordinal(), "|",
                 precision_name(env.precision), "|", key);
}

Result<BwdChoice> ConvGradOp::choose(bool data, const OpEnv& env, const std::string& key) {
  GpuRuntime& runtime = env.runtime;
  const std::string full_key = full_cache_key(data, env, key);
  const ConvDesc& conv = data ? data_conv_ : filter_conv_;
  {
    std::lock_guard<std::mutex> lock(cache_mutex());
    if (auto it = cache().find(full_key); it != cache().end()) {
      BwdChoice c = it->second;
      c.cached = true;
      CUDNN_TRY(cudnnSetConvolutionMathType(conv.get(), c.math));
      return c;
    }
  }
  CUDNN_TRY(cudnnSetConvolutionMathType(
      conv.get(), env.precision == Precision::kFp32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH));
  PS_TRY(runtime.bind(runtime.plan_stream(), 0, 0));
  // Scratch: x | w | y | workspace; contents are irrelevant to the timing.
  const size_t w_at = round_up(x_bytes_);
  const size_t y_at = w_at + round_up(w_bytes_);
  const size_t ws_at = y_at + round_up(y_bytes_);
  size_t cap = kConvWorkspaceCap;
  Result<CUdeviceptr> scratch = runtime.plan_scratch(ws_at + cap);
  if (!scratch.ok() && scratch.status().code() == Code::kOutOfMemory) {
    cap /= 8;
    scratch = runtime.plan_scratch(ws_at + cap);
  }
  if (!scratch.ok()) return scratch.status();
  auto ptr = [base = *scratch](size_t at) { return reinterpret_cast<void*>(base + at); };
  BwdChoice c;
  int returned = 0;
  if (data) {
    std::array<cudnnConvolutionBwdDataAlgoPerf_t, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT> perf{};
    CUDNN_TRY(cudnnFindConvolutionBackwardDataAlgorithmEx(
        runtime.dnn(), w_desc_.get(), ptr(w_at), y_desc_.get(), ptr(y_at), conv.get(),
        x_desc_.get(), ptr(0), static_cast<int>(perf.size()), &returned, perf.data(), ptr(ws_at),
        cap));
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
    c.workspace_bytes = round_up(std::max(needed, best->memory));
  } else {
    std::array<cudnnConvolutionBwdFilterAlgoPerf_t, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT> perf{};
    CUDNN_TRY(cudnnFindConvolutionBackwardFilterAlgorithmEx(
        runtime.dnn(), x_desc_.get(), ptr(0), y_desc_.get(), ptr(y_at), conv.get(), w_desc_.get(),
        ptr(w_at), static_cast<int>(perf.size()), &returned, perf.data(), ptr(ws_at), cap));
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
    c.workspace_bytes = round_up(std::max(needed, best->memory));
  }
  std::lock_guard<std::mutex> lock(cache_mutex());
  cache().emplace(full_key, c);
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
    PS_ASSIGN_OR_RETURN(BwdChoice c, choose(true, env, key));
    data_algo_ = static_cast<cudnnConvolutionBwdDataAlgo_t>(c.algo);
    data_ws_ = c.workspace_bytes;
    workspace_bytes_ = std::max(workspace_bytes_, c.workspace_bytes);
    if (!acc_dx_ && graph_enabled()) PS_TRY(consider_graph(true, env, shape, key, c));
    parts += str_cat("dX algo ", c.algo, c.deterministic ? "" : " (non-deterministic)",
                     acc_dx_ ? " +=" : "", c.cached ? " cached" : "",
                     data_graph_ ? str_cat(" -> graph engine ", data_graph_->engine(0)) : "", "; ");
  }
  if (want_dw_) {
    PS_ASSIGN_OR_RETURN(BwdChoice c, choose(false, env, key));
    filter_algo_ = static_cast<cudnnConvolutionBwdFilterAlgo_t>(c.algo);
    filter_ws_ = c.workspace_bytes;
    workspace_bytes_ = std::max(workspace_bytes_, c.workspace_bytes);
    if (!acc_dw_ && graph_enabled()) PS_TRY(consider_graph(false, env, shape, key, c));
    parts +=
        str_cat("dW algo ", c.algo, c.deterministic ? "" : " (non-deterministic)",
                acc_dw_ ? " +=" : "", c.cached ? " cached" : "",
                filter_graph_ ? str_cat(" -> graph engine ", filter_graph_->engine(0)) : "", "; ");
  }
  if (want_db_) parts += str_cat("dB", acc_db_ ? " +=" : "", "; ");
  description_ = str_cat("cudnn conv backward (", precision_name(env.precision), "): ", parts,
                         "ws ", workspace_bytes_, " B");
  return Status::OK();
}

Status ConvGradOp::legacy_call(bool data, CUdeviceptr x, CUdeviceptr w, CUdeviceptr dy,
                               CUdeviceptr out, CUdeviceptr ws, bool accumulate) const {
  const float one = 1.0f, zero = 0.0f;
  auto p = [](CUdeviceptr a) { return reinterpret_cast<void*>(a); };
  if (data) {
    CUDNN_TRY(cudnnConvolutionBackwardData(dnn_, &one, w_desc_.get(), p(w), y_desc_.get(), p(dy),
                                           data_conv_.get(), data_algo_, p(ws), data_ws_,
                                           accumulate ? &one : &zero, x_desc_.get(), p(out)));
  } else {
    CUDNN_TRY(cudnnConvolutionBackwardFilter(dnn_, &one, x_desc_.get(), p(x), y_desc_.get(), p(dy),
                                             filter_conv_.get(), filter_algo_, p(ws), filter_ws_,
                                             accumulate ? &one : &zero, w_desc_.get(), p(out)));
  }
  return Status::OK();
}

Status ConvGradOp::consider_graph(bool data, const OpEnv& env, const CudnnConvShape& shape,
                                  const std::string& key, BwdChoice& c) {
  if (c.decided_graph && c.graph_plan < 0) return Status::OK();
  const bool recalled = c.decided_graph;
  const size_t wanted = recalled ? static_cast<size_t>(c.graph_plan) + 1 : kGraphCandidates;
  const ConvGraphShape graph_shape{
      shape.x,
      shape.w,
      shape.y,
      shape.bias,
      shape.pads,
      shape.strides,
      shape.dilations,
      false,
      false,
      false,
      data ? ConvGraphKind::kBackwardData : ConvGraphKind::kBackwardFilter};
  Result<ConvGraph> built =
      ConvGraph::build(dnn_, graph_shape, env.precision, wanted, kConvWorkspaceCap);
  auto remember = [&](int64_t plan, int64_t engine) {
    c.decided_graph = true;
    c.graph_plan = plan;
    c.graph_engine = engine;
    std::lock_guard<std::mutex> lock(cache_mutex());
    cache()[full_cache_key(data, env, key)] = c;
  };
  if (!built.ok()) {  // the legacy call it is; a refusal is no reason to fail the layer
    remember(-1, -1);
    return Status::OK();
  }
  ConvGraph& graph = *built;
  auto adopt = [&](size_t plan) {
    remember(static_cast<int64_t>(plan), graph.engine(plan));
    graph.keep(plan);
    workspace_bytes_ = std::max(workspace_bytes_, graph.workspace_bytes(0));
    (data ? data_graph_ : filter_graph_) = std::move(graph);
  };
  if (recalled) {
    const size_t plan = static_cast<size_t>(c.graph_plan);
    if (plan < graph.plan_count() && graph.engine(plan) == c.graph_engine) {
      adopt(plan);
      return Status::OK();
    }
    // cuDNN ordered the engines differently this time: decide again below.
  }

  // Scratch: x | w | dy | out | ref | workspace (out, ref: the gradient, dX or dW).
  const size_t out_bytes = data ? x_bytes_ : w_bytes_;
  size_t graph_ws = 0;
  for (size_t i = 0; i < graph.plan_count(); ++i) {
    graph_ws = std::max(graph_ws, graph.workspace_bytes(i));
  }
  const size_t w_at = round_up(x_bytes_);
  const size_t y_at = w_at + round_up(w_bytes_);
  const size_t out_at = y_at + round_up(y_bytes_);
  const size_t ref_at = out_at + round_up(out_bytes);
  const size_t ws_at = ref_at + round_up(out_bytes);
  const cuda::Stream& stream = env.runtime.plan_stream();
  PS_TRY(env.runtime.bind(stream, 0, 0));
  PS_ASSIGN_OR_RETURN(
      const CUdeviceptr s,
      env.runtime.plan_scratch(ws_at + std::max(data ? data_ws_ : filter_ws_, graph_ws)));
  const CUdeviceptr x = s, w = s + w_at, dy = s + y_at, ws = s + ws_at;
  GraphTrial trial;
  trial.stream = &stream;
  trial.precision = env.precision;
  trial.plans = graph.plan_count();
  trial.legacy = [&](CUdeviceptr out) { return legacy_call(data, x, w, dy, out, ws, false); };
  trial.graph = [&](size_t plan, CUdeviceptr out) {
    return data ? graph.execute(dnn_, plan, out, w, 0, 0, dy, ws)
                : graph.execute(dnn_, plan, x, out, 0, 0, dy, ws);
  };
  trial.inputs = {{data ? w : x, data ? w_bytes_ : x_bytes_}, {dy, y_bytes_}};
  trial.out = s + out_at;
  trial.ref = s + ref_at;
  trial.out_bytes = out_bytes;
  PS_ASSIGN_OR_RETURN(const GraphVerdict verdict, try_graph_plans(trial));
  if (!verdict.refusal.empty()) return Status::OK();  // not remembered: checked again next time
  if (verdict.plan < 0) {
    remember(-1, -1);
    return Status::OK();
  }
  adopt(static_cast<size_t>(verdict.plan));
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
  const CUdeviceptr ws = args.workspace;
  // A graph plan wants 16-byte aligned tensors (declared so); otherwise the legacy call.
  auto graph_fits = [&](CUdeviceptr a, CUdeviceptr b) {
    return ConvGraph::aligned(std::array<CUdeviceptr, 4>{a, b, dy, ws});
  };
  if (want_dx_) {
    const CUdeviceptr dx = args.outputs[0];
    if (data_graph_ && graph_fits(dx, w)) {
      PS_TRY(data_graph_->execute(dnn_, 0, dx, w, 0, 0, dy, ws));
    } else {
      PS_TRY(legacy_call(true, x, w, dy, dx, ws, acc_dx_));
    }
  }
  if (want_dw_) {
    const CUdeviceptr dw = args.outputs[1];
    if (filter_graph_ && graph_fits(x, dw)) {
      PS_TRY(filter_graph_->execute(dnn_, 0, x, dw, 0, 0, dy, ws));
    } else {
      PS_TRY(legacy_call(false, x, w, dy, dw, ws, acc_dw_));
    }
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
