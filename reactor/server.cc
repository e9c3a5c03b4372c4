#include "reactor/server.h"

#include <csignal>

#include "net/text_reply.h"
#include "reactor/log.h"

namespace ps::reactor {

Server::Server(uv_loop_t* loop, Scheduler& scheduler, ServerOptions options)
    : loop_(loop), scheduler_(scheduler), options_(std::move(options)) {}

Server::~Server() {
  // Freed memory must not be reachable from a live handle (STYLE.md: free in close callbacks).
  PS_CHECK(!started_ok_ || finished_);
  PS_CHECK(connections_.empty());
}

std::optional<std::string> Server::metrics_address() const {
  if (!metrics_) return std::nullopt;
  return metrics_->address();
}

Status Server::listen_on(const ListenAddress& address) {
  auto* listener = new Listener;
  listener->server = this;
  int rc = uv_tcp_init(loop_, &listener->tcp);
  if (rc != 0) {
    delete listener;
    return internal_error("uv_tcp_init: ", uv_strerror(rc));
  }
  listener->tcp.data = listener;
  listeners_.push_back(listener);
  // An IPv6 address listens on IPv6 only, so [::]:P and 0.0.0.0:P can both be given.
  rc = uv_tcp_bind(&listener->tcp, address.sockaddr_ptr(), address.is_ipv6() ? UV_TCP_IPV6ONLY : 0);
  if (rc == 0) {
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(&listener->tcp), 511, &Server::on_connection);
  }
  if (rc != 0) {
    return unavailable("cannot listen on ", address.is_ipv6() ? "[" : "", address.host,
                       address.is_ipv6() ? "]" : "", ":", address.port, ": ", uv_strerror(rc));
  }
  sockaddr_storage bound{};
  int size = sizeof(bound);
  uv_tcp_getsockname(&listener->tcp, reinterpret_cast<sockaddr*>(&bound), &size);
  bound_.push_back(format_socket_address(reinterpret_cast<sockaddr*>(&bound)));
  return Status::OK();
}

Status Server::start() {
  PS_CHECK(!started_ok_ && !options_.listen.empty());
  check_ = new uv_check_t;
  uv_check_init(loop_, check_);
  check_->data = this;
  uv_check_start(check_, &Server::on_check);
  sweep_timer_ = new uv_timer_t;
  uv_timer_init(loop_, sweep_timer_);
  sweep_timer_->data = this;
  uv_timer_start(sweep_timer_, &Server::on_sweep, 250, 250);
  uv_unref(reinterpret_cast<uv_handle_t*>(sweep_timer_));
  started_ok_ = true;  // from here on, handles exist: the caller must shut down to free them

  for (const ListenAddress& address : options_.listen) {
    Status s = listen_on(address);
    if (!s.ok()) {
      begin_shutdown("start-up failed");
      return s;
    }
  }
  if (options_.metrics_listen) {
    metrics_ = std::make_unique<HttpListener>(
        loop_, [this] { return metrics_text(); }, [this] { return healthy(); });
    Status s = metrics_->start(*options_.metrics_listen);
    if (!s.ok()) {
      begin_shutdown("start-up failed");
      return s;
    }
  }
  if (options_.handle_signals) {
    for (int signum : {SIGINT, SIGTERM}) {
      auto* sig = new uv_signal_t;
      uv_signal_init(loop_, sig);
      sig->data = this;
      uv_signal_start(sig, &Server::on_signal, signum);
      uv_unref(reinterpret_cast<uv_handle_t*>(sig));
      signals_.push_back(sig);
    }
  }
  return Status::OK();
}

void Server::on_signal(uv_signal_t* handle, int signum) {
  auto* self = static_cast<Server*>(handle->data);
  if (self->shutting_down_) {
    log_warn("signal ", signum, " again: shutting down now");
    for (auto& [id, c] : std::map<uint64_t, Connection*>(self->connections_)) {
      self->close_connection(*c, "forced shutdown");
    }
    self->maybe_finish_shutdown();
    return;
  }
  self->begin_shutdown(signum == SIGINT ? "SIGINT" : "SIGTERM");
}

void Server::on_connection(uv_stream_t* listener_stream, int status) {
  auto* listener = static_cast<Listener*>(listener_stream->data);
  Server* self = listener->server;
  if (status < 0) {
    log_warn("accept: ", uv_strerror(status));
    return;
  }
  auto* c = new Connection(self, self->next_connection_id_++, self->options_.auth);
  uv_tcp_init(self->loop_, &c->tcp);
  c->tcp.data = c;
  self->connections_.emplace(c->id, c);
  if (uv_accept(listener_stream, reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0) {
    self->close_connection(*c, "accept failed");
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  sockaddr_storage peer{};
  int size = sizeof(peer);
  if (uv_tcp_getpeername(&c->tcp, reinterpret_cast<sockaddr*>(&peer), &size) == 0) {
    c->peer = format_socket_address(reinterpret_cast<sockaddr*>(&peer));
  }
  ++self->connections_total_;
  // Over the limit, it is told so and closed (it never reads a request). Connections that are
  // only waiting to close (refused ones, lingering ones) do not count.
  if (self->shutting_down_ || self->serving_ >= self->options_.max_connections) {
    ++self->connections_refused_;
    log_info("connection ", c->id, " from ", c->peer,
             " refused: ", self->shutting_down_ ? "shutting down" : "too many connections");
    self->reply_now(
        *c,
        self->shutting_down_
            ? net::format_error(net::ErrorCode::kUnavailable, "the server is shutting down")
            : net::format_error(net::ErrorCode::kBusy,
                                str_cat("too many connections (the limit is ",
                                        self->options_.max_connections, ")")),
        /*close_after=*/true);
    return;
  }
  log_debug("connection ", c->id, " from ", c->peer);
  c->counted = true;
  ++self->serving_;
  self->update_reading(*c);
}

void Server::on_check(uv_check_t* handle) {
  auto* self = static_cast<Server*>(handle->data);
  self->scheduler_.pump();
  self->flush_dirty();
  if (self->shutting_down_) self->maybe_finish_shutdown();
}

void Server::on_sweep(uv_timer_t* handle) { static_cast<Server*>(handle->data)->sweep(); }

void Server::sweep() {
  const auto now = Clock::now();
  std::vector<Connection*> stale;
  for (auto& [id, c] : connections_) {
    if (c->closing) continue;
    if (c->writing_bytes > 0 && now - c->last_write_progress > options_.write_timeout) {
      stale.push_back(c);
    } else if (c->shut_down && now > c->linger_deadline) {
      stale.push_back(c);
    }
  }
  for (Connection* c : stale) {
    close_connection(*c, c->shut_down ? "linger over" : "the client does not read its replies");
  }
}

void Server::begin_shutdown(std::string_view why) {
  if (shutting_down_) return;
  shutting_down_ = true;
  log_info("shutting down (", why, "): no new connections; finishing ", scheduler_.in_flight(),
           " in-flight and failing ", scheduler_.queued(), " queued requests");
  for (Listener* listener : listeners_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&listener->tcp),
             [](uv_handle_t* h) { delete static_cast<Listener*>(h->data); });
  }
  listeners_.clear();
  shutdown_timer_ = new uv_timer_t;
  uv_timer_init(loop_, shutdown_timer_);
  shutdown_timer_->data = this;
  uv_timer_start(
      shutdown_timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<Server*>(t->data);
        log_warn("shutdown: in-flight work did not finish in time; closing every connection");
        for (auto& [id, c] : std::map<uint64_t, Connection*>(self->connections_)) {
          self->close_connection(*c, "shutdown timeout");
        }
        self->close_server_handles();
      },
      static_cast<uint64_t>(options_.shutdown_timeout.count()), 0);
  scheduler_.shutdown();
  // No more requests: each connection closes once its pending replies are written.
  std::vector<uint64_t> ids;
  for (const auto& [id, c] : connections_) ids.push_back(id);
  for (uint64_t id : ids) {
    Connection* c = find_connection(id);  // an earlier one's close may not touch this one, but
    if (c == nullptr) continue;           // iterate over ids: closing erases from the map
    c->draining = true;                   // then FIN, and a short linger for the client to close
    update_reading(*c);
    maybe_finish_connection(*c);
  }
  maybe_finish_shutdown();
}

void Server::maybe_finish_shutdown() {
  if (finished_ || !shutting_down_) return;
  if (!connections_.empty() || !scheduler_.idle()) return;
  close_server_handles();
}

void Server::close_server_handles() {
  if (finished_) return;
  finished_ = true;
  auto close_and_delete = [](auto*& handle) {
    using Handle = std::remove_pointer_t<std::remove_reference_t<decltype(handle)>>;
    if (handle == nullptr) return;
    uv_close(reinterpret_cast<uv_handle_t*>(handle),
             [](uv_handle_t* h) { delete reinterpret_cast<Handle*>(h); });
    handle = nullptr;
  };
  close_and_delete(check_);
  close_and_delete(sweep_timer_);
  close_and_delete(shutdown_timer_);
  for (uv_signal_t*& sig : signals_) close_and_delete(sig);
  signals_.clear();
  for (Listener* listener : listeners_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&listener->tcp),
             [](uv_handle_t* h) { delete static_cast<Listener*>(h->data); });
  }
  listeners_.clear();
  if (metrics_) metrics_->close();
  log_info("shutdown complete");
  if (on_finished_) on_finished_();
}

}  // namespace ps::reactor
