#include "models/gpu/dnn_descriptors.h"

#include <array>
#include <limits>

#include "common/shape.h"
#include "cuda/dnn.h"

namespace ps::models::gpu {
namespace {

constexpr int kMaxDims = 8;

Status to_ints(std::span<const int64_t> values, std::string_view what, int* out) {
  if (values.size() > kMaxDims) return unsupported(what, " has ", values.size(), " values");
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i] < 0 || values[i] > std::numeric_limits<int>::max()) {
      return unsupported(what, " value ", values[i], " is outside cuDNN's int range");
    }
    out[i] = static_cast<int>(values[i]);
  }
  return Status::OK();
}

Status check_tensor_dims(std::span<const int64_t> dims) {
  if (dims.size() < 4 || dims.size() > 5) {
    return internal_error("cuDNN tensor descriptors here have 4 or 5 dims, got ", dims.size());
  }
  const Shape shape(dims.begin(), dims.end());
  if (element_count(shape) > std::numeric_limits<int>::max()) {
    return unsupported("tensor ", shape_string(shape), " has more elements than cuDNN's int range");
  }
  return Status::OK();
}

}  // namespace

Result<TensorDesc> make_tensor_desc(std::span<const int64_t> dims) {
  PS_TRY(check_tensor_dims(dims));
  std::array<int, kMaxDims> d{};
  std::array<int, kMaxDims> strides{};
  PS_TRY(to_ints(dims, "tensor dimension", d.data()));
  int stride = 1;
  for (size_t i = dims.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= std::max(d[i], 1);
  }
  cudnnTensorDescriptor_t raw = nullptr;
  CUDNN_TRY(cudnnCreateTensorDescriptor(&raw));
  TensorDesc desc(raw);
  CUDNN_TRY(cudnnSetTensorNdDescriptor(raw, CUDNN_DATA_FLOAT, static_cast<int>(dims.size()),
                                       d.data(), strides.data()));
  return desc;
}

Result<FilterDesc> make_filter_desc(std::span<const int64_t> dims) {
  PS_TRY(check_tensor_dims(dims));
  std::array<int, kMaxDims> d{};
  PS_TRY(to_ints(dims, "filter dimension", d.data()));
  cudnnFilterDescriptor_t raw = nullptr;
  CUDNN_TRY(cudnnCreateFilterDescriptor(&raw));
  FilterDesc desc(raw);
  CUDNN_TRY(cudnnSetFilterNdDescriptor(raw, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW,
                                       static_cast<int>(dims.size()), d.data()));
  return desc;
}

Result<ConvDesc> make_conv_desc(std::span<const int64_t> pads, std::span<const int64_t> strides,
                                std::span<const int64_t> dilations, int64_t group,
                                cudnnMathType_t math) {
  const size_t n = pads.size();
  if (n < 2 || n > 3 || strides.size() != n || dilations.size() != n) {
    return internal_error("convolution descriptor: ", n, " spatial dims");
  }
  std::array<int, kMaxDims> p{}, s{}, d{};
  PS_TRY(to_ints(pads, "pad", p.data()));
  PS_TRY(to_ints(strides, "stride", s.data()));
  PS_TRY(to_ints(dilations, "dilation", d.data()));
  int g = 0;
  PS_TRY(to_ints(std::span<const int64_t>(&group, 1), "group", &g));
  cudnnConvolutionDescriptor_t raw = nullptr;
  CUDNN_TRY(cudnnCreateConvolutionDescriptor(&raw));
  ConvDesc desc(raw);
  CUDNN_TRY(cudnnSetConvolutionNdDescriptor(raw, static_cast<int>(n), p.data(), s.data(), d.data(),
                                            CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  CUDNN_TRY(cudnnSetConvolutionGroupCount(raw, g));
  CUDNN_TRY(cudnnSetConvolutionMathType(raw, math));
  return desc;
}

Result<PoolDesc> make_pool_desc(cudnnPoolingMode_t mode, std::span<const int64_t> window,
                                std::span<const int64_t> pads, std::span<const int64_t> strides) {
  const size_t n = window.size();
  if (n < 2 || n > 3 || pads.size() != n || strides.size() != n) {
    return internal_error("pooling descriptor: ", n, " spatial dims");
  }
  std::array<int, kMaxDims> w{}, p{}, s{};
  PS_TRY(to_ints(window, "window", w.data()));
  PS_TRY(to_ints(pads, "pad", p.data()));
  PS_TRY(to_ints(strides, "stride", s.data()));
  cudnnPoolingDescriptor_t raw = nullptr;
  CUDNN_TRY(cudnnCreatePoolingDescriptor(&raw));
  PoolDesc desc(raw);
  CUDNN_TRY(cudnnSetPoolingNdDescriptor(raw, mode, CUDNN_PROPAGATE_NAN, static_cast<int>(n),
                                        w.data(), p.data(), s.data()));
  return desc;
}

Result<ActivationDesc> make_activation_desc(cudnnActivationMode_t mode) {
  cudnnActivationDescriptor_t raw = nullptr;
  CUDNN_TRY(cudnnCreateActivationDescriptor(&raw));
  ActivationDesc desc(raw);
  CUDNN_TRY(cudnnSetActivationDescriptor(raw, mode, CUDNN_PROPAGATE_NAN, 0.0));
  return desc;
}

}  // namespace ps::models::gpu
