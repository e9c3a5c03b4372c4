// Listen addresses: "HOST:PORT", "[V6]:PORT", ":PORT" or "PORT" (host 127.0.0.1), with numeric
// hosts or "localhost"; port 0 asks the OS for a free port.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace ps::reactor {

struct ListenAddress {
  std::string host;  // numeric, without brackets: "127.0.0.1", "::1", "0.0.0.0"
  uint16_t port = 0;
  sockaddr_storage storage{};  // the resolved socket address

  const sockaddr* sockaddr_ptr() const { return reinterpret_cast<const sockaddr*>(&storage); }
  bool is_ipv6() const { return storage.ss_family == AF_INET6; }
  // True for 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104: only this machine can connect.
  bool is_loopback() const;
};

// Parses `text` (see above). Errors (INVALID_ARGUMENT) name the text and what is wrong: no
// port, a port over 65535, a host that is not a numeric IPv4/IPv6 address or "localhost".
Result<ListenAddress> parse_listen_address(std::string_view text);

// "127.0.0.1:12345" or "[::1]:12345" for a bound socket address.
std::string format_socket_address(const sockaddr* address);

}  // namespace ps::reactor
