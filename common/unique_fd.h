// An owning POSIX file descriptor, and the text of an errno value for error messages.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace ps {

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

}  // namespace ps
