#include "schemas/log.h"

#include <atomic>
#include <boost/json.hpp>
#include <cstdio>
#include <deque>
#include <mutex>
#include <string>

#include "schemas/change.h"

namespace civishare {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::info)};
std::atomic<bool> g_json{false};
std::mutex g_mu;
std::deque<std::string> g_recent;
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
void set_log_json(bool json) {
  g_json = json;
}

std::vector<std::string> recent_problems() {
  std::lock_guard lock(g_mu);
  return {g_recent.begin(), g_recent.end()};
}

void log(LogLevel level, std::string_view component, std::string_view message) {
  if (static_cast<int>(level) < g_level.load()) return;
  const std::string when = utc_now_iso();
  std::string line;
  if (g_json) {
    line = boost::json::serialize(boost::json::object{{"time", when},
                                                      {"level", name(level)},
                                                      {"component", component},
                                                      {"message", message}}) +
           "\n";
  } else {
    line = when + " " + name(level) + " " + std::string(component) + ": " + std::string(message) +
           "\n";
  }
  std::lock_guard lock(g_mu);
  if (level >= LogLevel::warn) {
    g_recent.push_back(when + " " + name(level) + " " + std::string(component) + ": " +
                       std::string(message));
    if (g_recent.size() > 50) g_recent.pop_front();
  }
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace civishare
