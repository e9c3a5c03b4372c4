// The server's log: one line per event on stderr, "pipeswitchd: <level>: <message>", filtered
// by --log-level. Loop thread and backend threads may both log (a line is written whole).
#pragma once

#include <string_view>

#include "common/status.h"

namespace ps::reactor {

enum class LogLevel : int { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

// "error", "warn", "info", "debug"; INVALID_ARGUMENT otherwise.
Result<LogLevel> parse_log_level(std::string_view text);
void set_log_level(LogLevel level);
bool log_enabled(LogLevel level);
void log_line(LogLevel level, std::string_view message);

template <typename... Args>
void log_at(LogLevel level, const Args&... args) {
  if (log_enabled(level)) log_line(level, str_cat(args...));
}
template <typename... Args>
void log_error(const Args&... a) {
  log_at(LogLevel::kError, a...);
}
template <typename... Args>
void log_warn(const Args&... a) {
  log_at(LogLevel::kWarn, a...);
}
template <typename... Args>
void log_info(const Args&... a) {
  log_at(LogLevel::kInfo, a...);
}
template <typename... Args>
void log_debug(const Args&... a) {
  log_at(LogLevel::kDebug, a...);
}

}  // namespace ps::reactor
