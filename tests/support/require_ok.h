// REQUIRE_OK(expr): fails the test case, printing the error, unless `expr` (a Status or a
// Result<T>) is OK. Shared by the tests that call into the library's Status-returning APIs.
#pragma once

#include <catch2/catch.hpp>

#include "common/status.h"

namespace ps::test_support {

inline Status status_of(const Status& status) { return status; }
template <typename T>
Status status_of(const Result<T>& result) {
  return result.ok() ? Status::OK() : result.status();
}

}  // namespace ps::test_support

#define REQUIRE_OK(expr)                                                       \
  do {                                                                         \
    const ::ps::Status ps_require_ok_ = ::ps::test_support::status_of((expr)); \
    INFO(#expr << ": " << ps_require_ok_.to_string());                         \
    REQUIRE(ps_require_ok_.ok());                                              \
  } while (0)
