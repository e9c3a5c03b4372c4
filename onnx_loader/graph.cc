#include "onnx_loader/graph.h"

namespace ps::onnx_loader {
// Implemented by the import work (issue 3).
}  // namespace ps::onnx_loader
