// Pieces shared by the two halves of the constant evaluator (data movement in
// constant_eval.cc, arithmetic in constant_eval_math.cc). Internal to onnx_loader.
#pragma once

#include <span>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "onnx_loader/graph.h"
#include "onnx_loader/op_context.h"

namespace ps::onnx_loader::eval {

using Outputs = std::vector<TensorData>;
using EvalFunction = Result<Outputs> (*)(const OpContext&, std::span<const OutputType>);

// Elementwise ops, comparisons, Cast, Clip, Range, reductions; nullptr for others.
EvalFunction find_math_function(std::string_view op_type);

// A zero-filled tensor of the given type.
TensorData make_output(const OutputType& type);
// The value of input i. Precondition: known (checked by evaluate_node).
const TensorData& value(const OpContext& ctx, size_t i);

// Row-major strides of `shape`, in elements.
std::vector<int64_t> row_strides(const Shape& shape);
// For each element of a tensor of shape `out` in row-major order, base + sum(index[d] *
// strides[d]): the source element it reads. Broadcasting is a stride of 0, transposing a
// permuted stride, slicing a base offset and scaled strides.
std::vector<int64_t> strided_indices(const Shape& out, std::span<const int64_t> strides,
                                     int64_t base);
// strided_indices for reading `in` broadcast (numpy rules) to `out`.
std::vector<int64_t> broadcast_indices(const Shape& in, const Shape& out);

}  // namespace ps::onnx_loader::eval
