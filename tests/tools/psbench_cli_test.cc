// psbench's option reader and value parsers (tools/psbench/cli.h), shared by every subcommand.
#include <catch2/catch.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "tools/psbench/cli.h"

namespace ps::psbench {
namespace {

using Catch::Contains;

// The options of a subcommand that takes one package, --runs N and --json, read the way the
// subcommands read theirs.
struct Parsed {
  std::string package;
  int64_t runs = 0;
  bool json = false;
  bool help = false;
};
Result<Parsed> parse(std::vector<std::string_view> args) {
  Parsed p;
  OptionReader r(std::move(args));
  while (r.next()) {
    if (r.is_help()) {
      p.help = true;
      return p;
    }
    if (r.is_positional()) {
      PS_TRY(r.take_package(p.package));
    } else if (r.is("--runs")) {
      PS_ASSIGN_OR_RETURN(p.runs, r.int_value(1, 100));
    } else if (r.is("--json")) {
      p.json = true;
    } else {
      return invalid_argument("unknown option '", r.name(), "'");
    }
  }
  return p;
}

TEST_CASE("psbench options: values inline or next, one package, help", "[psbench]") {
  Result<Parsed> p = parse({"--runs", "7", "m.psm", "--json"});
  REQUIRE(p.ok());
  CHECK(p->package == "m.psm");
  CHECK(p->runs == 7);
  CHECK(p->json);
  p = parse({"--runs=12", "m.psm"});
  REQUIRE(p.ok());
  CHECK(p->runs == 12);
  p = parse({"m.psm", "-h", "--runs", "nonsense"});
  REQUIRE(p.ok());
  CHECK(p->help);  // help wins over what follows it
}

TEST_CASE("psbench options: errors name the option and the text", "[psbench]") {
  Result<Parsed> p = parse({"a.psm", "b.psm"});
  REQUIRE_FALSE(p.ok());
  CHECK(p.status().code() == Code::kInvalidArgument);
  CHECK_THAT(p.status().message(),
             Contains("more than one package") && Contains("'a.psm'") && Contains("'b.psm'"));
  p = parse({"m.psm", "--runs"});
  REQUIRE_FALSE(p.ok());
  CHECK_THAT(p.status().message(), Contains("--runs"));
  p = parse({"--runs", "0"});
  REQUIRE_FALSE(p.ok());
  CHECK_THAT(p.status().message(), Contains("--runs") && Contains("0"));
  p = parse({"--runs=101"});
  REQUIRE_FALSE(p.ok());
  CHECK_THAT(p.status().message(), Contains("101"));
}

TEST_CASE("psbench sizes: binary suffixes, refusals", "[psbench]") {
  CHECK(*parse_size("--max-piece", "4096") == 4096);
  CHECK(*parse_size("--max-piece", "8M") == (uint64_t{8} << 20));
  CHECK(*parse_size("--max-piece", "2GiB") == (uint64_t{2} << 30));
  CHECK(*parse_size("--max-piece", "1kb") == 1024);
  for (std::string_view bad : {"0", "", "12Q", "-5", "99999999999T"}) {
    Result<uint64_t> r = parse_size("--max-piece", bad);
    INFO(bad);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Contains("--max-piece"));
  }
}

}  // namespace
}  // namespace ps::psbench
