// Plan-time timing of candidate implementations (cuDNN modes, cuBLASLt algorithms) on the
// plan stream. Plan time only: it synchronises.
#pragma once

#include "common/status.h"
#include "cuda/stream.h"

namespace ps::models::gpu {

// Runs `enqueue` once (warm-up: a failure is returned as is, so callers learn whether the
// candidate works at all), then `reps` more times between two timing events on `stream`, and
// returns the mean milliseconds per run. `enqueue` queues its work on `stream`.
template <typename Enqueue>
Result<float> time_candidate(const cuda::Stream& stream, int reps, Enqueue&& enqueue);

}  // namespace ps::models::gpu

#include "cuda/event.h"

namespace ps::models::gpu {

template <typename Enqueue>
Result<float> time_candidate(const cuda::Stream& stream, int reps, Enqueue&& enqueue) {
  PS_TRY(enqueue());
  PS_TRY(stream.synchronize());
  PS_ASSIGN_OR_RETURN(cuda::Event start, cuda::Event::create(true));
  PS_ASSIGN_OR_RETURN(cuda::Event end, cuda::Event::create(true));
  PS_TRY(start.record(stream));
  for (int i = 0; i < reps; ++i) PS_TRY(enqueue());
  PS_TRY(end.record(stream));
  PS_TRY(end.synchronize());
  PS_ASSIGN_OR_RETURN(const float ms, cuda::Event::elapsed_ms(start, end));
  return ms / static_cast<float>(reps > 0 ? reps : 1);
}

}  // namespace ps::models::gpu
