// UniqueHandle: ownership, moves and the deleter, with no GPU.
#include "cuda/handle.h"

#include <catch2/catch.hpp>
#include <utility>
#include <vector>

namespace {

// Records every handle it releases into a vector owned by the test.
struct RecordingDeleter {
  std::vector<int>* released = nullptr;
  void operator()(int handle) const { released->push_back(handle); }
};

using Handle = ps::cuda::UniqueHandle<int, RecordingDeleter>;

}  // namespace

TEST_CASE("UniqueHandle releases its handle exactly once", "[cuda][handle]") {
  std::vector<int> released;
  {
    Handle h(7, RecordingDeleter{&released});
    CHECK(static_cast<bool>(h));
    CHECK(h.get() == 7);
    CHECK(released.empty());
  }
  CHECK(released == std::vector<int>{7});
}

TEST_CASE("UniqueHandle never passes an empty handle to the deleter", "[cuda][handle]") {
  std::vector<int> released;
  {
    Handle empty(0, RecordingDeleter{&released});
    CHECK_FALSE(static_cast<bool>(empty));
    Handle defaulted;
    CHECK_FALSE(static_cast<bool>(defaulted));
  }
  CHECK(released.empty());
}

TEST_CASE("moving a UniqueHandle moves ownership", "[cuda][handle]") {
  std::vector<int> released;
  {
    Handle a(1, RecordingDeleter{&released});
    Handle b(std::move(a));
    CHECK(a.get() == 0);  // NOLINT(bugprone-use-after-move): moved-from is defined as empty
    CHECK(b.get() == 1);
    CHECK(released.empty());

    Handle c(2, RecordingDeleter{&released});
    c = std::move(b);  // c's own handle is released now, b's later
    CHECK(released == std::vector<int>{2});
    CHECK(c.get() == 1);
    CHECK(b.get() == 0);  // NOLINT(bugprone-use-after-move)

    Handle& alias = c;
    c = std::move(alias);  // self-move keeps the handle
    CHECK(c.get() == 1);
    CHECK(released == std::vector<int>{2});
  }
  CHECK(released == (std::vector<int>{2, 1}));
}

TEST_CASE("release() gives ownership away and reset() replaces the handle", "[cuda][handle]") {
  std::vector<int> released;
  {
    Handle h(3, RecordingDeleter{&released});
    CHECK(h.release() == 3);
    CHECK_FALSE(static_cast<bool>(h));
    h.reset(4);
    CHECK(released.empty());
    h.reset(5);
    CHECK(released == std::vector<int>{4});
    h.reset();
    CHECK(released == (std::vector<int>{4, 5}));
    CHECK_FALSE(static_cast<bool>(h));
  }
  CHECK(released == (std::vector<int>{4, 5}));
}

TEST_CASE("UniqueHandle works with pointer handles and stateless deleters", "[cuda][handle]") {
  static int deletes = 0;
  struct Delete {
    void operator()(int* p) const {
      ++deletes;
      delete p;
    }
  };
  static_assert(sizeof(ps::cuda::UniqueHandle<int*, Delete>) == sizeof(int*),
                "a stateless deleter takes no space");
  deletes = 0;
  {
    ps::cuda::UniqueHandle<int*, Delete> p(new int(42));
    CHECK(*p.get() == 42);
    ps::cuda::UniqueHandle<int*, Delete> q = std::move(p);
    CHECK(p.get() == nullptr);  // NOLINT(bugprone-use-after-move)
  }
  CHECK(deletes == 1);
}
