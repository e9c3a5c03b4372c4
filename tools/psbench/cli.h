// Command-line helpers shared by psbench's subcommands: option values and result formatting.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace ps::psbench {

// Parses a byte size: a decimal number with an optional binary suffix K, M, G or T (also
// KiB/MiB/..., KB/MB/..., any case): "1M" = 1 MiB = 1048576, "4096" = 4096 bytes.
// Errors: kInvalidArgument naming `option` and the text for anything else, 0, or overflow.
Result<uint64_t> parse_size(std::string_view option, std::string_view text);

// Parses a decimal integer in [min, max]. Errors: kInvalidArgument naming `option`.
Result<int64_t> parse_int(std::string_view option, std::string_view text, int64_t min, int64_t max);

// Walks argv-style options "--name value" / "--name=value". Used as:
//   OptionReader r(args);  while (r.next()) { if (r.is("--device")) ... }
class OptionReader {
 public:
  explicit OptionReader(std::vector<std::string_view> args) : args_(std::move(args)) {}

  // Advances to the next option; false at the end.
  bool next();
  // The current option's name ("--device"), without any "=value".
  std::string_view name() const { return name_; }
  bool is(std::string_view option) const { return name_ == option; }
  bool is_help() const { return is("--help") || is("-h"); }
  // An argument that is not an option (a package path, for the subcommands that take one).
  bool is_positional() const { return !name_.starts_with("-"); }
  // Stores the current positional argument in `package`. Errors: kInvalidArgument naming both
  // when `package` is already set (a subcommand takes one package).
  Status take_package(std::string& package) const;
  // The current option's value: the "=value" part, or the next argument (consumed).
  // Errors: kInvalidArgument when there is none.
  Result<std::string_view> value();
  // The current option's value as a decimal integer in [min, max] (parse_int naming the option).
  Result<int64_t> int_value(int64_t min, int64_t max);

 private:
  std::vector<std::string_view> args_;
  size_t next_ = 0;
  std::string_view name_;
  std::string_view inline_value_;
  bool has_inline_value_ = false;
};

// Every subcommand's entry point: `parse(args, &help)` the options (an error: the message and
// a pointer to --help on stderr, exit 2), `print_help(stdout)` on --help (exit 0), then
// `run(options)` -> Result<int> (an error: the message on stderr, exit 1; else its exit code).
template <typename Parse, typename PrintHelp, typename Run>
int subcommand_main(std::string_view name, const std::vector<std::string_view>& args, Parse parse,
                    PrintHelp print_help, Run run) {
  bool help = false;
  auto options = parse(args, &help);
  if (help) {
    print_help(stdout);
    return 0;
  }
  const std::string label(name);
  if (!options.ok()) {
    std::fprintf(stderr, "psbench %s: %s (see psbench %s --help)\n", label.c_str(),
                 options.status().message().c_str(), label.c_str());
    return 2;
  }
  Result<int> code = run(*options);
  if (!code.ok()) {
    std::fprintf(stderr, "psbench %s: %s\n", label.c_str(), code.status().message().c_str());
    return 1;
  }
  return *code;
}

// The median of `values` (the mean of the middle two for an even count). Precondition: not empty.
double median(std::vector<double> values);

// `s` as a JSON string literal, quotes included (quotes and backslashes escaped, control
// characters as spaces).
std::string json_string(std::string_view s);

// Sizes as the tables show them: "1 MiB", "256 MiB", "1 GiB", or bytes when not a whole unit.
std::string size_label(uint64_t bytes);

}  // namespace ps::psbench
