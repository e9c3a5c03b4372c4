// The attention geometry (common/attention.h): what attention_layout and
// attention_context_rows accept, what they refuse, and that errors name the op and the shapes.
#include "common/attention.h"

#include <catch2/catch.hpp>

namespace ps {
namespace {

using Catch::Matchers::Contains;

TEST_CASE("attention_layout: BERT's fused query/key/value product", "[common]") {
  // [batch, seq, 3 * hidden]: 3 heads of 4, the ranges in any order, X's last columns included.
  const Shape x{2, 5, 36};
  Result<AttentionLayout> l = attention_layout("AttentionScores", x, 3, 12, {24, 0});
  REQUIRE(l.ok());
  CHECK(l->batch == 2);
  CHECK(l->seq == 5);
  CHECK(l->columns == 36);
  CHECK(l->heads == 3);
  CHECK(l->head_size == 4);
  // One range, starting anywhere it fits (no alignment to the size asked for).
  CHECK(attention_layout("AttentionContext", x, 3, 12, {13}).ok());
  CHECK(attention_layout("AttentionContext", x, 3, 12, {}).ok());
  // A single head, a single row, one column a head.
  Result<AttentionLayout> one = attention_layout("AttentionScores", {1, 1, 1}, 1, 1, {0, 0});
  REQUIRE(one.ok());
  CHECK(one->head_size == 1);
  // Odd sizes: 3 heads of 3 within 11 columns.
  Result<AttentionLayout> odd = attention_layout("AttentionScores", {3, 7, 11}, 3, 9, {2, 1});
  REQUIRE(odd.ok());
  CHECK(odd->head_size == 3);
}

TEST_CASE("attention_layout: refuses what does not fit, naming the op", "[common]") {
  const Shape x{2, 5, 36};
  struct Bad {
    Shape x;
    int64_t heads, size;
    std::vector<int64_t> starts;
    const char* says;
  };
  const std::vector<Bad> bad = {
      {{2, 5}, 3, 12, {0}, "must be [batch, sequence, columns]"},
      {{2, 5, 36, 1}, 3, 12, {0}, "must be [batch, sequence, columns]"},
      {{0, 5, 36}, 3, 12, {0}, "is empty"},
      {{2, 0, 36}, 3, 12, {0}, "is empty"},
      {{2, 5, 0}, 3, 12, {0}, "is empty"},
      {x, 0, 12, {0}, "heads do not divide"},
      {x, 3, 0, {0}, "heads do not divide"},
      {x, 5, 12, {0}, "heads do not divide"},
      {x, 3, 12, {-1}, "columns [-1, 11) do not fit"},
      {x, 3, 12, {25}, "columns [25, 37) do not fit"},
      {x, 3, 12, {0, 30}, "columns [30, 42) do not fit"},
      {x, 3, 48, {0}, "do not fit"},
  };
  for (const Bad& b : bad) {
    INFO(shape_string(b.x) << " heads " << b.heads << " size " << b.size);
    Result<AttentionLayout> l =
        b.starts.size() == 1
            ? attention_layout("AttentionScores", b.x, b.heads, b.size, {b.starts[0]})
            : attention_layout("AttentionScores", b.x, b.heads, b.size, {b.starts[0], b.starts[1]});
    REQUIRE_FALSE(l.ok());
    CHECK(l.status().code() == Code::kInvalidArgument);
    CHECK_THAT(l.status().message(), Contains("AttentionScores") && Contains(b.says));
  }
}

TEST_CASE("attention_context_rows: P [B, H, M, S] against the layout", "[common]") {
  Result<AttentionLayout> l = attention_layout("AttentionContext", {2, 5, 36}, 3, 12, {24});
  REQUIRE(l.ok());
  Result<int64_t> m = attention_context_rows(*l, {2, 3, 5, 5});
  REQUIRE(m.ok());
  CHECK(*m == 5);
  // M need not be S (queries of another length than the keys).
  m = attention_context_rows(*l, {2, 3, 7, 5});
  REQUIRE(m.ok());
  CHECK(*m == 7);
  for (const Shape& p : std::vector<Shape>{
           {2, 3, 5}, {2, 3, 5, 5, 1}, {1, 3, 5, 5}, {2, 4, 5, 5}, {2, 3, 5, 4}, {2, 3, 0, 5}}) {
    INFO(shape_string(p));
    Result<int64_t> bad = attention_context_rows(*l, p);
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.status().code() == Code::kInvalidArgument);
    CHECK_THAT(bad.status().message(),
               Contains("AttentionContext: P") && Contains("is not [2, 3, M, 5]"));
  }
}

}  // namespace
}  // namespace ps
