// The HTTP listener of the metrics port: GET/HEAD /metrics (Prometheus text) and /healthz, one
// request per connection (net/http_request.h parses and routes; this file does the I/O).
// Handles and connections are freed in their close callbacks; the HttpListener itself must
// outlive the loop run that closes them (the Server keeps it until it is destroyed).
#pragma once

#include <uv.h>

#include <functional>
#include <set>
#include <string>

#include "common/status.h"
#include "reactor/address.h"

namespace ps::reactor {

class HttpListener {
 public:
  // `metrics` makes the /metrics body; `healthy` says whether /healthz answers 200 or 503.
  HttpListener(uv_loop_t* loop, std::function<std::string()> metrics,
               std::function<bool()> healthy);
  ~HttpListener();
  HttpListener(const HttpListener&) = delete;
  HttpListener& operator=(const HttpListener&) = delete;

  // Binds and listens. Errors name the address and the libuv call.
  Status start(const ListenAddress& address);
  const std::string& address() const { return address_; }

  // Closes the listener and every open connection. Idempotent.
  void close();

  struct HttpConnection;  // one accepted connection (internal)

 private:
  static void on_connection(uv_stream_t* listener, int status);
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);
  void respond(HttpConnection& c);
  void close_connection(HttpConnection& c);

  uv_loop_t* loop_;
  std::function<std::string()> metrics_;
  std::function<bool()> healthy_;
  uv_tcp_t* listener_ = nullptr;
  std::set<HttpConnection*> connections_;
  std::string address_;
  bool closed_ = false;
};

}  // namespace ps::reactor
