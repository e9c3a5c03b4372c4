// The HTTP side of the server (the metrics port): parsing one HTTP/1.x request with http_parser
// (the callback API of version 2.9), routing it to /metrics or /healthz, and formatting the
// response. Pure, no I/O: bytes in, a request or an HTTP error out.
//
// One request per connection: every response says "Connection: close", so bytes after the first
// request (pipelining) are ignored.
#pragma once

#include <http_parser.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ps::net {

struct HttpLimits {
  // Bytes of the request target plus all header names and values; over it: 431.
  size_t max_header_bytes = 8192;
  size_t max_headers = 64;    // over it: 431
  size_t max_body_bytes = 0;  // over it: 413 (GET and HEAD need no body)
};

struct HttpHeader {
  std::string name;  // as sent
  std::string value;
};

struct HttpRequest {
  std::string method;  // "GET", "HEAD", "POST", ...
  std::string target;  // as sent: "/metrics?x=1" or "http://host/metrics"
  std::string path;    // the path of the target, "" when it has none ("*", CONNECT host:port)
  std::string query;   // without the '?'
  std::vector<HttpHeader> headers;
  std::string body;
  unsigned http_major = 1;
  unsigned http_minor = 1;

  // The value of the first header named `name` (case-insensitive), or nullptr.
  const std::string* header(std::string_view name) const;
};

struct HttpError {
  int status = 400;     // 400, 413, 431
  std::string message;  // for the log and the response body
};

enum class HttpParseState { kIncomplete, kComplete, kError };

class HttpRequestParser {
 public:
  explicit HttpRequestParser(HttpLimits limits = {});
  HttpRequestParser(const HttpRequestParser&) = delete;
  HttpRequestParser& operator=(const HttpRequestParser&) = delete;
  HttpRequestParser(HttpRequestParser&&) = default;
  HttpRequestParser& operator=(HttpRequestParser&&) = default;

  // Feeds the next bytes of the connection. Returns kComplete once a whole request was parsed
  // (request() is then valid and later bytes are ignored), kError on malformed input or a limit
  // (error() is valid; the response is error().status, then close), kIncomplete otherwise.
  HttpParseState feed(std::string_view bytes);

  // To call at the end of the stream: a request that needs EOF to end completes; a partial
  // request becomes a 400 error. Returns the state after that.
  HttpParseState finish();

  HttpParseState state() const { return state_; }
  // Preconditions: state() == kComplete.
  const HttpRequest& request() const;
  // Preconditions: state() == kError.
  const HttpError& error() const;

 private:
  static int on_message_begin(http_parser* parser);
  static int on_url(http_parser* parser, const char* at, size_t length);
  static int on_header_field(http_parser* parser, const char* at, size_t length);
  static int on_header_value(http_parser* parser, const char* at, size_t length);
  static int on_headers_complete(http_parser* parser);
  static int on_body(http_parser* parser, const char* at, size_t length);
  static int on_message_complete(http_parser* parser);

  // Counts `length` against max_header_bytes; false (and error_ set) when over.
  bool count_header_bytes(size_t length);
  void set_error(int status, std::string message);
  HttpParseState after_execute();

  HttpLimits limits_;
  http_parser parser_{};
  http_parser_settings settings_{};
  HttpRequest request_;
  HttpError error_;
  HttpParseState state_ = HttpParseState::kIncomplete;
  size_t header_bytes_ = 0;
  bool in_header_value_ = false;
  bool headers_complete_ = false;
};

enum class HttpEndpoint { kMetrics, kHealth };

struct HttpRoute {
  int status = 404;                      // 200, 404 or 405
  std::optional<HttpEndpoint> endpoint;  // set iff status == 200
  bool head_only = false;                // HEAD: send the headers, not the body
};

// GET or HEAD on /metrics or /healthz (any query ignored) -> 200; another method on those paths
// -> 405; any other path -> 404.
HttpRoute route_request(const HttpRequest& request);

inline constexpr std::string_view kPrometheusContentType =
    "text/plain; version=0.0.4; charset=utf-8";

// The reason phrase of `status` ("Not Found"), "Unknown" for a status http_parser does not name.
std::string_view http_reason_phrase(int status);

// A complete HTTP/1.1 response: status line, Content-Type, Content-Length (of `body`, also for
// HEAD), Connection: close, then each of `extra_headers` (each "Name: value", no CRLF), a blank
// line, and the body unless head_only. Preconditions: 100 <= status <= 999; content_type and the
// extra headers hold no CR or LF.
std::string format_http_response(int status, std::string_view content_type, std::string_view body,
                                 bool head_only = false,
                                 const std::vector<std::string>& extra_headers = {});

// A plain-text error response "<status> <reason>\n"; 405 adds "Allow: GET, HEAD".
std::string format_http_error(int status, bool head_only = false);

}  // namespace ps::net
