#include "schemas/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>

#include "schemas/change.h"

namespace civishare {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::info)};
std::mutex g_mu;
const char* name(LogLevel l) {
  switch (l) {
    case LogLevel::debug:
      return "DEBUG";
    case LogLevel::info:
      return "INFO";
    case LogLevel::warn:
      return "WARN";
    case LogLevel::error:
      return "ERROR";
  }
  return "INFO";
}
}  // namespace

void set_log_level(LogLevel level) {
  g_level = static_cast<int>(level);
}

void log(LogLevel level, std::string_view component, std::string_view message) {
  if (static_cast<int>(level) < g_level.load()) return;
  std::string line = utc_now_iso() + " " + name(level) + " " + std::string(component) + ": " +
                     std::string(message) + "\n";
  std::lock_guard lock(g_mu);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace civishare
