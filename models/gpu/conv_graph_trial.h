// Plan-time choice between a convolution's legacy cuDNN call and the plans of a ConvGraph
// (conv_graph.h), shared by the forward (conv_op.cc) and the backward (grad_conv.cc): each
// candidate is timed back to back on the plan stream (so a host-bound call shows its host
// time), and the fastest graph plan is kept only if it beats the legacy call and computes what
// the legacy call computes on random inputs (1e-4 of the output's largest magnitude in fp32,
// 2e-2 in TF32, over its first MiB). Plan time only: it synchronises.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "cuda/driver.h"
#include "cuda/stream.h"
#include "models/gpu/op.h"

namespace ps::models::gpu {

struct GraphTrial {
  const cuda::Stream* stream = nullptr;
  Precision precision = Precision::kFp32;
  size_t plans = 0;  // graph plans 0 .. plans - 1
  // Queue the legacy call / graph plan `plan`, writing the output at `out`.
  std::function<Status(CUdeviceptr out)> legacy;
  std::function<Status(size_t plan, CUdeviceptr out)> graph;
  // The inputs both read, filled with random floats before the check: (address, bytes).
  std::vector<std::pair<CUdeviceptr, size_t>> inputs;
  CUdeviceptr out = 0, ref = 0;  // where the graph plan and the legacy call write
  size_t out_bytes = 0;
};

struct GraphVerdict {
  int64_t plan = -1;  // the graph plan to run; -1: the legacy call
  float legacy_ms = 0.0f, plan_ms = 0.0f;
  // Set when the fastest plan computed something else (a cuDNN bug or a layout mismatch):
  // the legacy call it is, and the caller should not cache that as a decision.
  std::string refusal;
  int64_t refused_plan = -1;
};

// Times trial.legacy and every graph plan, checks the fastest plan if it wins.
Result<GraphVerdict> try_graph_plans(const GraphTrial& trial);

// Fills `bytes` (a multiple of 4) at `dst` with uniform floats in (-1, 1] from `seed`. One
// block of up to 1 MiB is made on the host and repeated by doubling device copies, so a 25 MB
// activation costs microseconds of host work, not a pass.
Status fill_random_device(CUdeviceptr dst, size_t bytes, uint64_t seed, const cuda::Stream& stream);

}  // namespace ps::models::gpu
