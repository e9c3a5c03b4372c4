// Per-op shape functions, split by family. Internal to onnx_loader: use shape_inference.h.
#pragma once

#include <string_view>
#include <vector>

#include "common/status.h"
#include "onnx_loader/op_context.h"

namespace ps::onnx_loader {

using ShapeFunction = Result<std::vector<OutputType>> (*)(const OpContext&);

// The result of a shape function with one output.
inline std::vector<OutputType> one_output(DType dtype, Shape shape) {
  return {OutputType{dtype, std::move(shape)}};
}

// Elementwise, comparison, casts, and the data movement / shape arithmetic ops
// (shape_functions_tensor.cc). nullptr when the op is not one of them.
ShapeFunction find_tensor_shape_function(std::string_view op_type);
// Convolution, pooling, normalisation, matrix products, softmax (shape_functions_nn.cc).
ShapeFunction find_nn_shape_function(std::string_view op_type);

}  // namespace ps::onnx_loader
