#include "tools/psbench/cli.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>

namespace ps::psbench {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

Result<uint64_t> parse_size(std::string_view option, std::string_view text) {
  uint64_t number = 0;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(begin, end, number);
  if (ec != std::errc() || ptr == begin) {
    return invalid_argument(option, ": '", text, "' is not a size (examples: 4096, 64K, 1M, 2G)");
  }
  std::string_view suffix(ptr, static_cast<size_t>(end - ptr));
  int shift = -1;
  static constexpr std::string_view kUnits = "KMGT";
  if (suffix.empty() || iequals(suffix, "b")) {
    shift = 0;
  } else {
    const size_t unit =
        kUnits.find(static_cast<char>(std::toupper(static_cast<unsigned char>(suffix[0]))));
    const std::string_view rest = suffix.substr(1);
    if (unit != std::string_view::npos &&
        (rest.empty() || iequals(rest, "b") || iequals(rest, "ib"))) {
      shift = 10 * static_cast<int>(unit + 1);
    }
  }
  if (shift < 0) {
    return invalid_argument(option, ": unknown unit '", suffix, "' in '", text,
                            "' (use K, M, G or T: powers of 1024)");
  }
  if (number == 0) return invalid_argument(option, ": the size must be positive, got '", text, "'");
  if (shift > 0 && number > (std::numeric_limits<uint64_t>::max() >> shift)) {
    return invalid_argument(option, ": '", text, "' is too large");
  }
  return number << shift;
}

Result<int64_t> parse_int(std::string_view option, std::string_view text, int64_t min,
                          int64_t max) {
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size() || text.empty()) {
    return invalid_argument(option, ": '", text, "' is not an integer");
  }
  if (v < min || v > max) {
    return invalid_argument(option, ": ", v, " is outside [", min, ", ", max, "]");
  }
  return v;
}

bool OptionReader::next() {
  if (next_ >= args_.size()) return false;
  std::string_view arg = args_[next_++];
  const size_t eq = arg.find('=');
  has_inline_value_ = arg.starts_with("--") && eq != std::string_view::npos;
  name_ = has_inline_value_ ? arg.substr(0, eq) : arg;
  inline_value_ = has_inline_value_ ? arg.substr(eq + 1) : std::string_view();
  return true;
}

Status OptionReader::take_package(std::string& package) const {
  if (!package.empty()) {
    return invalid_argument("more than one package: '", package, "' and '", name_, "'");
  }
  package = std::string(name_);
  return Status::OK();
}

Result<std::string_view> OptionReader::value() {
  if (has_inline_value_) {
    has_inline_value_ = false;
    return inline_value_;
  }
  if (next_ >= args_.size()) return invalid_argument(name_, " needs a value");
  return args_[next_++];
}

double median(std::vector<double> values) {
  PS_CHECK(!values.empty());
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2.0;
}

std::string size_label(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  size_t unit = 0;
  while (unit + 1 < std::size(kUnits) && bytes >= 1024 && bytes % 1024 == 0) {
    bytes /= 1024;
    ++unit;
  }
  return str_cat(bytes, " ", kUnits[unit]);
}

Result<int64_t> OptionReader::int_value(int64_t min, int64_t max) {
  PS_ASSIGN_OR_RETURN(std::string_view v, value());
  return parse_int(name_, v, min, max);
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      out += ' ';
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

}  // namespace ps::psbench
