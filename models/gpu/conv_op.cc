// Conv and FusedConv on cuDNN: Y = act(conv(X, W) + B + residual).
//
// Modes, chosen at plan time:
//  - plain:     cudnnConvolutionForward (no bias, residual or activation);
//  - fused:     cudnnConvolutionBiasActivationForward with ReLU (y = relu(conv + z*alpha2 +
//               bias), z = the residual or, with alpha2 = 0, y itself); any algorithm works with
//               ReLU, while identity would force IMPLICIT_PRECOMP_GEMM, so it is used for ReLU
//               layers only;
//  - epilogue:  cudnnConvolutionForward, then one pass of ps_dnn_bias_residual_act_f32;
//  - graph:     the whole layer as one cuDNN graph with a finalised plan (conv_graph.h), which
//               costs a few microseconds of host time per call where the legacy calls cost tens.
// For a ReLU layer fused and epilogue are timed once (plan scratch) and the faster kept; a fused
// call cuDNN refuses falls back to the epilogue. Then up to kGraphCandidates graph plans are
// timed against that legacy mode on random data, back to back (so a host-bound call shows its
// host time), and the fastest graph plan is kept if it beats the legacy mode and its output
// matches the legacy mode's (1e-4 of the output's largest magnitude in fp32, 2e-2 in TF32).
// Each decision is cached per (device, precision, geometry). PS_CUDNN_GRAPH=off keeps the
// legacy modes (for comparisons). A graph layer given pointers that are not 16-byte aligned
// runs its legacy mode.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <vector>

#include "cuda/copy.h"
#include "cuda/device_buffer.h"
#include "cuda/dnn.h"
#include "cuda/module.h"
#include "models/cpu/splitmix.h"
#include "models/gpu/choice_cache.h"
#include "models/gpu/conv_algo.h"
#include "models/gpu/conv_graph.h"
#include "models/gpu/dnn_builders.h"
#include "models/gpu/dnn_descriptors.h"
#include "models/gpu/plan_timing.h"
#include "models/gpu/runtime.h"
#include "models/gpu/window_plan.h"

namespace ps::models::gpu {
namespace {

enum class ConvMode { kEmpty, kPlain, kFused, kEpilogue, kGraph };

// Graph plans timed per layer geometry (cuDNN's heuristics order them; the first few hold the
// fastest in practice, and each finalisation costs plan time).
constexpr size_t kGraphCandidates = 4;

bool graph_enabled() {
  const char* v = std::getenv("PS_CUDNN_GRAPH");
  return v == nullptr || (std::strcmp(v, "off") != 0 && std::strcmp(v, "0") != 0);
}

const char* algo_name(cudnnConvolutionFwdAlgo_t algo) {
  switch (algo) {
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM:
      return "implicit_gemm";
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM:
      return "implicit_precomp_gemm";
    case CUDNN_CONVOLUTION_FWD_ALGO_GEMM:
      return "gemm";
    case CUDNN_CONVOLUTION_FWD_ALGO_DIRECT:
      return "direct";
    case CUDNN_CONVOLUTION_FWD_ALGO_FFT:
      return "fft";
    case CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING:
      return "fft_tiling";
    case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD:
      return "winograd";
    case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED:
      return "winograd_nonfused";
    default:
      return "unknown";
  }
}

const char* math_name(cudnnMathType_t math) {
  switch (math) {
    case CUDNN_FMA_MATH:
      return "fma";
    case CUDNN_TENSOR_OP_MATH:
      return "tensor_op";
    case CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION:
      return "tensor_op_conv";
    default:
      return "default";
  }
}

// The decisions per layer geometry, like the algorithm: fused or epilogue (ReLU layers), and
// which graph plan, if any (by its place in the heuristics' order and its engine, checked).
struct ModeChoice {
  ConvMode legacy = ConvMode::kPlain;
  int64_t graph_plan = -1;  // -1: the legacy mode
  int64_t graph_engine = -1;
  bool graph_fused = true;  // the graph holds the epilogue (else: our epilogue kernel after it)
  bool decided_graph = false;
};
ChoiceCache<ModeChoice>& mode_cache() {
  static ChoiceCache<ModeChoice> c;
  return c;
}

// Fills `bytes` (a multiple of 4) at `dst` with uniform floats in (-1, 1] from `seed`: the
// data graph plans are checked on. One block of up to 1 MiB is made on the host and repeated by
// doubling device copies, so a 25 MB activation costs microseconds of host work, not a pass.
Status fill_random_device(CUdeviceptr dst, size_t bytes, uint64_t seed,
                          const cuda::Stream& stream) {
  if (bytes == 0) return Status::OK();
  std::vector<float> block(std::min<size_t>(bytes, size_t{1} << 20) / 4);
  cpu::SplitMix rng(seed);
  for (float& f : block) f = static_cast<float>(2.0 * rng.uniform() - 1.0);
  const size_t block_bytes = block.size() * 4;
  PS_TRY(cuda::copy_to_device_async(dst, block.data(), block_bytes, stream));
  for (size_t done = block_bytes; done < bytes; done *= 2) {
    PS_TRY(cuda::copy_device_async(dst + done, dst, std::min(done, bytes - done), stream));
  }
  return stream.synchronize();  // `block` is pageable host memory the copy reads
}

class ConvOp final : public GpuOp {
 public:
  ConvOp(const ConvPlan& plan, cudnnHandle_t dnn) : dnn_(dnn) {
    has_bias_ = plan.has_bias;
    has_residual_ = plan.has_residual;
    relu_ = plan.relu;
    channels_ = static_cast<uint64_t>(plan.out_channels);
    total_ = static_cast<uint64_t>(element_count(plan.out_shape));
    inner_ = channels_ == 0 || plan.batch == 0 ? 0 : total_ / (channels_ * plan.batch);
  }

  // Plan-time construction; see build_conv.
  Status init(const ConvPlan& plan, const OpEnv& env);

  size_t workspace_bytes() const override { return workspace_bytes_; }
  Status enqueue(const LaunchArgs& args) const override;
  std::string describe() const override { return description_; }

 private:
  Status run(ConvMode mode, const cuda::Stream& stream, CUdeviceptr x, CUdeviceptr w, CUdeviceptr b,
             CUdeviceptr r, CUdeviceptr y, CUdeviceptr ws) const;
  bool has_epilogue() const { return has_bias_ || has_residual_ || relu_; }
  // Plan `plan` of `graph`, then our epilogue kernel unless the graph is `fused` (holds it).
  Status run_graph(const ConvGraph& graph, size_t plan, bool fused, const cuda::Stream& stream,
                   CUdeviceptr x, CUdeviceptr w, CUdeviceptr b, CUdeviceptr r, CUdeviceptr y,
                   CUdeviceptr ws) const;
  // y = act(y + bias + residual) by our kernel, in place.
  Status launch_epilogue(const cuda::Stream& stream, CUdeviceptr b, CUdeviceptr r,
                         CUdeviceptr y) const;
  // Times graph plans against the legacy mode and keeps the fastest that agrees (see the top).
  Status consider_graph(const CudnnConvShape& shape, const OpEnv& env,
                        const std::optional<ModeChoice>& cached, ModeChoice& choice, size_t x_bytes,
                        size_t w_bytes, size_t y_bytes);

  cudnnHandle_t dnn_;
  bool has_bias_ = false, has_residual_ = false, relu_ = false;
  uint64_t channels_ = 0, total_ = 0, inner_ = 0;
  ConvMode mode_ = ConvMode::kPlain;
  ConvMode legacy_mode_ = ConvMode::kPlain;  // what a graph layer runs with unaligned pointers
  std::optional<ConvGraph> graph_;
  bool graph_fused_ = true;  // graph_ computes the epilogue too
  size_t legacy_workspace_bytes_ = 0;
  std::string graph_note_;  // why a faster graph plan was refused, for describe()
  TensorDesc x_desc_, y_desc_, bias_desc_;
  FilterDesc w_desc_;
  ConvDesc conv_desc_;
  ActivationDesc relu_desc_;
  cudnnConvolutionFwdAlgo_t algo_ = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
  size_t workspace_bytes_ = 0;
  cuda::Kernel epilogue_;
  cuda::DeviceBuffer zero_bias_;  // the fused call needs a bias; for layers without one
  std::string description_;
};

Status ConvOp::run(ConvMode mode, const cuda::Stream& stream, CUdeviceptr x, CUdeviceptr w,
                   CUdeviceptr b, CUdeviceptr r, CUdeviceptr y, CUdeviceptr ws) const {
  const float one = 1.0f;
  const float zero = 0.0f;
  auto p = [](CUdeviceptr a) { return reinterpret_cast<void*>(a); };
  switch (mode) {
    case ConvMode::kEmpty:
      return Status::OK();
    case ConvMode::kGraph: {
      const std::array<CUdeviceptr, 5> pointers{x, w, has_bias_ ? b : 0, has_residual_ ? r : 0, y};
      if (!ConvGraph::aligned(pointers) || (ws % 16) != 0) {
        return run(legacy_mode_, stream, x, w, b, r, y, ws);
      }
      return run_graph(*graph_, 0, graph_fused_, stream, x, w, b, r, y, ws);
    }
    case ConvMode::kFused: {
      const float alpha2 = has_residual_ ? 1.0f : 0.0f;
      const CUdeviceptr z = has_residual_ ? r : y;
      const CUdeviceptr bias = has_bias_ ? b : zero_bias_.ptr();
      CUDNN_TRY(cudnnConvolutionBiasActivationForward(
          dnn_, &one, x_desc_.get(), p(x), w_desc_.get(), p(w), conv_desc_.get(), algo_, p(ws),
          legacy_workspace_bytes_, &alpha2, y_desc_.get(), p(z), bias_desc_.get(), p(bias),
          relu_desc_.get(), y_desc_.get(), p(y)));
      return Status::OK();
    }
    case ConvMode::kPlain:
    case ConvMode::kEpilogue:
      CUDNN_TRY(cudnnConvolutionForward(dnn_, &one, x_desc_.get(), p(x), w_desc_.get(), p(w),
                                        conv_desc_.get(), algo_, p(ws), legacy_workspace_bytes_,
                                        &zero, y_desc_.get(), p(y)));
      if (mode == ConvMode::kPlain) return Status::OK();
      return launch_epilogue(stream, b, r, y);
  }
  return Status::OK();
}

Status ConvOp::run_graph(const ConvGraph& graph, size_t plan, bool fused,
                         const cuda::Stream& stream, CUdeviceptr x, CUdeviceptr w, CUdeviceptr b,
                         CUdeviceptr r, CUdeviceptr y, CUdeviceptr ws) const {
  PS_TRY(graph.execute(dnn_, plan, x, w, b, r, y, ws));
  return fused || !has_epilogue() ? Status::OK() : launch_epilogue(stream, b, r, y);
}

Status ConvOp::launch_epilogue(const cuda::Stream& stream, CUdeviceptr b, CUdeviceptr r,
                               CUdeviceptr y) const {
  return epilogue_.launch(stream, cuda::blocks_for(total_, 256), 256, 0, y,
                          has_bias_ ? b : CUdeviceptr{0}, has_residual_ ? r : CUdeviceptr{0},
                          total_, inner_, channels_, static_cast<uint32_t>(relu_ ? 1 : 0));
}

Status ConvOp::enqueue(const LaunchArgs& args) const {
  if (args.inputs.size() < 2 || args.outputs.empty()) {
    return invalid_argument("Conv enqueue: ", args.inputs.size(), " inputs, ", args.outputs.size(),
                            " outputs bound");
  }
  if (args.workspace_bytes < workspace_bytes_) {
    return invalid_argument("Conv enqueue: workspace of ", args.workspace_bytes,
                            " bytes, the op needs ", workspace_bytes_);
  }
  const CUdeviceptr b = has_bias_ ? args.inputs[2] : 0;
  const CUdeviceptr r = has_residual_ ? args.inputs[3] : 0;
  return run(mode_, args.stream, args.inputs[0], args.inputs[1], b, r, args.outputs[0],
             args.workspace);
}

Status ConvOp::init(const ConvPlan& plan, const OpEnv& env) {
  if (total_ == 0) {
    mode_ = ConvMode::kEmpty;
    description_ = "conv with an empty output (nothing to do)";
    return Status::OK();
  }
  const CudnnConvShape shape = cudnn_conv_shape(plan);
  const std::vector<int64_t>& x_dims = shape.x;
  const std::vector<int64_t>& w_dims = shape.w;
  const std::vector<int64_t>& y_dims = shape.y;
  const std::vector<int64_t>& bias_dims = shape.bias;
  if (element_count(x_dims) == 0) {
    return unsupported("X of shape ", shape_string(x_dims), " is empty but Y is not");
  }
  const cudnnMathType_t math =
      env.precision == Precision::kFp32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH;
  PS_ASSIGN_OR_RETURN(x_desc_, make_tensor_desc(x_dims));
  PS_ASSIGN_OR_RETURN(w_desc_, make_filter_desc(w_dims));
  PS_ASSIGN_OR_RETURN(y_desc_, make_tensor_desc(y_dims));
  PS_ASSIGN_OR_RETURN(conv_desc_,
                      make_conv_desc(shape.pads, shape.strides, shape.dilations, plan.group, math));

  std::array<int, 5> cudnn_out{};
  CUDNN_TRY(cudnnGetConvolutionNdForwardOutputDim(conv_desc_.get(), x_desc_.get(), w_desc_.get(),
                                                  static_cast<int>(y_dims.size()),
                                                  cudnn_out.data()));
  for (size_t i = 0; i < y_dims.size(); ++i) {
    if (cudnn_out[i] != y_dims[i]) {
      return internal_error("cuDNN computes output dim ", i, " = ", cudnn_out[i], ", ONNX ",
                            y_dims[i], " (Y ", shape_string(y_dims), ")");
    }
  }

  const size_t x_bytes = static_cast<size_t>(element_count(x_dims)) * 4;
  const size_t w_bytes = static_cast<size_t>(element_count(w_dims)) * 4;
  const size_t y_bytes = static_cast<size_t>(element_count(y_dims)) * 4;
  PS_ASSIGN_OR_RETURN(const ConvAlgoChoice choice,
                      choose_conv_algo(env.runtime, env.precision, shape.key,
                                       ConvDescriptors{x_desc_, w_desc_, conv_desc_, y_desc_,
                                                       x_bytes, w_bytes, y_bytes}));
  algo_ = choice.algo;
  legacy_workspace_bytes_ = choice.workspace_bytes;
  workspace_bytes_ = choice.workspace_bytes;

  mode_ = has_epilogue() ? ConvMode::kEpilogue : ConvMode::kPlain;
  if (has_epilogue()) {
    PS_ASSIGN_OR_RETURN(epilogue_, env.runtime.kernel("ps_dnn_bias_residual_act_f32"));
  }
  const std::string mode_key =
      str_cat("dev", env.runtime.device().ordinal(), "|", precision_name(env.precision), "|",
              shape.key, "|b", has_bias_, "r", has_residual_, "a", relu_);
  const std::optional<ModeChoice> cached = mode_cache().find(mode_key);
  ModeChoice decided = cached.value_or(ModeChoice{});
  if (relu_) {
    PS_ASSIGN_OR_RETURN(bias_desc_, make_tensor_desc(bias_dims));
    PS_ASSIGN_OR_RETURN(relu_desc_, make_activation_desc(CUDNN_ACTIVATION_RELU));
    if (!has_bias_) {
      PS_ASSIGN_OR_RETURN(zero_bias_,
                          cuda::DeviceBuffer::allocate(static_cast<size_t>(channels_) * 4));
      PS_TRY(cuda::memset_d32_async(zero_bias_.ptr(), 0, channels_, env.runtime.plan_stream()));
      PS_TRY(env.runtime.plan_stream().synchronize());
    }
    if (cached) {
      mode_ = cached->legacy;
    } else {
      // Time both on scratch: x | w | y | bias | residual | workspace (contents irrelevant).
      const cuda::Stream& stream = env.runtime.plan_stream();
      PS_TRY(env.runtime.bind(stream, 0, 0));
      const size_t w_at = round_up_256(x_bytes);
      const size_t y_at = w_at + round_up_256(w_bytes);
      const size_t b_at = y_at + round_up_256(y_bytes);
      const size_t r_at = b_at + round_up_256(channels_ * 4);
      const size_t ws_at = r_at + round_up_256(y_bytes);
      PS_ASSIGN_OR_RETURN(const CUdeviceptr s, env.runtime.plan_scratch(ws_at + workspace_bytes_));
      auto candidate = [&](ConvMode mode) {
        return time_candidate(stream, 3, [&] {
          return run(mode, stream, s, s + w_at, s + b_at, s + r_at, s + y_at, s + ws_at);
        });
      };
      Result<float> fused = candidate(ConvMode::kFused);
      if (!fused.ok()) {
        (void)stream.synchronize();  // a refused fused call: keep the epilogue
      } else {
        PS_ASSIGN_OR_RETURN(const float separate, candidate(ConvMode::kEpilogue));
        if (*fused <= separate) mode_ = ConvMode::kFused;
      }
    }
  }
  legacy_mode_ = mode_;
  decided.legacy = mode_;
  if (graph_enabled()) {
    PS_TRY(consider_graph(shape, env, cached, decided, x_bytes, w_bytes, y_bytes));
  }
  mode_cache().store(mode_key, decided);

  const char* legacy_text = legacy_mode_ == ConvMode::kFused      ? ", fused bias+relu"
                            : legacy_mode_ == ConvMode::kEpilogue ? ", conv + epilogue kernel"
                                                                  : "";
  const std::string legacy =
      str_cat("cudnn conv ", algo_name(algo_), " (", math_name(choice.math), ", ",
              precision_name(env.precision), "), ws ", legacy_workspace_bytes_, " B", legacy_text);
  if (mode_ == ConvMode::kGraph) {
    const std::string fused_parts =
        graph_fused_
            ? str_cat(has_bias_ ? "+bias" : "", has_residual_ ? "+add" : "", relu_ ? "+relu" : "")
            : std::string(has_epilogue() ? " + epilogue kernel" : "");
    description_ = str_cat("cudnn graph conv", fused_parts, " engine ", graph_->engine(0), " (",
                           precision_name(env.precision), "), ws ", graph_->workspace_bytes(0),
                           " B; unaligned: ", legacy, cached ? ", cached choice" : "");
  } else {
    description_ = str_cat(legacy, choice.cached ? ", cached choice" : "", graph_note_);
  }
  return Status::OK();
}

Status ConvOp::consider_graph(const CudnnConvShape& shape, const OpEnv& env,
                              const std::optional<ModeChoice>& cached, ModeChoice& choice,
                              size_t x_bytes, size_t w_bytes, size_t y_bytes) {
  if (cached && cached->decided_graph && cached->graph_plan < 0) return Status::OK();
  const bool recalled = cached && cached->decided_graph;
  const size_t wanted = recalled ? static_cast<size_t>(cached->graph_plan) + 1 : kGraphCandidates;
  // The whole layer as one graph; where no engine fuses the epilogue (cuDNN's fusion engines
  // favour channels-last half precision), the convolution alone and our epilogue kernel.
  auto build_graph = [&](bool fused) {
    const ConvGraphShape graph_shape{shape.x,
                                     shape.w,
                                     shape.y,
                                     shape.bias,
                                     shape.pads,
                                     shape.strides,
                                     shape.dilations,
                                     fused && has_bias_,
                                     fused && has_residual_,
                                     fused && relu_};
    return ConvGraph::build(dnn_, graph_shape, env.precision, wanted, kConvWorkspaceCap);
  };
  bool fused = recalled ? cached->graph_fused : true;
  Result<ConvGraph> built = build_graph(fused);
  if (!built.ok() && fused && has_epilogue() && !recalled) {
    graph_note_ = str_cat("; no fused cuDNN graph (", built.status().message(), ")");
    fused = false;
    built = build_graph(false);
  }
  choice.decided_graph = true;
  choice.graph_fused = fused;
  if (!built.ok()) {  // the legacy call it is; a refusal is no reason to fail the layer
    graph_note_ = str_cat("; no cuDNN graph: ", built.status().message());
    return Status::OK();
  }
  ConvGraph& graph = *built;
  graph_fused_ = fused;
  // Runs this layer with plan `plan` of the graph from now on.
  auto adopt = [&](size_t plan) {
    graph.keep(plan);
    workspace_bytes_ = std::max(legacy_workspace_bytes_, graph.workspace_bytes(0));
    graph_ = std::move(graph);
    mode_ = ConvMode::kGraph;
    return Status::OK();
  };
  if (recalled) {
    const size_t plan = static_cast<size_t>(cached->graph_plan);
    if (plan < graph.plan_count() && graph.engine(plan) == cached->graph_engine) {
      return adopt(plan);
    }
    // cuDNN ordered the engines differently this time: decide again below.
  }

  // Scratch: x | w | b | r | y | y (legacy) | workspace; x, w, b, r random.
  const size_t bias_bytes = static_cast<size_t>(channels_) * 4;
  size_t graph_ws = 0;
  for (size_t i = 0; i < graph.plan_count(); ++i)
    graph_ws = std::max(graph_ws, graph.workspace_bytes(i));
  const size_t w_at = round_up_256(x_bytes);
  const size_t b_at = w_at + round_up_256(w_bytes);
  const size_t r_at = b_at + round_up_256(bias_bytes);
  const size_t y_at = r_at + round_up_256(y_bytes);
  const size_t ref_at = y_at + round_up_256(y_bytes);
  const size_t ws_at = ref_at + round_up_256(y_bytes);
  const cuda::Stream& stream = env.runtime.plan_stream();
  PS_TRY(env.runtime.bind(stream, 0, 0));
  PS_ASSIGN_OR_RETURN(
      const CUdeviceptr s,
      env.runtime.plan_scratch(ws_at + std::max(legacy_workspace_bytes_, graph_ws)));
  const CUdeviceptr x = s, w = s + w_at, b = s + b_at, r = s + r_at, y = s + y_at;
  const CUdeviceptr ws = s + ws_at;
  constexpr int kReps = 5;
  PS_ASSIGN_OR_RETURN(const float legacy_ms, time_candidate(stream, kReps, [&] {
                        return run(legacy_mode_, stream, x, w, b, r, s + ref_at, ws);
                      }));
  float best_ms = legacy_ms;
  int64_t best = -1;
  for (size_t i = 0; i < graph.plan_count(); ++i) {
    Result<float> ms = time_candidate(
        stream, kReps, [&] { return run_graph(graph, i, fused, stream, x, w, b, r, y, ws); });
    if (!ms.ok()) {
      (void)stream.synchronize();  // a plan that fails to run is not a candidate
      continue;
    }
    if (*ms < best_ms) {
      best_ms = *ms;
      best = static_cast<int64_t>(i);
    }
  }
  choice.graph_plan = -1;
  if (best < 0) return Status::OK();

  // The winner must compute what the legacy mode computes, on random x, w, b and r.
  for (const auto& [at, bytes] : std::array<std::pair<size_t, size_t>, 4>{
           {{0, x_bytes}, {w_at, w_bytes}, {b_at, bias_bytes}, {r_at, y_bytes}}}) {
    PS_TRY(fill_random_device(s + at, bytes, at + 1, stream));
  }
  PS_TRY(run(legacy_mode_, stream, x, w, b, r, s + ref_at, ws));
  PS_TRY(run_graph(graph, static_cast<size_t>(best), fused, stream, x, w, b, r, y, ws));
  // The first MiB of the output (the first image's channels, at least one whole image of most
  // layers): a wrong layout or a missing term shows there, and plan time stays small.
  const size_t checked = std::min<size_t>(y_bytes, size_t{1} << 20);
  std::vector<float> got(checked / 4), want(checked / 4);
  PS_TRY(cuda::copy_to_host_async(got.data(), y, checked, stream));
  PS_TRY(cuda::copy_to_host_async(want.data(), s + ref_at, checked, stream));
  PS_TRY(stream.synchronize());
  float scale = 0.0f, worst = 0.0f;
  for (size_t i = 0; i < want.size(); ++i) {
    scale = std::max(scale, std::fabs(want[i]));
    const float d = std::fabs(got[i] - want[i]);
    worst = std::isnan(d) ? INFINITY : std::max(worst, d);
  }
  const float tolerance = env.precision == Precision::kFp32 ? 1e-4f : 2e-2f;
  if (!(worst <= tolerance * std::max(scale, 1e-6f))) {
    // Not cached as a decision either way: the next plan of this geometry checks again.
    choice.decided_graph = false;
    graph_note_ =
        str_cat("; cuDNN graph engine ", graph.engine(static_cast<size_t>(best)),
                " refused: differs from this call by ", worst, " (outputs up to ", scale, ")");
    return Status::OK();
  }
  choice.graph_plan = best;
  choice.graph_engine = graph.engine(static_cast<size_t>(best));
  return adopt(static_cast<size_t>(best));
}

}  // namespace

Result<std::unique_ptr<GpuOp>> build_conv(const OpSpec& spec, const OpEnv& env) {
  PS_ASSIGN_OR_RETURN(const ConvPlan plan, plan_conv(spec));
  auto op = std::make_unique<ConvOp>(plan, env.runtime.dnn());
  PS_TRY(op->init(plan, env));
  return std::unique_ptr<GpuOp>(std::move(op));
}

}  // namespace ps::models::gpu
