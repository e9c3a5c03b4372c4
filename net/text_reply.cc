#include "net/text_reply.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "common/hash64.h"
#include "common/status.h"
#include "net/text_command.h"

namespace ps::net {
namespace {

bool is_printable(char c) { return c > 0x20 && c < 0x7f; }

bool is_key_char(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; }

}  // namespace

void OkLine::append_key(std::string_view key) {
  PS_CHECK(!key.empty() && std::all_of(key.begin(), key.end(), is_key_char));
  PS_CHECK(key != kPayloadOption);
  fields_ += ' ';
  fields_ += key;
  fields_ += '=';
}

OkLine& OkLine::word(std::string_view word) {
  PS_CHECK(!word.empty());
  PS_CHECK(
      std::all_of(word.begin(), word.end(), [](char c) { return is_printable(c) && c != '='; }));
  fields_ += ' ';
  fields_ += word;
  return *this;
}

OkLine& OkLine::add(std::string_view key, std::string_view value) {
  append_key(key);
  if (value.empty()) {
    fields_ += '-';
    return *this;
  }
  for (char c : value) fields_ += is_printable(c) ? c : '_';
  return *this;
}

OkLine& OkLine::add(std::string_view key, uint64_t value) {
  append_key(key);
  fields_ += std::to_string(value);
  return *this;
}

OkLine& OkLine::add(std::string_view key, int64_t value) {
  append_key(key);
  fields_ += std::to_string(value);
  return *this;
}

OkLine& OkLine::add(std::string_view key, double value) {
  append_key(key);
  if (std::isnan(value)) {
    fields_ += "nan";
  } else if (std::isinf(value)) {
    fields_ += value > 0 ? "inf" : "-inf";
  } else {
    char buffer[32];
    auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
    PS_CHECK(ec == std::errc());
    fields_.append(buffer, end);
  }
  return *this;
}

OkLine& OkLine::add_hex(std::string_view key, uint64_t value) {
  append_key(key);
  static constexpr char kDigits[] = "0123456789abcdef";
  for (int shift = 60; shift >= 0; shift -= 4) fields_ += kDigits[(value >> shift) & 0xf];
  return *this;
}

std::string format_fields_line(const OkLine& line) {
  std::string_view fields = line.fields();
  while (!fields.empty() && fields.front() == ' ') fields.remove_prefix(1);
  std::string out(fields);
  out += '\n';
  return out;
}

std::string format_ok(const OkLine& line) { return str_cat("OK", line.fields(), "\n"); }

std::string format_ok_payload_header(const OkLine& line, uint64_t payload_bytes) {
  return str_cat("OK", line.fields(), " ", kPayloadOption, "=", payload_bytes, "\n");
}

std::string format_ok_with_payload(const OkLine& line, std::string_view payload) {
  std::string out = format_ok_payload_header(line, payload.size());
  out.append(payload);
  return out;
}

std::string format_error(ErrorCode code, std::string_view message) {
  std::string clean;
  clean.reserve(std::min(message.size(), kMaxErrorMessageBytes + 3));
  for (char c : message) {
    bool space = !is_printable(c);
    if (space && (clean.empty() || clean.back() == ' ')) continue;
    clean += space ? ' ' : c;
    if (clean.size() > kMaxErrorMessageBytes) break;
  }
  if (clean.size() > kMaxErrorMessageBytes) {
    clean.resize(kMaxErrorMessageBytes - 3);
    clean += "...";
  }
  while (!clean.empty() && clean.back() == ' ') clean.pop_back();
  if (clean.empty()) clean = "error";
  return str_cat("ERR ", error_code_name(code), " ", clean, "\n");
}

std::string help_text() {
  // A syntax column as wide as the longest syntax up to kColumn; a longer syntax gets its
  // summary on the next line, under the column.
  constexpr size_t kColumn = 52;
  size_t width = 0;
  for (const CommandSpec& spec : command_specs()) {
    if (spec.syntax.size() <= kColumn) width = std::max(width, spec.syntax.size());
  }
  std::string out = "Commands (verbs are case-insensitive; one per line, \\n or \\r\\n):\n";
  for (const CommandSpec& spec : command_specs()) {
    out += "  ";
    out += spec.syntax;
    if (spec.syntax.size() > width) {
      out += '\n';
      out.append(width + 4, ' ');
    } else {
      out.append(width - spec.syntax.size() + 2, ' ');
    }
    out += "-- ";
    out += spec.summary;
    out += '\n';
  }
  out +=
      "Replies: one status line, 'OK [key=value ...]' or 'ERR <CODE> <message>'; a reply whose "
      "status line ends in bytes=K is followed by K raw bytes.\n";
  return out;
}

uint64_t payload_checksum(std::string_view bytes) {
  return hash64(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

}  // namespace ps::net
