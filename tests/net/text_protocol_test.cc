// The text protocol: framing (lines, payloads, limits) and command parsing, fed whole, byte by
// byte and in random splits.
#include "net/text_protocol.h"

#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <vector>

#include "net/text_command.h"

namespace ps::net {
namespace {

using namespace std::string_literals;

// A canonical text form of an item, so that sequences of items compare with ==.
std::string describe(const TextItem& item) {
  if (const auto* error = std::get_if<ProtocolError>(&item)) {
    return str_cat("ERR ", error_code_name(error->code), error->must_close ? " close" : " keep",
                   " | ", error->message);
  }
  const Command& c = std::get<Command>(item);
  std::string out = str_cat("CMD ", command_spec(c.verb).name);
  for (const std::string& arg : c.args) out += str_cat(" [", arg, "]");
  for (const OptionValue& o : c.options) {
    out += str_cat(" ", o.key, "=", o.text, "#", o.number);
    if (o.real != 0) out += str_cat("~", o.real);
  }
  if (c.payload) {
    out += str_cat(" payload(", c.payload->size(), "):");
    for (unsigned char ch : *c.payload) out += str_cat(" ", static_cast<int>(ch));
  }
  return out;
}

std::vector<std::string> drain(TextParser& parser) {
  std::vector<std::string> out;
  while (std::optional<TextItem> item = parser.next()) out.push_back(describe(*item));
  return out;
}

std::vector<std::string> parse_whole(std::string_view input, TextLimits limits = {}) {
  TextParser parser(limits);
  parser.feed(input);
  return drain(parser);
}

std::vector<std::string> parse_bytewise(std::string_view input, TextLimits limits = {}) {
  TextParser parser(limits);
  std::vector<std::string> out;
  for (char c : input) {
    parser.feed(std::string_view(&c, 1));
    // Draining between feeds must not change anything either.
    for (std::string& s : drain(parser)) out.push_back(std::move(s));
  }
  return out;
}

std::vector<std::string> parse_split(std::string_view input, std::mt19937& rng,
                                     TextLimits limits = {}) {
  TextParser parser(limits);
  size_t pos = 0;
  while (pos < input.size()) {
    std::uniform_int_distribution<size_t> len(0, std::min<size_t>(input.size() - pos, 17));
    size_t n = len(rng);
    parser.feed(input.substr(pos, n));
    pos += n;
  }
  return drain(parser);
}

Command parse_one(std::string_view input) {
  TextParser parser;
  parser.feed(input);
  std::optional<TextItem> item = parser.next();
  REQUIRE(item.has_value());
  INFO(describe(*item));
  REQUIRE(std::holds_alternative<Command>(*item));
  REQUIRE_FALSE(parser.next().has_value());
  return std::get<Command>(std::move(*item));
}

ProtocolError parse_error(std::string_view input, TextLimits limits = {}) {
  TextParser parser(limits);
  parser.feed(input);
  std::optional<TextItem> item = parser.next();
  REQUIRE(item.has_value());
  INFO(describe(*item));
  REQUIRE(std::holds_alternative<ProtocolError>(*item));
  return std::get<ProtocolError>(std::move(*item));
}

// One valid stream that uses every command, payloads with newlines, NULs and CRs, CRLF endings,
// blank lines, tabs, and mixed case.
std::string every_command_stream() {
  return "PING\r\n"
         "help\n"
         "\n"
         "  \t \r\n"
         "AUTH s3cret=token==\n"
         "models\n"
         "INFER resnet152\n"
         "infer\tbert_base batch=8 OUTPUT=Raw\n"
         "INFER inception_v3 bytes=12 batch=2\n"
         "ab\ncd\r\n\0\0ef\n"s
         "INFER resnet152 bytes=0\n"
         "TRAIN resnet152 batch=64 steps=100\n"
         "TRAIN bert_base\n"
         "TRAIN r lr=0.05 WD=1E-4 data=Single checkpoint=r-1.ckpt resume=R.ckpt every=10\n"
         "JOBS\n"
         "STOP 42\n"
         "checkpoint 42\n"
         "STATS\n"
         "LOAD my-model.v2 zoo/my-model.psm\n"
         "LOAD resnet152\n"
         "UNLOAD resnet152\n"
         "QUIT\n";
}

const std::vector<std::string> kEveryCommandExpected = {
    "CMD PING",
    "CMD HELP",
    "CMD AUTH [s3cret=token==]",
    "CMD MODELS",
    "CMD INFER [resnet152]",
    "CMD INFER [bert_base] batch=8#8 output=raw#0",
    "CMD INFER [inception_v3] bytes=12#12 batch=2#2 payload(12): 97 98 10 99 100 13 10 0 0 101 102 "
    "10",
    "CMD INFER [resnet152] bytes=0#0 payload(0):",
    "CMD TRAIN [resnet152] batch=64#64 steps=100#100",
    "CMD TRAIN [bert_base]",
    "CMD TRAIN [r] lr=0.05#0~0.05 wd=1E-4#0~0.0001 data=single#0 checkpoint=r-1.ckpt#0 "
    "resume=R.ckpt#0 every=10#10",
    "CMD JOBS",
    "CMD STOP [42]",
    "CMD CHECKPOINT [42]",
    "CMD STATS",
    "CMD LOAD [my-model.v2] [zoo/my-model.psm]",
    "CMD LOAD [resnet152]",
    "CMD UNLOAD [resnet152]",
    "CMD QUIT",
};

TEST_CASE("every command parses from a whole buffer", "[net][text]") {
  CHECK(parse_whole(every_command_stream()) == kEveryCommandExpected);
}

TEST_CASE("every command parses when fed byte by byte", "[net][text]") {
  CHECK(parse_bytewise(every_command_stream()) == kEveryCommandExpected);
}

TEST_CASE("any split of a stream yields the same items", "[net][text]") {
  // Valid commands and recoverable errors mixed, so the property covers the error paths too.
  std::string stream = every_command_stream() +
                       "FROB x bytes=3\nabcPING\n"  // unknown verb: its payload is skipped
                       "INFER m batch=abc bytes=2\n\n\nJOBS extra\nINFER\n"
                       "PING bytes=1\nzSTOP -1\n"s +
                       every_command_stream();
  std::vector<std::string> whole = parse_whole(stream);
  REQUIRE(whole.size() == 2 * kEveryCommandExpected.size() + 7);
  CHECK(parse_bytewise(stream) == whole);
  std::mt19937 rng(12345);
  for (int round = 0; round < 200; ++round) {
    INFO("round " << round);
    REQUIRE(parse_split(stream, rng) == whole);
  }
}

TEST_CASE("any split gives the same limit errors at the same place", "[net][text]") {
  TextLimits limits;
  limits.max_line_bytes = 32;
  limits.max_payload_bytes = 100;
  struct Case {
    std::string stream;
    bool fatal;
  };
  std::vector<Case> cases = {
      {"PING\nJOBS\n" + std::string(40, 'x') + "\nPING\n", true},
      {"PING\n" + std::string(33, 'x') + "\n", true},
      {"PING\n" + std::string(32, 'x') + "\r\nPING\n", false},  // exactly the maximum
      {"PING\n" + std::string(31, 'x') + "\r\r\nPING\n", false},
      {"PING\nINFER m bytes=101\n" + std::string(101, 'a') + "PING\n", true},
      {"PING\nINFER m bytes=100\n" + std::string(100, 'a') + "PING\n", false},
      {"PING\nINFER m bytes=12z\nPING\n", true},
  };
  std::mt19937 rng(7);
  for (const Case& c : cases) {
    const std::string& stream = c.stream;
    INFO(stream);
    std::vector<std::string> whole = parse_whole(stream, limits);
    REQUIRE(!whole.empty());
    CHECK((whole.back().find(" close | ") != std::string::npos) == c.fatal);
    CHECK(parse_bytewise(stream, limits) == whole);
    for (int round = 0; round < 50; ++round) REQUIRE(parse_split(stream, rng, limits) == whole);
  }
}

TEST_CASE("pipelined commands in one buffer come out in order", "[net][text]") {
  TextParser parser;
  parser.feed("PING\nINFER a bytes=3\nxyzJOBS\nSTOP 1\nPING");
  CHECK(drain(parser) == std::vector<std::string>{"CMD PING",
                                                  "CMD INFER [a] bytes=3#3 payload(3): 120 121 122",
                                                  "CMD JOBS", "CMD STOP [1]"});
  parser.feed("\n");
  CHECK(drain(parser) == std::vector<std::string>{"CMD PING"});
  CHECK(parser.finish().ok());
}

TEST_CASE("payloads hold any bytes, newlines and NULs included", "[net][text]") {
  std::string payload;
  for (int i = 0; i < 256; ++i) payload += static_cast<char>(i);
  payload += "\n\r\n\nPING\n";
  std::string stream = str_cat("INFER m bytes=", payload.size(), "\n") + payload + "PING\n";
  for (const auto& items : {parse_whole(stream), parse_bytewise(stream)}) {
    REQUIRE(items.size() == 2);
    CHECK(items[1] == "CMD PING");
  }
  Command c = parse_one(str_cat("INFER m bytes=", payload.size(), "\n") + payload);
  REQUIRE(c.payload.has_value());
  CHECK(*c.payload == payload);
  CHECK(c.number("bytes") == payload.size());
}

TEST_CASE("verbs and option keys are case-insensitive, values keep their case", "[net][text]") {
  Command c = parse_one("iNfEr ResNet152 BaTcH=4 OutPut=RAW\n");
  CHECK(c.verb == Verb::kInfer);
  CHECK(c.args == std::vector<std::string>{"ResNet152"});
  CHECK(c.number_or("batch", 1) == 4);
  CHECK(c.choice_or("output", "none") == "raw");
  CHECK(parse_one("pInG\r\n").verb == Verb::kPing);
  CHECK(parse_one("INFER m\n").number_or("batch", 8) == 8);
  CHECK(parse_one("INFER m\n").choice_or("output", "none") == "none");
  CHECK_FALSE(parse_one("INFER m\n").number("batch").has_value());
  CHECK_FALSE(parse_one("INFER m\n").payload.has_value());
  CHECK(parse_one("STOP 18446744073709551615\n").arg_number(0) == 18446744073709551615ull);
}

TEST_CASE("options and arguments may come in any order", "[net][text]") {
  Command c = parse_one("INFER batch=2 m\n");
  CHECK(c.args == std::vector<std::string>{"m"});
  CHECK(c.number_or("batch", 0) == 2);
}

TEST_CASE("blank lines are skipped", "[net][text]") {
  CHECK(parse_whole("\n\r\n \t\n\nPING\n\n") == std::vector<std::string>{"CMD PING"});
}

TEST_CASE("a line of exactly the maximum is accepted, one more byte is not", "[net][text]") {
  TextLimits limits;
  limits.max_line_bytes = 16;
  std::string max_line = "INFER " + std::string(10, 'm');  // 16 bytes
  REQUIRE(max_line.size() == 16);
  CHECK(parse_whole(max_line + "\n", limits).size() == 1);
  CHECK(parse_whole(max_line + "\r\n", limits).size() == 1);
  CHECK(parse_bytewise(max_line + "\r\n", limits).size() == 1);
  CHECK(parse_whole(max_line + "\n", limits)[0].starts_with("CMD INFER"));

  ProtocolError e = parse_error(max_line + "m\n", limits);
  CHECK(e.code == ErrorCode::kLineTooLong);
  CHECK(e.must_close);
  CHECK(e.message.find("16") != std::string::npos);
}

TEST_CASE("a too-long line is refused before its newline arrives, then input is ignored",
          "[net][text]") {
  TextLimits limits;
  limits.max_line_bytes = 64;
  TextParser parser(limits);
  parser.feed("PING\n");
  parser.feed(std::string(65, 'A'));
  CHECK_FALSE(parser.closed());  // 65 bytes may still be 64 + '\r'
  parser.feed("B");
  CHECK(parser.closed());
  std::vector<std::string> items = drain(parser);
  REQUIRE(items.size() == 2);
  CHECK(items[0] == "CMD PING");
  CHECK(items[1].starts_with("ERR LINE_TOO_LONG close"));
  parser.feed("\nPING\n");
  CHECK(drain(parser).empty());
  CHECK(parser.finish().ok());
}

TEST_CASE("a payload over the maximum closes the connection", "[net][text]") {
  TextLimits limits;
  limits.max_payload_bytes = 1000;
  CHECK(parse_whole("INFER m bytes=1000\n" + std::string(1000, 'x'), limits).size() == 1);
  ProtocolError e = parse_error("INFER m bytes=1001\n", limits);
  CHECK(e.code == ErrorCode::kPayloadTooLarge);
  CHECK(e.must_close);
  e = parse_error("INFER m bytes=99999999999999999999999999\n", limits);
  CHECK(e.code == ErrorCode::kBadRequest);
  CHECK(e.must_close);
  e = parse_error("INFER m bytes=18446744073709551615\n", limits);
  CHECK(e.code == ErrorCode::kPayloadTooLarge);
  // Even for an unknown verb: the declared payload cannot be skipped.
  e = parse_error("FROB bytes=5000\n", limits);
  CHECK(e.code == ErrorCode::kPayloadTooLarge);
  CHECK(e.must_close);
}

TEST_CASE("a malformed or repeated bytes= closes the connection", "[net][text]") {
  for (const char* line : {"INFER m bytes=-1\n", "INFER m bytes=abc\n", "INFER m bytes=\n",
                           "INFER m bytes=1.5\n", "INFER m bytes=+3\n", "INFER m bytes=0x10\n",
                           "INFER m bytes=1 BYTES=1\n", "PING bytes=2 bytes=2\n"}) {
    INFO(line);
    ProtocolError e = parse_error(line);
    CHECK(e.code == ErrorCode::kBadRequest);
    CHECK(e.must_close);
  }
}

TEST_CASE("bad numbers in options are BAD_ARGUMENT and the connection continues", "[net][text]") {
  struct Case {
    const char* line;
    const char* words;  // a piece the message must contain
  };
  for (const Case& c : {Case{"INFER m batch=-1", "negative"},
                        Case{"INFER m batch=abc", "not a decimal integer"},
                        Case{"INFER m batch=1.5", "not a decimal integer"},
                        Case{"INFER m batch=+1", "not a decimal integer"},
                        Case{"INFER m batch= 3", "without a value"},
                        Case{"INFER m batch=0", "out of range 1..4096"},
                        Case{"INFER m batch=4097", "out of range 1..4096"},
                        Case{"INFER m batch=18446744073709551616", "too large"},
                        Case{"INFER m batch=99999999999999999999999999999", "too large"},
                        Case{"TRAIN m steps=0", "out of range"},
                        Case{"TRAIN m steps=1e3", "not a decimal integer"},
                        Case{"TRAIN m lr=-0.1", "negative"},
                        Case{"TRAIN m lr=.", "not a decimal number"},
                        Case{"TRAIN m lr=1e", "not a decimal number"},
                        Case{"TRAIN m lr=inf", "not a decimal number"},
                        Case{"TRAIN m lr=0x1p3", "not a decimal number"},
                        Case{"TRAIN m lr=1e999", "out of the range"},
                        Case{"TRAIN m momentum=1.5", "out of range 0..1"},
                        Case{"TRAIN m data=random", "must be one of patterns|single"},
                        Case{"TRAIN m checkpoint=../x", "does not start with '.'"},
                        Case{"TRAIN m checkpoint=.hidden", "does not start with '.'"},
                        Case{"TRAIN m resume=a/b", "file name"},
                        Case{"CHECKPOINT x", "not a decimal integer"},
                        Case{"STOP -3", "negative"},
                        Case{"STOP job7", "not a decimal integer"},
                        Case{"STOP 18446744073709551616", "too large"},
                        Case{"INFER m output=json", "must be one of none|raw"},
                        Case{"INFER m batch=1 batch=2", "given twice"},
                        Case{"INFER m Batch=1 BATCH=2", "given twice"},
                        Case{"INFER m =5", "option without a name"},
                        Case{"INFER m batch=", "option without a value"},
                        Case{"INFER m batch==3", "not a decimal integer"},
                        Case{"INFER m steps=3", "INFER has no option 'steps'"},
                        Case{"INFER m foo=bar", "INFER has no option 'foo'"},
                        Case{"PING x=1", "PING has no option 'x'"}}) {
    INFO(c.line);
    TextParser parser;
    parser.feed(str_cat(c.line, "\nPING\n"));
    std::optional<TextItem> item = parser.next();
    REQUIRE(item.has_value());
    REQUIRE(std::holds_alternative<ProtocolError>(*item));
    const ProtocolError& e = std::get<ProtocolError>(*item);
    CHECK(e.code == ErrorCode::kBadArgument);
    CHECK_FALSE(e.must_close);
    CHECK(e.message.find(c.words) != std::string::npos);
    CHECK(e.message.find("usage:") != std::string::npos);
    std::optional<TextItem> next = parser.next();
    REQUIRE(next.has_value());
    CHECK(describe(*next) == "CMD PING");
  }
}

TEST_CASE("missing and extra arguments are BAD_ARGUMENT", "[net][text]") {
  struct Case {
    const char* line;
    const char* words;
  };
  for (const Case& c :
       {Case{"INFER", "INFER needs <model>"}, Case{"TRAIN batch=2", "TRAIN needs <model>"},
        Case{"STOP", "STOP needs <job>"}, Case{"AUTH", "AUTH needs <token>"},
        Case{"LOAD", "LOAD needs <model>"}, Case{"UNLOAD", "UNLOAD needs <model>"},
        Case{"PING now", "PING takes at most 0 arguments, got 1"},
        Case{"INFER a b", "INFER takes at most 1 argument, got 2"},
        Case{"LOAD a b c", "LOAD takes at most 2 arguments, got 3"},
        Case{"AUTH a b", "AUTH takes at most 1 argument, got 2"},
        Case{"INFER res/net", "may hold only"}, Case{"INFER res\"net", "may hold only"}}) {
    INFO(c.line);
    ProtocolError e = parse_error(str_cat(c.line, "\n"));
    CHECK(e.code == ErrorCode::kBadArgument);
    CHECK_FALSE(e.must_close);
    CHECK(e.message.find(c.words) != std::string::npos);
  }
  std::string long_model(kMaxModelNameBytes + 1, 'm');
  CHECK(parse_error("INFER " + long_model + "\n").code == ErrorCode::kBadArgument);
  CHECK(parse_one("INFER " + long_model.substr(1) + "\n").args[0].size() == kMaxModelNameBytes);
}

TEST_CASE("an unknown verb is UNKNOWN_COMMAND and its payload is skipped", "[net][text]") {
  std::vector<std::string> items = parse_whole("FROB\nGET / HTTP/1.1\nFROB bytes=4\nPING\nJOBS\n");
  REQUIRE(items.size() == 4);
  CHECK(items[0] == "ERR UNKNOWN_COMMAND keep | unknown command 'FROB' (HELP lists the commands)");
  CHECK(items[1].starts_with("ERR UNKNOWN_COMMAND keep | unknown command 'GET'"));
  // "PING" was the payload of FROB bytes=4, then "\n" is a blank line.
  CHECK(items[2].starts_with("ERR UNKNOWN_COMMAND keep"));
  CHECK(items[3] == "CMD JOBS");
}

TEST_CASE("a payload on a command that takes none is consumed, then refused", "[net][text]") {
  std::vector<std::string> items = parse_whole("PING bytes=5\nPING\n\nJOBS\n");
  REQUIRE(items.size() == 2);
  CHECK(items[0].starts_with("ERR BAD_ARGUMENT keep | PING has no option 'bytes'"));
  CHECK(items[1] == "CMD JOBS");
}

TEST_CASE("non-printable bytes in a line are BAD_REQUEST, and the stream goes on", "[net][text]") {
  std::vector<std::string> items =
      parse_whole("PI\0NG\nPING\x01\nPI\rNG\nINFER caf\xc3\xa9\nPING\n"s);
  REQUIRE(items.size() == 5);
  CHECK(items[0] == "ERR BAD_REQUEST keep | byte 0x00 at column 3 is not printable ASCII");
  CHECK(items[1] == "ERR BAD_REQUEST keep | byte 0x01 at column 5 is not printable ASCII");
  CHECK(items[2] == "ERR BAD_REQUEST keep | byte 0x0d at column 3 is not printable ASCII");
  CHECK(items[3] == "ERR BAD_REQUEST keep | byte 0xc3 at column 10 is not printable ASCII");
  CHECK(items[4] == "CMD PING");
}

TEST_CASE("AUTH takes its token verbatim and never echoes it", "[net][text]") {
  Command c = parse_one("AUTH bytes=5\n");  // not a payload declaration for AUTH
  CHECK(c.args == std::vector<std::string>{"bytes=5"});
  CHECK_FALSE(c.payload.has_value());
  CHECK(parse_one("auth a=b=c\n").args == std::vector<std::string>{"a=b=c"});
  ProtocolError e = parse_error("AUTH hunter2 hunter3\n");
  CHECK(e.message.find("hunter") == std::string::npos);
  e = parse_error("AUTH " + std::string(kMaxTokenBytes + 1, 'k') + "\n");
  CHECK(e.code == ErrorCode::kBadArgument);
  CHECK(e.message.find("kkk") == std::string::npos);
  CHECK(parse_one("AUTH " + std::string(kMaxTokenBytes, 'k') + "\n").args[0].size() ==
        kMaxTokenBytes);
}

TEST_CASE("finish() tells a clean end from a cut one", "[net][text]") {
  TextParser parser;
  CHECK(parser.finish().ok());
  parser.feed("PING\nPIN");
  Status s = parser.finish();
  CHECK(s.code() == Code::kCorrupt);
  CHECK(s.message().find("inside a line (3 bytes") != std::string::npos);
  parser.feed("G\nINFER m bytes=10\nabc");
  s = parser.finish();
  CHECK(s.code() == Code::kCorrupt);
  CHECK(s.message().find("got 3 of 10 bytes") != std::string::npos);
  parser.feed("defghij");
  CHECK(parser.finish().ok());
  CHECK(drain(parser).size() == 3);
}

TEST_CASE("parse_decimal_u64 is strict", "[net][text]") {
  CHECK(*parse_decimal_u64("0") == 0);
  CHECK(*parse_decimal_u64("007") == 7);
  CHECK(*parse_decimal_u64("4096") == 4096);
  CHECK(*parse_decimal_u64("18446744073709551615") == 18446744073709551615ull);
  for (const char* bad : {"", "-0", "-1", "+1", " 1", "1 ", "1\n", "0x10", "1e3", "1.0", "1_000",
                          "18446744073709551616", "18446744073709551620", "100000000000000000000",
                          "99999999999999999999999999"}) {
    INFO(bad);
    Result<uint64_t> r = parse_decimal_u64(bad);
    CHECK_FALSE(r.ok());
    CHECK(r.status().code() == Code::kInvalidArgument);
  }
}

TEST_CASE("parse_decimal_real is strict", "[net][text]") {
  CHECK(*parse_decimal_real("0") == 0.0);
  CHECK(*parse_decimal_real("0.05") == 0.05);
  CHECK(*parse_decimal_real(".5") == 0.5);
  CHECK(*parse_decimal_real("5.") == 5.0);
  CHECK(*parse_decimal_real("1e-4") == 1e-4);
  CHECK(*parse_decimal_real("2.5E+1") == 25.0);
  for (const char* bad : {"", ".", "-1", "+1", "e5", "1e", "1e+", " 1", "1 ", "1.2.3", "inf",
                          "nan", "0x10", "1,5", "1e400"}) {
    INFO(bad);
    CHECK(parse_decimal_real(bad).status().code() == Code::kInvalidArgument);
  }
}

TEST_CASE("the command table is consistent", "[net][text]") {
  for (const CommandSpec& spec : command_specs()) {
    INFO(spec.name);
    CHECK(verb_from_name(spec.name) == spec.verb);
    CHECK(&command_spec(spec.verb) == &spec);
    CHECK(spec.syntax.starts_with(spec.name));
    bool seen_optional = false;
    for (const ArgSpec& arg : spec.args) {
      CHECK(spec.syntax.find(str_cat("<", arg.name, ">")) != std::string_view::npos);
      if (seen_optional) CHECK(arg.optional);
      seen_optional = seen_optional || arg.optional;
    }
    for (const OptionSpec& option : spec.options) {
      CHECK(spec.syntax.find(str_cat("[", option.key, "=")) != std::string_view::npos);
    }
  }
  CHECK_FALSE(verb_from_name("PINGX").has_value());
  CHECK_FALSE(verb_from_name("").has_value());
}

}  // namespace
}  // namespace ps::net
