#include "common/shape.h"

#include <algorithm>

namespace ps {

int64_t element_count(const Shape& shape) {
  int64_t count = 1;
  for (int64_t dim : shape) count *= dim;
  return count;
}

std::string shape_string(const Shape& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i != 0) out += ",";
    out += std::to_string(shape[i]);
  }
  out += "]";
  return out;
}

std::optional<Shape> broadcast_shapes(const Shape& a, const Shape& b, BroadcastMismatch* why) {
  const size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da == db || db == 1) {
      out[i] = da;
    } else if (da == 1) {
      out[i] = db;
    } else {
      if (why != nullptr) *why = BroadcastMismatch{i, da, db};
      return std::nullopt;
    }
  }
  return out;
}

}  // namespace ps
