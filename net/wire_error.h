// Error codes of the text protocol: the fixed list of CODE words in `ERR <CODE> <message>`.
//
// A client may branch on the code, so codes are never renamed or reused; new ones are appended.
// The message after the code is for people and may change freely.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace ps::net {

enum class ErrorCode : uint8_t {
  kBadRequest,       // the line (or frame) cannot be understood at all
  kUnknownCommand,   // a well-formed line whose verb is not a command
  kUnknownModel,     // the named model is not registered
  kUnknownJob,       // the named job does not exist
  kBadArgument,      // missing, extra or malformed arguments or options
  kLineTooLong,      // a command line over the configured maximum
  kPayloadTooLarge,  // a declared payload over the configured maximum
  kAuthRequired,     // the connection has not authenticated yet
  kAuthFailed,       // AUTH with a wrong token
  kForbidden,        // authenticated, but the command needs the admin token
  kBusy,             // a queue or a configured limit is full; try again later
  kNotFound,         // another named thing (file, package) does not exist
  kAlreadyExists,    // LOAD of a model that is already registered
  kUnsupported,      // valid request that the server does not implement
  kOutOfMemory,      // host or GPU memory exhausted
  kDeviceError,      // a CUDA / cuDNN / cuBLAS call failed
  kCancelled,        // the work was stopped (STOP, shutdown)
  kUnavailable,      // the server is shutting down or has no device
  kInternal,         // a bug caught without crashing
};

// Every code, in declaration order (for tests and the documentation).
inline constexpr ErrorCode kAllErrorCodes[] = {
    ErrorCode::kBadRequest,      ErrorCode::kUnknownCommand, ErrorCode::kUnknownModel,
    ErrorCode::kUnknownJob,      ErrorCode::kBadArgument,    ErrorCode::kLineTooLong,
    ErrorCode::kPayloadTooLarge, ErrorCode::kAuthRequired,   ErrorCode::kAuthFailed,
    ErrorCode::kForbidden,       ErrorCode::kBusy,           ErrorCode::kNotFound,
    ErrorCode::kAlreadyExists,   ErrorCode::kUnsupported,    ErrorCode::kOutOfMemory,
    ErrorCode::kDeviceError,     ErrorCode::kCancelled,      ErrorCode::kUnavailable,
    ErrorCode::kInternal,
};

// The CODE word on the wire ("BAD_REQUEST", "LINE_TOO_LONG", ...).
std::string_view error_code_name(ErrorCode code);

// The code whose name is `name` (exact, upper case); nullopt for anything else. Used by clients.
std::optional<ErrorCode> error_code_from_name(std::string_view name);

// The wire code that answers an internal Status of code `code` (kNotFound -> NOT_FOUND, kDevice ->
// DEVICE_ERROR, ...). Preconditions: code != kOk. The server uses UNKNOWN_MODEL / UNKNOWN_JOB
// itself where it knows what was not found.
ErrorCode error_code_for(Code code);

// An error found while parsing a stream, before any command runs.
struct ProtocolError {
  ErrorCode code = ErrorCode::kBadRequest;
  std::string message;
  // True when the stream is no longer in a known state (the server must answer and then close the
  // connection); false when the next bytes start a new request and the connection can continue.
  bool must_close = false;
};

}  // namespace ps::net
