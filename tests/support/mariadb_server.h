// A throw-away MariaDB server for tests: its own data dir under /tmp, a free loopback port,
// binary logging on (ROW, FULL metadata). Started by the constructor, stopped and deleted by the
// destructor, so a failing test still cleans up. Not thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "schemas/db/mariadb.h"

namespace civishare::testing {

class MariaDbServer {
 public:
  // Starts a server; throws std::runtime_error with the server's log when it does not come up.
  // `tz` (a TZ value such as "IST-5:30") sets the server's system time zone.
  explicit MariaDbServer(std::string tz = "");
  ~MariaDbServer();
  MariaDbServer(const MariaDbServer&) = delete;
  MariaDbServer& operator=(const MariaDbServer&) = delete;

  std::uint16_t port() const { return port_; }
  const std::string& socket() const { return socket_; }
  const std::string& dir() const { return dir_; }
  pid_t pid() const { return pid_; }  // the mariadbd process (benchmarks read its CPU time)

  // Creates schema `civicrm` with the reference data (ids shifted by id_offset) and the CiviCRM
  // tables, log tables and triggers, plus a user `civishare`/`civishare` with all it needs.
  void load_civicrm(int id_offset = 0);
  // Runs SQL through the mariadb client as root (DELIMITER and SOURCE work); throws on failure.
  void run_sql(const std::string& sql, const std::string& schema = "");
  // A root connection to `schema` over the socket.
  db::Connection connect(const std::string& schema = "civicrm") const;
  // Connection options the agent under test should use (user civishare over TCP).
  db::ConnectionOptions agent_options() const;

  // Fault tests: stop the server (SIGTERM, waits for the exit) and start it again on the same
  // data dir, socket and port.
  void stop();
  void start() { start_process(); }

 private:
  void start_process();
  std::string dir_;
  std::string socket_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
  std::string tz_;
};

// A free TCP port on 127.0.0.1 (bound once and released; good enough for tests), never one it
// returned before in this process.
std::uint16_t free_port();
// Runs a shell command; returns its exit status and fills `output` with stdout+stderr.
int run_command(const std::string& command, std::string* output = nullptr);
// Directory of the repository's test fixtures.
std::string fixtures_dir();

}  // namespace civishare::testing
