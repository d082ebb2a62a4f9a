// Small helpers the capture benchmarks share: wall and CPU time, peak RSS, exit on error.
#pragma once

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

#include "schemas/db/mariadb.h"
#include "schemas/result.h"

namespace civishare::bench {

using Clock = std::chrono::steady_clock;

inline double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// CPU seconds of this process so far (all threads, user + system).
inline double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// CPU seconds of the calling thread so far (user + system).
inline double thread_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_THREAD, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// CPU seconds (user + system) of another process so far, from /proc; 0 if unreadable.
inline double process_cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = stat.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos) return 0;
  std::istringstream fields(stat.substr(close + 2));
  std::string f;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> f; ++i) {
    if (i == 14 || i == 15) ticks += std::stod(f);  // utime, stime
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

inline long peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024;
}

// Prints what failed and exits 1.
inline void must(const Status& s, const char* what) {
  if (!s) {
    std::fprintf(stderr, "%s: %s\n", what, s.error().message.c_str());
    std::exit(1);
  }
}

// The benchmarks' workload: `contacts` contacts inserted in one statement, then all of them
// updated until `rows` row changes were written.
inline void generate_contact_changes(db::Connection& root, long rows, long contacts) {
  must(root.exec(
           "INSERT INTO civicrm_contact (contact_type, first_name, last_name, external_identifier) "
           "SELECT 'Individual', CONCAT('First', seq), CONCAT('Last', seq), CONCAT('X', seq) "
           "FROM seq_1_to_" +
           std::to_string(contacts)),
       "insert");
  for (long k = 1; k * contacts < rows; ++k) {
    must(root.exec("UPDATE civicrm_contact SET last_name = CONCAT('Last', id, '-', " +
                   std::to_string(k) + ")"),
         "update");
  }
}

// The value, or prints what failed and exits 1.
template <typename T>
T must(Result<T> r, const char* what) {
  if (!r) {
    std::fprintf(stderr, "%s: %s\n", what, r.error().message.c_str());
    std::exit(1);
  }
  return std::move(*r);
}

}  // namespace civishare::bench
