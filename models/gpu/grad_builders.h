// The backward builders behind grad_op_table() (grad_ops.cc), one family per file. Each
// validates the forward spec (with the forward ops' own planning: plan_conv, plan_pool...),
// prepares everything at build time and names what it refuses.
#pragma once

#include "models/gpu/grad_op.h"

namespace ps::models::gpu {

// grad_kernel_ops.cc: our kernels (cuda/kernels/train.cu, reduce.cu, layout.cu).
Result<std::unique_ptr<GpuOp>> build_relu_grad(const GradSpec& spec, const OpEnv& env);
Result<std::unique_ptr<GpuOp>> build_pool_grad(const GradSpec& spec, const OpEnv& env);
Result<std::unique_ptr<GpuOp>> build_global_average_pool_grad(const GradSpec& spec,
                                                              const OpEnv& env);
Result<std::unique_ptr<GpuOp>> build_add_grad(const GradSpec& spec, const OpEnv& env);
Result<std::unique_ptr<GpuOp>> build_reshape_grad(const GradSpec& spec, const OpEnv& env);
Result<std::unique_ptr<GpuOp>> build_concat_grad(const GradSpec& spec, const OpEnv& env);
// grad_conv.cc: cuDNN backward data, filter and bias.
Result<std::unique_ptr<GpuOp>> build_conv_grad(const GradSpec& spec, const OpEnv& env);
// grad_batch_norm.cc: cuDNN batch normalisation backward.
Result<std::unique_ptr<GpuOp>> build_batch_norm_grad(const GradSpec& spec, const OpEnv& env);
// grad_gemm.cc: cuBLAS.
Result<std::unique_ptr<GpuOp>> build_gemm_grad(const GradSpec& spec, const OpEnv& env);
// grad_matmul.cc: cuBLAS strided batches (matmul_grad_plan.h).
Result<std::unique_ptr<GpuOp>> build_matmul_grad(const GradSpec& spec, const OpEnv& env);
// grad_bert_ops.cc: BERT's backward on our kernels (cuda/kernels/train_bert.cu).
Result<std::unique_ptr<GpuOp>> build_unary_grad(const GradSpec& spec, const OpEnv& env);
Result<std::unique_ptr<GpuOp>> build_binary_grad(const GradSpec& spec, const OpEnv& env);
Result<std::unique_ptr<GpuOp>> build_reduce_mean_grad(const GradSpec& spec, const OpEnv& env);
Result<std::unique_ptr<GpuOp>> build_softmax_grad(const GradSpec& spec, const OpEnv& env);
Result<std::unique_ptr<GpuOp>> build_layer_norm_grad(const GradSpec& spec, const OpEnv& env);
Result<std::unique_ptr<GpuOp>> build_gather_grad(const GradSpec& spec, const OpEnv& env);
Result<std::unique_ptr<GpuOp>> build_transpose_grad(const GradSpec& spec, const OpEnv& env);
// head_slice_op.cc: HeadSlice's copy back into its columns of dX (layout.cu's kernels).
Result<std::unique_ptr<GpuOp>> build_head_slice_grad(const GradSpec& spec, const OpEnv& env);
// attention_op.cc: AttentionScores' and AttentionContext's products backward.
Result<std::unique_ptr<GpuOp>> build_attention_grad(const GradSpec& spec, const OpEnv& env);

}  // namespace ps::models::gpu
