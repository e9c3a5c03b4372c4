// Training pass: gives every use of a shared float parameter its own copy.
//
// PyTorch's TorchScript exporter merges initializers whose VALUES are equal when it exports a
// model in eval mode: a freshly initialised ResNet152's BatchNorm scales (all ones), biases,
// running means (zeros) and running variances (ones) of one width become ONE tensor read by
// dozens of layers, as scale of some and running variance of others. For inference that is
// harmless. For training it is wrong twice: the trainer updates running statistics in place
// (so one layer's update rewrote the others' scales: ResNet152's loss was NaN at step 0), and
// separate parameters of the PyTorch model would be trained as one tied parameter.
//
// So in training mode every float parameter (is_parameter) read by more than one (node, input)
// use keeps its value for the first use and each later use reads a copy, a new weight value
// named "<name>@<node name>" (the same constant bytes; the package stores each copy). Weights
// a model really ties (an embedding shared with a decoder) are untied too: the ONNX file cannot
// tell the two apart, and PyTorch's exports of the models we train tie nothing.
#pragma once

#include "common/status.h"
#include "onnx_loader/graph.h"

namespace ps::onnx_loader::passes {

// Returns the number of copies made.
Result<int> untie_parameters(Graph& graph);

}  // namespace ps::onnx_loader::passes
