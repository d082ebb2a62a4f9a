// Captures changes from CiviCRM's extended-logging tables (log_civicrm_*).
//
// Each poll reads the log rows stamped in [cursor, W) from every captured log table in one
// consistent snapshot, where W is the watermark (capture/watermark.h: no row stamped before W can
// still appear). Rows become change records against the last image emitted per entity, and
// records, images, the content hashes of the rows and the new cursor are committed in one RocksDB
// WriteBatch: exactly once into the outbox, also under kill -9. (A long pass commits its records
// in chunks, held from peers until a checkpoint commits the images and counts that go with them;
// a pass cut short leaves held records, which the next pass drops and captures again.)
//
// Rows stamped in the past (a session with SET timestamp) defeat any watermark, so every
// `reread_interval_s` the source re-reads the last `reread_horizon_s` before the cursor and emits
// the rows whose content hash it has not seen (counted, so identical rows are not merged).
//
// Not thread-safe: one capture thread (the sampler has its own).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "capture/capture_source.h"
#include "capture/watermark.h"
#include "schemas/db/mariadb.h"
#include "schemas/db/translator.h"
#include "schemas/result.h"
#include "schemas/type_definition.h"
#include "transport/queue/store.h"

namespace civishare {

struct LogTableOptions {
  std::string node;                          // this node's name (references, signatures)
  std::string log_schema;                    // where log_civicrm_* live; "" = the CiviCRM schema
  std::vector<const TypeDefinition*> types;  // what to capture, parents before children
  const TypeRegistry* registry = nullptr;    // for parent types; nullptr = built-in types
  int fallback_lag_s = 10;                   // watermark lag without the PROCESS privilege
  int reread_horizon_s = 7200;               // trailing re-read for rows stamped in the past
  int reread_interval_s = 60;
  int sample_interval_ms = 100;     // how often the watermark sampler looks
  std::int64_t api_contact_id = 0;  // the APIv4 applier's contact: its rows are echoes
  // How much memory the images and row counts gathered since the last checkpoint may take
  // before the next one (see the scan in log_table_source.cc): more means fewer image writes
  // when entities change often.
  std::size_t max_pending_image_bytes = 32u << 20;
};

class LogTableSource {
 public:
  static constexpr const char* kCursorName = "log_tables";

  // Opens two connections: one for reading, one for the watermark sampler.
  static Result<std::unique_ptr<LogTableSource>> open(LogTableOptions options,
                                                      const db::ConnectionOptions& connection,
                                                      Store& store);
  ~LogTableSource();

  // One poll. Ok with records == 0 means caught up. Errors leave the cursor where it was.
  Result<PollResult> poll();

  // Sets the cursor to the current watermark if none is stored yet (share "from now on") and
  // records the rows of the last horizon as seen, so the trailing re-read ignores history.
  Result<std::int64_t> ensure_cursor();

  // Re-captures [from, to) against the images the log table itself had at `from`. Returns the
  // changes; unless dry_run they are queued in the outbox (images and cursor stay untouched).
  Result<std::vector<Change>> replay(std::int64_t from, std::int64_t to, bool dry_run);

  // Shares the current rows of the base tables of `types` as if they were Initialization rows:
  // create for entities never shared, update for what differs. Returns the records queued.
  Result<std::size_t> snapshot(const std::vector<const TypeDefinition*>& types,
                               const std::string& only_to = "");

  // The watermark now, waiting for it while transactions older than the sampler are open.
  Result<std::int64_t> current_watermark();
  bool has_process_privilege() const { return sampler_->has_process_privilege(); }

  static std::string format_cursor(std::int64_t watermark);
  static Result<std::int64_t> parse_cursor(const std::string& cursor);

  // The CaptureSource the agent drives (cursors as text, "lt1:<unix seconds>").
  static std::unique_ptr<CaptureSource> as_capture_source(std::unique_ptr<LogTableSource> source);

  struct Impl;

 private:
  explicit LogTableSource(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  WatermarkSampler* sampler_;
};

}  // namespace civishare
