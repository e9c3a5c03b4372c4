// HTTP requests of the metrics port: parsing with http_parser, routing, responses.
#include "net/http_request.h"

#include <catch2/catch.hpp>
#include <string>

namespace ps::net {
namespace {

HttpRequestParser parse(std::string_view bytes, HttpLimits limits = {}) {
  HttpRequestParser parser(limits);
  parser.feed(bytes);
  return parser;
}

TEST_CASE("GET /metrics parses and routes", "[net][http]") {
  HttpRequestParser parser = parse(
      "GET /metrics HTTP/1.1\r\nHost: localhost:9100\r\nUser-Agent: Prometheus/2.45\r\n"
      "Accept: text/plain\r\n\r\n");
  REQUIRE(parser.state() == HttpParseState::kComplete);
  const HttpRequest& r = parser.request();
  CHECK(r.method == "GET");
  CHECK(r.target == "/metrics");
  CHECK(r.path == "/metrics");
  CHECK(r.query.empty());
  CHECK(r.http_major == 1);
  CHECK(r.http_minor == 1);
  REQUIRE(r.headers.size() == 3);
  CHECK(r.headers[1].name == "User-Agent");
  CHECK(r.headers[1].value == "Prometheus/2.45");
  REQUIRE(r.header("host") != nullptr);
  CHECK(*r.header("HOST") == "localhost:9100");
  CHECK(r.header("cookie") == nullptr);
  HttpRoute route = route_request(r);
  CHECK(route.status == 200);
  CHECK(route.endpoint == HttpEndpoint::kMetrics);
  CHECK_FALSE(route.head_only);
}

TEST_CASE("a request split anywhere parses the same", "[net][http]") {
  std::string request =
      "GET /healthz?verbose=1 HTTP/1.1\r\nHost: h\r\nX-Long-Header-Name: some value here\r\n"
      "Accept: */*\r\n\r\n";
  for (size_t step : {1, 2, 3, 5, 7, 11}) {
    INFO(step);
    HttpRequestParser parser;
    HttpParseState state = HttpParseState::kIncomplete;
    for (size_t pos = 0; pos < request.size(); pos += step) {
      CHECK(state == HttpParseState::kIncomplete);
      state = parser.feed(std::string_view(request).substr(pos, step));
    }
    REQUIRE(state == HttpParseState::kComplete);
    const HttpRequest& r = parser.request();
    CHECK(r.path == "/healthz");
    CHECK(r.query == "verbose=1");
    REQUIRE(r.headers.size() == 3);
    CHECK(r.headers[1].name == "X-Long-Header-Name");
    CHECK(r.headers[1].value == "some value here");
    CHECK(route_request(r).endpoint == HttpEndpoint::kHealth);
  }
}

TEST_CASE("HEAD, HTTP/1.0 and absolute targets route too", "[net][http]") {
  HttpRequestParser head = parse("HEAD /metrics HTTP/1.0\r\n\r\n");
  REQUIRE(head.state() == HttpParseState::kComplete);
  CHECK(head.request().http_minor == 0);
  HttpRoute route = route_request(head.request());
  CHECK(route.status == 200);
  CHECK(route.head_only);

  HttpRequestParser absolute = parse("GET http://example:9100/healthz HTTP/1.1\r\n\r\n");
  REQUIRE(absolute.state() == HttpParseState::kComplete);
  CHECK(absolute.request().path == "/healthz");
  CHECK(route_request(absolute.request()).status == 200);
}

TEST_CASE("unknown paths are 404 and other methods 405", "[net][http]") {
  struct Case {
    const char* request;
    int status;
  };
  for (const Case& c :
       {Case{"GET / HTTP/1.1\r\n\r\n", 404}, Case{"GET /metricsx HTTP/1.1\r\n\r\n", 404},
        Case{"GET /metrics/ HTTP/1.1\r\n\r\n", 404}, Case{"GET /METRICS HTTP/1.1\r\n\r\n", 404},
        Case{"DELETE /nope HTTP/1.1\r\n\r\n", 404},
        Case{"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405},
        Case{"PUT /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405},
        Case{"OPTIONS * HTTP/1.1\r\n\r\n", 404}, Case{"DELETE /metrics HTTP/1.1\r\n\r\n", 405}}) {
    INFO(c.request);
    HttpRequestParser parser = parse(c.request);
    REQUIRE(parser.state() == HttpParseState::kComplete);
    HttpRoute route = route_request(parser.request());
    CHECK(route.status == c.status);
    CHECK_FALSE(route.endpoint.has_value());
  }
}

TEST_CASE("malformed requests are 400", "[net][http]") {
  for (const char* bad : {"GARBAGE\r\n\r\n", "GET /metrics HTTP/9.9x\r\n\r\n",
                          "GET /metrics HTTP/1.1\r\nNoColon\r\n\r\n",
                          "GET /metrics HTTP/1.1\r\nX: a\x01"
                          "b\r\n\r\n",
                          "GET /metrics HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
                          "GET /metrics HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                          "GET metrics HTTP/1.1\r\n\r\n", "\x16\x03\x01\x02\x00\x01"}) {
    INFO(bad);
    HttpRequestParser parser = parse(bad);
    REQUIRE(parser.state() == HttpParseState::kError);
    CHECK(parser.error().status == 400);
    CHECK_FALSE(parser.error().message.empty());
    // Once failed, more input changes nothing.
    CHECK(parser.feed("GET /metrics HTTP/1.1\r\n\r\n") == HttpParseState::kError);
  }
}

TEST_CASE("header limits answer 431", "[net][http]") {
  HttpLimits limits;
  limits.max_header_bytes = 200;
  limits.max_headers = 4;
  std::string base = "GET /metrics HTTP/1.1\r\n";
  CHECK(parse(base + "A: " + std::string(150, 'v') + "\r\n\r\n", limits).state() ==
        HttpParseState::kComplete);
  HttpRequestParser big = parse(base + "A: " + std::string(300, 'v') + "\r\n\r\n", limits);
  REQUIRE(big.state() == HttpParseState::kError);
  CHECK(big.error().status == 431);

  // The limit is found while the headers are still arriving, byte by byte.
  HttpRequestParser slow(limits);
  std::string flood = base + "X: " + std::string(1000, 'v');
  HttpParseState state = HttpParseState::kIncomplete;
  size_t fed = 0;
  for (; fed < flood.size() && state == HttpParseState::kIncomplete; ++fed) {
    state = slow.feed(std::string_view(flood).substr(fed, 1));
  }
  REQUIRE(state == HttpParseState::kError);
  CHECK(slow.error().status == 431);
  CHECK(fed < 300);

  std::string many = base;
  for (int i = 0; i < 5; ++i) many += "H" + std::to_string(i) + ": v\r\n";
  HttpRequestParser too_many = parse(many + "\r\n", limits);
  REQUIRE(too_many.state() == HttpParseState::kError);
  CHECK(too_many.error().status == 431);
  CHECK(too_many.error().message.find("more than 4 headers") != std::string::npos);

  std::string long_target = "GET /metrics?" + std::string(400, 'q') + " HTTP/1.1\r\n\r\n";
  HttpRequestParser long_url = parse(long_target, limits);
  REQUIRE(long_url.state() == HttpParseState::kError);
  CHECK(long_url.error().status == 431);
}

TEST_CASE("bodies over the limit are 413", "[net][http]") {
  HttpRequestParser declared = parse("POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\n");
  REQUIRE(declared.state() == HttpParseState::kError);
  CHECK(declared.error().status == 413);

  HttpLimits limits;
  limits.max_body_bytes = 4;
  HttpRequestParser small =
      parse("POST /metrics HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd", limits);
  REQUIRE(small.state() == HttpParseState::kComplete);
  CHECK(small.request().body == "abcd");
  HttpRequestParser chunked = parse(
      "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n",
      limits);
  REQUIRE(chunked.state() == HttpParseState::kError);
  CHECK(chunked.error().status == 413);
}

TEST_CASE("the first request completes, what follows is ignored", "[net][http]") {
  HttpRequestParser parser;
  CHECK(parser.feed("GET /healthz HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\n\r\nGARBAGE") ==
        HttpParseState::kComplete);
  CHECK(parser.request().path == "/healthz");
  CHECK(parser.feed("more") == HttpParseState::kComplete);
  CHECK(parser.finish() == HttpParseState::kComplete);
}

TEST_CASE("a stream that ends early is 400, empty feeds change nothing", "[net][http]") {
  HttpRequestParser parser;
  CHECK(parser.feed("") == HttpParseState::kIncomplete);
  CHECK(parser.feed("GET /metrics HTTP/1.1\r\nHost:") == HttpParseState::kIncomplete);
  CHECK(parser.feed("") == HttpParseState::kIncomplete);
  CHECK(parser.finish() == HttpParseState::kError);
  CHECK(parser.error().status == 400);
}

TEST_CASE("a parser can be moved between feeds", "[net][http]") {
  HttpRequestParser first;
  first.feed("GET /met");
  HttpRequestParser second = std::move(first);
  CHECK(second.feed("rics HTTP/1.1\r\n\r\n") == HttpParseState::kComplete);
  CHECK(second.request().path == "/metrics");
}

TEST_CASE("responses carry status, type, length and Connection: close", "[net][http]") {
  std::string body = "ps_up 1\n";
  CHECK(format_http_response(200, kPrometheusContentType, body) ==
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
        "Content-Length: 8\r\n"
        "Connection: close\r\n"
        "\r\n"
        "ps_up 1\n");
  CHECK(format_http_response(200, "text/plain", body, /*head_only=*/true) ==
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n"
        "Connection: close\r\n\r\n");
  CHECK(format_http_error(404) ==
        "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 14\r\nConnection: close\r\n\r\n404 Not Found\n");
  std::string method = format_http_error(405);
  CHECK(method.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
  CHECK(method.find("\r\nAllow: GET, HEAD\r\n") != std::string::npos);
  CHECK(format_http_error(431).starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
  CHECK(format_http_error(503).starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
  CHECK(http_reason_phrase(499) == "Unknown");
  CHECK(http_reason_phrase(599) == "Unknown");
  CHECK(http_reason_phrase(999) == "Unknown");
  CHECK(http_reason_phrase(413) == "Payload Too Large");
}

}  // namespace
}  // namespace ps::net
