// What both capture sources share: one row of a captured table (a log row, a binlog row image or,
// for snapshots, a base-table row) becomes at most one change record, against the last image
// emitted per entity. References, id-to-name translations, the primary email of new contacts and
// the signature chain are the same whichever source read the row, so the two sources emit the
// same records for the same writes (tests/capture/capture_suite_test.cc).
//
// How a source recognises the writes of our own appliers differs (the log tables carry a marker
// in log_conn_id, the binlog has the civishare_applied row in the same transaction): the source
// passes that in as an Echo.
#pragma once

#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "capture/commit_thread.h"
#include "capture/row_mapper.h"
#include "schemas/db/mariadb.h"
#include "schemas/db/translator.h"
#include "schemas/result.h"
#include "schemas/type_definition.h"
#include "transport/queue/store.h"

namespace civishare {

// One row as capture sees it. `columns` and `row` must outlive the SourceRow.
struct SourceRow {
  const TypeDefinition* type = nullptr;
  std::int64_t ts = 0;  // unix seconds: log_date, or the binlog event's time
  std::string action;   // Insert, Update, Delete, Initialization
  const ColumnIndex* columns = nullptr;
  const db::Row* row = nullptr;
  std::string salt;  // mixed into the change id (the binlog's GTID and row number)

  const db::Cell& get(std::string_view column) const { return cell(*columns, *row, column); }
  // sha256 of the table, every cell and the salt: identical rows hash alike. (sha256, not
  // sha512: with the CPU's SHA extensions it is more than twice as fast, and a catch-up hashes
  // every row it reads.)
  const std::string& raw_hash() const;
  std::string hash() const;      // 24 hex digits of raw_hash()
  std::uint64_t hash64() const;  // the first 8 bytes of raw_hash(), little-endian
  // The first 8 bytes of the sha512 of the same text, little-endian: the row hash of builds
  // before 2026-12-08, whose row counts a store may still hold (Store::RowCounts::legacy).
  std::uint64_t legacy_hash64() const;

 private:
  mutable std::string digest_;
};

// What our own applier wrote: the change it applied, whose chain this row carries on.
struct Echo {
  std::string change_id;
  std::string timestamp;
  std::string came_from;
  std::vector<std::string> chain;
};

// The Echo in a civishare_applied row (columns change_id, change_timestamp, came_from, chain);
// nullopt without a change id.
std::optional<Echo> applied_echo(const db::Cell& change_id, const db::Cell& timestamp,
                                 const db::Cell& came_from, const db::Cell& chain);

struct MapperOptions {
  std::string node;
  const TypeRegistry* registry = nullptr;  // nullptr = built-in types
  std::int64_t api_contact_id = 0;         // the APIv4 applier keeps its idmap in the store
  // How the source recognises our appliers' writes. `ours`: the row was written by one of them
  // (its references are then looked up in the idmap). `link`: the change the applier applied
  // when it wrote the row; called only for a row of ours that becomes a change; nullopt = not
  // known. Either may be empty (= never ours).
  std::function<bool(const SourceRow&)> ours;
  std::function<Result<std::optional<Echo>>(const SourceRow&)> link;
};

class ChangeMapper {
 public:
  // `lookup` answers translations, references and primary emails; it must not be inside a
  // snapshot transaction that hides the rows being captured.
  ChangeMapper(MapperOptions options, db::Connection& lookup, Store& store);

  // The images capture works against plus what the current batch has changed so far, all in
  // the store's encoding (ImageView), so an image is built, compared and written as one string.
  struct Images {
    EncodedImages pending;  // "" = erased
    // Images of a batch being committed on another thread: read like pending ones until then.
    std::shared_ptr<const EncodedImages> in_flight;
    // Loads the stored image of (type, id) into `out` (its storage reused); false: none. `key`
    // is image_key(type's table, id), made once per look-up by the caller.
    std::function<Result<bool>(const TypeDefinition&, const std::string& id, const std::string& key,
                               std::string& out)>
        load;
    // Where load() puts the images it reads: one for the row's entity, one for the references
    // looked up while mapping it (its parent's).
    std::string previous_scratch, reference_scratch;
    // Non-empty (store_images()): map_row leaves this node's signature (the last of each
    // record's chain) to the store: the hand-off, flush_into() or commit_in_background(), sets
    // the batch's sign_as and the store appends the signature whenever the record is read
    // (CaptureBatch::sign_as). Empty (replay's own images): map_row signs each record itself.
    std::string sign_as;
    // Where commit_in_background() runs the commits (store_images(): the mapper's one thread).
    CommitThread* committer = nullptr;
    // Moves the pending images into `batch`.
    void flush_into(CaptureBatch& batch);
    // Commits `batch` on `committer`'s thread, with the pending images (`with_images`: they stay
    // readable as in flight until the next call) or without them (they stay pending). The next
    // call must come once this commit is done (the future's result). The crash points
    // capture.before_commit and capture.after_commit fire there.
    std::future<Status> commit_in_background(Store& store, CaptureBatch batch,
                                             bool with_images = true);
    // Images that know no entity (load finds nothing): for building one image on its own.
    static Images none();
  };
  // load = the store's images; records are signed when read from the store (sign_as = this node).
  Images store_images();
  static std::string image_key(const std::string& table, const std::string& id);
  static void image_key(const std::string& table, const std::string& id, std::string& out);

  // Notes which tables have no idmap entry at all (their rows need no reference look-up); call
  // once before each scan.
  Status refresh_unmapped_tables(const std::vector<const TypeDefinition*>& types);

  // Maps one row to at most one change, appended to `out`, updating the image overlay.
  Status map_row(const SourceRow& row, Images& images, std::vector<OutboxEntry>& out);
  // Starts fetching what map_row(row, images, ...) looks up first (the pending image's slot), to
  // be called some work ahead of it.
  static void prefetch(const SourceRow& row, const Images& images);
  // The row as an image in wire form (ids translated to names), encoded as the store keeps it,
  // into `out`. `reference`: the entity's global reference when the caller knows it already
  // ("" = look it up).
  Status image_of(const SourceRow& row, Images& images, const std::string& id, bool ours,
                  std::string& out, std::string_view reference = {});
  // New contacts carry their primary email (context.primary_email) so a peer can match them.
  Status add_primary_emails(std::vector<OutboxEntry>& records);

  // Shares the current rows of the base tables of `types` (read through `reader`, which may be
  // the lookup connection) as Initialization rows: create for entities never shared, update for
  // what differs. Returns the records queued.
  Result<std::size_t> snapshot(db::Connection& reader,
                               const std::vector<const TypeDefinition*>& types,
                               const std::string& only_to);

  const TypeRegistry& registry() const;

 private:
  Result<std::string> reference(Images& images, const TypeDefinition& def, const std::string& id,
                                bool ours);
  // The id of `def`'s list of value names in the store (0: images of it carry their names).
  std::uint64_t names_id(const TypeDefinition& def);
  // An image in any encoding the store reads, decoded (the slow path for images of earlier builds
  // or of another list of names).
  Result<EntityImage> decode(std::string_view encoded, const std::string& what) const;
  MapperOptions o_;
  db::Connection& lookup_;
  db::Translator translator_;
  Store& store_;
  std::map<std::string, bool> unmapped_tables_;
  std::vector<std::pair<const TypeDefinition*, std::uint64_t>> names_ids_;
  std::string row_key_;                      // map_row's image key
  std::unique_ptr<CommitThread> committer_;  // started by the first store_images()
};

}  // namespace civishare
