// The server: libuv listeners (IPv4 and IPv6), client connections speaking the text or the
// PipeSwitch binary protocol (told apart by their first bytes, net/protocol_detect.h), the
// HTTP metrics listener, signals and graceful shutdown. One loop, one thread.
//
// Per loop turn: read callbacks only append bytes to a parser and turn complete requests into
// scheduler submissions or immediate replies; completions (through the CompletionBridge) fill
// reply slots; then one check callback (after the poll phase) lets the scheduler hand queued
// work to the backend and writes every connection's ready replies with one uv_write each.
//
// Limits and bad input: see docs/server.md. In short: max connections (new ones get
// `ERR BUSY` and are closed), line and payload limits (the parser's), max pipelined requests
// and pending reply bytes per connection (reading stops until the client catches up), a write
// timeout for clients that never read, and a close that lingers so the last reply is not lost
// to a TCP reset.
#pragma once

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "net/auth.h"
#include "net/binary_protocol.h"
#include "net/text_command.h"
#include "net/text_protocol.h"
#include "reactor/address.h"
#include "reactor/connection.h"
#include "reactor/http_listener.h"
#include "reactor/scheduler.h"

namespace ps::reactor {

struct ServerOptions {
  std::vector<ListenAddress> listen;            // at least one
  std::optional<ListenAddress> metrics_listen;  // HTTP /metrics and /healthz
  net::TextLimits text_limits;
  net::BinaryLimits binary_limits;
  net::AuthPolicy auth;
  uint32_t max_connections = 1024;
  size_t max_pipelined = 64;                       // requests awaiting their reply, per connection
  size_t max_pending_reply_bytes = 16 << 20;       // reply bytes not yet written, per connection
  std::chrono::milliseconds write_timeout{30000};  // no write progress: close
  std::chrono::milliseconds shutdown_timeout{10000};  // in-flight work gets this long
  std::chrono::milliseconds linger{2000};             // after the last reply, wait for EOF
  std::string models_dir;      // LOAD reads packages only inside it; empty: LOAD is refused
  // Training checkpoints are read and written only inside it (created at start-up); empty:
  // jobs keep no checkpoints and TRAIN's checkpoint=, resume= and every= are refused.
  std::string checkpoints_dir;
  bool handle_signals = true;  // SIGINT/SIGTERM start a graceful shutdown
  std::string device;          // Backend::describe(), for STATS
};

class Server {
 public:
  using Clock = std::chrono::steady_clock;

  // `loop` and `scheduler` outlive the server. Nothing happens before start().
  Server(uv_loop_t* loop, Scheduler& scheduler, ServerOptions options);
  // Precondition: finished() (every handle closed), or start() never succeeded.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens on every address, the metrics listener, the per-turn check handle, the
  // sweep timer and the signals. Errors name the address and the libuv call (EADDRINUSE...).
  Status start();

  // The addresses actually bound ("127.0.0.1:40123" when port 0 was asked), in --listen order.
  const std::vector<std::string>& bound_addresses() const { return bound_; }
  std::optional<std::string> metrics_address() const;

  // Starts a graceful shutdown: listeners close, queued requests are answered UNAVAILABLE,
  // in-flight ones finish (for at most shutdown_timeout), replies are written, connections
  // close, then every handle of the server is closed and `on_finished` (if set) runs.
  void begin_shutdown(std::string_view why);
  void set_on_finished(std::function<void()> on_finished) { on_finished_ = std::move(on_finished); }
  bool shutting_down() const { return shutting_down_; }
  bool finished() const { return finished_; }

  size_t connection_count() const { return serving_; }

 private:
  struct Listener {
    uv_tcp_t tcp{};
    Server* server = nullptr;
  };

  // server.cc: listeners, the per-turn pump, timers, signals, shutdown.
  Status listen_on(const ListenAddress& address);
  static void on_connection(uv_stream_t* listener, int status);
  static void on_check(uv_check_t* handle);
  static void on_sweep(uv_timer_t* handle);
  static void on_signal(uv_signal_t* handle, int signum);
  void sweep();
  void maybe_finish_shutdown();
  void close_server_handles();

  // server_io.cc: reading, reply slots, writing, backpressure, closing.
  static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);
  static void on_shutdown(uv_shutdown_t* req, int status);
  void feed(Connection& c, std::string_view bytes);
  void on_peer_eof(Connection& c);
  void process_requests(Connection& c);
  bool over_limits(const Connection& c) const;
  void update_reading(Connection& c);
  uint64_t reserve_slot(Connection& c);
  void fill_slot(uint64_t connection_id, uint64_t seq, std::string bytes, bool close_after = false);
  void reply_now(Connection& c, std::string bytes, bool close_after = false);
  void flush(Connection& c);
  void flush_dirty();
  void maybe_finish_connection(Connection& c);
  void close_connection(Connection& c, std::string_view why);
  Connection* find_connection(uint64_t id);
  void uncount(Connection& c);

  // server_text.cc: the text protocol's commands.
  void handle_text(Connection& c, net::TextItem item);
  void text_infer(Connection& c, net::Command command);
  void text_load(Connection& c, const net::Command& command);
  void text_unload(Connection& c, const net::Command& command);
  std::string models_reply() const;
  // LOAD's package (`package`, default `<model>.psm`) checked against the models directory and
  // opened beneath it (common/beneath_open.h): a source that carries the open descriptor.
  // kPermissionDenied (FORBIDDEN) when it would leave the directory or there is none.
  Result<ModelSource> open_package_source(const std::string& model,
                                          const std::string* package) const;

  // server_train.cc: TRAIN, JOBS, STOP, CHECKPOINT.
  void text_train(Connection& c, const net::Command& command);
  void text_stop(Connection& c, const net::Command& command);
  void text_checkpoint(Connection& c, const net::Command& command);
  std::string jobs_reply() const;
  // A file name of the text protocol (net::OptionKind::kName) inside --checkpoints DIR.
  Result<std::string> checkpoint_path(std::string_view name) const;

  // server_binary.cc: the PipeSwitch binary protocol.
  void handle_binary(Connection& c, net::BinaryItem item);

  // server_stats.cc: STATS and /metrics.
  std::string stats_reply() const;
  std::string metrics_text() const;
  bool healthy() const;

  uv_loop_t* loop_;
  Scheduler& scheduler_;
  ServerOptions options_;
  std::vector<Listener*> listeners_;  // freed in their close callbacks
  std::vector<std::string> bound_;
  std::unique_ptr<HttpListener> metrics_;
  uv_check_t* check_ = nullptr;
  uv_timer_t* sweep_timer_ = nullptr;
  uv_timer_t* shutdown_timer_ = nullptr;
  std::vector<uv_signal_t*> signals_;
  std::map<uint64_t, Connection*> connections_;
  std::vector<uint64_t> dirty_;
  size_t serving_ = 0;  // connections counted against max_connections (Connection::counted)
  uint64_t next_connection_id_ = 1;
  uint64_t connections_total_ = 0;
  uint64_t connections_refused_ = 0;
  uint64_t protocol_errors_ = 0;
  Clock::time_point started_ = Clock::now();
  bool started_ok_ = false;
  bool shutting_down_ = false;
  bool finished_ = false;
  std::function<void()> on_finished_;
  char read_buffer_[64 * 1024];  // one buffer: a read callback consumes it before the next read
};

}  // namespace ps::reactor
