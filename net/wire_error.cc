#include "net/wire_error.h"

namespace ps::net {

std::string_view error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kBadRequest:
      return "BAD_REQUEST";
    case ErrorCode::kUnknownCommand:
      return "UNKNOWN_COMMAND";
    case ErrorCode::kUnknownModel:
      return "UNKNOWN_MODEL";
    case ErrorCode::kUnknownJob:
      return "UNKNOWN_JOB";
    case ErrorCode::kBadArgument:
      return "BAD_ARGUMENT";
    case ErrorCode::kLineTooLong:
      return "LINE_TOO_LONG";
    case ErrorCode::kPayloadTooLarge:
      return "PAYLOAD_TOO_LARGE";
    case ErrorCode::kAuthRequired:
      return "AUTH_REQUIRED";
    case ErrorCode::kAuthFailed:
      return "AUTH_FAILED";
    case ErrorCode::kForbidden:
      return "FORBIDDEN";
    case ErrorCode::kBusy:
      return "BUSY";
    case ErrorCode::kNotFound:
      return "NOT_FOUND";
    case ErrorCode::kAlreadyExists:
      return "ALREADY_EXISTS";
    case ErrorCode::kUnsupported:
      return "UNSUPPORTED";
    case ErrorCode::kOutOfMemory:
      return "OUT_OF_MEMORY";
    case ErrorCode::kDeviceError:
      return "DEVICE_ERROR";
    case ErrorCode::kCancelled:
      return "CANCELLED";
    case ErrorCode::kUnavailable:
      return "UNAVAILABLE";
    case ErrorCode::kInternal:
      return "INTERNAL";
  }
  return "INTERNAL";
}

std::optional<ErrorCode> error_code_from_name(std::string_view name) {
  for (ErrorCode code : kAllErrorCodes) {
    if (error_code_name(code) == name) return code;
  }
  return std::nullopt;
}

ErrorCode error_code_for(Code code) {
  switch (code) {
    case Code::kInvalidArgument:
    case Code::kOutOfRange:
      return ErrorCode::kBadArgument;
    case Code::kCorrupt:
      return ErrorCode::kBadRequest;
    case Code::kNotFound:
      return ErrorCode::kNotFound;
    case Code::kAlreadyExists:
      return ErrorCode::kAlreadyExists;
    case Code::kUnsupported:
      return ErrorCode::kUnsupported;
    case Code::kOutOfMemory:
      return ErrorCode::kOutOfMemory;
    case Code::kDevice:
      return ErrorCode::kDeviceError;
    case Code::kUnavailable:
      return ErrorCode::kUnavailable;
    case Code::kPermissionDenied:
      return ErrorCode::kForbidden;
    case Code::kResourceExhausted:
      return ErrorCode::kBusy;
    case Code::kCancelled:
      return ErrorCode::kCancelled;
    case Code::kIo:
    case Code::kInternal:
      return ErrorCode::kInternal;
    case Code::kOk:
      break;
  }
  return ErrorCode::kInternal;
}

}  // namespace ps::net
