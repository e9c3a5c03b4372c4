// Status and Result<T>: the one error type used at every boundary of the project.
//
// An OK Status is a null pointer, so returning success costs nothing. An error carries a
// Code and a message that names the cause (the failing call, the file, the node...).
// No exceptions cross module boundaries or libuv callbacks; broken invariants end the
// process through ps::fatal instead.
#pragma once

#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace ps {

enum class Code : uint8_t {
  kOk = 0,
  kInvalidArgument,   // the caller (or a client) gave bad input
  kNotFound,          // a named thing (file, model, job) does not exist
  kOutOfRange,        // an index, offset or size outside what is valid
  kUnsupported,       // valid input that we do not implement (an ONNX op, a dtype)
  kCorrupt,           // a file or message that fails validation (checksum, bounds)
  kIo,                // the OS refused a read, write, open...
  kOutOfMemory,       // host or device memory exhausted
  kDevice,            // a CUDA / cuDNN / cuBLAS call failed
  kUnavailable,       // no driver, no GPU, server shutting down
  kPermissionDenied,  // auth missing, path escapes the models directory
  kResourceExhausted, // a configured limit (connections, payload, queue) was hit
  kCancelled,         // work stopped on request (preemption, shutdown)
  kAlreadyExists,
  kInternal,          // a bug that was caught without crashing
};

// Short upper-case name of a code ("INVALID_ARGUMENT"); used on the wire in ERR lines.
std::string_view code_name(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(Code code, std::string message);
  Status(const Status& other);
  Status& operator=(const Status& other);
  Status(Status&&) noexcept = default;
  Status& operator=(Status&&) noexcept = default;
  ~Status() = default;

  static Status OK() { return Status(); }

  bool ok() const { return state_ == nullptr; }
  Code code() const { return state_ ? state_->code : Code::kOk; }
  // Empty for OK.
  const std::string& message() const;
  // "INVALID_ARGUMENT: message", or "OK".
  std::string to_string() const;
  // Returns the same error with "context: " put in front of the message; OK stays OK.
  Status with_context(std::string_view context) const;

  // Marks a Status as deliberately ignored.
  void ignore() const {}

 private:
  struct State {
    Code code;
    std::string message;
  };
  std::unique_ptr<State> state_;
};

inline bool operator==(const Status& a, const Status& b) {
  return a.code() == b.code() && a.message() == b.message();
}

// Concatenates anything that can be streamed; used to build error messages.
template <typename... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

template <typename... Args>
Status make_error(Code code, const Args&... args) {
  return Status(code, str_cat(args...));
}
template <typename... Args> Status invalid_argument(const Args&... a) { return make_error(Code::kInvalidArgument, a...); }
template <typename... Args> Status not_found(const Args&... a) { return make_error(Code::kNotFound, a...); }
template <typename... Args> Status out_of_range(const Args&... a) { return make_error(Code::kOutOfRange, a...); }
template <typename... Args> Status unsupported(const Args&... a) { return make_error(Code::kUnsupported, a...); }
template <typename... Args> Status corrupt(const Args&... a) { return make_error(Code::kCorrupt, a...); }
template <typename... Args> Status io_error(const Args&... a) { return make_error(Code::kIo, a...); }
template <typename... Args> Status out_of_memory(const Args&... a) { return make_error(Code::kOutOfMemory, a...); }
template <typename... Args> Status device_error(const Args&... a) { return make_error(Code::kDevice, a...); }
template <typename... Args> Status unavailable(const Args&... a) { return make_error(Code::kUnavailable, a...); }
template <typename... Args> Status permission_denied(const Args&... a) { return make_error(Code::kPermissionDenied, a...); }
template <typename... Args> Status resource_exhausted(const Args&... a) { return make_error(Code::kResourceExhausted, a...); }
template <typename... Args> Status internal_error(const Args&... a) { return make_error(Code::kInternal, a...); }

// A value or the error that prevented it. Constructing from an OK Status is a bug.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status);                      // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(v_); }
  // The error, or a reference to a shared OK Status when a value is held. The reference lives
  // as long as this Result (bind it to a copy to keep it longer).
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(v_);
  }

  // Preconditions: ok().
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

// Ends the process with a message naming the place; for broken invariants only.
[[noreturn]] void fatal(const char* file, int line, std::string_view message);

template <typename T>
Result<T>::Result(Status status) : v_(std::move(status)) {
  if (std::get<Status>(v_).ok()) fatal(__FILE__, __LINE__, "Result constructed from an OK Status");
}

}  // namespace ps

#define PS_CONCAT_INNER(a, b) a##b
#define PS_CONCAT(a, b) PS_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function if `expr` is an error.
#define PS_TRY(expr)                              \
  do {                                            \
    ::ps::Status ps_try_status_ = (expr);         \
    if (!ps_try_status_.ok()) return ps_try_status_; \
  } while (0)

// `PS_ASSIGN_OR_RETURN(auto x, f());` declares x from a Result or returns its error.
#define PS_ASSIGN_OR_RETURN(lhs, expr) PS_ASSIGN_OR_RETURN_IMPL(PS_CONCAT(ps_result_, __LINE__), lhs, expr)
#define PS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()

// Invariant check: ends the process with the condition and place if it is false.
#define PS_CHECK(cond)                                                      \
  do {                                                                      \
    if (!(cond)) ::ps::fatal(__FILE__, __LINE__, "check failed: " #cond);   \
  } while (0)
