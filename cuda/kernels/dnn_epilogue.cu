// Small kernels around the cuDNN and cuBLAS operators (models/gpu/conv_op.cc, gemm_op.cc):
// a convolution epilogue (bias, residual, ReLU) where cuDNN's fused call does not fit, and the
// broadcast copy of Gemm's C into the output before a beta-scaled matrix product.
#include <cstdint>

namespace dnn_epilogue {

__device__ inline uint64_t thread_index() {
  return static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline uint64_t grid_stride() { return static_cast<uint64_t>(gridDim.x) * blockDim.x; }

}  // namespace dnn_epilogue

// y = act(y + bias[c] + residual) over y [N, channels, inner] contiguous (total elements);
// bias (length channels) and residual (y's shape) may be null; relu != 0 applies max(v, 0).
extern "C" __global__ void ps_dnn_bias_residual_act_f32(float* y, const float* bias,
                                                        const float* residual, uint64_t total,
                                                        uint64_t inner, uint64_t channels,
                                                        uint32_t relu) {
  for (uint64_t i = dnn_epilogue::thread_index(); i < total; i += dnn_epilogue::grid_stride()) {
    float v = y[i];
    if (bias != nullptr) v += bias[(i / inner) % channels];
    if (residual != nullptr) v += residual[i];
    if (relu != 0u && v < 0.0f) v = 0.0f;  // NaN stays NaN, as in the CPU reference
    y[i] = v;
  }
}

// dst[r, c] = src[r * row_stride + c * col_stride] for a contiguous dst [rows, cols]; strides
// are in elements, 0 for a broadcast dimension.
extern "C" __global__ void ps_dnn_broadcast_2d_f32(float* dst, const float* src, uint64_t rows,
                                                   uint64_t cols, int64_t row_stride,
                                                   int64_t col_stride) {
  const uint64_t total = rows * cols;
  for (uint64_t i = dnn_epilogue::thread_index(); i < total; i += dnn_epilogue::grid_stride()) {
    const uint64_t r = i / cols;
    const uint64_t c = i - r * cols;
    dst[i] = src[static_cast<int64_t>(r) * row_stride + static_cast<int64_t>(c) * col_stride];
  }
}
