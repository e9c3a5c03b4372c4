// The builders of the cuDNN and cuBLAS operators, gathered into dnn_op_table() (dnn_ops.cc).
// Each validates its OpSpec, creates its descriptors and chooses its algorithm at plan time;
// errors name what is wrong (the registry prefixes the op and layer name).
#pragma once

#include <memory>

#include "common/status.h"
#include "models/gpu/op.h"

namespace ps::models::gpu {

// Conv, FusedConv (conv_op.cc).
Result<std::unique_ptr<GpuOp>> build_conv(const OpSpec& spec, const OpEnv& env);
// MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool (pool_op.cc).
Result<std::unique_ptr<GpuOp>> build_pool(const OpSpec& spec, const OpEnv& env);
// BatchNormalization, inference form (batch_norm_op.cc).
Result<std::unique_ptr<GpuOp>> build_batch_norm(const OpSpec& spec, const OpEnv& env);
// Gemm (gemm_op.cc).
Result<std::unique_ptr<GpuOp>> build_gemm(const OpSpec& spec, const OpEnv& env);
// MatMul, MatMulBias, MatMulScale (gemm_op.cc).
Result<std::unique_ptr<GpuOp>> build_matmul(const OpSpec& spec, const OpEnv& env);
// AttentionScores, AttentionContext (attention_op.cc: head_gemm.h's pointer-array products).
Result<std::unique_ptr<GpuOp>> build_attention(const OpSpec& spec, const OpEnv& env);

}  // namespace ps::models::gpu
