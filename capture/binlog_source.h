// Captures changes from the MariaDB binlog (capture.source = "binlog").
//
// Streams row events as a replica would (capture/binlog_stream.h) from the stored GTID position,
// decodes them with the table maps' FULL metadata (capture/binlog_rows.h) and maps the rows of the
// captured tables of the CiviCRM schema through the same ChangeMapper as the log-table source, so
// the same writes give the same change records, in commit order.
//
// - Cursor: "gtid:<domain-server-seq,...>", every domain (idle ones keep their GTID), advanced in
//   the same WriteBatch as the records and only at transaction boundaries.
// - Huge transactions: every `chunk_records` records are committed *held* (invisible to senders,
//   CaptureBatch::hold) with a marker "<gtid>:<rows done>"; after a crash the transaction is read
//   again and its first rows skipped. Memory stays bounded by the chunk and one event.
// - Echoes: the SQL applier inserts its civishare_applied row before the rows it writes, in the
//   same transaction; the rows after it carry that change's chain on.
// - A cursor whose binlog was purged is Errc::position_lost with the way out in the message.
//
// Not thread-safe: one capture thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "capture/capture_source.h"
#include "schemas/db/mariadb.h"
#include "schemas/result.h"
#include "schemas/type_definition.h"
#include "transport/queue/store.h"

namespace civishare {

struct BinlogOptions {
  std::string node;
  std::string schema;  // the CiviCRM database: only its tables are captured
  std::vector<const TypeDefinition*> types;
  const TypeRegistry* registry = nullptr;  // nullptr = built-in types
  unsigned server_id = 0;                  // unique among the server's replicas
  bool follow = true;      // wait for new events (daemon); false: stop at the binlog's end
  int heartbeat_ms = 500;  // follow: how long poll() waits for an event
  int max_poll_ms = 1000;  // follow: poll() returns after this long even when busy
  // Records of one transaction are committed (held) before they take more than this much memory
  // (estimated from the rows' bytes) or exceed this count.
  std::size_t max_pending_bytes = 32u << 20;
  std::size_t chunk_records = 5000;
};

class BinlogSource final : public CaptureSource {
 public:
  static constexpr const char* kCursorName = "binlog";
  // Retention headroom for `status`: when the cursor was last at a known time, and the server's
  // binlog expiry then (both as cursors in the store).
  static constexpr const char* kCursorTimeName = "binlog.at";
  static constexpr const char* kExpiryName = "binlog.expire_s";

  static Result<std::unique_ptr<BinlogSource>> open(BinlogOptions options,
                                                    const db::ConnectionOptions& connection,
                                                    Store& store);
  ~BinlogSource() override;

  const char* cursor_name() const override { return kCursorName; }
  Result<PollResult> poll() override;
  Result<std::string> ensure_cursor() override;
  Result<std::vector<Change>> replay(const std::string& from, const std::string& to,
                                     bool dry_run) override;
  Result<std::size_t> snapshot(const std::vector<const TypeDefinition*>& types,
                               const std::string& only_to) override;
  // Moves the cursor to the server's current position (after a purge, with `snapshot`).
  Result<std::string> reset_cursor() override;

  static std::string format_cursor(const std::string& gtid_position);
  // The GTID position in a cursor; Errc::invalid_input naming the expected form.
  static Result<std::string> parse_cursor(const std::string& cursor);

  struct Impl;

 private:
  explicit BinlogSource(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace civishare
