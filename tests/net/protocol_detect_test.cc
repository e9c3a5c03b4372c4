// Telling the two protocols apart from the first bytes of a connection.
#include "net/protocol_detect.h"

#include <catch2/catch.hpp>
#include <cctype>
#include <string>

#include "net/binary_protocol.h"
#include "net/text_command.h"

namespace ps::net {
namespace {

using namespace std::string_literals;

TEST_CASE("every text command is detected as text from its first two bytes", "[net][detect]") {
  for (const CommandSpec& spec : command_specs()) {
    for (std::string line : {std::string(spec.syntax), str_cat(spec.name, "\n")}) {
      for (char& c : line) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      INFO(line);
      CHECK(detect_protocol(line.substr(0, 1)) == WireProtocol::kUndecided);
      CHECK(detect_protocol(line.substr(0, 2)) == WireProtocol::kText);
      CHECK(detect_protocol(line) == WireProtocol::kText);
    }
    CHECK(detect_protocol(spec.name) == WireProtocol::kText);
  }
}

TEST_CASE("every original request and the close message are detected as binary", "[net][detect]") {
  std::vector<std::string> starts = {encode_close()};
  for (const OriginalWorkload& w : kOriginalWorkloads) {
    starts.push_back(encode_request(task_name(w.model, TaskKind::kInference), "data"));
    starts.push_back(encode_request(task_name(w.model, TaskKind::kTraining), ""));
  }
  for (const std::string& bytes : starts) {
    INFO(bytes.substr(4));
    // 1 to 3 bytes fit both protocols; the 4th decides.
    for (size_t n = 0; n < 4; ++n)
      CHECK(detect_protocol(bytes.substr(0, n)) == WireProtocol::kUndecided);
    CHECK(detect_protocol(bytes.substr(0, 4)) == WireProtocol::kBinary);
    CHECK(detect_protocol(bytes) == WireProtocol::kBinary);
  }
}

TEST_CASE("any name length a binary client can send is binary", "[net][detect]") {
  // Every name length up to the largest BinaryLimits allows (8191), and 0 (close).
  for (uint32_t n = 0; n < 8192; ++n) {
    std::string header = {static_cast<char>(n & 0xff), static_cast<char>(n >> 8), '\0', '\0'};
    INFO(n);
    REQUIRE(detect_protocol(header) == WireProtocol::kBinary);
    // Including name lengths whose first byte is a letter, a space or a newline.
    REQUIRE(detect_protocol(header.substr(0, 3)) == WireProtocol::kUndecided);
  }
  CHECK(detect_protocol("\0\x20\0\0"s) == WireProtocol::kText);  // 8192: over any limit
}

TEST_CASE("any two printable bytes are text", "[net][detect]") {
  for (int a = 0; a < 256; ++a) {
    for (int b = 0x20; b < 0x7f; ++b) {
      std::string two = {static_cast<char>(a), static_cast<char>(b)};
      REQUIRE(detect_protocol(two) == WireProtocol::kText);
    }
  }
}

TEST_CASE("detection corner cases", "[net][detect]") {
  CHECK(detect_protocol("") == WireProtocol::kUndecided);
  // An empty line typed into nc: could be name_len 10, so it waits for more.
  CHECK(detect_protocol("\n") == WireProtocol::kUndecided);
  CHECK(detect_protocol("\r\n") == WireProtocol::kUndecided);
  CHECK(detect_protocol("\nP") == WireProtocol::kText);
  CHECK(detect_protocol("\r\nP") == WireProtocol::kText);  // byte 2 is not 0
  CHECK(detect_protocol("\n\n\n\n") == WireProtocol::kText);
  // Text never holds NULs in its first line; a stream that does is binary and will be refused
  // by the binary parser (name length 0x0a0d is over the limit).
  CHECK(detect_protocol("\r\n\0\0"s) == WireProtocol::kBinary);
  CHECK(detect_protocol("GET / HTTP/1.1\r\n") == WireProtocol::kText);
  CHECK(detect_protocol("\x16\x03\x01\x02\x00"s) == WireProtocol::kText);  // a TLS ClientHello
  CHECK(detect_protocol("\x16\x03"s) == WireProtocol::kUndecided);
  CHECK(detect_protocol("\x16\x03\x01"s) == WireProtocol::kText);
  CHECK(detect_protocol("A\x01\0\x01"s) == WireProtocol::kText);
  // Bytes beyond the 4th do not matter.
  CHECK(detect_protocol("\x13\0\0\0resnet152_inference"s) == WireProtocol::kBinary);
  CHECK(detect_protocol("\x13\0\0\0\xff\xff"s) == WireProtocol::kBinary);
}

}  // namespace
}  // namespace ps::net
