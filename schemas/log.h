// One line per event on stderr: "2026-11-28T10:00:00Z LEVEL component: message".
// ERROR is for data at risk or when an operator must act. Thread-safe.
#pragma once

#include <string_view>

namespace civishare {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3 };

void set_log_level(LogLevel level);
void log(LogLevel level, std::string_view component, std::string_view message);

inline void log_debug(std::string_view c, std::string_view m) {
  log(LogLevel::debug, c, m);
}
inline void log_info(std::string_view c, std::string_view m) {
  log(LogLevel::info, c, m);
}
inline void log_warn(std::string_view c, std::string_view m) {
  log(LogLevel::warn, c, m);
}
inline void log_error(std::string_view c, std::string_view m) {
  log(LogLevel::error, c, m);
}

}  // namespace civishare
