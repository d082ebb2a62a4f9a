// Captures changes from CiviCRM's extended-logging tables (log_civicrm_*).
//
// Each poll computes a watermark W (no statement or transaction still running started before W;
// see LOG_TABLE_CURSOR.md), reads the rows stamped in [cursor, W) from every captured log table in
// one consistent snapshot, maps them to change records against the last image emitted per entity,
// and commits records, images and the new cursor in one RocksDB WriteBatch.
//
// Walking-skeleton scope: the watermark uses PROCESSLIST and INNODB_TRX but has no per-connection
// memory for metadata-lock waits and no trailing re-read for rows stamped in the past; see
// issue "Capture from CiviCRM log tables" for the full algorithm.
//
// Not thread-safe: one poller thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "schemas/db/mariadb.h"
#include "schemas/db/translator.h"
#include "schemas/result.h"
#include "schemas/type_definition.h"
#include "transport/queue/store.h"

namespace civishare {

struct LogTableOptions {
  std::string node;        // this node's name (global references, signatures)
  std::string log_schema;  // where log_civicrm_* live; "" = the connection's schema
  std::vector<const TypeDefinition*> types;  // what to capture, parents before children
  int fallback_lag_s = 10;                   // watermark lag when PROCESS is not granted
};

struct PollResult {
  std::size_t records = 0;     // change records committed to the outbox
  std::size_t rows = 0;        // log rows read
  std::int64_t watermark = 0;  // the cursor after this poll (unix seconds)
};

class LogTableSource {
 public:
  static constexpr const char* kCursorName = "log_tables";

  LogTableSource(LogTableOptions options, db::Connection connection, Store& store);

  // One poll. Ok with records == 0 means caught up. Errors leave the cursor where it was.
  Result<PollResult> poll();

  // The watermark now: rows stamped before it can no longer appear. Unix seconds.
  Result<std::int64_t> watermark();

  // Sets the cursor to the current watermark if none is stored yet (start sharing "from now").
  Result<std::int64_t> ensure_cursor();

  static std::string format_cursor(std::int64_t watermark);
  static Result<std::int64_t> parse_cursor(const std::string& cursor);

 private:
  LogTableOptions options_;
  db::Connection db_;
  db::Translator translator_;
  Store& store_;
  bool warned_no_process_ = false;
};

}  // namespace civishare
