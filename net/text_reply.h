// Replies of the text protocol: the status line (`OK ...` or `ERR <CODE> <message>`), the
// payload that may follow it, and the HELP text. Pure formatting, no I/O.
//
//   OK [word ...] [key=value ...]\n            a success
//   OK ... bytes=K\n<K raw bytes>             a success with a payload (bytes= comes last)
//   ERR <CODE> <message>\n                    a failure; CODE from wire_error.h
//
// Every reply line is printable ASCII and ends in exactly one "\n": client-supplied text that
// ends up in a reply is sanitized, so no reply can forge a second status line.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "net/wire_error.h"

namespace ps::net {

// Builds the status line of a success: `OK` then words and key=value fields in the order added.
class OkLine {
 public:
  OkLine() = default;

  // Appends a bare word ("pong"). Preconditions: `word` is non-empty printable ASCII without
  // '=' (words come from the server's code, not from clients).
  OkLine& word(std::string_view word);

  // Appends key=value. Preconditions: key is non-empty, of [a-z0-9_], and not "bytes" (the
  // payload length is added by format_ok_with_payload). A string value is sanitized: every byte
  // that is not printable ASCII (spaces included) becomes '_'; an empty value becomes "-".
  OkLine& add(std::string_view key, std::string_view value);
  OkLine& add(std::string_view key, const char* value) { return add(key, std::string_view(value)); }
  OkLine& add(std::string_view key, uint64_t value);
  OkLine& add(std::string_view key, int64_t value);
  OkLine& add(std::string_view key, uint32_t value) { return add(key, uint64_t{value}); }
  OkLine& add(std::string_view key, int32_t value) { return add(key, int64_t{value}); }
  // A double in the shortest form that reads back exactly ("0.25", "1e-07"); "nan", "inf".
  OkLine& add(std::string_view key, double value);
  // key=<16 lower-case hex digits>, e.g. a checksum.
  OkLine& add_hex(std::string_view key, uint64_t value);

  // The fields so far, without "OK" and without the newline.
  const std::string& fields() const { return fields_; }

 private:
  void append_key(std::string_view key);
  std::string fields_;
};

// "<fields>\n" without "OK": one line of a listing payload (MODELS, JOBS, STATS).
std::string format_fields_line(const OkLine& line);

// "OK <fields>\n".
std::string format_ok(const OkLine& line);

// "OK <fields> bytes=K\n" followed by the payload.
std::string format_ok_with_payload(const OkLine& line, std::string_view payload);

// Just the status line "OK <fields> bytes=K\n", for a payload the caller writes itself (a large
// output tensor is then not copied into a string).
std::string format_ok_payload_header(const OkLine& line, uint64_t payload_bytes);

// "ERR <CODE> <message>\n" with the message sanitized: every byte that is not printable ASCII
// (newlines, NULs, bytes >= 0x7f) becomes a space, runs of spaces collapse, and a message longer
// than kMaxErrorMessageBytes is cut and ends in "...". An empty message becomes "error".
std::string format_error(ErrorCode code, std::string_view message);
inline std::string format_error(const ProtocolError& error) {
  return format_error(error.code, error.message);
}

inline constexpr size_t kMaxErrorMessageBytes = 512;

// The HELP text: one line per command, "<syntax>  -- <summary>", generated from the command
// table so that it always lists every command; then a note on replies. Ends with "\n".
std::string help_text();

// The checksum reported by INFER (`checksum=<hex>`): XXH64 (seed 0, common/hash64.h) over the
// raw bytes of the output tensor as they would be sent with output=raw. Clients recompute it to
// verify a reply. (It was FNV-1a byte by byte until that cost BERT-base's 6 MB output 8 ms on
// the loop thread; XXH64 runs at memory speed.)
uint64_t payload_checksum(std::string_view bytes);

}  // namespace ps::net
