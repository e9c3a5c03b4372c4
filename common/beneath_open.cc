#include "common/beneath_open.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#endif

namespace ps {
namespace {

// O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused by its type afterwards).
constexpr int kOpenFlags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;

// openat2 reports EAGAIN when a rename raced with a ".." it was resolving; it may be retried.
constexpr int kOpenat2Attempts = 8;

// Set once openat2 turned out not to exist, so later opens go straight to the walk.
std::atomic<bool> g_no_openat2{false};

const char* file_type_name(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a pipe";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "not a regular file";
}

Status check_name(std::string_view name) {
  if (name.empty()) return invalid_argument("an empty file name");
  if (name.find('\0') != std::string_view::npos)
    return invalid_argument("a file name with a NUL byte");
  return Status::OK();
}

// The error of an open of `name` that failed with `err`.
Status open_error(std::string_view name, int err) {
  switch (err) {
    case ENOENT:
      return not_found(name, ": no such file");
    case ENOTDIR:
      return not_found(name, ": a component of the path is not a directory");
    case EXDEV:
      return permission_denied(name, ": leads outside the directory");
    case ELOOP:
      return permission_denied(name, ": refused symbolic link (a /proc magic link or a link loop)");
    default:
      return io_error(name, ": cannot open: ", errno_string(err));
  }
}

// The last step of both ways: a regular file, made blocking again.
Result<UniqueFd> finish(UniqueFd fd, std::string_view name) {
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return io_error(name, ": fstat failed: ", errno_string(errno));
  if (!S_ISREG(st.st_mode))
    return invalid_argument(name, ": is ", file_type_name(st.st_mode), ", not a regular file");
  const int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0)
    return io_error(name, ": fcntl failed: ", errno_string(errno));
  return fd;
}

// openat2(dir_fd, path, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS): the descriptor, or -1 with
// errno set (ENOSYS where the headers or the kernel lack it).
int openat2_beneath(int dir_fd, const char* path) {
#if defined(SYS_openat2) && defined(RESOLVE_BENEATH)
  struct open_how how = {};
  how.flags = static_cast<uint64_t>(kOpenFlags);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  for (int attempt = 0;; ++attempt) {
    const long fd = ::syscall(SYS_openat2, dir_fd, path, &how, sizeof(how));
    if (fd >= 0) return static_cast<int>(fd);
    if (errno == EINTR || (errno == EAGAIN && attempt + 1 < kOpenat2Attempts)) continue;
    return -1;
  }
#else
  (void)dir_fd;
  (void)path;
  errno = ENOSYS;
  return -1;
#endif
}

}  // namespace

Result<UniqueFd> beneath_open(int dir_fd, std::string_view name) {
  PS_TRY(check_name(name));
  if (g_no_openat2.load(std::memory_order_relaxed)) return beneath_open_walk(dir_fd, name);
  const std::string path(name);
  UniqueFd fd(openat2_beneath(dir_fd, path.c_str()));
  if (!fd.valid()) {
    const int err = errno;
    if (err == ENOSYS) g_no_openat2.store(true, std::memory_order_relaxed);
    if (err == ENOSYS || err == EPERM) return beneath_open_walk(dir_fd, name);
    return open_error(name, err);
  }
  return finish(std::move(fd), name);
}

Result<UniqueFd> beneath_open_walk(int dir_fd, std::string_view name) {
  PS_TRY(check_name(name));
  if (name.front() == '/') return permission_denied(name, ": an absolute path");
  std::vector<std::string> parts;
  for (size_t begin = 0; begin <= name.size();) {
    size_t end = name.find('/', begin);
    if (end == std::string_view::npos) end = name.size();
    const std::string_view part = name.substr(begin, end - begin);
    if (part == "..") {
      return permission_denied(name, ": '..' is refused (without openat2)");
    }
    if (!part.empty() && part != ".") parts.emplace_back(part);
    begin = end + 1;
  }
  if (parts.empty()) parts.emplace_back(".");  // the directory itself: refused by its type

  UniqueFd held;  // the directory reached so far, when it is not dir_fd itself
  int at = dir_fd;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    // O_PATH | O_NOFOLLOW opens a symbolic link itself, so fstat tells what the entry is.
    UniqueFd next(::openat(at, parts[i].c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!next.valid()) return open_error(name, errno);
    struct stat st;
    if (::fstat(next.get(), &st) != 0)
      return io_error(name, ": fstat failed: ", errno_string(errno));
    if (S_ISLNK(st.st_mode)) {
      return permission_denied(name, ": '", parts[i],
                               "' is a symbolic link (without openat2 no link is followed)");
    }
    if (!S_ISDIR(st.st_mode)) return not_found(name, ": '", parts[i], "' is not a directory");
    held = std::move(next);
    at = held.get();
  }
  UniqueFd fd(::openat(at, parts.back().c_str(), kOpenFlags | O_NOFOLLOW));
  if (!fd.valid()) {
    const int err = errno;
    // O_NOFOLLOW fails a symbolic link as the last component with ELOOP.
    if (err == ELOOP) {
      return permission_denied(name, ": '", parts.back(),
                               "' is a symbolic link (without openat2 no link is followed)");
    }
    return open_error(name, err);
  }
  return finish(std::move(fd), name);
}

}  // namespace ps
