// Static tensor shapes: the helpers the importer (onnx_loader/) and the CPU operators
// (models/cpu/) both need.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ps {

using Shape = std::vector<int64_t>;

// Number of elements (1 for a scalar). Precondition: no negative dims; no overflow checks
// (callers bound sizes first).
int64_t element_count(const Shape& shape);

// "[8,3,224,224]"
std::string shape_string(const Shape& shape);

// Where two shapes fail to broadcast: the output dimension and the two sizes met there.
struct BroadcastMismatch {
  size_t dimension = 0;
  int64_t a = 0, b = 0;
};

// Numpy-style broadcast of two shapes (aligned from the right, a missing leading dim acts as
// 1), or nullopt when they do not broadcast (then *why, when given, says where).
std::optional<Shape> broadcast_shapes(const Shape& a, const Shape& b,
                                      BroadcastMismatch* why = nullptr);

}  // namespace ps
