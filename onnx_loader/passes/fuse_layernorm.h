// Inference pass: recognises the decomposed layer normalisation PyTorch exports at opset < 17.
#pragma once

#include "common/status.h"
#include "onnx_loader/graph.h"

namespace ps::onnx_loader::passes {

// Matches, with every intermediate value read only inside the pattern and not a graph output:
//   m = ReduceMean(x)            axes = [-1] or [rank-1] (attribute, or constant input at
//   d = Sub(x, m)                opset >= 18), keepdims 1
//   p = Pow(d, 2)                exponent a scalar constant equal to 2
//   v = ReduceMean(p)            same axes rule
//   e = Add(v, eps)  or Add(eps, v)   eps a positive scalar constant
//   s = Sqrt(e)
//   n = Div(d, s)
//   g = Mul(n, gamma) or Mul(gamma, n)   gamma a constant of shape [N], N = x.shape[-1]
//   y = Add(g, beta)  or Add(beta, g)    beta likewise
// and replaces it with LayerNormalization(x, gamma, beta) -> y, attrs axis -1, epsilon eps,
// at the final Add's place. d is read by Pow and Div only. Returns the number replaced.
Result<int> fuse_layernorm(Graph& graph);

}  // namespace ps::onnx_loader::passes
