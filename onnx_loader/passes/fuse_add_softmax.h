// Both modes: the additive mask before attention's Softmax taken into it.
//
// Attention is Softmax(scores + mask) along the last axis; the mask ([B, 1, S, S] from a
// training export's folded constant, [B, 1, 1, S] from an inference export's attention_mask)
// broadcasts over the heads. This pass makes the pair one AddSoftmax(scores, mask): the sum
// ([8, 12, 251, 251], 24 MB a layer for BERT-base at batch 8) is neither written nor read
// again; the kernel adds the mask as it loads a row. The backward is Softmax's (from Y); the
// mask takes no gradient (no parameter reaches it: the pass leaves other masks alone).
#pragma once

#include "common/status.h"
#include "onnx_loader/graph.h"

namespace ps::onnx_loader::passes {

// For every live Softmax (axis the last, one output) whose input S comes from a live
// Add(X, M) or Add(M, X) that is S's only reader, where X has S's static shape, M's static
// shape broadcasts to it (numpy rules, rank at most S's), both float32, no parameter
// (pipeline.h's is_parameter) reaches M, and S is not a graph output: replaces both with
// AddSoftmax(X, M) -> Y (the Softmax's attributes) at the Softmax's place. When either addend
// could be M, the second is. Returns the number of fusions.
Result<int> fuse_add_softmax(Graph& graph);

}  // namespace ps::onnx_loader::passes
