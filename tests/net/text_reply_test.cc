// Replies of the text protocol: OK lines, ERR lines, payload replies, HELP, checksums, codes.
#include "net/text_reply.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <set>
#include <string>

#include "net/text_command.h"
#include "net/text_protocol.h"
#include "net/wire_error.h"

namespace ps::net {
namespace {

using namespace std::string_literals;

TEST_CASE("OK lines carry words and key=value fields in order", "[net][reply]") {
  CHECK(format_ok(OkLine()) == "OK\n");
  CHECK(format_ok(OkLine().word("pong")) == "OK pong\n");
  OkLine line;
  line.add("model", "resnet152")
      .add("batch", uint32_t{8})
      .add("queue_us", uint64_t{12})
      .add("delta", int64_t{-3})
      .add("ratio", 0.25)
      .add("shape", "8x1000")
      .add_hex("checksum", 0x0123456789abcdefull);
  CHECK(format_ok(line) ==
        "OK model=resnet152 batch=8 queue_us=12 delta=-3 ratio=0.25 shape=8x1000 "
        "checksum=0123456789abcdef\n");
}

TEST_CASE("OK values are sanitized into one token", "[net][reply]") {
  OkLine line;
  line.add("a", "two words").add("b", "new\nline\r").add("c", "").add("d", "nul\0x"s);
  CHECK(format_ok(line) == "OK a=two_words b=new_line_ c=- d=nul_x\n");
  OkLine numbers;
  numbers.add("nan", std::nan(""))
      .add("inf", std::numeric_limits<double>::infinity())
      .add("tiny", 1e-7);
  CHECK(format_ok(numbers) == "OK nan=nan inf=inf tiny=1e-07\n");
}

TEST_CASE("payload replies put bytes=K last and the payload right after", "[net][reply]") {
  std::string payload = "a\nb\0c"s;
  std::string reply = format_ok_with_payload(OkLine().add("shape", "5"), payload);
  CHECK(reply == "OK shape=5 bytes=5\na\nb\0c"s);
  CHECK(format_ok_payload_header(OkLine().word("models"), 1234) == "OK models bytes=1234\n");
  CHECK(format_ok_with_payload(OkLine(), "") == "OK bytes=0\n");
}

TEST_CASE("ERR lines are one sanitized line", "[net][reply]") {
  CHECK(format_error(ErrorCode::kUnknownModel, "no model 'x'") ==
        "ERR UNKNOWN_MODEL no model 'x'\n");
  CHECK(format_error(ErrorCode::kBadRequest, "two\nlines\r\nERR FAKE x") ==
        "ERR BAD_REQUEST two lines ERR FAKE x\n");
  CHECK(format_error(ErrorCode::kBadRequest, "nul\0byte\x7f\xff end\n"s) ==
        "ERR BAD_REQUEST nul byte end\n");
  CHECK(format_error(ErrorCode::kInternal, "") == "ERR INTERNAL error\n");
  CHECK(format_error(ErrorCode::kInternal, "\n\n  \t") == "ERR INTERNAL error\n");
  CHECK(format_error(ProtocolError{ErrorCode::kLineTooLong, "too long", true}) ==
        "ERR LINE_TOO_LONG too long\n");

  std::string huge(10000, 'z');
  std::string reply = format_error(ErrorCode::kBadArgument, huge);
  CHECK(reply.size() == std::string("ERR BAD_ARGUMENT ").size() + kMaxErrorMessageBytes + 1);
  CHECK(reply.ends_with("...\n"));
  CHECK(reply.find('\n') == reply.size() - 1);
}

TEST_CASE("every error code has a distinct upper-case name that reads back", "[net][reply]") {
  std::set<std::string_view> names;
  for (ErrorCode code : kAllErrorCodes) {
    std::string_view name = error_code_name(code);
    INFO(name);
    CHECK(names.insert(name).second);
    for (char c : name) CHECK(((c >= 'A' && c <= 'Z') || c == '_'));
    CHECK(error_code_from_name(name) == code);
  }
  CHECK(names.size() == static_cast<size_t>(ErrorCode::kInternal) + 1);
  for (const char* name :
       {"BAD_REQUEST", "UNKNOWN_COMMAND", "UNKNOWN_MODEL", "BAD_ARGUMENT", "LINE_TOO_LONG",
        "PAYLOAD_TOO_LARGE", "AUTH_REQUIRED", "AUTH_FAILED", "BUSY", "INTERNAL"}) {
    CHECK(names.count(name) == 1);
  }
  CHECK_FALSE(error_code_from_name("bad_request").has_value());
  CHECK_FALSE(error_code_from_name("NOPE").has_value());
}

TEST_CASE("internal status codes map to wire codes", "[net][reply]") {
  CHECK(error_code_for(Code::kInvalidArgument) == ErrorCode::kBadArgument);
  CHECK(error_code_for(Code::kNotFound) == ErrorCode::kNotFound);
  CHECK(error_code_for(Code::kResourceExhausted) == ErrorCode::kBusy);
  CHECK(error_code_for(Code::kOutOfMemory) == ErrorCode::kOutOfMemory);
  CHECK(error_code_for(Code::kDevice) == ErrorCode::kDeviceError);
  CHECK(error_code_for(Code::kPermissionDenied) == ErrorCode::kForbidden);
  CHECK(error_code_for(Code::kInternal) == ErrorCode::kInternal);
}

TEST_CASE("HELP lists every command with its syntax", "[net][reply]") {
  std::string help = help_text();
  CHECK(help.ends_with("\n"));
  for (const CommandSpec& spec : command_specs()) {
    INFO(spec.name);
    const std::string line = "  " + std::string(spec.syntax);
    CHECK((help.find(line + " ") != std::string::npos || help.find(line + "\n") != std::string::npos));
  }
  // Reply formats are explained too; the text is sent as a payload, so any byte would do, but it
  // stays printable for a terminal.
  CHECK(help.find("ERR <CODE> <message>") != std::string::npos);
  for (char c : help) CHECK(((c >= 0x20 && c < 0x7f) || c == '\n'));
}

TEST_CASE("a reply with a payload can be framed by the text parser's own rule", "[net][reply]") {
  // A client reads the status line, then bytes=K raw bytes: the same framing as requests.
  std::string raw = "\n\0\xff"s;
  std::string reply = format_ok_with_payload(OkLine().add("shape", "3"), raw);
  size_t newline = reply.find('\n');
  std::string_view line = std::string_view(reply).substr(0, newline);
  LineFrame frame = frame_line(line, 1 << 20);
  REQUIRE(frame.payload_bytes == raw.size());
  CHECK(reply.substr(newline + 1) == raw);
}

TEST_CASE("payload_checksum is XXH64 with seed 0", "[net][reply]") {
  // Reference values of XXH64 (the reference implementation's, as in test_package).
  CHECK(payload_checksum("") == 0xef46db3751d8e999ull);
  CHECK(payload_checksum("a") == 0xd24ec4f1a98c6e5bull);
  CHECK(payload_checksum("abc") == 0x44bc2cf5ad770999ull);
  CHECK(payload_checksum("\0"s) != payload_checksum(""));
}

}  // namespace
}  // namespace ps::net
