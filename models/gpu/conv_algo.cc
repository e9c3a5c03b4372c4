#include "models/gpu/conv_algo.h"

#include <array>
#include <map>
#include <mutex>

#include "cuda/dnn.h"
#include "models/gpu/runtime.h"

namespace ps::models::gpu {
namespace {

std::mutex& cache_mutex() {
  static std::mutex m;
  return m;
}
std::map<std::string, ConvAlgoChoice>& cache() {
  static std::map<std::string, ConvAlgoChoice> c;
  return c;
}

}  // namespace

Result<ConvAlgoChoice> choose_conv_algo(GpuRuntime& runtime, Precision precision,
                                        const std::string& key, const ConvDescriptors& d) {
  const std::string full_key =
      str_cat("dev", runtime.device().ordinal(), "|", precision_name(precision), "|", key);
  const cudnnMathType_t requested =
      precision == Precision::kFp32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH;
  {
    std::lock_guard<std::mutex> lock(cache_mutex());
    auto it = cache().find(full_key);
    if (it != cache().end()) {
      ConvAlgoChoice choice = it->second;
      choice.cached = true;
      CUDNN_TRY(cudnnSetConvolutionMathType(d.conv.get(), choice.math));
      return choice;
    }
  }

  CUDNN_TRY(cudnnSetConvolutionMathType(d.conv.get(), requested));
  PS_TRY(runtime.bind(runtime.plan_stream(), 0, 0));
  // Scratch: x | w | y | workspace. Contents are whatever is there: only timing matters.
  const size_t x_at = 0;
  const size_t w_at = x_at + round_up_256(d.x_bytes);
  const size_t y_at = w_at + round_up_256(d.w_bytes);
  const size_t ws_at = y_at + round_up_256(d.y_bytes);
  PS_ASSIGN_OR_RETURN(const FindScratch scratch, find_scratch(runtime, ws_at, kConvWorkspaceCap));
  const size_t ws_cap = scratch.workspace_cap;
  const CUdeviceptr base = scratch.base;
  auto ptr = [base](size_t at) { return reinterpret_cast<void*>(base + at); };

  std::array<cudnnConvolutionFwdAlgoPerf_t, CUDNN_CONVOLUTION_FWD_ALGO_COUNT> perf{};
  int returned = 0;
  CUDNN_TRY(cudnnFindConvolutionForwardAlgorithmEx(
      runtime.dnn(), d.x.get(), ptr(x_at), d.w.get(), ptr(w_at), d.conv.get(), d.y.get(), ptr(y_at),
      static_cast<int>(perf.size()), &returned, perf.data(), ptr(ws_at), ws_cap));
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
  std::lock_guard<std::mutex> lock(cache_mutex());
  cache().emplace(full_key, choice);
  return choice;
}

Result<FindScratch> find_scratch(GpuRuntime& runtime, size_t fixed, size_t cap) {
  constexpr size_t kFloor = size_t{32} << 20;
  Result<CUdeviceptr> scratch = runtime.plan_scratch(fixed + cap);
  while (!scratch.ok() && scratch.status().code() == Code::kOutOfMemory && cap > kFloor) {
    cap /= 8;
    scratch = runtime.plan_scratch(fixed + cap);
  }
  if (!scratch.ok()) return scratch.status();
  return FindScratch{*scratch, cap};
}

size_t conv_algo_cache_size() {
  std::lock_guard<std::mutex> lock(cache_mutex());
  return cache().size();
}

}  // namespace ps::models::gpu
