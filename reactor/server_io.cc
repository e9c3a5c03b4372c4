// The connection I/O of the server: reading and protocol detection, reply slots, writing,
// backpressure and closing.
#include <cstring>

#include "net/text_reply.h"
#include "reactor/log.h"
#include "reactor/server.h"

namespace ps::reactor {
namespace {

// One uv_write of the ready replies of a connection; owns their bytes until the callback.
struct WriteRequest {
  uv_write_t req{};
  Connection* connection = nullptr;
  std::vector<std::string> pieces;
  size_t bytes = 0;
};

struct ShutdownRequest {
  uv_shutdown_t req{};
  Connection* connection = nullptr;
};

uv_stream_t* stream_of(Connection& c) { return reinterpret_cast<uv_stream_t*>(&c.tcp); }

}  // namespace

void Server::uncount(Connection& c) {
  if (!c.counted) return;
  c.counted = false;
  --serving_;
}

Connection* Server::find_connection(uint64_t id) {
  auto it = connections_.find(id);
  return it == connections_.end() ? nullptr : it->second;
}

void Server::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  Server* self = static_cast<Connection*>(handle->data)->server;
  buf->base = self->read_buffer_;
  buf->len = sizeof(self->read_buffer_);
}

void Server::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* c = static_cast<Connection*>(stream->data);
  Server* self = c->server;
  if (c->closing) return;
  if (nread > 0) {
    if (c->shut_down || c->peer_done) return;  // lingering, or after a must-close error: discard
    self->feed(*c, std::string_view(buf->base, static_cast<size_t>(nread)));
    return;
  }
  if (nread == 0) return;  // EAGAIN
  if (nread == UV_EOF) {
    self->on_peer_eof(*c);
    return;
  }
  self->close_connection(*c, uv_strerror(static_cast<int>(nread)));
}

void Server::feed(Connection& c, std::string_view bytes) {
  if (c.protocol == net::WireProtocol::kUndecided) {
    const size_t take = std::min(bytes.size(), net::kDetectMaxBytes - c.first_bytes.size());
    c.first_bytes.append(bytes.substr(0, take));
    c.protocol = net::detect_protocol(c.first_bytes);
    if (c.protocol == net::WireProtocol::kUndecided) return;
    const std::string head = std::move(c.first_bytes);
    c.first_bytes.clear();
    if (c.protocol == net::WireProtocol::kText) {
      c.text.emplace(options_.text_limits);
      c.text->feed(head);
    } else {
      if (!net::binary_protocol_allowed(options_.auth)) {
        log_info("connection ", c.id, " from ", c.peer,
                 ": binary protocol refused (this server requires AUTH, which it cannot send)");
        close_connection(c, "binary protocol needs a server without a token");
        return;
      }
      c.binary.emplace(options_.binary_limits);
      c.binary->feed(head);
    }
    bytes = bytes.substr(take);
  }
  if (c.text) c.text->feed(bytes);
  if (c.binary) c.binary->feed(bytes);
  process_requests(c);
}

void Server::on_peer_eof(Connection& c) {
  c.peer_done = true;
  if (c.shut_down) {  // we were lingering for exactly this
    close_connection(c, "closed");
    return;
  }
  Status ended = Status::OK();
  if (c.text) ended = c.text->finish();
  if (c.binary) ended = c.binary->finish();
  if (c.protocol == net::WireProtocol::kUndecided && !c.first_bytes.empty()) {
    ended = corrupt("the connection ended after ", c.first_bytes.size(), " bytes");
  }
  if (!ended.ok()) {
    ++protocol_errors_;
    log_info("connection ", c.id, " from ", c.peer, " ended mid-request: ", ended.message());
  }
  // Requests already parsed still run and are answered (the client may have half-closed).
  process_requests(c);
  update_reading(c);
  maybe_finish_connection(c);
}

bool Server::over_limits(const Connection& c) const {
  return c.slots.size() >= options_.max_pipelined ||
         c.ready_bytes + c.writing_bytes > options_.max_pending_reply_bytes;
}

void Server::process_requests(Connection& c) {
  while (!c.closing && !c.draining && !over_limits(c)) {
    if (c.text) {
      std::optional<net::TextItem> item = c.text->next();
      if (!item) break;
      handle_text(c, std::move(*item));
    } else if (c.binary) {
      std::optional<net::BinaryItem> item = c.binary->next();
      if (!item) break;
      handle_binary(c, std::move(*item));
    } else {
      break;
    }
  }
  if (!c.closing) update_reading(c);
}

void Server::update_reading(Connection& c) {
  if (c.closing) return;
  // Lingering connections read (and discard) until EOF; others read while under the limits.
  const bool want = c.shut_down || (!c.peer_done && !c.draining && !over_limits(c));
  c.paused = !want && !c.peer_done && !c.draining;
  if (want && !c.reading) {
    if (uv_read_start(stream_of(c), &Server::on_alloc, &Server::on_read) == 0) c.reading = true;
  } else if (!want && c.reading) {
    uv_read_stop(stream_of(c));
    c.reading = false;
  }
}

uint64_t Server::reserve_slot(Connection& c) {
  c.slots.emplace_back();
  return c.first_seq + c.slots.size() - 1;
}

void Server::fill_slot(uint64_t connection_id, uint64_t seq, std::string bytes, bool close_after) {
  Connection* c = find_connection(connection_id);
  if (c == nullptr || c->closing) return;  // the client went away; the reply is dropped
  PS_CHECK(seq >= c->first_seq && seq < c->first_seq + c->slots.size());
  ReplySlot& slot = c->slots[seq - c->first_seq];
  PS_CHECK(!slot.ready);
  slot.ready = true;
  slot.close_after = close_after;
  c->ready_bytes += bytes.size();
  slot.bytes = std::move(bytes);
  if (!c->dirty) {
    c->dirty = true;
    dirty_.push_back(c->id);
  }
}

void Server::reply_now(Connection& c, std::string bytes, bool close_after) {
  const uint64_t seq = reserve_slot(c);
  fill_slot(c.id, seq, std::move(bytes), close_after);
  if (close_after) {
    c.draining = true;
    update_reading(c);
  }
}

void Server::flush_dirty() {
  std::vector<uint64_t> ids;
  ids.swap(dirty_);
  for (uint64_t id : ids) {
    Connection* c = find_connection(id);
    if (c == nullptr) continue;
    c->dirty = false;
    flush(*c);
  }
}

void Server::flush(Connection& c) {
  if (c.closing) return;
  auto* w = new WriteRequest;
  w->connection = &c;
  bool close_after = false;
  while (!c.slots.empty() && c.slots.front().ready) {
    ReplySlot& slot = c.slots.front();
    w->bytes += slot.bytes.size();
    if (!slot.bytes.empty()) w->pieces.push_back(std::move(slot.bytes));
    close_after = close_after || slot.close_after;
    c.slots.pop_front();
    ++c.first_seq;
    if (close_after) break;
  }
  if (close_after) {
    c.draining = true;
    // Replies after a closing one are never sent (nothing after QUIT or a must-close error).
    c.first_seq += c.slots.size();
    c.slots.clear();
  }
  if (w->pieces.empty()) {
    delete w;
  } else {
    c.ready_bytes -= w->bytes;
    c.writing_bytes += w->bytes;
    if (c.writes_in_flight == 0) c.last_write_progress = Clock::now();
    ++c.writes_in_flight;
    std::vector<uv_buf_t> bufs;
    for (std::string& piece : w->pieces) {
      bufs.push_back(uv_buf_init(piece.data(), static_cast<unsigned>(piece.size())));
    }
    w->req.data = w;
    const int rc = uv_write(&w->req, stream_of(c), bufs.data(), static_cast<unsigned>(bufs.size()),
                            &Server::on_write);
    if (rc != 0) {
      --c.writes_in_flight;
      c.writing_bytes -= w->bytes;
      delete w;
      close_connection(c, str_cat("write: ", uv_strerror(rc)));
      return;
    }
  }
  if (close_after) update_reading(c);
  maybe_finish_connection(c);
  // Fewer replies pending may lift backpressure: parse what is buffered, read again.
  if (!c.closing) process_requests(c);
}

void Server::on_write(uv_write_t* req, int status) {
  auto* w = static_cast<WriteRequest*>(req->data);
  Connection& c = *w->connection;
  Server* self = c.server;
  c.writing_bytes -= w->bytes;
  --c.writes_in_flight;
  c.last_write_progress = Clock::now();
  delete w;
  if (c.closing) return;
  if (status < 0) {
    self->close_connection(c, str_cat("write: ", uv_strerror(status)));
    return;
  }
  self->maybe_finish_connection(c);
  if (!c.closing) self->process_requests(c);
}

void Server::maybe_finish_connection(Connection& c) {
  if (c.closing || c.shut_down) return;
  const bool done_reading = c.draining || c.peer_done;
  const bool parser_empty =
      c.draining || ((!c.text || !c.text->has_next()) && (!c.binary || !c.binary->has_next()));
  if (!done_reading || !parser_empty || !c.slots.empty() || c.writes_in_flight > 0) return;
  if (c.peer_done) {
    close_connection(c, "closed by the client");
    return;
  }
  // Our side is done: send FIN, then read and discard until the client closes (or the linger
  // deadline), so that unread input does not make the kernel reset the connection and lose the
  // last reply.
  auto* s = new ShutdownRequest;
  s->connection = &c;
  s->req.data = s;
  if (uv_shutdown(&s->req, stream_of(c), &Server::on_shutdown) != 0) {
    delete s;
    close_connection(c, "shutdown failed");
    return;
  }
  c.shut_down = true;
  uncount(c);
  c.linger_deadline = Clock::now() + options_.linger;
  update_reading(c);
}

void Server::on_shutdown(uv_shutdown_t* req, int status) {
  auto* s = static_cast<ShutdownRequest*>(req->data);
  Connection& c = *s->connection;
  delete s;
  if (status < 0 && !c.closing) c.server->close_connection(c, "shutdown failed");
}

void Server::close_connection(Connection& c, std::string_view why) {
  if (c.closing) return;
  c.closing = true;
  uncount(c);
  log_debug("connection ", c.id, " from ", c.peer, " closed: ", why);
  connections_.erase(c.id);
  uv_close(reinterpret_cast<uv_handle_t*>(&c.tcp),
           [](uv_handle_t* h) { delete static_cast<Connection*>(h->data); });
  if (shutting_down_) maybe_finish_shutdown();
}

}  // namespace ps::reactor
