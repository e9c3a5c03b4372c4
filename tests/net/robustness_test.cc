// Random and mutated input: the parsers never crash (run under ASan/UBSan in CI), and their
// output depends only on the bytes, never on how the stream was split. A cheap stand-in for a
// fuzzer, with fixed seeds so a failure reproduces.
#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <vector>

#include "net/binary_protocol.h"
#include "net/http_request.h"
#include "net/protocol_detect.h"
#include "net/text_protocol.h"
#include "net/text_reply.h"

namespace ps::net {
namespace {

// Random streams built from pieces that matter to the text grammar, plus random bytes.
std::string random_text_stream(std::mt19937& rng) {
  static const std::vector<std::string> kPieces = {"PING",    "INFER",      "infer",
                                                   "TRAIN",   "STOP",       "AUTH",
                                                   "LOAD",    "HELP",       "JOBS",
                                                   "FROB",    " ",          "\t",
                                                   "\n",      "\r\n",       "\r",
                                                   "=",       "bytes=",     "bytes=3",
                                                   "bytes=0", "BYTES=1",    "batch=",
                                                   "batch=8", "output=raw", "steps=",
                                                   "-1",      "0",          "18446744073709551616",
                                                   "m",       "resnet152",  std::string(1, '\0'),
                                                   "\xff",    "x"};
  std::string out;
  int pieces = std::uniform_int_distribution<int>(0, 60)(rng);
  for (int i = 0; i < pieces; ++i) {
    if (std::uniform_int_distribution<int>(0, 9)(rng) == 0) {
      out += static_cast<char>(std::uniform_int_distribution<int>(0, 255)(rng));
    } else {
      out += kPieces[std::uniform_int_distribution<size_t>(0, kPieces.size() - 1)(rng)];
    }
  }
  return out;
}

std::string describe(const TextItem& item) {
  if (const auto* e = std::get_if<ProtocolError>(&item)) {
    return str_cat(e->must_close ? "X " : "E ", format_error(*e));
  }
  const Command& c = std::get<Command>(item);
  std::string out = str_cat("C ", static_cast<int>(c.verb));
  for (const std::string& a : c.args) out += " " + a;
  for (const OptionValue& o : c.options) out += str_cat(" ", o.key, "=", o.text);
  if (c.payload) out += str_cat(" payload=", *c.payload);
  return out;
}

template <typename Parser, typename Describe>
std::vector<std::string> run(Parser& parser, std::string_view stream, std::mt19937* rng,
                             Describe describe_item) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < stream.size()) {
    size_t n = rng ? std::uniform_int_distribution<size_t>(1, 6)(*rng) : stream.size();
    n = std::min(n, stream.size() - pos);
    parser.feed(stream.substr(pos, n));
    pos += n;
    while (auto item = parser.next()) out.push_back(describe_item(*item));
  }
  out.push_back(parser.finish().to_string());
  return out;
}

TEST_CASE("random text streams: no crash, split-independent, one-line errors",
          "[net][robustness]") {
  std::mt19937 rng(2024);
  TextLimits limits;
  limits.max_line_bytes = 48;
  limits.max_payload_bytes = 8;
  for (int round = 0; round < 3000; ++round) {
    std::string stream = random_text_stream(rng);
    INFO(round);
    TextParser whole(limits);
    std::vector<std::string> expected = run(whole, stream, nullptr, describe);
    TextParser split(limits);
    REQUIRE(run(split, stream, &rng, describe) == expected);
    for (const std::string& item : expected) {
      if (item.starts_with("E ") || item.starts_with("X ")) {
        // An ERR reply is exactly one line whatever the input was.
        REQUIRE(item.find('\n') == item.size() - 1);
        REQUIRE(item.find('\r') == std::string::npos);
        REQUIRE(item.find('\0') == std::string::npos);
      }
    }
  }
}

TEST_CASE("random binary streams: no crash, split-independent", "[net][robustness]") {
  std::mt19937 rng(77);
  BinaryLimits limits;
  limits.max_name_bytes = 24;
  limits.max_data_bytes = 40;
  auto describe_binary = [](const BinaryItem& item) -> std::string {
    if (const auto* r = std::get_if<BinaryRequest>(&item)) return "R " + r->name + "|" + r->data;
    if (std::holds_alternative<BinaryClose>(item)) return "close";
    return "E " + std::get<ProtocolError>(item).message;
  };
  for (int round = 0; round < 3000; ++round) {
    std::string stream;
    int frames = std::uniform_int_distribution<int>(0, 5)(rng);
    for (int f = 0; f < frames; ++f) {
      // Mostly small lengths so that frames complete, sometimes anything.
      for (int field = 0; field < 2; ++field) {
        uint32_t len = std::uniform_int_distribution<int>(0, 7)(rng) == 0
                           ? static_cast<uint32_t>(rng())
                           : std::uniform_int_distribution<uint32_t>(0, 30)(rng);
        for (int i = 0; i < 4; ++i) stream += static_cast<char>((len >> (8 * i)) & 0xff);
        for (uint32_t i = 0; i < std::min<uint32_t>(len, 64); ++i) {
          stream += static_cast<char>(rng());
        }
      }
    }
    stream.resize(std::uniform_int_distribution<size_t>(0, stream.size())(rng));
    INFO(round);
    BinaryParser whole(limits);
    std::vector<std::string> expected = run(whole, stream, nullptr, describe_binary);
    BinaryParser split(limits);
    REQUIRE(run(split, stream, &rng, describe_binary) == expected);
    // Whatever the first bytes, detection decides by the 4th byte.
    if (stream.size() >= 4) REQUIRE(detect_protocol(stream) != WireProtocol::kUndecided);
  }
}

TEST_CASE("mutated HTTP requests: no crash, split-independent", "[net][robustness]") {
  std::mt19937 rng(5);
  const std::string base =
      "GET /metrics?x=1 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nAccept: */*\r\n\r\n";
  HttpLimits limits;
  limits.max_header_bytes = 64;
  for (int round = 0; round < 2000; ++round) {
    std::string request = base;
    int mutations = std::uniform_int_distribution<int>(1, 4)(rng);
    for (int m = 0; m < mutations; ++m) {
      size_t at = std::uniform_int_distribution<size_t>(0, request.size() - 1)(rng);
      switch (std::uniform_int_distribution<int>(0, 2)(rng)) {
        case 0:
          request[at] = static_cast<char>(rng());
          break;
        case 1:
          request.erase(at, 1);
          break;
        default:
          request.insert(at, 1, static_cast<char>(rng()));
          break;
      }
    }
    INFO(round);
    HttpRequestParser whole(limits);
    whole.feed(request);
    HttpParseState whole_state = whole.finish();
    HttpRequestParser split(limits);
    for (size_t pos = 0; pos < request.size();) {
      size_t n = std::min(std::uniform_int_distribution<size_t>(1, 9)(rng), request.size() - pos);
      split.feed(std::string_view(request).substr(pos, n));
      pos += n;
    }
    REQUIRE(split.finish() == whole_state);
    if (whole_state == HttpParseState::kComplete) {
      REQUIRE(split.request().target == whole.request().target);
      REQUIRE(split.request().headers.size() == whole.request().headers.size());
      HttpRoute route = route_request(whole.request());
      REQUIRE((route.status == 200 || route.status == 404 || route.status == 405));
    } else {
      REQUIRE(split.error().status == whole.error().status);
    }
  }
}

}  // namespace
}  // namespace ps::net
