// Which protocol a connection speaks, decided from its first (at most 4) bytes.
//
// The rule: a connection speaks the PipeSwitch binary protocol iff its first four bytes look
// like a little-endian u32 below 0x2000, i.e.
//     byte 1 < 0x20,  byte 2 == 0,  byte 3 == 0        (byte 0 may be anything)
// and the text protocol otherwise. Why it is sound:
//  - a binary stream starts with name_len <= BinaryLimits::max_name_bytes < 8192, so bytes 2 and 3
//    are zero and byte 1 is below 0x20; the close message (u32 0) is binary too;
//  - a text stream starts with a command line of printable ASCII (and maybe blank lines), which
//    never holds a NUL, so byte 2 or byte 3 is non-zero.
// The decision is taken as soon as the bytes allow it: text as soon as one of bytes 1..3 breaks
// the binary pattern (usually at the second byte: "PI" of PING), binary only with all 4 bytes.
//
// Corner cases (tests/net/protocol_detect_test.cc covers each):
//  - byte 0 alone never decides: a binary name_len of 65..122 has a letter as its byte 0;
//  - a text client that sends only "\n" (an empty line) and waits gets no answer until it sends
//    more: "\n" could be the first byte of name_len 10. Any printable second byte decides text;
//  - text that starts with control bytes and NULs ("\r\n\0\0") is taken as binary; the binary
//    parser then rejects the huge name length and the connection is closed. Such a stream was
//    not valid text either;
//  - TLS (0x16 0x03 ...) and HTTP ("GET ") are taken as text and answered with ERR lines.
#pragma once

#include <cstddef>
#include <string_view>

namespace ps::net {

enum class WireProtocol {
  kUndecided,  // more bytes are needed (never after 4 bytes)
  kText,
  kBinary,
};

inline constexpr size_t kDetectMaxBytes = 4;

// Decides from the first bytes of a connection (all received so far; bytes beyond the 4th are
// ignored). Returns kUndecided only when first_bytes.size() < 4 and the bytes so far fit both.
WireProtocol detect_protocol(std::string_view first_bytes);

}  // namespace ps::net
