// beneath_open (openat2 RESOLVE_BENEATH) and its fallback beneath_open_walk: what opens, what
// is refused with which code, and the race LOAD used to lose: a component replaced by a link
// to the outside after the path was checked.
#include "common/beneath_open.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace ps {
namespace {

namespace fs = std::filesystem;

// A fresh directory tree, removed at scope exit:
//   outside.psm              "outside"      (beside models/, the file a link tries to reach)
//   elsewhere/pkg.psm        "elsewhere"
//   models/pkg.psm           "inside"
//   models/sub/inner.psm     "inner"
class Tree {
 public:
  Tree() {
    std::string pattern = (fs::temp_directory_path() / "ps_beneath_XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    root_ = pattern;
    write("outside.psm", "outside");
    write("elsewhere/pkg.psm", "elsewhere");
    write("models/pkg.psm", "inside");
    write("models/sub/inner.psm", "inner");
    dir_ = UniqueFd(::open(models().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    REQUIRE(dir_.valid());
  }
  ~Tree() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  Tree(const Tree&) = delete;
  Tree& operator=(const Tree&) = delete;

  const fs::path& root() const { return root_; }
  fs::path models() const { return root_ / "models"; }
  int dir_fd() const { return dir_.get(); }

  void write(const std::string& name, const std::string& text) const {
    fs::create_directories((root_ / name).parent_path());
    std::ofstream(root_ / name, std::ios::binary) << text;
  }

 private:
  fs::path root_;
  UniqueFd dir_;
};

using OpenFn = Result<UniqueFd> (*)(int, std::string_view);

struct Way {
  const char* name;
  OpenFn open;
};
const Way kOpenat2{"beneath_open", &beneath_open};
const Way kWalk{"beneath_open_walk", &beneath_open_walk};

// Whether this kernel has openat2 (5.6+); without it beneath_open is the walk.
bool kernel_has_openat2() {
#ifdef SYS_openat2
  errno = 0;
  const long rc = ::syscall(SYS_openat2, -1, "", nullptr, 0);
  return rc >= 0 || (errno != ENOSYS && errno != EPERM);
#else
  return false;
#endif
}

std::string contents(const UniqueFd& fd) {
  std::string out;
  char buf[256];
  for (ssize_t n; (n = ::pread(fd.get(), buf, sizeof(buf), static_cast<off_t>(out.size()))) > 0;)
    out.append(buf, static_cast<size_t>(n));
  return out;
}

// Opens `name` with `way` and returns the code (kOk when it opened), logging the result.
Code code_of(const Way& way, const Tree& tree, const std::string& name) {
  auto fd = way.open(tree.dir_fd(), name);
  UNSCOPED_INFO(way.name << "(\"" << name << "\"): " << fd.status().to_string());
  // A refusal names the file as given, never the directory the caller opened.
  const std::string& message = fd.status().message();
  if (name.find(tree.root().string()) == std::string::npos &&
      message.find(tree.root().string()) != std::string::npos) {
    FAIL_CHECK("the message names the directory: " << message);
  }
  return fd.status().code();
}

TEST_CASE("beneath_open: a file inside opens read-only, blocking and close-on-exec",
          "[common][beneath_open]") {
  Tree tree;
  for (const Way& way : {kOpenat2, kWalk}) {
    for (const auto& [name, text] : {std::pair<std::string, std::string>{"pkg.psm", "inside"},
                                     {"sub/inner.psm", "inner"},
                                     {"./sub//inner.psm", "inner"}}) {
      INFO(way.name << "(\"" << name << "\")");
      auto fd = way.open(tree.dir_fd(), name);
      REQUIRE(fd.ok());
      CHECK(contents(*fd) == text);
      const int flags = ::fcntl(fd->get(), F_GETFL);
      CHECK((flags & O_ACCMODE) == O_RDONLY);
      CHECK((flags & O_NONBLOCK) == 0);
      CHECK((::fcntl(fd->get(), F_GETFD) & FD_CLOEXEC) != 0);
    }
  }
}

TEST_CASE("beneath_open: '..' and absolute names that leave the directory are refused",
          "[common][beneath_open]") {
  Tree tree;
  const std::string absolute_outside = (tree.root() / "outside.psm").string();
  const std::string absolute_inside = (tree.models() / "pkg.psm").string();
  for (const Way& way : {kOpenat2, kWalk}) {
    for (const std::string& name :
         {std::string("../outside.psm"), std::string("sub/../../outside.psm"), std::string(".."),
          absolute_outside, std::string("/etc/passwd"),
          // Absolute names are refused even when they point inside.
          absolute_inside}) {
      CHECK(code_of(way, tree, name) == Code::kPermissionDenied);
    }
  }
}

TEST_CASE("beneath_open: symbolic links leading out are refused, as file or directory",
          "[common][beneath_open]") {
  Tree tree;
  fs::create_symlink(tree.root() / "outside.psm", tree.models() / "abs.psm");
  fs::create_symlink("../outside.psm", tree.models() / "rel.psm");
  fs::create_symlink(tree.root() / "elsewhere", tree.models() / "absdir");
  fs::create_symlink("../../elsewhere", tree.models() / "sub" / "reldir");
  fs::create_symlink("/proc/self/root/etc/passwd", tree.models() / "proc.psm");
  fs::create_symlink("loop.psm", tree.models() / "loop.psm");
  for (const Way& way : {kOpenat2, kWalk}) {
    for (const char* name :
         {"abs.psm", "rel.psm", "absdir/pkg.psm", "sub/reldir/pkg.psm", "proc.psm", "loop.psm"}) {
      CHECK(code_of(way, tree, name) == Code::kPermissionDenied);
    }
  }
}

TEST_CASE("beneath_open: /proc magic links are refused", "[common][beneath_open]") {
  UniqueFd proc(::open("/proc/self", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!proc.valid()) {
    WARN("no /proc here");
    return;
  }
  // /proc/self/exe and /proc/self/cwd are magic links: they jump to their target without a
  // path, so RESOLVE_BENEATH alone could not see where they lead.
  for (const Way& way : {kOpenat2, kWalk}) {
    for (const char* name : {"exe", "cwd/x"}) {
      auto fd = way.open(proc.get(), name);
      INFO(way.name << "(\"" << name << "\"): " << fd.status().to_string());
      CHECK(fd.status().code() == Code::kPermissionDenied);
    }
  }
}

TEST_CASE("beneath_open: links and '..' that stay inside open with openat2, not in the walk",
          "[common][beneath_open]") {
  Tree tree;
  fs::create_symlink("pkg.psm", tree.models() / "alias.psm");
  fs::create_symlink("sub", tree.models() / "subdir");
  for (const char* name : {"alias.psm", "subdir/inner.psm", "sub/../pkg.psm"}) {
    // The walk follows no link and no "..", even one that stays inside (documented).
    CHECK(code_of(kWalk, tree, name) == Code::kPermissionDenied);
    if (kernel_has_openat2()) {
      CHECK(code_of(kOpenat2, tree, name) == Code::kOk);
    } else {
      WARN("no openat2 on this kernel: beneath_open is the walk");
    }
  }
}

TEST_CASE("beneath_open: directories, pipes, missing files and bad names",
          "[common][beneath_open]") {
  Tree tree;
  REQUIRE(::mkfifo((tree.models() / "fifo.psm").c_str(), 0600) == 0);
  for (const Way& way : {kOpenat2, kWalk}) {
    // Not a regular file (and a FIFO without a writer does not block the open).
    for (const char* name : {"sub", "sub/", ".", "fifo.psm"}) {
      CHECK(code_of(way, tree, name) == Code::kInvalidArgument);
    }
    for (const char* name :
         {"missing.psm", "sub/missing.psm", "missing/pkg.psm", "pkg.psm/inner.psm"}) {
      CHECK(code_of(way, tree, name) == Code::kNotFound);
    }
    CHECK(code_of(way, tree, "") == Code::kInvalidArgument);
    CHECK(code_of(way, tree, std::string("pkg.psm\0x", 9)) == Code::kInvalidArgument);
  }
}

// The race LOAD used to lose, made deterministic: the name is checked (here: resolved and found
// inside, as the server's check does) and only then a component is replaced by a link to the
// outside. A plain openat follows the link out; beneath_open refuses, so the confinement does
// not depend on the earlier check.
TEST_CASE("beneath_open: a component replaced by a link after the check is refused",
          "[common][beneath_open]") {
  for (const Way& way : {kOpenat2, kWalk}) {
    {  // A directory component.
      Tree tree;
      tree.write("models/sub/pkg.psm", "inside");
      const fs::path checked = fs::weakly_canonical(tree.models() / "sub" / "pkg.psm");
      REQUIRE(checked.parent_path() == fs::canonical(tree.models() / "sub"));  // the check
      fs::rename(tree.models() / "sub", tree.root() / "sub.old");
      fs::create_symlink(tree.root() / "elsewhere", tree.models() / "sub");  // the swap
      UniqueFd plain(::openat(tree.dir_fd(), "sub/pkg.psm", O_RDONLY | O_CLOEXEC));
      REQUIRE(plain.valid());
      CHECK(contents(plain) == "elsewhere");  // what a plain open would read now
      CHECK(code_of(way, tree, "sub/pkg.psm") == Code::kPermissionDenied);
    }
    {  // The file itself.
      Tree tree;
      REQUIRE(fs::is_regular_file(fs::symlink_status(tree.models() / "pkg.psm")));  // the check
      fs::remove(tree.models() / "pkg.psm");
      fs::create_symlink(tree.root() / "outside.psm", tree.models() / "pkg.psm");  // the swap
      UniqueFd plain(::openat(tree.dir_fd(), "pkg.psm", O_RDONLY | O_CLOEXEC));
      REQUIRE(plain.valid());
      CHECK(contents(plain) == "outside");
      CHECK(code_of(way, tree, "pkg.psm") == Code::kPermissionDenied);
    }
  }
}

}  // namespace
}  // namespace ps
