#include "tools/psnc/client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "net/binary_protocol.h"

namespace ps::psnc {

Result<HostPort> parse_host_port(std::string_view text) {
  HostPort hp;
  std::string_view port = text;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find("]:");
    if (close == std::string_view::npos)
      return invalid_argument("'", text, "': expected [V6]:PORT");
    hp.host = std::string(text.substr(1, close - 1));
    port = text.substr(close + 2);
  } else if (const size_t colon = text.rfind(':'); colon != std::string_view::npos) {
    if (colon > 0) hp.host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value == 0 ||
      value > 65535) {
    return invalid_argument("'", text, "': the port must be a number in 1..65535");
  }
  if (hp.host == "localhost") hp.host = "127.0.0.1";
  hp.port = static_cast<uint16_t>(value);
  return hp;
}

std::string Reply::field(const std::string& key) const {
  auto it = fields.find(key);
  return it == fields.end() ? std::string() : it->second;
}

Result<Reply> parse_status_line(std::string_view line) {
  Reply reply;
  reply.line = std::string(line);
  if (line == "OK" || line.starts_with("OK ")) {
    reply.ok = true;
    size_t i = 2;
    while (i < line.size()) {
      while (i < line.size() && line[i] == ' ') ++i;
      size_t end = line.find(' ', i);
      if (end == std::string_view::npos) end = line.size();
      std::string_view token = line.substr(i, end - i);
      if (const size_t eq = token.find('='); eq != std::string_view::npos) {
        reply.fields[std::string(token.substr(0, eq))] = std::string(token.substr(eq + 1));
      }
      i = end;
    }
    return reply;
  }
  if (line.starts_with("ERR ")) {
    std::string_view rest = line.substr(4);
    const size_t space = rest.find(' ');
    reply.code = std::string(rest.substr(0, space));
    if (space != std::string_view::npos) reply.message = std::string(rest.substr(space + 1));
    return reply;
  }
  return corrupt("not a reply line: '", line.substr(0, 80), "'");
}

Result<Client> Client::connect(const HostPort& address, std::chrono::milliseconds timeout) {
  sockaddr_storage storage{};
  socklen_t size = 0;
  auto* in = reinterpret_cast<sockaddr_in*>(&storage);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
  if (inet_pton(AF_INET, address.host.c_str(), &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons(address.port);
    size = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, address.host.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(address.port);
    size = sizeof(sockaddr_in6);
  } else {
    return invalid_argument("host '", address.host, "' is not a numeric address");
  }
  const int fd = ::socket(storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return io_error("socket: ", std::strerror(errno));
  Client client(fd);
  client.timeout_ = timeout;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&storage), size) != 0) {
    return unavailable("connect to ", address.host, ":", address.port, ": ", std::strerror(errno));
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  client.timeout_ = std::chrono::seconds(60);
  return client;
}

Client::Client(Client&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      buffer_(std::move(other.buffer_)),
      timeout_(other.timeout_) {}

Client& Client::operator=(Client&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    buffer_ = std::move(other.buffer_);
    timeout_ = other.timeout_;
  }
  return *this;
}

Client::~Client() {
  if (fd_ >= 0) ::close(fd_);
}

Status Client::wait(bool for_write) {
  pollfd p{fd_, static_cast<short>(for_write ? POLLOUT : POLLIN), 0};
  for (;;) {
    const int rc = ::poll(&p, 1, static_cast<int>(timeout_.count()));
    if (rc > 0) return Status::OK();
    if (rc == 0)
      return io_error(for_write ? "write" : "read", " timed out after ", timeout_.count(), " ms");
    if (errno != EINTR) return io_error("poll: ", std::strerror(errno));
  }
}

Status Client::send(std::string_view bytes) {
  while (!bytes.empty()) {
    PS_TRY(wait(true));
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return io_error("send: ", std::strerror(errno));
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return Status::OK();
}

Result<size_t> Client::read_some(char* dst, size_t n) {
  PS_TRY(wait(false));
  for (;;) {
    const ssize_t got = ::recv(fd_, dst, n, 0);
    if (got >= 0) return static_cast<size_t>(got);
    if (errno != EINTR) return io_error("recv: ", std::strerror(errno));
  }
}

Result<std::string> Client::read_exact(size_t n) {
  char chunk[65536];
  while (buffer_.size() < n) {
    PS_ASSIGN_OR_RETURN(size_t got, read_some(chunk, sizeof(chunk)));
    if (got == 0)
      return io_error("the server closed the connection (", buffer_.size(), " of ", n, " bytes)");
    buffer_.append(chunk, got);
  }
  std::string out = buffer_.substr(0, n);
  buffer_.erase(0, n);
  return out;
}

Result<Reply> Client::read_reply() {
  char chunk[65536];
  size_t newline;
  while ((newline = buffer_.find('\n')) == std::string::npos) {
    PS_ASSIGN_OR_RETURN(size_t got, read_some(chunk, sizeof(chunk)));
    if (got == 0) {
      return io_error(
          "the server closed the connection",
          buffer_.empty() ? "" : str_cat(" after ", buffer_.size(), " bytes of a line"));
    }
    buffer_.append(chunk, got);
  }
  std::string line = buffer_.substr(0, newline);
  buffer_.erase(0, newline + 1);
  PS_ASSIGN_OR_RETURN(Reply reply, parse_status_line(line));
  if (reply.ok) {
    auto bytes = reply.fields.find("bytes");
    if (bytes != reply.fields.end()) {
      uint64_t n = 0;
      auto [end, ec] =
          std::from_chars(bytes->second.data(), bytes->second.data() + bytes->second.size(), n);
      if (ec != std::errc()) return corrupt("bad bytes= in '", line, "'");
      PS_ASSIGN_OR_RETURN(reply.payload, read_exact(n));
    }
  }
  return reply;
}

Result<bool> Client::wait_closed(std::chrono::milliseconds timeout) {
  const auto saved = timeout_;
  timeout_ = timeout;
  char chunk[4096];
  auto got = buffer_.empty() ? read_some(chunk, sizeof(chunk)) : Result<size_t>(size_t{1});
  timeout_ = saved;
  if (!got.ok()) {
    if (got.status().message().find("timed out") != std::string::npos) return false;
    return true;  // reset: closed too
  }
  if (*got == 0) return true;
  const std::string extra = buffer_.empty() ? std::string(chunk, *got) : buffer_;
  return invalid_argument("expected the connection to close, got '", extra.substr(0, 60), "'");
}

void Client::shutdown_write() { ::shutdown(fd_, SHUT_WR); }

Status binary_request(Client& client, std::string_view name, std::string_view data) {
  PS_TRY(client.send(net::encode_request(name, data)));
  auto reply = client.read_exact(net::kFinishReply.size());
  if (!reply.ok()) return reply.status().with_context(str_cat("'", name, "'"));
  if (*reply != net::kFinishReply)
    return corrupt("'", name, "': expected FNSH, got '", *reply, "'");
  return Status::OK();
}

}  // namespace ps::psnc
