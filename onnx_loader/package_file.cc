#include "onnx_loader/package_file.h"

#include <unistd.h>

#include <cerrno>

namespace ps::onnx_loader {

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
