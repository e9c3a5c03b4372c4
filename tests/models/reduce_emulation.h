// Runs cuda/kernels/reduce.cu's ps_reduce_f32 for a plan under the host emulation
// (kernel_emulation.h) in the plan's mode: threads one after another, warps or column tiles
// cooperatively (blocks capped at 4 warps: each emulated thread is a std::thread; the kernels
// take any multiple of 32). Include after kernel_emulation.h; the kernel itself is compiled in
// one translation unit of the test (the one that includes reduce.cu).
#pragma once

#include <algorithm>

#include "cuda/kernels/kernel_params.h"
#include "models/gpu/index_plan.h"
#include "models/gpu/kernel_op_util.h"

extern "C" void ps_reduce_f32(const float* x, float* y, ps::kernels::ReduceParams p, int32_t mode);

namespace ps::models::gpu {

inline void emu_reduce(const float* from, float* to, const ReducePlan& plan) {
  const auto mode = static_cast<int32_t>(plan.mode);
  auto kernel = [&] { ps_reduce_f32(from, to, plan.params, mode); };
  switch (plan.mode) {
    case ReduceMode::kThreadPerOutput:
      emu_launch(EmuDim{3}, EmuDim{256}, kernel, /*cooperative=*/false);
      break;
    case ReduceMode::kWarpPerOutput:
      emu_launch(EmuDim{2}, EmuDim{64}, kernel);
      break;
    case ReduceMode::kColumnTiles:
      emu_launch(EmuDim{2}, EmuDim{std::min(reduce_launch_shape(plan).block, 128u)}, kernel);
      break;
  }
}

}  // namespace ps::models::gpu
