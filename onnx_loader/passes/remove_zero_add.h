// Add of a constant that is zero everywhere -> nothing. Hugging Face's BERT, exported without
// an attention mask, adds (1 - ones) * finfo.min = -0.0 to every attention score tensor:
// twelve 24 MB passes over memory for a batch of 8 at sequence 251 that change no value (and,
// joined to the Softmax as AddSoftmax, a 2 MB mask read once per head: 40 us a layer forward
// against the plain Softmax's 32 in the same H100 profile, session 24). Both modes; training
// keeps an Add of a parameter (a freshly initialised bias is zero, and is trained).
#pragma once

#include "common/status.h"
#include "onnx_loader/graph.h"

namespace ps::onnx_loader::passes {

// For every live Add(X, C) or Add(C, X) -> Y where C is a constant of Y's dtype whose every
// element is +0 or -0 (any float or integer dtype), X has Y's static shape (C does not
// broadcast X to a larger shape) and Y is not a graph output: Y's readers read X instead and
// the Add is dead. Exact for every X when C is -0 (x + -0 == x, bit for bit); a +0 turns an X
// of -0 into +0, a difference only a division by that zero could see. Returns the number of
// Adds removed.
Result<int> remove_zero_add(Graph& graph);
// The same but for a C that pipeline.h's is_parameter calls a parameter or buffer: that Add
// stays (training).
Result<int> remove_zero_add_keeping_parameters(Graph& graph);

// Whether every element of `data` is zero of either sign (false for an empty tensor, bool and
// string dtypes).
bool is_all_zero(const TensorData& data);

}  // namespace ps::onnx_loader::passes
