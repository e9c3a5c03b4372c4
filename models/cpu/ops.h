// The CPU reference operators: plain C++ implementations of every operator the executor runs,
// used by the CPU executor (whole models, slowly) and as the oracle of the GPU operator tests.
//
// Semantics are ONNX's (opset 13 and later; older attribute forms such as Squeeze's `axes`
// attribute are accepted too) plus our fused operators (docs/operators.md):
//   FusedConv   inputs [X, W, B?, residual?], the Conv attributes plus `activation`
//               ("relu" | "none") and `has_residual` (0 | 1): Y = act(conv(X, W) + B + residual)
//   MatMulBias  inputs [A, B, bias]: Y = MatMul(A, B) + bias (bias over the last dimension)
//   MatMulScale inputs [A, B], attribute `alpha` f: Y = alpha * MatMul(A, B)
//   MatMulTransB inputs [A, B, bias?] with B 2-D [N, K]: Y = MatMul(A, transpose(B)) (+ bias [N]
//               over the last dimension; no attributes)
//   Gelu        Y = 0.5 * x * (1 + erf(x / sqrt(2)))
//   AddLayerNormalization  inputs [A, B, Scale, B?], LayerNormalization's attributes:
//               Y = LayerNormalization(A + B) (the sum rounded to the dtype first; one output)
//   AddSoftmax  inputs [X, M], Softmax's attributes: Y = Softmax(X + M), M broadcast to X's
//               shape (the sum rounded to the dtype first)
//   HeadSlice, AttentionScores, AttentionContext  attention's heads read in place out of a
//               fused projection's product (common/head_slice.h, common/attention.h)
//   FusedAttention  input [X], AttentionScores' attributes and AttentionContext's v_start:
//               Y [B, S, H, D] = AttentionContext(Softmax(AttentionScores(X), last axis), X)
//               (inference; run as those three ops, so its result is theirs to the bit)
// Conventions where the manifest's Attribute cannot carry ONNX's form:
//   Cast's `to` is the ONNX TensorProto.DataType number; ConstantOfShape's `value` is an `f`
//   (floating outputs) or `i` (integer and bool outputs) attribute, the output dtype decides.
// Arithmetic on float32 is done in double and rounded once; reductions (convolution, matrix
// products, sums, means, variances) accumulate in double, so results are at least as accurate
// as an fp32 GPU result. Single-threaded.
#pragma once

#include <google/protobuf/repeated_field.h>

#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "models/cpu/tensor.h"
#include "onnx_loader/psm.pb.h"

namespace ps::models::cpu {

using Attributes = google::protobuf::RepeatedPtrField<pipeswitch::psm::Attribute>;

// Runs operator `op` (ONNX op type, or one of the fused ops above).
// - inputs: in the op's order; a missing optional input is nullptr, and trailing missing ones
//   may be left out. Borrowed for the call.
// - outputs: preallocated by the caller with the dtypes and shapes the importer inferred; a
//   missing optional output is nullptr. Every present output is checked against the shape and
//   dtype the op computes (a mismatch is an error, nothing is written past a buffer).
// - Outputs must not overlap inputs, except that Reshape, Flatten, Squeeze, Unsqueeze, Identity
//   and Dropout may write onto the exact bytes of their input 0 (then nothing is copied).
// Returns OK, or an error whose message starts with the op name and says what is wrong (an
// unsupported attribute value, dtype or rank; shapes that do not fit; an index out of range).
Status run_op(const std::string& op, const Attributes& attrs, std::span<const Tensor* const> inputs,
              std::span<Tensor* const> outputs);

// Like run_op, but the outputs are allocated here, with the dtypes and shapes the op computes
// from its inputs and attributes: one owned tensor per output slot (num_outputs >= 1; every
// slot counts as requested). Where the inputs leave a choice, the ONNX default is taken: pooling
// in ceil mode uses ONNX's output size; ConstantOfShape makes float32 for an `f` value (or
// none) and int64 for an `i` value.
Result<std::vector<Tensor>> run_op_allocating(const std::string& op, const Attributes& attrs,
                                              std::span<const Tensor* const> inputs,
                                              size_t num_outputs);

// True when run_op implements `op`.
bool is_supported(const std::string& op);
// Every op run_op implements, sorted.
std::vector<std::string> supported_ops();

}  // namespace ps::models::cpu
