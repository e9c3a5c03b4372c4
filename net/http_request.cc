#include "net/http_request.h"

#include "common/status.h"

namespace ps::net {
namespace {

HttpRequestParser* self(http_parser* parser) {
  return static_cast<HttpRequestParser*>(parser->data);
}

char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool equals_ignore_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (to_lower(a[i]) != to_lower(b[i])) return false;
  }
  return true;
}

bool has_line_break(std::string_view text) {
  return text.find('\r') != std::string_view::npos || text.find('\n') != std::string_view::npos;
}

}  // namespace

const std::string* HttpRequest::header(std::string_view name) const {
  for (const HttpHeader& h : headers) {
    if (equals_ignore_case(h.name, name)) return &h.value;
  }
  return nullptr;
}

HttpRequestParser::HttpRequestParser(HttpLimits limits) : limits_(limits) {
  http_parser_init(&parser_, HTTP_REQUEST);
  http_parser_settings_init(&settings_);
  settings_.on_message_begin = &HttpRequestParser::on_message_begin;
  settings_.on_url = &HttpRequestParser::on_url;
  settings_.on_header_field = &HttpRequestParser::on_header_field;
  settings_.on_header_value = &HttpRequestParser::on_header_value;
  settings_.on_headers_complete = &HttpRequestParser::on_headers_complete;
  settings_.on_body = &HttpRequestParser::on_body;
  settings_.on_message_complete = &HttpRequestParser::on_message_complete;
}

void HttpRequestParser::set_error(int status, std::string message) {
  state_ = HttpParseState::kError;
  error_ = HttpError{status, std::move(message)};
}

bool HttpRequestParser::count_header_bytes(size_t length) {
  header_bytes_ += length;
  if (header_bytes_ <= limits_.max_header_bytes) return true;
  set_error(431,
            str_cat("request target and headers are over ", limits_.max_header_bytes, " bytes"));
  return false;
}

int HttpRequestParser::on_message_begin(http_parser* /*parser*/) { return 0; }

int HttpRequestParser::on_url(http_parser* parser, const char* at, size_t length) {
  HttpRequestParser* p = self(parser);
  if (!p->count_header_bytes(length)) return 1;
  p->request_.target.append(at, length);
  return 0;
}

int HttpRequestParser::on_header_field(http_parser* parser, const char* at, size_t length) {
  HttpRequestParser* p = self(parser);
  if (!p->count_header_bytes(length)) return 1;
  // http_parser may deliver one name in several pieces; a name after a value starts a header.
  if (p->request_.headers.empty() || p->in_header_value_) {
    if (p->request_.headers.size() == p->limits_.max_headers) {
      p->set_error(431, str_cat("more than ", p->limits_.max_headers, " headers"));
      return 1;
    }
    p->request_.headers.emplace_back();
    p->in_header_value_ = false;
  }
  p->request_.headers.back().name.append(at, length);
  return 0;
}

int HttpRequestParser::on_header_value(http_parser* parser, const char* at, size_t length) {
  HttpRequestParser* p = self(parser);
  if (!p->count_header_bytes(length)) return 1;
  p->in_header_value_ = true;
  p->request_.headers.back().value.append(at, length);
  return 0;
}

int HttpRequestParser::on_headers_complete(http_parser* parser) {
  HttpRequestParser* p = self(parser);
  p->headers_complete_ = true;
  HttpRequest& request = p->request_;
  request.method = http_method_str(static_cast<http_method>(parser->method));
  request.http_major = parser->http_major;
  request.http_minor = parser->http_minor;

  http_parser_url url;
  http_parser_url_init(&url);
  bool is_connect = parser->method == HTTP_CONNECT;
  if (http_parser_parse_url(request.target.data(), request.target.size(), is_connect, &url) != 0) {
    p->set_error(400, "malformed request target");
    return -1;  // any value but 0, 1 and 2 is an error for on_headers_complete
  }
  auto field = [&](int which) -> std::string {
    if (!(url.field_set & (1 << which))) return {};
    return request.target.substr(url.field_data[which].off, url.field_data[which].len);
  };
  request.path = field(UF_PATH);
  request.query = field(UF_QUERY);

  if ((parser->flags & F_CONTENTLENGTH) && parser->content_length > p->limits_.max_body_bytes) {
    p->set_error(413, str_cat("a body of ", parser->content_length,
                              " bytes is over the maximum of ", p->limits_.max_body_bytes));
    return -1;
  }
  return 0;
}

int HttpRequestParser::on_body(http_parser* parser, const char* at, size_t length) {
  HttpRequestParser* p = self(parser);
  if (p->request_.body.size() + length > p->limits_.max_body_bytes) {
    p->set_error(413,
                 str_cat("the body is over the maximum of ", p->limits_.max_body_bytes, " bytes"));
    return 1;
  }
  p->request_.body.append(at, length);
  return 0;
}

int HttpRequestParser::on_message_complete(http_parser* parser) {
  HttpRequestParser* p = self(parser);
  p->state_ = HttpParseState::kComplete;
  // One request per connection: stop here, whatever follows.
  http_parser_pause(parser, 1);
  return 0;
}

HttpParseState HttpRequestParser::after_execute() {
  if (state_ != HttpParseState::kIncomplete) return state_;
  http_errno err = HTTP_PARSER_ERRNO(&parser_);
  if (err != HPE_OK) {
    set_error(err == HPE_HEADER_OVERFLOW ? 431 : 400,
              str_cat("malformed HTTP request: ", http_errno_description(err)));
  }
  return state_;
}

HttpParseState HttpRequestParser::feed(std::string_view bytes) {
  // Zero bytes would tell http_parser that the stream ended.
  if (state_ != HttpParseState::kIncomplete || bytes.empty()) return state_;
  parser_.data = this;
  http_parser_execute(&parser_, &settings_, bytes.data(), bytes.size());
  return after_execute();
}

HttpParseState HttpRequestParser::finish() {
  if (state_ != HttpParseState::kIncomplete) return state_;
  parser_.data = this;
  http_parser_execute(&parser_, &settings_, nullptr, 0);
  if (after_execute() == HttpParseState::kIncomplete) {
    set_error(400, "the connection ended before the request was complete");
  }
  return state_;
}

const HttpRequest& HttpRequestParser::request() const {
  PS_CHECK(state_ == HttpParseState::kComplete);
  return request_;
}

const HttpError& HttpRequestParser::error() const {
  PS_CHECK(state_ == HttpParseState::kError);
  return error_;
}

HttpRoute route_request(const HttpRequest& request) {
  HttpRoute route;
  std::optional<HttpEndpoint> endpoint;
  if (request.path == "/metrics") endpoint = HttpEndpoint::kMetrics;
  if (request.path == "/healthz") endpoint = HttpEndpoint::kHealth;
  if (!endpoint) {
    route.status = 404;
    return route;
  }
  if (request.method != "GET" && request.method != "HEAD") {
    route.status = 405;
    return route;
  }
  route.status = 200;
  route.endpoint = endpoint;
  route.head_only = request.method == "HEAD";
  return route;
}

std::string_view http_reason_phrase(int status) {
  // The enum's values end at 511; casting a larger int to it would not be a valid value.
  if (status < 100 || status > 511) return "Unknown";
  const char* phrase = http_status_str(static_cast<http_status>(status));
  // http_parser answers "<unknown>" for a status it does not list.
  if (phrase == nullptr || phrase[0] == '<') return "Unknown";
  return phrase;
}

std::string format_http_response(int status, std::string_view content_type, std::string_view body,
                                 bool head_only, const std::vector<std::string>& extra_headers) {
  PS_CHECK(status >= 100 && status <= 999);
  PS_CHECK(!has_line_break(content_type));
  std::string out = str_cat("HTTP/1.1 ", status, " ", http_reason_phrase(status), "\r\n",
                            "Content-Type: ", content_type, "\r\n", "Content-Length: ", body.size(),
                            "\r\n", "Connection: close\r\n");
  for (const std::string& header : extra_headers) {
    PS_CHECK(!has_line_break(header));
    out += header;
    out += "\r\n";
  }
  out += "\r\n";
  if (!head_only) out.append(body);
  return out;
}

std::string format_http_error(int status, bool head_only) {
  std::vector<std::string> extra;
  if (status == 405) extra.emplace_back("Allow: GET, HEAD");
  return format_http_response(status, "text/plain; charset=utf-8",
                              str_cat(status, " ", http_reason_phrase(status), "\n"), head_only,
                              extra);
}

}  // namespace ps::net
