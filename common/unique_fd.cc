#include "common/unique_fd.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ps {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.release();
  }
  return *this;
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

int UniqueFd::release() {
  const int fd = fd_;
  fd_ = -1;
  return fd;
}

Status UniqueFd::close(std::string_view label) {
  if (fd_ < 0) return Status::OK();
  // Linux releases the descriptor even when close fails, so it is never retried.
  const int rc = ::close(release());
  if (rc != 0) return io_error(label, ": close failed: ", errno_string(errno));
  return Status::OK();
}

std::string errno_string(int err) {
  char buf[256];
  // The GNU strerror_r returns the message, not always in buf.
  const char* text = strerror_r(err, buf, sizeof(buf));
  return str_cat(text, " (errno ", err, ")");
}

}  // namespace ps
