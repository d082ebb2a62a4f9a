// The agent's configuration: a plain struct parsed from TOML in one place, then validated.
// Keys and meanings are the contract in docs/ARCHITECTURE.md; unknown keys are rejected.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "schemas/db/mariadb.h"
#include "schemas/result.h"
#include "schemas/type_definition.h"
#include "transport/link.h"

namespace civishare {

struct Config {
  struct Node {
    std::string name;      // [a-z0-9_]{1,16}, unique in the federation
    std::string data_dir;  // RocksDB store and runtime files
    // Below this much free space in data_dir the store refuses writes (capture waits, the
    // receiver answers 503) instead of running the disk full; 0 turns the guard off.
    std::int64_t min_free_mb = 100;
  } node;

  struct Database {
    std::string host = "127.0.0.1";
    std::uint16_t port = 3306;
    std::string socket;  // when set, used instead of host/port
    std::string user;
    std::string password;  // or password_file
    std::string password_file;
    std::string schema = "civicrm";
    std::string log_schema;  // where log_civicrm_* live; "" = schema
  } database;

  struct Capture {
    std::string source = "log_tables";  // log_tables | binlog
    int poll_interval_ms = 500;
    int fallback_lag_s = 10;      // watermark lag when the PROCESS privilege is missing
    int reread_horizon_s = 7200;  // trailing re-read for rows stamped in the past
    int reread_interval_s = 60;
    std::string types_dir;       // extra change-type definitions (*.json) beside the built-in ones
    std::int64_t server_id = 0;  // binlog: our replica id, unique among the server's replicas
    // binlog: memory for the records of one transaction before they are committed held
    std::int64_t max_pending_mb = 32;
  } capture;

  // The built-in change types plus those in capture.types_dir. Pointers into it stay valid as
  // long as this Config is not copied.
  TypeRegistry types = TypeRegistry::builtin();

  struct Receiver {
    std::string listen = "127.0.0.1:7800";
    std::string host;           // parsed from listen
    std::uint16_t port = 7800;  // parsed from listen
    std::string tls_cert;       // PEM certificate chain; with tls_key, the receiver speaks HTTPS
    std::string tls_key;
    std::int64_t body_limit_bytes = 16 << 20;
  } receiver;

  struct Log {
    std::string level = "info";   // debug | info | warn | error
    std::string format = "text";  // text | json (one JSON object per line)
  } log;

  // Not in the design's example; every key has a default.
  struct Transport {
    std::int64_t max_batch_changes = 500;
    std::int64_t max_batch_bytes = 4 << 20;
    std::int64_t retention_hours = 168;        // keep delivered outbox records this long (replay)
    std::int64_t timestamp_tolerance_s = 300;  // webhook-timestamp window, both directions
    std::int64_t loop_window_days = 30;        // how long processed signatures are remembered
  } transport;

  struct Applier {
    std::string kind = "sql";  // sql | apiv4
    std::string url;
    std::string api_key;
    std::string site_key;
    std::int64_t contact_id = 0;
    std::string conflict_policy = "newer_wins";  // newer_wins | keep_local | review
    // Rules to find an existing contact before creating one, in order: external_identifier,
    // email_last_name. Empty = always create.
    std::vector<std::string> match = {"external_identifier"};
    std::map<std::string, std::string> conflict_policy_by_type;  // type -> policy
  } applier;

  struct Peer {
    std::string name;
    std::string url;
    std::string secret;
    std::vector<std::string> outgoing;
    std::vector<std::string> incoming;
    std::string ca_file;  // CA bundle to check the peer's HTTPS certificate; "" = system CAs
  };
  std::vector<Peer> peers;

  db::ConnectionOptions connection_options() const;
  // The peers as links for the transport (secrets decoded). Call only on a validated config.
  std::vector<PeerLink> links() const;
};

// Parses and validates. Errors name the key and say how to fix it.
Result<Config> parse_config(std::string_view toml_text, const std::string& origin = "config");
Result<Config> load_config(const std::string& path);

}  // namespace civishare
