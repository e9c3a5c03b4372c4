// Inference pass: Conv (+ residual Add) (+ Relu) -> one "FusedConv" node.
#pragma once

#include "common/status.h"
#include "onnx_loader/graph.h"

namespace ps::onnx_loader::passes {

// For every live Conv (explicit padding: auto_pad absent or NOTSET; static weight shape)
// followed by
//   Add(conv_out, R) where R is another activation (not a constant) of the same dtype and
//   shape as conv_out, optionally then Relu; or
//   Relu alone,
// where every intermediate value is read only by the next node of the pattern and is not a
// graph output: replaces the pattern with one node
//   FusedConv(X, W, B?, R?) attrs: the Conv's (kernel_shape, pads, strides, dilations and
//   group, with ONNX defaults written out), activation "relu"|"none", has_residual 0|1.
// B is present whenever R is (a zero bias is added when the Conv had none), so inputs keep
// their positions. When both Add inputs come from fusable Convs, the later Conv is fused and
// the earlier one's output is the residual. The fused node takes the place of the last node
// of the pattern in the order. A Conv followed by neither stays a Conv. Returns the number of
// FusedConv nodes made.
Result<int> fuse_conv_activation(Graph& graph);

}  // namespace ps::onnx_loader::passes
