#include "common/status.h"

#include <cstdio>
#include <cstdlib>

namespace ps {

std::string_view code_name(Code code) {
  switch (code) {
    case Code::kOk: return "OK";
    case Code::kInvalidArgument: return "INVALID_ARGUMENT";
    case Code::kNotFound: return "NOT_FOUND";
    case Code::kOutOfRange: return "OUT_OF_RANGE";
    case Code::kUnsupported: return "UNSUPPORTED";
    case Code::kCorrupt: return "CORRUPT";
    case Code::kIo: return "IO";
    case Code::kOutOfMemory: return "OUT_OF_MEMORY";
    case Code::kDevice: return "DEVICE";
    case Code::kUnavailable: return "UNAVAILABLE";
    case Code::kPermissionDenied: return "PERMISSION_DENIED";
    case Code::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case Code::kCancelled: return "CANCELLED";
    case Code::kAlreadyExists: return "ALREADY_EXISTS";
    case Code::kInternal: return "INTERNAL";
  }
  return "UNKNOWN";
}

Status::Status(Code code, std::string message) {
  if (code == Code::kOk) return;  // an OK status never carries a message
  state_ = std::make_unique<State>(State{code, std::move(message)});
}

Status::Status(const Status& other)
    : state_(other.state_ ? std::make_unique<State>(*other.state_) : nullptr) {}

Status& Status::operator=(const Status& other) {
  if (this != &other) state_ = other.state_ ? std::make_unique<State>(*other.state_) : nullptr;
  return *this;
}

const std::string& Status::message() const {
  static const std::string kEmpty;
  return state_ ? state_->message : kEmpty;
}

std::string Status::to_string() const {
  if (ok()) return "OK";
  return str_cat(code_name(code()), ": ", state_->message);
}

Status Status::with_context(std::string_view context) const {
  if (ok()) return Status();
  return Status(state_->code, str_cat(context, ": ", state_->message));
}

void fatal(const char* file, int line, std::string_view message) {
  std::fprintf(stderr, "fatal: %s:%d: %.*s\n", file, line, static_cast<int>(message.size()),
               message.data());
  std::fflush(stderr);
  std::abort();
}

}  // namespace ps
