// Inference pass: recognises the exact (erf) GELU in the forms exporters emit.
#pragma once

#include "common/status.h"
#include "onnx_loader/graph.h"

namespace ps::onnx_loader::passes {

// Matches y = x * 0.5 * (1 + Erf(x / sqrt(2))) built as
//   u = Div(x, c) with c = sqrt(2), or Mul(x, c) / Mul(c, x) with c = 1/sqrt(2)
//   e = Erf(u);  p = Add(e, 1) or Add(1, e)
// followed by one of (each Mul in either operand order)
//   Mul(Mul(x, p), 0.5)        (PyTorch's symbolic gelu, HF BERT)
//   Mul(x, Mul(p, 0.5))
//   Mul(Mul(x, 0.5), p)        where Mul(x, 0.5) is read only by the final Mul
// with scalar constants within 1e-5 (relative) of their exact values and every intermediate
// value read only inside the pattern and not a graph output. Replaces it with
// Gelu(x) -> y, attribute approximate "none", at the final Mul's place. Returns the count.
Result<int> fuse_gelu(Graph& graph);

}  // namespace ps::onnx_loader::passes
