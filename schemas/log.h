// One line per event on stderr: "2026-11-28T10:00:00Z LEVEL component: message".
// ERROR is for data at risk or when an operator must act. Thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace civishare {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3 };

void set_log_level(LogLevel level);
// One line per event as a JSON object instead of text.
void set_log_json(bool json);
// The last WARN and ERROR lines (at most 50), oldest first: for the status page.
std::vector<std::string> recent_problems();
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
