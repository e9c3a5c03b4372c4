// Helpers for [gpu] test cases.
//
// PS_REQUIRE_GPU() at the top of a [gpu] TEST_CASE returns early, printing "GPU-SKIP: <why>",
// when no driver or no GPU is present; ctest turns that line into a "skipped" result
// (tests/CMakeLists.txt), so a machine without a GPU reports the case as skipped, not passed.
#pragma once

#include <cstdio>

#include "cuda/driver.h"

#define PS_REQUIRE_GPU()                                                         \
  do {                                                                           \
    auto ps_driver_ = ::ps::cuda::load_driver();                                 \
    if (!ps_driver_.ok()) {                                                      \
      std::printf("GPU-SKIP: %s\n", ps_driver_.status().message().c_str());      \
      std::fflush(stdout);                                                       \
      return;                                                                    \
    }                                                                            \
    if (!::ps::cuda::gpu_available()) {                                          \
      std::printf("GPU-SKIP: no CUDA device visible\n");                         \
      std::fflush(stdout);                                                       \
      return;                                                                    \
    }                                                                            \
  } while (0)
