// The framing of the text protocol: an incremental parser that turns a byte stream into
// Commands and ProtocolErrors. Pure: no I/O, no clock; bytes in, items out.
//
// A request is a line ending in "\n" or "\r\n", followed by exactly K raw bytes when the line
// carries bytes=K (text_command.h says how a line is parsed). Blank lines are skipped. The output
// does not depend on how the stream is split across feed() calls, byte by byte included.
//
// Errors and the connection (ProtocolError::must_close):
//  - a line over max_line_bytes: LINE_TOO_LONG, must close (the rest of the line, and any payload
//    it may declare, cannot be followed);
//  - bytes=K over max_payload_bytes, a malformed or repeated bytes=: PAYLOAD_TOO_LARGE or
//    BAD_REQUEST, must close;
//  - anything else on a well-framed line (unknown verb, bad argument, non-printable byte):
//    reported after the line's payload, if any, was consumed; the connection can continue.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "common/status.h"
#include "net/text_command.h"
#include "net/wire_error.h"

namespace ps::net {

struct TextLimits {
  size_t max_line_bytes = 4096;              // without the "\n" / "\r\n"
  uint64_t max_payload_bytes = 64ull << 20;  // the largest bytes=K accepted
};

// One parsed request, or the error that replaces it.
using TextItem = std::variant<Command, ProtocolError>;

class TextParser {
 public:
  // Preconditions: limits.max_line_bytes > 0.
  explicit TextParser(TextLimits limits = {});

  // Consumes all of `bytes` (the parser copies what it keeps). Complete items are queued for
  // next(). After a must_close error, the rest of the stream is ignored.
  void feed(std::string_view bytes);

  // Pops the oldest complete item; nullopt when none is complete yet.
  std::optional<TextItem> next();

  // True when next() has an item.
  bool has_next() const { return !items_.empty(); }

  // True once a must_close error has been queued: nothing more will be parsed.
  bool closed() const { return closed_; }

  // To call when the peer ended the stream. OK when it ended between requests (or after a
  // must_close error); otherwise a corrupt() error naming what was cut short (a partial line,
  // n of K payload bytes). Items already queued stay valid.
  Status finish() const;

  const TextLimits& limits() const { return limits_; }

 private:
  void on_line();
  void fail(ErrorCode code, std::string message);

  TextLimits limits_;
  std::string line_;  // the current partial line, terminator excluded
  bool in_payload_ = false;
  std::string payload_line_;   // the line whose payload is being read
  uint64_t payload_size_ = 0;  // K of that line
  std::string payload_;        // its payload so far
  bool closed_ = false;
  std::deque<TextItem> items_;
};

}  // namespace ps::net
