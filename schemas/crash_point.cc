#include "schemas/crash_point.h"

#ifdef CIVISHARE_CRASH_POINTS
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

namespace civishare {

namespace {
struct Target {
  std::string name;
  long at = 1;
};

const Target& target() {
  static const Target parsed = [] {
    Target t;
    const char* env = std::getenv("CIVISHARE_CRASH_AT");
    if (!env) return t;
    std::string v = env;
    auto colon = v.find(':');
    t.name = v.substr(0, colon);
    if (colon != std::string::npos) t.at = std::atol(v.c_str() + colon + 1);
    return t;
  }();
  return parsed;
}
}  // namespace

void crash_point(const char* name) {
  const Target& t = target();
  if (t.name.empty() || t.name != name) return;
  static std::atomic<long> hits{0};
  if (++hits < t.at) return;
  const std::string line = std::string("civishare: crash point `") + name + "` reached: SIGKILL\n";
  (void)!::write(2, line.data(), line.size());
  ::kill(::getpid(), SIGKILL);
}

}  // namespace civishare
#endif
