// Inference only: attention's scores, Softmax and context as one FusedAttention.
//
// After fuse_attention, BERT's self-attention (without a mask, or once remove_zero_add dropped
// a zero one) is AttentionScores(X) -> Softmax (last axis) -> AttentionContext(P, X), three
// kernels between which the scores and the probabilities ([8, 12, 251, 251], 24 MB each a
// layer for BERT-base at batch 8) are written to memory and read back. This pass makes the
// three one FusedAttention(X) (common/attention.h's geometry; docs/operators.md): the GPU runs
// it as one flash-attention kernel that keeps the scores and the probabilities on chip, the
// CPU as the three ops it replaces (to the bit). Inference only: training's backward wants the
// probabilities. Runs after fuse_attention, whose outputs it matches; a masked Softmax
// (AddSoftmax) is left as it is.
#pragma once

#include "common/status.h"
#include "onnx_loader/graph.h"

namespace ps::onnx_loader::passes {

// For every live Softmax (one input, one output, axis the last of its rank-4 input, -1 by
// default) whose input comes from a live AttentionScores(X) that the Softmax alone reads and
// whose output is read by one live AttentionContext(P, X) alone, as its P, with the same X as
// the scores' (float32 of static rank 3), neither intermediate a graph output, the two nodes'
// heads and size equal, every column range in X and heads of at most
// kFusedAttentionMaxHeadSize (common/attention.h) columns: the three become FusedAttention(X) ->
// the context's output (attributes heads, size, q_start, k_start, alpha from the scores, v_start
// from the context) at the context's place. Returns the number of fusions.
Result<int> fuse_attention_softmax(Graph& graph);

}  // namespace ps::onnx_loader::passes
