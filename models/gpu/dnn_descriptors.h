// Move-only owners of the cuDNN descriptors the cuDNN operators hold from plan time on, and
// the factories that fill them from int64 shapes (checked against cuDNN's int limits).
#pragma once

#include <cudnn.h>

#include <cstdint>
#include <span>

#include "common/status.h"
#include "cuda/handle.h"

namespace ps::models::gpu {

namespace dnn_detail {
struct DestroyTensor {
  void operator()(cudnnTensorDescriptor_t d) const { cudnnDestroyTensorDescriptor(d); }
};
struct DestroyFilter {
  void operator()(cudnnFilterDescriptor_t d) const { cudnnDestroyFilterDescriptor(d); }
};
struct DestroyConvolution {
  void operator()(cudnnConvolutionDescriptor_t d) const { cudnnDestroyConvolutionDescriptor(d); }
};
struct DestroyPooling {
  void operator()(cudnnPoolingDescriptor_t d) const { cudnnDestroyPoolingDescriptor(d); }
};
struct DestroyActivation {
  void operator()(cudnnActivationDescriptor_t d) const { cudnnDestroyActivationDescriptor(d); }
};
}  // namespace dnn_detail

using TensorDesc = cuda::UniqueHandle<cudnnTensorDescriptor_t, dnn_detail::DestroyTensor>;
using FilterDesc = cuda::UniqueHandle<cudnnFilterDescriptor_t, dnn_detail::DestroyFilter>;
using ConvDesc = cuda::UniqueHandle<cudnnConvolutionDescriptor_t, dnn_detail::DestroyConvolution>;
using PoolDesc = cuda::UniqueHandle<cudnnPoolingDescriptor_t, dnn_detail::DestroyPooling>;
using ActivationDesc =
    cuda::UniqueHandle<cudnnActivationDescriptor_t, dnn_detail::DestroyActivation>;

// A contiguous (row-major) float32 tensor of `dims` (4 or 5 of them). Errors: kUnsupported
// when a dimension or the element count exceeds cuDNN's int range; kDevice from cuDNN.
Result<TensorDesc> make_tensor_desc(std::span<const int64_t> dims);

// A float32 KCRS(T) filter of `dims` (4 or 5).
Result<FilterDesc> make_filter_desc(std::span<const int64_t> dims);

// A cross-correlation (what ONNX calls convolution) over 2 or 3 spatial dimensions with fp32
// accumulation, `group` groups and `math` (CUDNN_FMA_MATH or CUDNN_TENSOR_OP_MATH).
Result<ConvDesc> make_conv_desc(std::span<const int64_t> pads, std::span<const int64_t> strides,
                                std::span<const int64_t> dilations, int64_t group,
                                cudnnMathType_t math);

// A pooling window over 2 or 3 spatial dimensions, NaN propagating.
Result<PoolDesc> make_pool_desc(cudnnPoolingMode_t mode, std::span<const int64_t> window,
                                std::span<const int64_t> pads, std::span<const int64_t> strides);

// ReLU (or identity), NaN propagating.
Result<ActivationDesc> make_activation_desc(cudnnActivationMode_t mode);

}  // namespace ps::models::gpu
