#include "capture/log_table_source.h"

#include <algorithm>
#include <chrono>
#include <future>
#include <map>
#include <thread>
#include <unordered_map>
#include <utility>

#include "capture/change_mapper.h"
#include "schemas/db/civishare_tables.h"
#include "schemas/log.h"

namespace civishare {
namespace json = boost::json;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

using Columns = ColumnIndex;
using LogRow = SourceRow;
using Images = ChangeMapper::Images;

// A set of 64-bit row hashes: open addressing, 8 bytes a slot, load under 0.7.
class HashSet {
 public:
  bool contains(std::uint64_t hash) const {
    if (hash == 0) return zero_;
    if (slots_.empty()) return false;
    for (std::size_t i = hash & (slots_.size() - 1);; i = (i + 1) & (slots_.size() - 1)) {
      if (slots_[i] == hash) return true;
      if (slots_[i] == 0) return false;
    }
  }
  void insert(std::uint64_t hash) {  // `hash` not in the set yet
    if (hash == 0) {
      zero_ = true;
      return;
    }
    if ((used_ + 1) * 10 > slots_.size() * 7) {
      std::vector<std::uint64_t> old(std::max<std::size_t>(16, slots_.size() * 2), 0);
      old.swap(slots_);
      for (std::uint64_t h : old) {
        if (h != 0) place(h);
      }
    }
    place(hash);
    ++used_;
  }

 private:
  void place(std::uint64_t hash) {  // hashes are sha256 bytes: their low bits are uniform
    std::size_t i = hash & (slots_.size() - 1);
    while (slots_[i] != 0) i = (i + 1) & (slots_.size() - 1);
    slots_[i] = hash;
  }

  std::vector<std::uint64_t> slots_;  // 0 = empty
  std::size_t used_ = 0;
  bool zero_ = false;  // the hash 0 (cannot be a slot's value)
};

// How often each distinct row (by its 64-bit hash) occurred in one scan, and how often earlier
// scans saw it. Nearly every row occurs once and was never seen before: such a row costs one
// 8-byte slot of a set (a catch-up scan of a million rows: 16 MB, not the 56 MB of a node-based
// map). Rows seen before or repeated within the scan go to a small map.
//
// Identical rows share their log second, and rows come nearly in second order, so there is one
// set per second: the set being filled is small and stays in the CPU's cache, where one set for
// the whole scan took a cache miss on nearly every row.
class RowTally {
 public:
  struct Counts {
    std::uint32_t stored = 0;       // what earlier scans counted
    std::uint32_t occurrences = 0;  // in this scan so far, this one included
  };
  // Counts one occurrence of `hash` (a row of log second `second`). `stored_of(hash)` ->
  // Result<std::uint32_t> is asked on the first occurrence only.
  template <typename StoredOf>
  Result<Counts> add(std::int64_t second, std::uint64_t hash, StoredOf&& stored_of) {
    if (!more_.empty()) {
      if (auto it = more_.find(hash); it != more_.end()) {
        ++it->second.occurrences;
        return it->second;
      }
    }
    HashSet& seen = set_of(second);
    if (seen.contains(hash)) return more_[hash] = Counts{0, 2};  // its first had no stored count
    Result<std::uint32_t> stored = stored_of(hash);
    if (!stored) return stored.error();
    if (*stored == 0) {
      seen.insert(hash);
      return Counts{0, 1};
    }
    return more_[hash] = Counts{*stored, 1};
  }

 private:
  HashSet& set_of(std::int64_t second) {
    if (last_ == nullptr || last_second_ != second) {
      last_ = &seconds_[second];  // a node: stays where it is while others are added
      last_second_ = second;
    }
    return *last_;
  }

  std::unordered_map<std::int64_t, HashSet> seconds_;
  HashSet* last_ = nullptr;
  std::int64_t last_second_ = 0;
  std::unordered_map<std::uint64_t, Counts> more_;
};

}  // namespace

struct LogTableSource::Impl {
  static constexpr std::size_t kChunk = 5000;                        // rows per intermediate commit
  static constexpr const char* kPartialName = "log_tables.partial";  // window committed in part

  LogTableOptions o;
  db::Connection db;      // reads the log tables, inside the snapshot
  db::Connection lookup;  // id/name translations, references, civishare_applied (while streaming)
  Store& store;
  ChangeMapper mapper;
  std::unique_ptr<WatermarkSampler> sampler;
  Clock::time_point next_reread = Clock::now();

  Impl(LogTableOptions options, db::Connection reader, db::Connection looker, Store& s)
      : o(std::move(options)),
        db(std::move(reader)),
        lookup(std::move(looker)),
        store(s),
        mapper(mapper_options(), lookup, s) {}

  MapperOptions mapper_options() {
    MapperOptions m;
    m.node = o.node;
    m.registry = o.registry;
    m.api_contact_id = o.api_contact_id;
    m.ours = [this](const SourceRow& row) { return written_by_us(row); };
    m.link = [this](const SourceRow& row) { return echo_of(row); };
    return m;
  }

  std::string log_table(const TypeDefinition& def) const {
    std::string prefix =
        o.log_schema.empty() ? std::string() : db::Connection::quote_identifier(o.log_schema) + ".";
    return prefix + db::Connection::quote_identifier(def.log_table());
  }

  // SELECT from every captured log table; one Rows per type, in o.types order.
  Result<std::vector<db::Rows>> read(const std::string& where) {
    std::vector<db::Rows> out;
    for (const auto* type : o.types) {
      auto rows = db.query("SELECT *, UNIX_TIMESTAMP(log_date) AS civishare_ts FROM " +
                           log_table(*type) + " WHERE " + where);
      if (!rows) return rows.error();
      out.push_back(std::move(*rows));
    }
    return out;
  }

  static std::string window(std::int64_t from, std::int64_t to) {
    return "log_date >= FROM_UNIXTIME(" + std::to_string(from) + ") AND log_date < FROM_UNIXTIME(" +
           std::to_string(to) + ")";
  }

  static Result<LogRow> make_row(const TypeDefinition* type, const Columns& cols,
                                 const db::Row& r) {
    auto header = read_header(cols, r);
    if (!header)
      return make_error(header.error().code, type->log_table() + ": " + header.error().message);
    LogRow lr;
    lr.type = type;
    lr.ts = header->ts;
    lr.action = std::move(header->action);
    lr.columns = &cols;
    lr.row = &r;
    return lr;
  }

  // Rows in the order scan() takes them: table by table (parents' table first), each in insertion
  // order. `columns` receives one entry per table and must outlive the rows.
  Result<std::vector<LogRow>> order(const std::vector<db::Rows>& tables,
                                    std::vector<Columns>& columns) const {
    std::vector<LogRow> rows;
    columns.clear();
    for (const auto& t : tables) columns.emplace_back(t.columns);
    for (std::size_t t = 0; t < tables.size(); ++t) {
      for (const auto& r : tables[t].rows) {
        auto lr = make_row(o.types[t], columns[t], r);
        if (!lr) return lr.error();
        rows.push_back(std::move(*lr));
      }
    }
    return rows;  // table by table, parents' table first: the order scan() streams them in
  }

  // Whether our own appliers wrote this row: the SQL applier's marker in log_conn_id, or the
  // APIv4 applier's contact in log_user_id.
  bool written_by_us(const LogRow& lr) const {
    const auto& conn = lr.get("log_conn_id");
    if (conn && db::apply_id_from_marker(*conn)) return true;
    const auto& user = lr.get("log_user_id");
    return o.api_contact_id > 0 && user && *user == std::to_string(o.api_contact_id);
  }

  // The change behind one of our writes: the SQL applier's civishare_applied row (by the apply
  // id in the marker), or what the APIv4 applier noted for the entity.
  Result<std::optional<Echo>> echo_of(const LogRow& lr) {
    std::optional<Echo> link;
    const TypeDefinition& def = *lr.type;
    if (const auto& user = lr.get("log_user_id");
        o.api_contact_id > 0 && user && *user == std::to_string(o.api_contact_id)) {
      auto id = lr.get(def.key);
      auto noted = store.value(Store::apiv4_echo_key(def.table, id.value_or("")));
      if (!noted) return noted.error();
      boost::system::error_code ec;
      json::value v = noted->empty() ? json::value() : json::parse(*noted, ec);
      if (!ec && v.is_object()) {
        const auto& n = v.get_object();
        Echo e;
        e.change_id = std::string(n.at("change_id").as_string());
        e.timestamp = std::string(n.at("timestamp").as_string());
        for (const auto& sig : n.at("chain").as_array()) e.chain.emplace_back(sig.as_string());
        e.came_from = std::string(n.at("came_from").as_string());
        link = std::move(e);
      }
    }
    const auto& conn = lr.get("log_conn_id");
    if (auto apply_id = conn ? db::apply_id_from_marker(*conn) : std::nullopt) {
      auto applied = lookup.query(
          "SELECT change_id, chain, came_from, change_timestamp FROM civishare_applied "
          "WHERE apply_id = " +
          std::to_string(*apply_id));
      if (!applied) return applied.error();
      if (!applied->rows.empty()) {
        const auto& a = applied->rows[0];
        link = applied_echo(a[0], a[3], a[2], a[1]);
      }
    }
    return link;
  }

  // Streams [from, to) of every captured log table, parents' table first, and takes each row
  // whose occurrence count exceeds what the store has seen for identical rows: new rows, and in
  // the trailing part rows that appeared stamped in the past. With `process`, the rows become
  // change records; without, they are only counted (the baseline of history). Commits every
  // kChunk rows and finally the cursor `to`; only that last commit waits for fsync (see
  // CaptureBatch::sync). Run inside the reader's snapshot.
  //
  // Images and row counts go to the store at checkpoints only: when the images changed since the
  // last one hold about max_pending_image_bytes, and with the cursor at the end. An entity
  // changed many times in one pass is written once per checkpoint, not once per chunk. The
  // chunks in between carry their records held (CaptureBatch::hold: no peer gets them) until the
  // checkpoint commits the counts and images that go with them, so a crash resumes from the last
  // checkpoint, nothing twice: the next pass drops the held records (their rows are not counted)
  // and captures those rows again.
  Status scan(std::int64_t from, std::int64_t to, std::int64_t new_from, bool process,
              PollResult& result) {
    RowTally tally;
    Images images = mapper.store_images();
    CaptureBatch batch;
    std::size_t in_chunk = 0;
    // Rows at or after new_from were never counted, unless an earlier scan of this very window
    // committed some chunks and then stopped (crash): the partial marker says so. Only then, and
    // for the trailing part, does each row need a look-up.
    const std::string partial = std::to_string(new_from);
    auto marker = store.cursor(kPartialName);
    if (!marker) return marker.error();
    const bool resuming = *marker && **marker == partial;
    if (*marker && !(*marker)->empty()) {  // a pass of this window stopped before its end
      auto dropped = store.drop_held();
      if (!dropped) return dropped.error();
      if (*dropped > 0)
        log_info("capture", "an interrupted pass left " + std::to_string(*dropped) +
                                " held record(s) past its last checkpoint: dropped, their rows "
                                "are captured again");
    }
    // Row counts since the last checkpoint (committed with it), and how many.
    std::map<std::int64_t, std::vector<std::pair<std::uint64_t, std::uint32_t>>> counts;
    std::size_t counted_rows = 0;
    bool refreshed = false;  // the mapper's idmap summary, fetched once rows come (not when idle)
    // What earlier scans counted, per second, loaded when first needed. Rows come roughly in
    // log_date order, so a few seconds are kept; one needed again is loaded again.
    std::map<std::int64_t, Store::RowCounts> loaded;
    auto stored_counts = [&](std::int64_t ts) -> Result<const Store::RowCounts*> {
      if (auto it = loaded.find(ts); it != loaded.end()) return &it->second;
      auto read = store.row_counts(ts);
      if (!read) return read.error();
      if (loaded.size() >= 16) loaded.erase(loaded.begin());
      return &(loaded[ts] = std::move(*read));
    };
    // How many rows like `row` (`hash`: its hash64) earlier scans counted. Counts written by
    // builds that hashed rows with sha512 are found by the row's sha512, made only for a second
    // that has such counts (an upgrade's first trailing re-read).
    auto stored_count = [&](const LogRow& row, std::uint64_t hash) -> Result<std::uint32_t> {
      if (!resuming && row.ts >= new_from) return std::uint32_t{0};
      auto second = stored_counts(row.ts);
      if (!second) return second.error();
      const Store::RowCounts& c = **second;
      std::uint32_t n = 0;
      if (auto it = c.by_hash.find(hash); it != c.by_hash.end()) n = it->second;
      if (!c.legacy.empty()) {
        if (auto it = c.legacy.find(row.legacy_hash64()); it != c.legacy.end())
          n = std::max(n, it->second);
      }
      return n;
    };
    // Chunks are committed on a thread of their own while the next one is mapped, in order, one
    // in flight; a checkpoint's images stay readable (Images::in_flight) until committed.
    std::future<Status> committing;
    auto committed = [&]() -> Status {
      if (!committing.valid()) return ok_status();
      return committing.get();
    };
    struct WaitOnExit {  // an early return must not leave a commit running
      std::future<Status>& f;
      ~WaitOnExit() {
        if (f.valid()) f.wait();
      }
    } wait_on_exit{committing};
    auto flush = [&](bool final) -> Status {
      const bool checkpoint =
          final || images.pending.bytes() + 16 * counted_rows >= o.max_pending_image_bytes;
      if (auto s = mapper.add_primary_emails(batch.records); !s) return s;
      batch.more_cursors.emplace_back(kPartialName, final ? std::string() : partial);
      batch.sync = final;
      batch.hold = !checkpoint;
      if (checkpoint) {
        batch.row_counts = std::exchange(counts, {});
        counted_rows = 0;
      }
      if (final) {
        batch.cursor_name = kCursorName;
        batch.cursor = format_cursor(to);
      }
      if (auto s = committed(); !s) return s;
      result.records += batch.records.size();
      committing = images.commit_in_background(store, std::move(batch), checkpoint);
      batch = CaptureBatch{};
      in_chunk = 0;
      return final ? committed() : ok_status();
    };
    for (std::size_t t = 0; t < o.types.size(); ++t) {
      const TypeDefinition* type = o.types[t];
      std::vector<std::string> names;
      Columns cols;
      bool have_cols = false;
      const auto started = Clock::now();  // the statement's wait: until its first row or end
      auto s = db.stream("SELECT *, UNIX_TIMESTAMP(log_date) AS civishare_ts FROM " +
                             log_table(*type) + " WHERE " + window(from, to),
                         names, [&](const db::Row& row) -> Status {
                           if (!have_cols) {
                             result.db_seconds += seconds_since(started);
                             cols = Columns(names);
                             have_cols = true;
                           }
                           auto made = make_row(type, cols, row);
                           if (!made) return made.error();
                           LogRow& lr = *made;
                           if (process) ChangeMapper::prefetch(lr, images);  // while hashing
                           const std::uint64_t hash = lr.hash64();
                           auto counted = tally.add(
                               lr.ts, hash, [&](std::uint64_t h) { return stored_count(lr, h); });
                           if (!counted) return counted.error();
                           if (counted->occurrences <= counted->stored)
                             return ok_status();  // seen before
                           counts[lr.ts].emplace_back(hash, counted->occurrences);
                           ++counted_rows;
                           if (process) {
                             if (!refreshed) {
                               if (auto r = mapper.refresh_unmapped_tables(o.types); !r) return r;
                               refreshed = true;
                             }
                             if (lr.ts < new_from)
                               ++result.late_rows;
                             else
                               ++result.rows;
                             // A chunk's records in one allocation, not ~13 doublings that
                             // move every record made so far.
                             if (batch.records.capacity() == 0) batch.records.reserve(kChunk);
                             if (auto m = mapper.map_row(lr, images, batch.records); !m) return m;
                           }
                           if (++in_chunk >= kChunk) return flush(false);
                           return ok_status();
                         });
      if (!have_cols) result.db_seconds += seconds_since(started);
      if (!s) return s;
    }
    return flush(true);
  }

  Result<std::optional<std::int64_t>> cursor() {
    auto c = store.cursor(kCursorName);
    if (!c) return c.error();
    if (!*c) return std::optional<std::int64_t>{};
    auto w = parse_cursor(**c);
    if (!w) return w.error();
    return std::optional<std::int64_t>{*w};
  }
};

LogTableSource::LogTableSource(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)), sampler_(impl_->sampler.get()) {}
LogTableSource::~LogTableSource() = default;

Result<std::unique_ptr<LogTableSource>> LogTableSource::open(
    LogTableOptions options, const db::ConnectionOptions& connection, Store& store) {
  auto conn = db::Connection::open(connection);
  if (!conn) return conn.error();
  auto own_id = conn->scalar("SELECT CONNECTION_ID()");
  if (!own_id) return own_id.error();
  const int interval = options.sample_interval_ms;
  const int lag = options.fallback_lag_s;
  auto looker = db::Connection::open(connection);
  if (!looker) return looker.error();
  auto impl =
      std::make_unique<Impl>(std::move(options), std::move(*conn), std::move(*looker), store);
  auto sampler =
      WatermarkSampler::start(connection, {std::stoull(own_id->value_or("0"))}, interval, lag);
  if (!sampler) return sampler.error();
  impl->sampler = std::move(*sampler);
  return std::unique_ptr<LogTableSource>(new LogTableSource(std::move(impl)));
}

std::string LogTableSource::format_cursor(std::int64_t watermark) {
  return "lt1:" + std::to_string(watermark);
}

Result<std::int64_t> LogTableSource::parse_cursor(const std::string& cursor) {
  if (cursor.rfind("lt1:", 0) == 0) {
    try {
      std::size_t used = 0;
      std::int64_t v = std::stoll(cursor.substr(4), &used);
      if (used == cursor.size() - 4 && v >= 0) return v;
    } catch (const std::exception&) {
    }
  }
  return make_error(Errc::invalid_input,
                    "`" + cursor + "` is not a log-table cursor (expected lt1:<unix seconds>)");
}

Result<std::int64_t> LogTableSource::current_watermark() {
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  for (;;) {
    auto w = sampler_->watermark();
    if (!w) return w.error();
    if (*w) return **w;
    if (Clock::now() > deadline) {
      return make_error(Errc::database,
                        "transactions that were open before civishare started are still open "
                        "after 60 s; capture waits for them (see SHOW PROCESSLIST)");
    }
    if (auto s = sampler_->wait_fresh(); !s) return s.error();
  }
}

Result<std::int64_t> LogTableSource::ensure_cursor() {
  auto current = impl_->cursor();
  if (!current) return current.error();
  if (*current) return **current;
  auto w = current_watermark();
  if (!w) return w.error();
  // History is not shared by capture (that is `snapshot`): count the horizon's rows as seen.
  if (auto s = impl_->db.exec("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"); !s) {
    return s.error();
  }
  PollResult ignored;
  auto s = impl_->scan(*w - impl_->o.reread_horizon_s, *w, *w, false, ignored);
  (void)impl_->db.exec("COMMIT");
  if (!s) return s.error();
  return *w;
}

Result<PollResult> LogTableSource::poll() {
  auto from = ensure_cursor();
  if (!from) return from.error();
  auto sampled = sampler_->watermark();
  if (!sampled) return sampled.error();
  PollResult result;
  result.watermark = *from;
  const std::int64_t to = *sampled ? std::max(**sampled, *from) : *from;
  const bool reread = Clock::now() >= impl_->next_reread;
  if (to == *from && !reread) return result;

  // One consistent snapshot across every captured log table (one table: its SELECT is one
  // consistent read by itself, and an idle poll costs the server one statement); the trailing
  // re-read, when due, is the same scan started `reread_horizon_s` earlier.
  const std::int64_t scan_from = reread ? *from - impl_->o.reread_horizon_s : *from;
  auto& db = impl_->db;
  const bool snapshot = impl_->o.types.size() > 1;
  auto started = Clock::now();
  if (snapshot) {
    if (auto s = db.exec("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"); !s)
      return s.error();
  }
  result.db_seconds += seconds_since(started);
  auto s = impl_->scan(scan_from, to, *from, true, result);
  started = Clock::now();
  if (snapshot) (void)db.exec("COMMIT");
  result.db_seconds += seconds_since(started);
  if (!s) return s.error();
  result.watermark = to;
  if (result.late_rows) {
    log_warn("capture", std::to_string(result.late_rows) +
                            " log row(s) appeared stamped in the past (SET timestamp?); captured "
                            "by the trailing re-read");
  }
  if (reread) {
    impl_->next_reread = Clock::now() + std::chrono::seconds(impl_->o.reread_interval_s);
    if (auto p = impl_->store.prune_row_counts(*from - impl_->o.reread_horizon_s - 3600); !p) {
      return p.error();
    }
  }
  if (result.records) {
    log_info("capture", "captured " + std::to_string(result.records) + " change(s) from " +
                            std::to_string(result.rows + result.late_rows) + " log row(s)");
  }
  return result;
}

Result<std::vector<Change>> LogTableSource::replay(std::int64_t from, std::int64_t to,
                                                   bool dry_run) {
  auto& db = impl_->db;
  if (auto s = db.exec("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"); !s)
    return s.error();
  auto tables = impl_->read(Impl::window(from, to));
  if (!tables) {
    (void)db.exec("COMMIT");
    return tables.error();
  }
  // Images as the log table had them at `from`: each entity's last log row before it.
  std::vector<db::Rows> before_rows;
  before_rows.reserve(4096);
  Images images;
  images.load = [&](const TypeDefinition& def, const std::string& id, const std::string&,
                    std::string& out) -> Result<bool> {
    auto rows = db.query("SELECT *, UNIX_TIMESTAMP(log_date) AS civishare_ts FROM " +
                         impl_->log_table(def) + " WHERE " +
                         db::Connection::quote_identifier(def.key) + " = " + db.quote(id) +
                         " AND log_date < FROM_UNIXTIME(" + std::to_string(from) + ")");
    if (!rows) return rows.error();
    if (rows->rows.empty()) return false;
    before_rows.push_back(std::move(*rows));
    const db::Rows& r = before_rows.back();
    Columns cols(r.columns);
    auto made = Impl::make_row(&def, cols, r.rows.back());
    if (!made) return made.error();
    LogRow& last = *made;
    if (last.action == "Delete") return false;
    auto none = Images::none();
    if (auto s = impl_->mapper.image_of(last, none, id, false, out); !s) return s.error();
    return true;
  };
  std::vector<OutboxEntry> records;
  std::vector<Columns> columns;
  auto ordered = impl_->order(*tables, columns);
  if (!ordered) {
    (void)db.exec("COMMIT");
    return ordered.error();
  }
  for (const auto& r : *ordered) {
    if (auto s = impl_->mapper.map_row(r, images, records); !s) {
      (void)db.exec("COMMIT");
      return s.error();
    }
  }
  (void)db.exec("COMMIT");
  if (auto s = impl_->mapper.add_primary_emails(records); !s) return s.error();
  std::vector<Change> changes;
  for (const auto& r : records) changes.push_back(r.change);
  if (!dry_run && !records.empty()) {
    CaptureBatch batch;
    batch.records = std::move(records);
    if (auto s = impl_->store.commit_capture(std::move(batch)); !s) return s.error();
  }
  return changes;
}

Result<std::size_t> LogTableSource::snapshot(const std::vector<const TypeDefinition*>& types,
                                             const std::string& only_to) {
  return impl_->mapper.snapshot(impl_->db, types, only_to);
}

namespace {

class LogTableCaptureSource final : public CaptureSource {
 public:
  explicit LogTableCaptureSource(std::unique_ptr<LogTableSource> s) : s_(std::move(s)) {}
  const char* cursor_name() const override { return LogTableSource::kCursorName; }
  Result<PollResult> poll() override { return s_->poll(); }
  Result<std::string> ensure_cursor() override {
    auto w = s_->ensure_cursor();
    if (!w) return w.error();
    return LogTableSource::format_cursor(*w);
  }
  Result<std::vector<Change>> replay(const std::string& from, const std::string& to,
                                     bool dry_run) override {
    auto from_w = LogTableSource::parse_cursor(from);
    if (!from_w) return from_w.error();
    auto to_text = to;
    if (to_text.empty()) {
      auto current = ensure_cursor();
      if (!current) return current.error();
      to_text = *current;
    }
    auto to_w = LogTableSource::parse_cursor(to_text);
    if (!to_w) return to_w.error();
    if (*to_w < *from_w) return make_error(Errc::invalid_input, "--to is before --from");
    return s_->replay(*from_w, *to_w, dry_run);
  }
  Result<std::size_t> snapshot(const std::vector<const TypeDefinition*>& types,
                               const std::string& only_to) override {
    return s_->snapshot(types, only_to);
  }

 private:
  std::unique_ptr<LogTableSource> s_;
};

}  // namespace

std::unique_ptr<CaptureSource> LogTableSource::as_capture_source(
    std::unique_ptr<LogTableSource> source) {
  return std::make_unique<LogTableCaptureSource>(std::move(source));
}

}  // namespace civishare
