#include "reactor/http_listener.h"

#include <cstdlib>

#include "net/http_request.h"
#include "reactor/log.h"

namespace ps::reactor {

struct HttpListener::HttpConnection {
  uv_tcp_t tcp{};
  HttpListener* owner = nullptr;
  net::HttpRequestParser parser;
  bool responded = false;
  bool closing = false;
};

namespace {
struct HttpWrite {
  uv_write_t req{};
  std::string bytes;
  HttpListener::HttpConnection* connection = nullptr;
};
}  // namespace

HttpListener::HttpListener(uv_loop_t* loop, std::function<std::string()> metrics,
                           std::function<bool()> healthy)
    : loop_(loop), metrics_(std::move(metrics)), healthy_(std::move(healthy)) {}

HttpListener::~HttpListener() {
  // Every handle must be closed and its close callback run before the listener goes away.
  PS_CHECK(listener_ == nullptr && connections_.empty());
}

Status HttpListener::start(const ListenAddress& address) {
  auto* tcp = new uv_tcp_t;
  int rc = uv_tcp_init(loop_, tcp);
  if (rc != 0) {
    delete tcp;
    return internal_error("uv_tcp_init: ", uv_strerror(rc));
  }
  tcp->data = this;
  listener_ = tcp;
  rc = uv_tcp_bind(tcp, address.sockaddr_ptr(), 0);
  if (rc == 0)
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(tcp), 64, &HttpListener::on_connection);
  if (rc != 0) {
    return unavailable("metrics listener on ", address.host, ":", address.port, ": ",
                       uv_strerror(rc));
  }
  sockaddr_storage bound{};
  int size = sizeof(bound);
  uv_tcp_getsockname(tcp, reinterpret_cast<sockaddr*>(&bound), &size);
  address_ = format_socket_address(reinterpret_cast<sockaddr*>(&bound));
  return Status::OK();
}

void HttpListener::close() {
  if (closed_) return;
  closed_ = true;
  if (listener_ != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t*>(listener_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
    listener_ = nullptr;
  }
  std::set<HttpConnection*> open = connections_;
  for (HttpConnection* c : open) close_connection(*c);
}

void HttpListener::on_connection(uv_stream_t* listener, int status) {
  auto* self = static_cast<HttpListener*>(listener->data);
  if (status < 0 || self->closed_) return;
  auto* c = new HttpConnection;
  c->owner = self;
  uv_tcp_init(self->loop_, &c->tcp);
  c->tcp.data = c;
  self->connections_.insert(c);
  if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0) {
    self->close_connection(*c);
    return;
  }
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&c->tcp),
      [](uv_handle_t*, size_t suggested, uv_buf_t* buf) {
        buf->base = static_cast<char*>(std::malloc(suggested));
        buf->len = buf->base ? suggested : 0;
      },
      &HttpListener::on_read);
}

void HttpListener::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* c = static_cast<HttpConnection*>(stream->data);
  HttpListener* self = c->owner;
  if (nread > 0 && !c->responded) {
    c->parser.feed(std::string_view(buf->base, static_cast<size_t>(nread)));
  } else if (nread < 0 && !c->responded) {
    if (nread == UV_EOF) c->parser.finish();
    if (c->parser.state() == net::HttpParseState::kIncomplete) {
      std::free(buf->base);
      self->close_connection(*c);
      return;
    }
  }
  std::free(buf->base);
  if (!c->responded && c->parser.state() != net::HttpParseState::kIncomplete) self->respond(*c);
  if (nread < 0 && c->responded) uv_read_stop(stream);
}

void HttpListener::respond(HttpConnection& c) {
  c.responded = true;
  auto* w = new HttpWrite;
  if (c.parser.state() == net::HttpParseState::kError) {
    w->bytes = net::format_http_error(c.parser.error().status);
  } else {
    const net::HttpRequest& request = c.parser.request();
    const net::HttpRoute route = net::route_request(request);
    if (route.status != 200) {
      w->bytes = net::format_http_error(route.status, route.head_only);
    } else if (*route.endpoint == net::HttpEndpoint::kMetrics) {
      w->bytes =
          net::format_http_response(200, net::kPrometheusContentType, metrics_(), route.head_only);
    } else {
      const bool ok = healthy_();
      w->bytes = net::format_http_response(ok ? 200 : 503, "text/plain; charset=utf-8",
                                           ok ? "ok\n" : "unavailable\n", route.head_only);
    }
  }
  w->req.data = w;
  w->connection = &c;
  uv_buf_t b = uv_buf_init(w->bytes.data(), static_cast<unsigned>(w->bytes.size()));
  if (uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&c.tcp), &b, 1, &HttpListener::on_write) !=
      0) {
    delete w;
    close_connection(c);
  }
}

void HttpListener::on_write(uv_write_t* req, int status) {
  (void)status;
  auto* w = static_cast<HttpWrite*>(req->data);
  HttpConnection* c = w->connection;
  delete w;
  c->owner->close_connection(*c);  // Connection: close
}

void HttpListener::close_connection(HttpConnection& c) {
  if (c.closing) return;
  c.closing = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&c.tcp), [](uv_handle_t* h) {
    auto* conn = static_cast<HttpConnection*>(h->data);
    conn->owner->connections_.erase(conn);
    delete conn;
  });
}

}  // namespace ps::reactor
