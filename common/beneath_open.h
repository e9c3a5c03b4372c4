// Opening a file inside a directory so that path resolution can never leave the directory,
// whatever is renamed or replaced by a symbolic link meanwhile: the confinement check and the
// open are one step, so there is no window between them (no time-of-check/time-of-use race).
#pragma once

#include <string_view>

#include "common/status.h"
#include "common/unique_fd.h"

namespace ps {

// Opens `name`, a path relative to the directory `dir_fd` (an O_PATH or read-only descriptor of
// a directory; not consumed), read-only and close-on-exec, and checks it is a regular file.
// Resolution stays beneath the directory: Linux's openat2() with RESOLVE_BENEATH |
// RESOLVE_NO_MAGICLINKS follows symbolic links and ".." only while they stay inside, and
// refuses /proc magic links. Where openat2 is missing (ENOSYS: a kernel before 5.6) or
// filtered (EPERM: a seccomp policy), beneath_open_walk() below does the open instead.
// Never blocks on a FIFO or device (the open is non-blocking; they are refused by their type);
// the returned descriptor is blocking.
// Returns the descriptor, or (the message names `name`, never the directory):
//   kPermissionDenied  `name` is absolute, or resolving it would leave the directory (a ".."
//                      too many, a symbolic link leading out, a magic link, a symlink loop)
//   kNotFound          a component does not exist, or one before the last is not a directory
//   kInvalidArgument   `name` is empty or holds a NUL, or the file is not a regular file
//   kIo                anything else the OS refuses (EACCES, EMFILE...)
Result<UniqueFd> beneath_open(int dir_fd, std::string_view name);

// The fallback of beneath_open, exposed for tests: walks `name` one component at a time,
// directories with openat(O_PATH | O_NOFOLLOW) and the last component with O_NOFOLLOW, each
// relative to the descriptor of the one before. It resolves no symbolic link at all: every
// link is refused (kPermissionDenied), even one whose target stays inside the directory, and
// so is every "..". Same preconditions, results and error codes as beneath_open otherwise.
Result<UniqueFd> beneath_open_walk(int dir_fd, std::string_view name);

}  // namespace ps
