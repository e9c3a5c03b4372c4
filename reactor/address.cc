#include "reactor/address.h"

#include <arpa/inet.h>
#include <uv.h>

#include <charconv>
#include <cstring>

namespace ps::reactor {

bool ListenAddress::is_loopback() const {
  if (storage.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&storage);
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&storage);
  if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) return true;
  return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127;
}

Result<ListenAddress> parse_listen_address(std::string_view text) {
  ListenAddress address;
  std::string_view host = "127.0.0.1";
  std::string_view port_text = text;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return invalid_argument("listen address '", text, "': expected [IPV6]:PORT");
    }
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else if (const size_t colon = text.rfind(':'); colon != std::string_view::npos) {
    if (text.find(':') != colon) {
      return invalid_argument("listen address '", text, "': put an IPv6 address in brackets: [",
                              text.substr(0, colon), "]:PORT");
    }
    if (colon > 0) host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() ||
      port > 65535) {
    return invalid_argument("listen address '", text, "': port '", port_text,
                            "' is not a number in 0..65535");
  }
  if (host == "localhost") host = "127.0.0.1";
  address.host = std::string(host);
  address.port = static_cast<uint16_t>(port);
  if (uv_ip4_addr(address.host.c_str(), port, reinterpret_cast<sockaddr_in*>(&address.storage)) !=
          0 &&
      uv_ip6_addr(address.host.c_str(), port, reinterpret_cast<sockaddr_in6*>(&address.storage)) !=
          0) {
    return invalid_argument("listen address '", text, "': host '", host,
                            "' is not a numeric IPv4 or IPv6 address (or localhost)");
  }
  return address;
}

std::string format_socket_address(const sockaddr* address) {
  char host[INET6_ADDRSTRLEN] = {};
  if (address->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(address);
    uv_ip6_name(in6, host, sizeof(host));
    return str_cat("[", host, "]:", ntohs(in6->sin6_port));
  }
  const auto* in = reinterpret_cast<const sockaddr_in*>(address);
  uv_ip4_name(in, host, sizeof(host));
  return str_cat(host, ":", ntohs(in->sin_port));
}

}  // namespace ps::reactor
