// Backward CPU reference operators: the gradients of the layers a training-mode manifest of
// the tiny zoo models holds (Conv, BatchNormalization in training mode, Relu, MaxPool,
// AveragePool, GlobalAveragePool, Add, Flatten/Reshape, Gemm, Concat; for BERT also MatMul,
// MatMulTransB (nn.Linear as PyTorch exports it for training, fused by the importer),
// LayerNormalization, Softmax, Gather, Transpose, Sub/Mul/Div/Pow, Erf, Tanh, Sqrt,
// ReduceMean), and softmax cross-entropy. They are the oracle for the GPU gradients (issue 7) and
// the engine of the CPU trainer (models/cpu/trainer.h).
//
// Every tensor here is float64 (the trainer keeps its whole state in double); a float32 input
// is an error naming it. `attrs` are the layer's attributes as the forward op reads them (ONNX
// defaults when absent). `dy` is the gradient of the loss with respect to the layer's output
// and has the output's shape. Results are owned tensors. Single-threaded, deterministic.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "models/cpu/ops.h"
#include "models/cpu/tensor.h"

namespace ps::models::cpu {

// grad_conv.cc: Conv (no FusedConv), 1-3 spatial dims, groups, strides, pads (or auto_pad),
// dilations. db is empty (undefined dtype) when has_bias is false.
struct ConvGrads {
  Tensor dx, dw, db;
};
Result<ConvGrads> conv_backward(const Attributes& attrs, const Tensor& x, const Tensor& w,
                                bool has_bias, const Tensor& dy);

// grad_batch_norm.cc: BatchNormalization in training mode over X [N, C, ...] per channel.
// What the forward keeps for the backward: the batch mean and 1 / sqrt(var + eps) (biased
// variance), and the unbiased batch variance for the running statistics.
struct BatchNormSaved {
  std::vector<double> mean, inv_std, unbiased_var;
};
// y = (x - mean) * inv_std * scale + bias with the batch's statistics. Errors: not [N, C, ...],
// parameters not [C], fewer than 2 values per channel (no unbiased variance).
Result<Tensor> batch_norm_train_forward(const Tensor& x, const Tensor& scale, const Tensor& bias,
                                        double epsilon, BatchNormSaved* saved);
// PyTorch's running-statistics update with the ONNX momentum m (PyTorch's is 1 - m):
// running_mean = m * running_mean + (1 - m) * mean; running_var likewise with the unbiased
// variance. Both are float64 [C], updated in place.
Status batch_norm_update_running(const BatchNormSaved& saved, double momentum, Tensor& running_mean,
                                 Tensor& running_var);
struct BatchNormGrads {
  Tensor dx, dscale, dbias;
};
Result<BatchNormGrads> batch_norm_backward(const Tensor& x, const Tensor& scale,
                                           const BatchNormSaved& saved, const Tensor& dy);

// grad_pool.cc. The output's spatial sizes are dy's (so PyTorch's clipped ceil-mode size is
// handled as the forward handled it). MaxPool sends each output's gradient to the first
// maximum of its window in row-major order (the forward's choice); padding never wins.
Result<Tensor> max_pool_backward(const Attributes& attrs, const Tensor& x, const Tensor& dy);
Result<Tensor> average_pool_backward(const Attributes& attrs, const Tensor& x, const Tensor& dy);
Result<Tensor> global_average_pool_backward(const Tensor& x, const Tensor& dy);

// grad_elementwise.cc.
// Relu: dx = dy where x > 0, else 0.
Result<Tensor> relu_backward(const Tensor& x, const Tensor& dy);
// The gradient of an input of shape `shape` that was numpy-broadcast to dy's shape: dy summed
// over the broadcast dimensions. Error when `shape` does not broadcast to dy's.
Result<Tensor> reduce_to_shape(const Tensor& dy, const Shape& shape);
// Flatten, Reshape (and any view): dy with the input's shape.
Result<Tensor> reshape_backward(const Shape& input_shape, const Tensor& dy);
// Concat along `axis` (attribute): dy split into pieces of the inputs' shapes.
Result<std::vector<Tensor>> concat_backward(const Attributes& attrs,
                                            std::span<const Shape> input_shapes, const Tensor& dy);
// Add, Sub, Mul, Div, Pow (`op`) with numpy broadcasting: each input's gradient reduced to its
// shape. Pow's dB is dY * A^B * ln A where A > 0 and 0 elsewhere (ln A undefined there).
struct BinaryGrads {
  Tensor da, db;
};
Result<BinaryGrads> binary_backward(const std::string& op, const Tensor& a, const Tensor& b,
                                    const Tensor& dy);
// Expand: dY reduced to the input's shape (reduce_to_shape).
Result<Tensor> expand_backward(const Shape& input_shape, const Tensor& dy);
// Transpose with `perm` (attribute; default reversed axes): dY transposed by the inverse perm.
Result<Tensor> transpose_backward(const Attributes& attrs, const Tensor& dy);
// HeadSlice (common/head_slice.h) of an X of `x_shape`: dX zeros but for its slice, where
// dY goes back to the element it was read from.
Result<Tensor> head_slice_backward(const Attributes& attrs, const Shape& x_shape, const Tensor& dy);
// ReduceMean over `axes` (attribute, or input 1 as `axes_input`; all axes when absent unless
// noop_with_empty_axes) with keepdims (default 1): dY / count spread over the reduced axes.
Result<Tensor> reduce_mean_backward(const Attributes& attrs, std::span<const int64_t> axes_input,
                                    const Shape& input_shape, const Tensor& dy);

// grad_unary.cc: Erf (2/sqrt(pi) exp(-x^2)), Tanh (1 - tanh^2 x), Sqrt (0.5 / sqrt x), Gelu
// (erf form: 0.5 (1 + erf(x/sqrt2)) + x exp(-x^2/2) / sqrt(2 pi)), Neg (-1), Exp (exp x),
// Cast/Identity float to float (1): dX = dY * f'(X). `op` names the forward op.
Result<Tensor> unary_backward(const std::string& op, const Tensor& x, const Tensor& dy);

// grad_matmul.cc: MatMul with numpy semantics (1-D operands promoted and the added dims
// dropped, batch dims broadcast): dA = dY B^T, dB = A^T dY per batch, each summed over the
// batch dims its operand was broadcast on.
struct MatMulGrads {
  Tensor da, db;
};
Result<MatMulGrads> matmul_backward(const Tensor& a, const Tensor& b, const Tensor& dy);
// MatMulTransB: A [..., M, K] (1-D: [K]), B 2-D [N, K], Y = matmul(A, B^T) [..., M, N]:
// dA = dY B with A's shape, dB = dY^T A summed over every row of A, with B's shape [N, K].
Result<MatMulGrads> matmul_trans_b_backward(const Tensor& a, const Tensor& b, const Tensor& dy);
// MatMulScale: Y = alpha * matmul(A, B) (the importer's fuse_matmul_scale: attention's scores
// times head_size^-0.5): matmul_backward's gradients times alpha.
Result<MatMulGrads> matmul_scale_backward(const Tensor& a, const Tensor& b, const Tensor& dy,
                                          double alpha);

// grad_attention.cc: AttentionScores and AttentionContext (common/attention.h), composed of the
// backward operators of the ops each replaces (so their gradients are the unfused layers').
// AttentionScores of X [B, S, C]: dX, Q's and K's gradients in their columns (summed where the
// two ranges overlap), zeros elsewhere.
Result<Tensor> attention_scores_backward(const Attributes& attrs, const Tensor& x,
                                         const Tensor& dy);
// AttentionContext(P, X): dP, and dX with V's gradient in its columns, zeros elsewhere.
struct AttentionContextGrads {
  Tensor dp, dx;
};
Result<AttentionContextGrads> attention_context_backward(const Attributes& attrs, const Tensor& p,
                                                         const Tensor& x, const Tensor& dy);

// grad_layer_norm.cc: LayerNormalization over the axes from `axis` (attribute, default -1) to
// the last, with `epsilon` (default 1e-5, the float attribute as the forward reads it); the
// statistics are recomputed from X. dscale and dbias have scale's and bias's shapes (broadcast
// to the normalized shape as the forward does); dbias is empty when bias_shape is null.
struct LayerNormGrads {
  Tensor dx, dscale, dbias;
};
Result<LayerNormGrads> layer_norm_backward(const Attributes& attrs, const Tensor& x,
                                           const Tensor& scale, const Shape* bias_shape,
                                           const Tensor& dy);

// grad_softmax.cc: Softmax along `axis` (attribute, default -1) from its output Y:
// dX = Y * (dY - sum_axis(dY * Y)).
Result<Tensor> softmax_backward(const Attributes& attrs, const Tensor& y, const Tensor& dy);

// grad_gather.cc: Gather along `axis` (attribute, default 0): dData (of data_shape) is the
// scatter-add of dY's slices to the rows the indices (int64 or int32, negatives wrap) picked,
// so a repeated index accumulates (an embedding table's gradient). No gradient to indices.
Result<Tensor> gather_backward(const Attributes& attrs, const Shape& data_shape,
                               const Tensor& indices, const Tensor& dy);

// grad_gemm.cc: Y = alpha * A' B' + beta * C (A' = A or A^T by transA, B' likewise). dc is
// empty when c_shape is null (no C).
struct GemmGrads {
  Tensor da, db, dc;
};
Result<GemmGrads> gemm_backward(const Attributes& attrs, const Tensor& a, const Tensor& b,
                                const Shape* c_shape, const Tensor& dy);

// grad_loss.cc: softmax cross-entropy, mean over the batch. logits [N, K] float64, labels N
// values in [0, K). Returns the loss and sets *dlogits (allocated here) to its gradient
// (softmax - onehot) / N. Errors: shapes, a label out of range, N = 0.
Result<double> softmax_cross_entropy(const Tensor& logits, std::span<const int64_t> labels,
                                     Tensor* dlogits);

}  // namespace ps::models::cpu
