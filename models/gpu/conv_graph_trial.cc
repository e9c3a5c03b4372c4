#include "models/gpu/conv_graph_trial.h"

#include <algorithm>
#include <cmath>

#include "cuda/copy.h"
#include "models/cpu/splitmix.h"
#include "models/gpu/plan_timing.h"

namespace ps::models::gpu {

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

Result<GraphVerdict> try_graph_plans(const GraphTrial& trial) {
  const cuda::Stream& stream = *trial.stream;
  constexpr int kReps = 5;
  GraphVerdict v;
  PS_ASSIGN_OR_RETURN(v.legacy_ms,
                      time_candidate(stream, kReps, [&] { return trial.legacy(trial.ref); }));
  float best_ms = v.legacy_ms;
  int64_t best = -1;
  for (size_t i = 0; i < trial.plans; ++i) {
    Result<float> ms = time_candidate(stream, kReps, [&] { return trial.graph(i, trial.out); });
    if (!ms.ok()) {
      (void)stream.synchronize();  // a plan that fails to run is not a candidate
      continue;
    }
    if (*ms < best_ms) {
      best_ms = *ms;
      best = static_cast<int64_t>(i);
    }
  }
  if (best < 0) return v;

  // The winner must compute what the legacy call computes, on random inputs.
  uint64_t seed = 1;
  for (const auto& [at, bytes] : trial.inputs)
    PS_TRY(fill_random_device(at, bytes, seed++, stream));
  PS_TRY(trial.legacy(trial.ref));
  PS_TRY(trial.graph(static_cast<size_t>(best), trial.out));
  // The first MiB of the output (the first image's channels, at least one whole image of most
  // layers; a filter gradient whole): a wrong layout or a missing term shows there, and plan
  // time stays small.
  const size_t checked = std::min<size_t>(trial.out_bytes, size_t{1} << 20);
  std::vector<float> got(checked / 4), want(checked / 4);
  PS_TRY(cuda::copy_to_host_async(got.data(), trial.out, checked, stream));
  PS_TRY(cuda::copy_to_host_async(want.data(), trial.ref, checked, stream));
  PS_TRY(stream.synchronize());
  float scale = 0.0f, worst = 0.0f;
  for (size_t i = 0; i < want.size(); ++i) {
    scale = std::max(scale, std::fabs(want[i]));
    const float d = std::fabs(got[i] - want[i]);
    worst = std::isnan(d) ? INFINITY : std::max(worst, d);
  }
  const float tolerance = trial.precision == Precision::kFp32 ? 1e-4f : 2e-2f;
  if (!(worst <= tolerance * std::max(scale, 1e-6f))) {
    v.refused_plan = best;
    v.refusal = str_cat("differs from the legacy call by ", worst, " (outputs up to ", scale, ")");
    return v;
  }
  v.plan = best;
  v.plan_ms = best_ms;
  return v;
}

}  // namespace ps::models::gpu
