// The cuDNN and cuBLAS operators' builder table (sorted by op name; registry.cc checks it).
#include <array>

#include "models/gpu/dnn_builders.h"
#include "models/gpu/op.h"

namespace ps::models::gpu {

std::span<const OpEntry> dnn_op_table() {
  static constexpr std::array<OpEntry, 14> kTable{{
      {"AttentionContext", build_attention},
      {"AttentionScores", build_attention},
      {"AveragePool", build_pool},
      {"BatchNormalization", build_batch_norm},
      {"Conv", build_conv},
      {"FusedConv", build_conv},
      {"Gemm", build_gemm},
      {"GlobalAveragePool", build_pool},
      {"GlobalMaxPool", build_pool},
      {"MatMul", build_matmul},
      {"MatMulBias", build_matmul},
      {"MatMulScale", build_matmul},
      {"MatMulTransB", build_matmul},
      {"MaxPool", build_pool},
  }};
  return kTable;
}

}  // namespace ps::models::gpu
