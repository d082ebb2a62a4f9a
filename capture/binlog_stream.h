// Streams binlog events from a MariaDB server as a replica would (Connector/C's mariadb_rpl),
// starting after a GTID position; the events come out as (type, body) for binlog_rows.h.
// Follows BINLOG_FACTS.md: GTID start through session variables (the library's GTID options are
// unimplemented), the server's checksum announced, ROTATE and heartbeat handled here.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "capture/binlog_rows.h"
#include "schemas/db/mariadb.h"
#include "schemas/result.h"

namespace civishare::binlog {

struct StreamOptions {
  db::ConnectionOptions connection;  // a user with REPLICATION SLAVE (and REPLICATION CLIENT)
  unsigned server_id = 0;            // unique among the server's replicas; 0 is not allowed
  std::string gtid_position;         // e.g. "0-1-100,1-1-7"; empty = from the oldest binlog
  bool blocking = false;             // false: next() returns nullopt at the end of the binlog
  // Blocking only: the server sends a heartbeat after this long without events, and next()
  // returns nullopt for it ("nothing new"). 0 = no heartbeats (next() waits for an event).
  int heartbeat_ms = 0;
};

// A GTID position "domain-server-sequence,..." as domain -> sequence; Errc::invalid_input naming
// what is wrong. "" is the empty position.
Result<std::map<std::uint32_t, std::uint64_t>> parse_gtid_position(const std::string& position);
std::vector<std::string> split_gtids(const std::string& position);

// What must hold on the server before the binlog source can run, each problem with the setting
// or grant that fixes it: log_bin on, binlog_format=ROW, binlog_row_image=FULL,
// binlog_row_metadata=FULL, and REPLICATION SLAVE (the dump) plus REPLICATION CLIENT / BINLOG
// MONITOR (SHOW MASTER STATUS, the retention headroom) for the connecting user. Empty = ready.
Result<std::vector<std::string>> check_server(db::Connection& conn);

class Stream {
 public:
  static Result<std::unique_ptr<Stream>> open(const StreamOptions& options);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // The next event with a body; nullopt at the end of a
  // non-blocking stream or for a heartbeat. Errors name the server's message; a position whose
  // binlog was purged (1236) is Errc::position_lost.
  Result<std::optional<FileEvent>> next();
  // The start position with the GTID of every transaction begun since, per replication domain,
  // as "domain-server-sequence,..." (idle domains keep their start GTID).
  std::string gtid_position() const;
  // The GTID of the last GTID event ("domain-server-sequence"); "" before the first.
  const std::string& last_gtid() const { return last_gtid_; }

 private:
  Stream() = default;
  db::Connection* conn_ = nullptr;
  std::unique_ptr<db::Connection> owned_;
  struct Rpl;
  std::unique_ptr<Rpl> rpl_;
  std::map<std::uint32_t, std::string> gtids_;  // domain -> "domain-server-seq"
  std::string last_gtid_;
};

}  // namespace civishare::binlog
