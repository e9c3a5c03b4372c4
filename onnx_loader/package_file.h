// Small POSIX file helpers for the package writer and reader: an owning file descriptor and
// read/write loops that survive EINTR and short transfers and name the file in their errors.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/status.h"

namespace ps::onnx_loader {

// Owns a POSIX file descriptor; closes it on destruction. Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();

  bool valid() const { return fd_ >= 0; }
  int get() const { return fd_; }
  // Gives up ownership; returns the descriptor (-1 if none).
  int release();
  // Closes now and reports a failing close (which can be a late write error). `label` names
  // the file in the error. Closing an invalid descriptor is OK.
  Status close(std::string_view label);

 private:
  int fd_ = -1;
};

// "No such file or directory (errno 2)".
std::string errno_string(int err);

// Reads exactly dst.size() bytes at `offset` of `fd`. Returns kIo when the OS fails the read,
// kCorrupt ("truncated") when the file ends first.
Status pread_exact(int fd, std::span<uint8_t> dst, uint64_t offset, std::string_view label);

// Writes all of `src` at the current position / at `offset`. Returns kIo naming the error.
Status write_all(int fd, std::span<const uint8_t> src, std::string_view label);
Status pwrite_all(int fd, std::span<const uint8_t> src, uint64_t offset, std::string_view label);

}  // namespace ps::onnx_loader
