// Helpers shared by the dnn operator tests: the CPU tests' attribute builders, tensor specs.
#pragma once

#include <string>
#include <vector>

#include "models/cpu/ops.h"
#include "models/gpu/op.h"
#include "tests/models/cpu_ops_test_util.h"

namespace ps::models::gpu::dnn_test {

using cpu::test::attr_f;
using cpu::test::attr_i;
using cpu::test::attr_ints;
using cpu::test::attr_s;
using cpu::test::attrs;

inline TensorSpec f32(Shape shape) { return TensorSpec{DType::kFloat32, std::move(shape), false}; }

}  // namespace ps::models::gpu::dnn_test
