// Inference pass: folds a BatchNormalization into the Conv that feeds it.
#pragma once

#include "common/status.h"
#include "onnx_loader/graph.h"

namespace ps::onnx_loader::passes {

// For every live BatchNormalization (inference form: training_mode 0, spatial 1, only its
// first output used) whose input is the output of a live Conv that nothing else reads and that
// is not a graph output, with float32 constant Conv weight/bias and BN scale, B, mean, var:
// rewrites the Conv to   W'[m] = W[m] * s[m],  B'[m] = (B[m] - mean[m]) * s[m] + beta[m],
// s[m] = gamma[m] / sqrt(var[m] + epsilon)   (computed in double), makes the Conv produce the
// BN's output, and marks the BN dead. The folded weights are new constant values (a weight
// shared with another node is never modified). Anything that does not match exactly is left
// unchanged. Returns the number of BatchNormalization nodes folded.
Result<int> fold_batchnorm_into_conv(Graph& graph);

}  // namespace ps::onnx_loader::passes
