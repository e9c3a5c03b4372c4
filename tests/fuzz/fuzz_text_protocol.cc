// libFuzzer target: the text protocol framing and command parser (net/text_protocol.h).
// Invariants: no crash, no leak, bounded memory (small limits), and the same items whether the
// bytes arrive at once or in input-chosen chunks.
#include <cstdio>
#include <string>
#include <vector>

#include "net/text_protocol.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

std::string render(const ps::net::TextItem& item) {
  if (const auto* c = std::get_if<ps::net::Command>(&item)) {
    std::string s = "cmd " + std::to_string(static_cast<int>(c->verb));
    for (const auto& a : c->args) s += " a:" + a;
    for (const auto& o : c->options) s += " o:" + o.key + "=" + o.text;
    if (c->payload) s += " p:" + std::to_string(c->payload->size());
    return s;
  }
  const auto& e = std::get<ps::net::ProtocolError>(item);
  return "err " + std::to_string(static_cast<int>(e.code)) + (e.must_close ? " close " : " ") +
         e.message;
}

std::vector<std::string> drain(ps::net::TextParser& parser) {
  std::vector<std::string> out;
  while (auto item = parser.next()) out.push_back(render(*item));
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  ps::net::TextLimits limits;
  limits.max_line_bytes = 256;
  limits.max_payload_bytes = 4096;

  ps::net::TextParser whole(limits);
  whole.feed(bytes);
  const std::vector<std::string> a = drain(whole);
  const bool whole_ok = whole.finish().ok();

  ps::net::TextParser split(limits);
  std::vector<std::string> b;
  for (std::string_view chunk : ps::fuzz::chunks_of(bytes)) {
    split.feed(chunk);
    for (std::string& s : drain(split)) b.push_back(std::move(s));
  }
  PS_FUZZ_ASSERT(a == b);
  PS_FUZZ_ASSERT(whole_ok == split.finish().ok());
  PS_FUZZ_ASSERT(whole.closed() == split.closed());
  return 0;
}
