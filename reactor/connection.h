// One client connection of the server: its socket, the protocol it speaks and that protocol's
// parser state, its authentication, and its queue of replies. Plain data; the Server
// (server.h) drives it from libuv callbacks.
//
// Replies in order. Every request takes a slot in `slots` when it is parsed; a slot is filled
// when its reply is known (at once, or when the backend completes), and the server writes the
// filled prefix of the queue once per loop turn, so replies leave in request order even when
// requests complete out of order.
//
// Lifetime: allocated by the server on accept and freed only in the close callback of `tcp`
// (STYLE.md); write and shutdown requests point at it and complete (cancelled, if need be)
// before that callback runs.
#pragma once

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include "net/auth.h"
#include "net/binary_protocol.h"
#include "net/protocol_detect.h"
#include "net/text_protocol.h"

namespace ps::reactor {

class Server;

struct ReplySlot {
  bool ready = false;
  bool close_after = false;  // the connection closes once this reply is written
  std::string bytes;
};

struct Connection {
  using Clock = std::chrono::steady_clock;

  Connection(Server* owner, uint64_t connection_id, const net::AuthPolicy& policy)
      : server(owner), id(connection_id), gate(policy) {}

  uv_tcp_t tcp{};  // tcp.data == this
  Server* server;
  uint64_t id;
  std::string peer;  // "127.0.0.1:54321"

  net::WireProtocol protocol = net::WireProtocol::kUndecided;
  std::string first_bytes;  // until the protocol is decided
  std::optional<net::TextParser> text;
  std::optional<net::BinaryParser> binary;
  net::ConnectionGate gate;

  // Replies: slot of sequence number s is slots[s - first_seq].
  std::deque<ReplySlot> slots;
  uint64_t first_seq = 0;
  size_t ready_bytes = 0;    // bytes in filled slots not yet handed to uv_write
  size_t writing_bytes = 0;  // bytes handed to uv_write and not yet completed
  uint32_t writes_in_flight = 0;
  Clock::time_point last_write_progress = Clock::now();

  bool reading = false;    // uv_read_start is in effect
  bool paused = false;     // reading stopped for backpressure
  bool peer_done = false;  // EOF seen (or the parser is closed): no more requests
  bool draining = false;   // close once every slot is written (QUIT, a must_close error)
  bool shut_down = false;  // uv_shutdown sent; discarding input until EOF or the deadline
  Clock::time_point linger_deadline;
  bool closing = false;  // uv_close called
  bool dirty = false;    // on the server's flush list
  bool counted = false;  // counts against max_connections (until it closes or lingers)
};

}  // namespace ps::reactor
