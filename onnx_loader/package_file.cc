#include "onnx_loader/package_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ps::onnx_loader {

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

Status pread_exact(int fd, std::span<uint8_t> dst, uint64_t offset, std::string_view label) {
  size_t done = 0;
  while (done < dst.size()) {
    const ssize_t n =
        ::pread(fd, dst.data() + done, dst.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error(label, ": read of ", dst.size() - done, " bytes at offset ", offset + done,
                      " failed: ", errno_string(errno));
    }
    if (n == 0) {
      return corrupt(label, ": truncated: the file ends at byte ", offset + done,
                     ", but bytes up to ", offset + dst.size(), " were expected");
    }
    done += static_cast<size_t>(n);
  }
  return Status::OK();
}

Status write_all(int fd, std::span<const uint8_t> src, std::string_view label) {
  size_t done = 0;
  while (done < src.size()) {
    const ssize_t n = ::write(fd, src.data() + done, src.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error(label, ": write of ", src.size() - done,
                      " bytes failed: ", errno_string(errno));
    }
    done += static_cast<size_t>(n);
  }
  return Status::OK();
}

Status pwrite_all(int fd, std::span<const uint8_t> src, uint64_t offset, std::string_view label) {
  size_t done = 0;
  while (done < src.size()) {
    const ssize_t n =
        ::pwrite(fd, src.data() + done, src.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error(label, ": write of ", src.size() - done, " bytes at offset ", offset + done,
                      " failed: ", errno_string(errno));
    }
    done += static_cast<size_t>(n);
  }
  return Status::OK();
}

}  // namespace ps::onnx_loader
