#include <catch2/catch.hpp>

#include "common/status.h"

namespace {

ps::Result<int> parse_positive(int v) {
  if (v <= 0) return ps::invalid_argument("value ", v, " is not positive");
  return v;
}

ps::Status twice(int v, int* out) {
  PS_ASSIGN_OR_RETURN(int x, parse_positive(v));
  *out = 2 * x;
  return ps::Status::OK();
}

}  // namespace

TEST_CASE("an OK status carries no message", "[common]") {
  ps::Status s;
  CHECK(s.ok());
  CHECK(s.code() == ps::Code::kOk);
  CHECK(s.message().empty());
  CHECK(s.to_string() == "OK");
  CHECK(ps::Status(ps::Code::kOk, "ignored").ok());
}

TEST_CASE("errors name their code and keep context", "[common]") {
  ps::Status s = ps::corrupt("bad checksum").with_context("model.psm");
  CHECK_FALSE(s.ok());
  CHECK(s.code() == ps::Code::kCorrupt);
  CHECK(s.to_string() == "CORRUPT: model.psm: bad checksum");
  ps::Status copy = s;
  CHECK(copy == s);
}

TEST_CASE("Result and the early-return macros", "[common]") {
  int out = 0;
  CHECK(twice(21, &out).ok());
  CHECK(out == 42);
  ps::Status s = twice(-1, &out);
  CHECK(s.code() == ps::Code::kInvalidArgument);
  CHECK(s.message() == "value -1 is not positive");
  auto r = parse_positive(3);
  REQUIRE(r.ok());
  CHECK(*r == 3);
  CHECK(parse_positive(0).status().code() == ps::Code::kInvalidArgument);
}
