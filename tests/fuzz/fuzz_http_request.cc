// libFuzzer target: the metrics listener's HTTP request parser (net/http_request.h, over
// http_parser) and the router. Invariants: no crash or leak; the state reached does not depend
// on how the bytes are split; a complete request routes to a valid status.
#include "net/http_request.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  ps::net::HttpLimits limits;
  limits.max_header_bytes = 1024;
  limits.max_headers = 16;

  ps::net::HttpRequestParser whole(limits);
  ps::net::HttpParseState a = whole.feed(bytes);
  if (a == ps::net::HttpParseState::kIncomplete) a = whole.finish();

  ps::net::HttpRequestParser split(limits);
  ps::net::HttpParseState b = ps::net::HttpParseState::kIncomplete;
  for (std::string_view chunk : ps::fuzz::chunks_of(bytes)) {
    b = split.feed(chunk);
    if (b != ps::net::HttpParseState::kIncomplete) break;
  }
  if (b == ps::net::HttpParseState::kIncomplete) b = split.finish();
  PS_FUZZ_ASSERT(a == b);

  if (a == ps::net::HttpParseState::kComplete) {
    const ps::net::HttpRoute route = ps::net::route_request(whole.request());
    PS_FUZZ_ASSERT(route.status == 200 || route.status == 404 || route.status == 405);
    PS_FUZZ_ASSERT(route.endpoint.has_value() == (route.status == 200));
  } else if (a == ps::net::HttpParseState::kError) {
    PS_FUZZ_ASSERT(whole.error().status >= 400 && whole.error().status < 600);
  }
  return 0;
}
