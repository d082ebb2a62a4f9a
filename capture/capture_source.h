// What the agent asks of a capture source, whichever it is: CiviCRM's log tables
// (capture/log_table_source.h) or the MariaDB binlog (capture/binlog_source.h). Both turn rows
// into the same change records through capture/change_mapper.h and commit records and cursor
// together into the outbox.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "schemas/change.h"
#include "schemas/result.h"
#include "schemas/type_definition.h"

namespace civishare {

struct PollResult {
  std::size_t records = 0;     // change records committed to the outbox
  std::size_t rows = 0;        // rows read
  std::size_t late_rows = 0;   // log tables: rows found by the trailing re-read
  std::int64_t watermark = 0;  // unix seconds everything before which is captured
  bool at_head = false;        // binlog: read up to the end of the binlog (or a heartbeat)
  // Log tables: seconds spent waiting on the database (each statement until its first row or its
  // end; the rows' processing is not counted): what an idle poll costs the server.
  double db_seconds = 0;
};

class CaptureSource {
 public:
  virtual ~CaptureSource() = default;
  // The store's cursor name ("log_tables", "binlog").
  virtual const char* cursor_name() const = 0;
  // One step. Errors leave the stored cursor where it was; Errc::position_lost means the source
  // can never resume from it (an operator must act, see the message).
  virtual Result<PollResult> poll() = 0;
  // Sets the starting cursor if none is stored ("share from now on"); returns the cursor.
  virtual Result<std::string> ensure_cursor() = 0;
  // Re-captures (from, to] (`to` "" = the stored cursor) and queues the changes unless dry_run.
  virtual Result<std::vector<Change>> replay(const std::string& from, const std::string& to,
                                             bool dry_run) = 0;
  // Moves the cursor to the source's current position, skipping what lies between (after a lost
  // position, together with snapshot). Not every source has one to move to.
  virtual Result<std::string> reset_cursor() {
    return make_error(Errc::invalid_input,
                      std::string("the ") + cursor_name() + " source has no cursor to reset");
  }
  // Shares the current rows of the base tables (see ChangeMapper::snapshot).
  virtual Result<std::size_t> snapshot(const std::vector<const TypeDefinition*>& types,
                                       const std::string& only_to) = 0;
};

}  // namespace civishare
