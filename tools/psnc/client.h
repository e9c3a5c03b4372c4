// A small blocking client of pipeswitchd, for psnc and the end-to-end tests: connect, send
// bytes, read text-protocol replies (status line and payload) or binary-protocol replies.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace ps::psnc {

struct HostPort {
  std::string host = "127.0.0.1";
  uint16_t port = 12345;
};

// "PORT", "HOST:PORT", "[V6]:PORT" (host default 127.0.0.1). INVALID_ARGUMENT names the text.
Result<HostPort> parse_host_port(std::string_view text);

// One text-protocol reply.
struct Reply {
  std::string line;                           // the status line without "\n"
  bool ok = false;                            // "OK ..." (else "ERR ...")
  std::string code;                           // ERR: the code
  std::string message;                        // ERR: the message
  std::map<std::string, std::string> fields;  // OK: key=value fields
  std::string payload;                        // bytes=K payload, if any

  // The field's value, or "" when absent.
  std::string field(const std::string& key) const;
};

// Parses a status line (without "\n"). INVALID_ARGUMENT if it is neither OK nor ERR.
Result<Reply> parse_status_line(std::string_view line);

class Client {
 public:
  // Connects (numeric host or localhost). Errors name the address and errno's text.
  static Result<Client> connect(const HostPort& address,
                                std::chrono::milliseconds timeout = std::chrono::seconds(10));
  Client(Client&& other) noexcept;
  Client& operator=(Client&& other) noexcept;
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ~Client();

  // Sends all of `bytes`. Errors: the peer closed (IO), a timeout.
  Status send(std::string_view bytes);
  // Reads one text reply (a status line and its bytes=K payload). Errors: the connection ended
  // first (IO, "closed after N bytes"), a timeout, an unparsable line (CORRUPT).
  Result<Reply> read_reply();
  // Reads exactly n bytes.
  Result<std::string> read_exact(size_t n);
  // True when the server has closed the connection (reads EOF within `timeout`; bytes that
  // arrive first are an error: INVALID_ARGUMENT quoting them).
  Result<bool> wait_closed(std::chrono::milliseconds timeout);
  // Half-closes: no more bytes will be sent.
  void shutdown_write();
  // Per-call timeout of reads and writes.
  void set_timeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }
  int fd() const { return fd_; }

 private:
  explicit Client(int fd) : fd_(fd) {}
  // Waits for fd_ to be readable/writable; DEADLINE as IO "timed out".
  Status wait(bool for_write);
  Result<size_t> read_some(char* dst, size_t n);

  int fd_ = -1;
  std::string buffer_;  // read but not consumed
  std::chrono::milliseconds timeout_ = std::chrono::seconds(60);
};

// The binary protocol: sends one request and waits for "FNSH". Errors when the server closes
// instead (it has no error reply).
Status binary_request(Client& client, std::string_view name, std::string_view data);

}  // namespace ps::psnc
