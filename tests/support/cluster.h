// A node for integration tests: its own MariaDB server with the CiviCRM fixture, a data dir, a
// config file and (when started) a real `civishare run` process.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/agent_process.h"
#include "tests/support/mariadb_server.h"

namespace civishare::testing {

struct Link {
  std::string peer;  // the other node's name
  std::string secret;
  std::vector<std::string> outgoing = {"civishare.change.contact.base"};
  std::vector<std::string> incoming = {"civishare.change.contact.base"};
  std::string scheme = "http";
  std::string ca_file;
  std::uint16_t via_port = 0;  // connect here (a TcpProxy) instead of the peer's receiver port
};

class TestNode {
 public:
  // Starts a MariaDB server and loads the fixture with reference ids shifted by `id_offset`.
  TestNode(std::string name, int id_offset);
  ~TestNode();

  const std::string& name() const { return name_; }
  std::uint16_t port() const { return port_; }  // the receiver's port
  const std::string& dir() const { return dir_; }
  const std::string& config_path() const { return config_path_; }
  MariaDbServer& db() { return *db_; }
  // The body of the [applier] section written by configure().
  std::string applier_section = "kind = \"sql\"\n";
  int poll_interval_ms = 200;  // [capture] poll_interval_ms written by configure()
  // [capture] source written by configure(); "binlog" also gets a server_id of its own.
  std::string capture_source = "log_tables";
  std::string capture_extra;  // more lines for the [capture] section

  // Writes the config: links to other nodes (whose receiver ports come from `peers`), plus any
  // extra TOML appended to the [receiver] section and the end of the file.
  void configure(const std::vector<std::pair<Link, const TestNode*>>& links,
                 const std::string& receiver_extra = "", const std::string& extra = "");
  void init();  // civishare init; asserts success
  // civishare run in the background; `env`: extra NAME=value entries (crash points, shims).
  void start(const std::vector<std::string>& env = {});
  int stop();  // SIGTERM; the exit code
  void kill() {
    if (agent_) agent_->kill();
  }  // SIGKILL
  bool running() { return agent_ && agent_->running(); }
  pid_t agent_pid() const { return agent_ ? agent_->pid() : -1; }
  std::string log() const { return agent_ ? agent_->log() : std::string(); }
  // `civishare status --json` output (the process's stdout+stderr).
  std::string status_json();

  // First column of the first row, "NULL" for NULL or no row; throws on SQL errors.
  std::string query(const std::string& sql);

 private:
  std::string name_;
  std::unique_ptr<MariaDbServer> db_;
  std::string dir_;
  std::string config_path_;
  std::uint16_t port_ = 0;
  std::unique_ptr<AgentProcess> agent_;
};

// Fault and crash tests: `contacts` transactions on `node` of a contact (external_identifier
// 'burst-<tag><i>') with a primary email, then one update of each last name: 3 x contacts changes.
void write_burst(TestNode& node, const std::string& tag, int contacts);
// The burst contacts (with email) as one text keyed by global reference: on their origin node
// (`origin` = its name), and on a node that received them (through civishare_idmap). Equal texts
// = the copy matches the origin in every shared column the burst wrote.
std::string burst_state_at_origin(TestNode& origin);
std::string burst_state_at_copy(TestNode& copy);

// How many rows each node's four log tables hold, e.g. "12/3/0/1 12/3/0/1": unchanged over a few
// seconds means no node writes (or re-applies) anything any more.
std::string log_row_counts(const std::vector<TestNode*>& nodes);

}  // namespace civishare::testing
