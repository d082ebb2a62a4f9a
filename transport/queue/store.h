// The agent's durable state in one RocksDB database under `data_dir` (the outbox, the images and
// the seen signatures each in a column family of their own, the rest in the default one):
//   outbox  — captured changes in capture order, each with a sequence number
//   acks    — per peer, the highest outbox sequence the peer has acknowledged
//   cursors — capture positions, written in the same WriteBatch as the records they produced
//   images  — the last image emitted per captured entity (to compute `from` values)
//   inbox   — received changes waiting for the applier
//   seen    — signatures of processed changes and accepted webhook message ids (replay guard)
// Thread-safe: RocksDB is, and the sequence counters are guarded. One Store per data dir per
// process (RocksDB's LOCK file enforces that across processes).
#pragma once

#include <atomic>
#include <boost/json.hpp>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "schemas/change.h"
#include "schemas/result.h"
#include "transport/queue/images.h"

namespace rocksdb {
class DB;
class Iterator;
class Status;
class WriteBatch;
struct WriteOptions;
}  // namespace rocksdb

namespace civishare {

// Attribute changes written straight in the queue's encoding of an entry (capture's hot path):
// the values are the JSON texts the entity images hold, never parsed into JSON values on the way
// to the store. Read back, they are the entry's change.attribute_changes.
struct EncodedAttributes {
  std::size_t count = 0;
  std::string bytes;
  // `from` nullptr: absent (the entity is new). Texts must be JSON (reading the entry parses
  // them).
  void add(std::string_view name, const std::string_view* from, std::string_view to);
};

struct OutboxEntry {
  std::uint64_t seq = 0;
  Change change;
  std::string came_from;       // peer this change arrived from (never sent back there), or ""
  std::int64_t queued_at = 0;  // unix seconds when it entered the outbox (set by the store)
  std::string only_to;         // when set, only this peer gets it (snapshot --peer)
  // Capture only, before the commit: attribute changes in the store's encoding, stored before
  // those in change.attribute_changes (which capture then leaves empty). Never set on what the
  // store reads back.
  EncodedAttributes encoded_attributes;
};

// What the sender last learnt about a peer; written by the daemon, read by `civishare status`.
struct PeerState {
  std::vector<std::string> accepts;  // types the peer accepts from us (GET /v1/hello)
  bool negotiated = false;           // accepts is from a successful hello
  std::int64_t last_success_at = 0;  // unix seconds of the last delivered batch
  std::int64_t last_error_at = 0;
  std::string last_error;
};

// The outbox as one peer sees it.
struct PeerBacklog {
  std::uint64_t acked = 0;
  std::uint64_t queued = 0;           // records after `acked` that this peer gets
  std::int64_t oldest_queued_at = 0;  // queued_at of the first of them; 0 = none
};

struct InboxEntry {
  std::uint64_t seq = 0;
  Change change;
  std::string came_from;         // the peer that sent it
  std::int64_t received_at = 0;  // unix seconds when it was accepted (set by the store)
};

// What one capture step produces; committed atomically.
struct CaptureBatch {
  std::vector<OutboxEntry> records;  // seq is assigned by the store
  // When set, each record is read back (read_outbox, backlog...) with this node's signature
  // appended to its chain, made from the stored fields on every read instead of being stored.
  std::string sign_as;
  std::vector<std::pair<std::string, std::optional<EntityImage>>>
      images;  // key -> image (nullopt = erase)
  // More images, already encoded ("" = erase), shared with a capture source that reads them
  // until the batch is committed (ChangeMapper::Images::in_flight); written as they are.
  std::shared_ptr<const EncodedImages> shared_images;
  std::string cursor_name;
  std::string cursor;
  std::vector<std::pair<std::string, std::string>> more_cursors;  // further name -> value
  // The records belong to a source transaction that is not complete yet (a huge one, committed in
  // parts to bound memory): peers get none of them, nor anything queued after them, until a
  // batch without `hold` commits (read_outbox stops before the first held record).
  bool hold = false;
  // False for an intermediate part of a long scan: written to the WAL but not fsynced; the next
  // synced batch makes it durable. The WAL keeps order, so a power loss drops a suffix of batches
  // (records, images, counts and cursors together), never a middle one: capture resumes from the
  // last durable cursor and produces the lost records again, with the same ids. (A record pushed
  // to a peer was durable before: the sender's synced ack write syncs the WAL before it.)
  bool sync = true;
  // Log rows seen (log-table capture): log second -> (row hash, how many identical rows seen in
  // all). Stored as one key per second and batch, not one per row.
  std::map<std::int64_t, std::vector<std::pair<std::uint64_t, std::uint32_t>>> row_counts;
};

class Store {
 public:
  static Result<std::unique_ptr<Store>> open(const std::string& data_dir);
  // A read-only view beside a running agent (for `civishare status`); sees the state at open.
  static Result<std::unique_ptr<Store>> open_read_only(const std::string& data_dir);
  ~Store();

  // Why the first write failed (disk full, I/O error), if one did. RocksDB then refuses every
  // later write until the store is reopened (DB::Resume() in the packaged RocksDB 7.8 aborts on
  // an assertion after a failed WAL append), so the agent stops and a restart recovers: what a
  // failed write carried was never acknowledged to anyone.
  std::optional<std::string> write_failure() const;

  // Refuse writes (Errc::storage, "data dir almost full ...") while the file system of the data
  // dir has less than this free; the store stays healthy and writes work again once there is
  // space. 0 = off (the default).
  void set_min_free_bytes(std::uint64_t bytes) { min_free_bytes_ = bytes; }

  // Capture side.
  Status commit_capture(CaptureBatch batch);
  // Drops the held records (CaptureBatch::hold) of a capture pass that stopped before the batch
  // that would have released them: the pass that follows captures their rows again. Returns how
  // many it dropped. Synced.
  Result<std::size_t> drop_held();
  Result<std::optional<std::string>> cursor(const std::string& name);
  // The last image committed for `key` (through a bounded cache of recent ones).
  Result<std::optional<EntityImage>> image(const std::string& key);
  // The same into `out`, reusing its storage; false when the entity has no image.
  Result<bool> image_into(const std::string& key, EntityImage& out);
  // The image as stored (any of the encodings ImageCodec reads) into `out`; false when none.
  Result<bool> image_encoded(const std::string& key, std::string& out);
  // For capture writing images itself (begin_image): the id of a list of value names, saved
  // with the next commit_capture; 0 = no id (write encode_image_with_names). Thread-safe.
  std::uint64_t image_names_id(const std::vector<std::string>& names);
  // Decodes an image as image_encoded() gave it; false if malformed. Thread-safe.
  bool decode_image(std::string_view encoded, EntityImage& out) const;
  ImageCache::Stats image_cache_stats() const;
  // The image cache's bound: about 170,000 contact images of 140 bytes.
  static constexpr std::size_t kImageCacheBytes = 24 << 20;
  // For log rows stamped `log_ts`: row hash -> how many identical rows capture has seen.
  struct RowCounts {
    std::unordered_map<std::uint64_t, std::uint32_t> by_hash;  // SourceRow::hash64 (sha256)
    // What builds before 2026-12-08 counted, by their row hash (SourceRow::legacy_hash64, sha512).
    std::unordered_map<std::uint64_t, std::uint32_t> legacy;
    bool empty() const { return by_hash.empty() && legacy.empty(); }
  };
  Result<RowCounts> row_counts(std::int64_t log_ts);
  // Forgets row counts of rows stamped before `before_ts`.
  Status prune_row_counts(std::int64_t before_ts);

  // Sender side. Entries with seq > after, in order, at most `max`; never a held one (see
  // CaptureBatch::hold). With `wanted`, each entry is first read for its routing fields only
  // (as backlog() reads them) and shown to it: one it declines comes back with those fields only
  // (no context, attributes or signatures decoded), one it wants comes back whole.
  Result<std::vector<OutboxEntry>> read_outbox(
      std::uint64_t after, std::size_t max,
      const std::function<bool(const OutboxEntry&)>& wanted = nullptr);
  Result<std::uint64_t> acked(const std::string& peer);
  Status set_acked(const std::string& peer, std::uint64_t seq);
  std::uint64_t last_outbox_seq() const;
  // Counts what `peer` still has to get. `wanted` says whether the peer gets an entry; `filter`
  // names that rule (the same text for the same rule). A running agent asks again and again
  // (/metrics, /status.json), so the answer is kept per peer and brought up to date from the
  // previous one: only entries queued or acknowledged since are read. `wanted` sees each entry's
  // came_from, only_to, queued_at and its change's id, type, timestamp, entity and reference (not
  // its context, attributes or signatures: skipped, not decoded).
  Result<PeerBacklog> backlog(const std::string& peer, const std::string& filter,
                              const std::function<bool(const OutboxEntry&)>& wanted);
  Status set_peer_state(const std::string& peer, const PeerState& state);
  Result<PeerState> peer_state(const std::string& peer);

  // Housekeeping: drops outbox records every listed peer has acknowledged and that are older
  // than `retention_s`; accepted message ids older than `message_id_s`; seen signatures older than
  // `signature_s`. Returns how many outbox records went.
  Result<std::uint64_t> prune(const std::vector<std::string>& peers, std::int64_t retention_s,
                              std::int64_t message_id_s, std::int64_t signature_s);

  // Receiver side. Persists the entries, their signatures, the message id and the count of
  // changes dropped as loops (already processed) in one batch.
  Status commit_receive(const std::string& peer, const std::string& message_id,
                        std::vector<InboxEntry> entries, std::uint64_t loops_dropped = 0);
  // Small named values for components without a database of their own (the APIv4 applier's
  // idmap and applied set). "" = absent.
  Result<std::string> value(const std::string& key);
  // Keys of the APIv4 applier's notes, which capture reads to recognise its echoes.
  static std::string apiv4_echo_key(const std::string& table, const std::string& local_id) {
    return "apiv4/echo/" + table + "/" + local_id;
  }
  static std::string apiv4_reference_key(const std::string& table, const std::string& local_id) {
    return "apiv4/idmap_local/" + table + "/" + local_id;
  }
  Status put_values(const std::vector<std::pair<std::string, std::string>>& values);  // "" erases

  // Persistent counters (`civishare status` reads them beside a running agent).
  static constexpr const char* kLoopsDropped = "loops_dropped";
  Result<std::uint64_t> counter(const std::string& name);
  // Whether any of a change's signatures was received here before (within the retention).
  Result<bool> any_signature_seen(const std::vector<std::string>& signatures);
  Result<bool> message_seen(const std::string& peer, const std::string& message_id);
  Status mark_signatures_seen(const std::vector<std::string>& signatures);

  // Applier side.
  Result<std::vector<InboxEntry>> read_inbox(std::size_t max);
  Status remove_inbox(std::uint64_t seq);
  Status remove_inbox(const std::vector<std::uint64_t>& seqs);  // one write
  std::uint64_t inbox_size() const;
  // Whether RocksDB is flushing or compacting, or has compaction to do (in any column family).
  bool background_work() const;

 private:
  struct Families;  // the column families, and which keys live in which
  class Batch;      // a WriteBatch that puts each key into its column family
  Store(rocksdb::DB* db, std::unique_ptr<Families> families, std::string dir);
  static Result<std::unique_ptr<Store>> open_at(const std::string& data_dir, bool read_only);
  // Moves keys that earlier builds kept in the default column family into their own (once).
  Status move_into_families();
  rocksdb::Status get(const std::string& key, std::string* value) const;
  std::unique_ptr<rocksdb::Iterator> iterate(const std::string& prefix) const;
  Result<std::uint64_t> last_seq(const std::string& prefix);
  Result<std::string> next_row_counts_key(std::int64_t log_ts);
  // Every write goes through here, to notice the first failure (see write_failure()).
  rocksdb::Status write(const rocksdb::WriteOptions& options, rocksdb::WriteBatch* batch);
  std::string dir_;  // the store's directory
  std::atomic<std::uint64_t> min_free_bytes_{0};
  std::atomic<bool> write_failed_{false};
  mutable std::mutex error_mu_;  // not mu_: write() runs with mu_ held
  std::string write_error_;      // guarded by error_mu_
  rocksdb::DB* db_;
  std::unique_ptr<Families> families_;
  mutable std::mutex mu_;
  std::uint64_t next_outbox_ = 1;
  std::uint64_t next_inbox_ = 1;
  std::atomic<std::uint64_t> held_from_{0};  // first held outbox seq; 0 = none
  Status load_held();
  // Whether the seen family held signatures as text (earlier builds) at open: look-ups then try
  // both keys (those keys go once pruned, after the signature window).
  bool legacy_seen_ = false;
  Status load_image_names();
  ImageCodec codec_;
  ImageCache image_cache_{kImageCacheBytes};
  std::unique_ptr<rocksdb::WriteBatch> capture_batch_;  // commit_capture's, reused (under mu_)
  // backlog()'s count per peer: for each outbox seq after `acked` up to `counted`, whether the
  // peer gets it (one byte per entry: a million queued cost a megabyte).
  struct BacklogCount {
    std::string filter;
    std::uint64_t acked = 0, counted = 0, queued = 0;
    std::deque<bool> wanted;  // wanted[i]: seq acked + 1 + i
  };
  std::mutex backlog_mu_;
  std::map<std::string, BacklogCount> backlog_counts_;
};

}  // namespace civishare
