#include "common/head_slice.h"

namespace ps {
namespace {

std::vector<int64_t> row_major(const Shape& shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (size_t d = shape.size(); d-- > 1;) strides[d - 1] = strides[d] * shape[d];
  return strides;
}

}  // namespace

Result<HeadSliceLayout> head_slice_layout(const Shape& x, int64_t start, int64_t size,
                                          int64_t heads, std::span<const int64_t> perm) {
  if (x.empty()) return invalid_argument("HeadSlice: X must have rank 1 or more");
  const int64_t columns = x.back();
  if (start < 0 || size < 1 || start > columns - size) {
    return invalid_argument("HeadSlice: columns [", start, ", ", start + size, ") do not fit X ",
                            shape_string(x));
  }
  if (heads < 1 || size % heads != 0) {
    return invalid_argument("HeadSlice: ", heads, " heads do not divide ", size, " columns");
  }
  const size_t rank = x.size() + 1;
  if (perm.size() != rank) {
    return invalid_argument("HeadSlice: perm ", shape_string(Shape(perm.begin(), perm.end())),
                            " does not have ", rank, " axes");
  }
  std::vector<bool> seen(rank, false);
  for (int64_t p : perm) {
    if (p < 0 || p >= static_cast<int64_t>(rank) || seen[static_cast<size_t>(p)]) {
      return invalid_argument("HeadSlice: perm ", shape_string(Shape(perm.begin(), perm.end())),
                              " is not a permutation of ", rank, " axes");
    }
    seen[static_cast<size_t>(p)] = true;
  }
  HeadSliceLayout l;
  l.sliced.assign(x.begin(), x.end() - 1);
  l.sliced.push_back(heads);
  l.sliced.push_back(size / heads);
  l.sliced_x_strides = row_major(x);
  l.sliced_x_strides.back() = size / heads;  // the heads axis
  l.sliced_x_strides.push_back(1);
  l.x_base = start;
  for (int64_t p : perm) {
    l.y.push_back(l.sliced[static_cast<size_t>(p)]);
    l.x_strides.push_back(l.sliced_x_strides[static_cast<size_t>(p)]);
  }
  const std::vector<int64_t> y_strides = row_major(l.y);
  l.sliced_y_strides.assign(rank, 0);
  for (size_t d = 0; d < rank; ++d) l.sliced_y_strides[static_cast<size_t>(perm[d])] = y_strides[d];
  return l;
}

}  // namespace ps
