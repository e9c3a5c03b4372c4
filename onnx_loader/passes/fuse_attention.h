// Both modes: attention's two batched products reading the heads in place.
//
// After fuse_head_projections, BERT's self-attention reads its query, key and value through
// three HeadSlice copies of the fused projection's product X [B, S, C], multiplies Q K^T (times
// head_size^-0.5 after fuse_matmul_scale), and after the Softmax multiplies P V and transposes
// the context back to [B, S, H, D]. The copies and the Transpose only move data: BERT-base at
// batch 8 moves four [8, 251, 768] tensors a layer (about 6 MB each) there and back again in
// the backward. This pass makes the two products read X where the heads are
// (common/attention.h):
//   AttentionScores(X; heads, size, q_start, k_start, alpha)   for HeadSlice q, HeadSlice k and
//                                                              the MatMulScale (or MatMul)
//   AttentionContext(P, X; heads, size, v_start)               for HeadSlice v, the MatMul and
//                                                              the Transpose
// Their gradients write X's gradient in their own columns, as the HeadSlices' did. No parameter
// is involved. Runs after fuse_head_projections, fuse_matmul_scale and fuse_add_softmax, whose
// outputs it matches.
#pragma once

#include "common/status.h"
#include "onnx_loader/graph.h"

namespace ps::onnx_loader::passes {

// Scores: every live MatMulScale (alpha its attribute) or MatMul (alpha 1) -> Y whose A is the
// output of a live HeadSlice(X) with perm [0, 2, 1, 3] and whose B that of a live HeadSlice of
// the same X with perm [0, 2, 3, 1], both with the same heads and size, each slice's output
// read by that product alone and not a graph output, X float32 of static rank 3 [B, S, C]:
// the three become AttentionScores(X) -> Y at the product's place.
// Context: every live Transpose with perm [0, 2, 1, 3] whose input comes from a live
// MatMul(P, V) that the Transpose alone reads, with V the output of a live HeadSlice(X) with
// perm [0, 2, 1, 3] that the MatMul alone reads, X as above and P of static shape [B, H, M, S]
// (X's B and S, the slice's heads): the three become AttentionContext(P, X) -> the
// Transpose's output, at its place. Returns the number of nodes made (scores and contexts).
Result<int> fuse_attention(Graph& graph);

}  // namespace ps::onnx_loader::passes
