// The HeadSlice geometry against its definition (slice the last axis, reshape, transpose)
// computed element by element, and its argument checks.
#include "common/head_slice.h"

#include <catch2/catch.hpp>

namespace ps {
namespace {

int64_t offset_of(const std::vector<int64_t>& index, const std::vector<int64_t>& strides,
                  int64_t base) {
  for (size_t d = 0; d < index.size(); ++d) base += index[d] * strides[d];
  return base;
}

// Walks every index of `shape` in row-major order.
template <typename F>
void for_each_index(const Shape& shape, F f) {
  std::vector<int64_t> index(shape.size(), 0);
  for (int64_t n = element_count(shape); n > 0; --n) {
    f(index);
    for (size_t d = shape.size(); d-- > 0;) {
      if (++index[d] < shape[d]) break;
      index[d] = 0;
    }
  }
}

TEST_CASE("head_slice_layout: BERT's query, key and value heads of a fused projection",
          "[common]") {
  const Shape x{2, 5, 3 * 12};  // [batch, seq, 3 * heads * head_size], heads 3, head_size 4
  struct Case {
    int64_t start;
    std::vector<int64_t> perm;
  };
  for (const Case& c : {Case{0, {0, 2, 1, 3}}, Case{12, {0, 2, 3, 1}}, Case{24, {0, 2, 1, 3}}}) {
    auto l = head_slice_layout(x, c.start, 12, 3, c.perm);
    REQUIRE(l.ok());
    const Shape sliced{2, 5, 3, 4};
    CHECK(l->sliced == sliced);
    Shape y;
    for (int64_t p : c.perm) y.push_back(sliced[static_cast<size_t>(p)]);
    CHECK(l->y == y);
    // Definition: Y[i] = X[b, s, start + h * 4 + d] where (b, s, h, d)[perm[k]] = i[k].
    int64_t flat = 0;
    for_each_index(l->y, [&](const std::vector<int64_t>& i) {
      std::vector<int64_t> s(4);
      for (size_t k = 0; k < 4; ++k) s[static_cast<size_t>(c.perm[k])] = i[k];
      const int64_t want = (s[0] * 5 + s[1]) * 36 + c.start + s[2] * 4 + s[3];
      CHECK(offset_of(i, l->x_strides, l->x_base) == want);
      ++flat;
    });
    CHECK(flat == element_count(l->y));
    // The X-order walk reaches the same pairs: X offset and Y's row-major offset.
    for_each_index(l->sliced, [&](const std::vector<int64_t>& s) {
      const int64_t x_offset = offset_of(s, l->sliced_x_strides, l->x_base);
      CHECK(x_offset == (s[0] * 5 + s[1]) * 36 + c.start + s[2] * 4 + s[3]);
      std::vector<int64_t> i(4);
      for (size_t k = 0; k < 4; ++k) i[k] = s[static_cast<size_t>(c.perm[k])];
      int64_t y_offset = 0;
      for (size_t k = 0; k < 4; ++k) y_offset = y_offset * l->y[k] + i[k];
      CHECK(offset_of(s, l->sliced_y_strides, 0) == y_offset);
    });
  }
}

TEST_CASE("head_slice_layout: rank 1 input and the identity permutation", "[common]") {
  auto l = head_slice_layout(Shape{10}, 4, 6, 2, std::vector<int64_t>{0, 1});
  REQUIRE(l.ok());
  CHECK(l->y == Shape{2, 3});
  CHECK(l->x_strides == std::vector<int64_t>{3, 1});
  CHECK(l->x_base == 4);
}

TEST_CASE("head_slice_layout: attributes that do not fit X are errors", "[common]") {
  const Shape x{2, 8};
  const std::vector<int64_t> perm{0, 1, 2};
  CHECK(!head_slice_layout(Shape{}, 0, 1, 1, std::vector<int64_t>{0}).ok());
  CHECK(!head_slice_layout(x, -1, 4, 2, perm).ok());
  CHECK(!head_slice_layout(x, 6, 4, 2, perm).ok());
  CHECK(!head_slice_layout(x, 0, 0, 1, perm).ok());
  CHECK(!head_slice_layout(x, 0, 6, 4, perm).ok());
  CHECK(!head_slice_layout(x, 0, 4, 0, perm).ok());
  CHECK(!head_slice_layout(x, 0, 4, 2, std::vector<int64_t>{0, 1}).ok());
  CHECK(!head_slice_layout(x, 0, 4, 2, std::vector<int64_t>{0, 1, 1}).ok());
  CHECK(!head_slice_layout(x, 0, 4, 2, std::vector<int64_t>{0, 1, 3}).ok());
  const auto error = head_slice_layout(x, 6, 4, 2, perm);
  CHECK(error.status().message().find("[6, 10)") != std::string::npos);
}

}  // namespace
}  // namespace ps
