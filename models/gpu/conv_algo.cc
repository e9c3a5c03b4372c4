#include "models/gpu/conv_algo.h"

#include <array>
#include <optional>

#include "cuda/dnn.h"
#include "models/gpu/choice_cache.h"
#include "models/gpu/runtime.h"

namespace ps::models::gpu {
namespace {

ChoiceCache<ConvAlgoChoice>& cache() {
  static ChoiceCache<ConvAlgoChoice> c;
  return c;
}

}  // namespace

Result<ConvAlgoChoice> choose_conv_algo(GpuRuntime& runtime, Precision precision,
                                        const std::string& key, const ConvDescriptors& d) {
  const std::string full_key =
      str_cat("dev", runtime.device().ordinal(), "|", precision_name(precision), "|", key);
  const cudnnMathType_t requested =
      precision == Precision::kFp32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH;
  if (std::optional<ConvAlgoChoice> cached = cache().find(full_key)) {
    cached->cached = true;
    CUDNN_TRY(cudnnSetConvolutionMathType(d.conv.get(), cached->math));
    return *cached;
  }

  CUDNN_TRY(cudnnSetConvolutionMathType(d.conv.get(), requested));
  PS_TRY(runtime.bind(runtime.plan_stream(), 0, 0));
  PS_ASSIGN_OR_RETURN(const FindScratch scratch,
                      find_scratch(runtime, d.x_bytes, d.w_bytes, d.y_bytes, kConvWorkspaceCap));
  const size_t ws_cap = scratch.workspace_cap;

  std::array<cudnnConvolutionFwdAlgoPerf_t, CUDNN_CONVOLUTION_FWD_ALGO_COUNT> perf{};
  int returned = 0;
  CUDNN_TRY(cudnnFindConvolutionForwardAlgorithmEx(
      runtime.dnn(), d.x.get(), scratch.x, d.w.get(), scratch.w, d.conv.get(), d.y.get(), scratch.y,
      static_cast<int>(perf.size()), &returned, perf.data(), scratch.workspace, ws_cap));
  PS_TRY(runtime.plan_stream().synchronize());

  const cudnnConvolutionFwdAlgoPerf_t* best = nullptr;
  for (int i = 0; i < returned; ++i) {  // sorted fastest first
    const cudnnConvolutionFwdAlgoPerf_t& p = perf[static_cast<size_t>(i)];
    if (p.status == CUDNN_STATUS_SUCCESS && p.memory <= ws_cap &&
        acceptable_math(precision, p.mathType)) {
      best = &p;
      break;
    }
  }
  if (best == nullptr) {
    return unsupported("cuDNN found no forward convolution algorithm within ", ws_cap >> 20,
                       " MiB of workspace (", returned, " candidates tried)");
  }
  ConvAlgoChoice choice;
  choice.algo = best->algo;
  // Strict fp32 stays FMA-only whatever the search reports (DEFAULT_MATH would allow TF32).
  choice.math = precision == Precision::kFp32 ? CUDNN_FMA_MATH : best->mathType;
  choice.time_ms = best->time;
  CUDNN_TRY(cudnnSetConvolutionMathType(d.conv.get(), choice.math));
  size_t needed = 0;
  CUDNN_TRY(cudnnGetConvolutionForwardWorkspaceSize(runtime.dnn(), d.x.get(), d.w.get(),
                                                    d.conv.get(), d.y.get(), choice.algo, &needed));
  choice.workspace_bytes = round_up_256(std::max(needed, best->memory));
  cache().store(full_key, choice);
  return choice;
}

Result<FindScratch> find_scratch(GpuRuntime& runtime, size_t x_bytes, size_t w_bytes,
                                 size_t y_bytes, size_t cap) {
  constexpr size_t kFloor = size_t{32} << 20;
  const size_t w_at = round_up_256(x_bytes);
  const size_t y_at = w_at + round_up_256(w_bytes);
  const size_t ws_at = y_at + round_up_256(y_bytes);
  Result<CUdeviceptr> scratch = runtime.plan_scratch(ws_at + cap);
  while (!scratch.ok() && scratch.status().code() == Code::kOutOfMemory && cap > kFloor) {
    cap /= 8;
    scratch = runtime.plan_scratch(ws_at + cap);
  }
  if (!scratch.ok()) return scratch.status();
  auto at = [base = *scratch](size_t offset) { return reinterpret_cast<void*>(base + offset); };
  return FindScratch{at(0), at(w_at), at(y_at), at(ws_at), cap};
}

size_t conv_algo_cache_size() { return cache().size(); }

}  // namespace ps::models::gpu
