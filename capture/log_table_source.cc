#include "capture/log_table_source.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <thread>
#include <unordered_map>

#include "capture/row_mapper.h"
#include "schemas/crash_point.h"
#include "schemas/crypto.h"
#include "schemas/db/civishare_tables.h"
#include "schemas/log.h"

namespace civishare {
namespace json = boost::json;

namespace {

using Clock = std::chrono::steady_clock;

using Columns = ColumnIndex;

// One log row (or, for snapshots, one base-table row) with what capture needs to know about it.
struct LogRow {
  const TypeDefinition* type = nullptr;
  std::size_t type_index = 0;
  std::int64_t ts = 0;
  std::string action;  // Insert, Update, Delete, Initialization
  const Columns* columns = nullptr;
  const db::Row* row = nullptr;
  mutable std::string digest;  // sha512 of the whole row, computed once

  db::Cell get(std::string_view column) const { return cell(*columns, *row, column); }
  const std::string& raw_hash() const {
    if (digest.empty()) {
      std::string text = type->table;
      for (const auto& cell : *row) {
        text += '\x1f';
        if (cell)
          text += *cell;
        else
          text += '\x1e';
      }
      digest = sha512(text);
    }
    return digest;
  }
  // Content hash of the whole row, every column: identical rows hash alike.
  std::string hash() const {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned char c : raw_hash().substr(0, 12)) {
      out.push_back(digits[c >> 4]);
      out.push_back(digits[c & 15]);
    }
    return out;
  }
  std::uint64_t hash64() const {
    std::uint64_t h = 0;
    std::memcpy(&h, raw_hash().data(), sizeof h);
    return h ^ (static_cast<std::uint64_t>(ts) * 0x9E3779B97F4A7C15ULL);
  }
};

std::string image_key(const std::string& table, const std::string& id) {
  return table + "/" + id;
}

}  // namespace

struct LogTableSource::Impl {
  static constexpr std::size_t kChunk = 5000;                        // rows per intermediate commit
  static constexpr const char* kPartialName = "log_tables.partial";  // window committed in part

  LogTableOptions o;
  db::Connection db;      // reads the log tables, inside the snapshot
  db::Connection lookup;  // id/name translations, references, civishare_applied (while streaming)
  db::Translator translator;
  Store& store;
  std::unique_ptr<WatermarkSampler> sampler;
  Clock::time_point next_reread = Clock::now();

  Impl(LogTableOptions options, db::Connection reader, db::Connection looker, Store& s)
      : o(std::move(options)),
        db(std::move(reader)),
        lookup(std::move(looker)),
        translator(lookup),
        store(s) {}

  const TypeRegistry& registry() const {
    return o.registry ? *o.registry : TypeRegistry::builtin();
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

  static Result<LogRow> make_row(const TypeDefinition* type, std::size_t t, const Columns& cols,
                                 const db::Row& r) {
    auto header = read_header(cols, r);
    if (!header)
      return make_error(header.error().code, type->log_table() + ": " + header.error().message);
    LogRow lr;
    lr.type = type;
    lr.type_index = t;
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
        auto lr = make_row(o.types[t], t, columns[t], r);
        if (!lr) return lr.error();
        rows.push_back(std::move(*lr));
      }
    }
    return rows;  // table by table, parents' table first: the order scan() streams them in
  }

  // The images capture works against: the store (or, for replay, the log table) plus what this
  // batch has changed so far.
  struct Images {
    std::map<std::string, std::optional<EntityImage>> pending;
    std::function<Result<std::optional<EntityImage>>(const TypeDefinition&, const std::string&)>
        load;
  };

  Result<std::optional<EntityImage>> image(Images& images, const TypeDefinition& def,
                                           const std::string& id) {
    const std::string key = image_key(def.table, id);
    auto it = images.pending.find(key);
    if (it != images.pending.end()) return it->second;
    return images.load(def, id);
  }

  // Tables whose civishare_idmap had no entry when the current scan began: their local rows need
  // no look-up (a query per new entity is most of a big import's cost otherwise). Rows our
  // appliers wrote during the scan always look up (`echo`).
  std::map<std::string, bool> unmapped_tables;

  Result<std::string> reference(Images& images, const TypeDefinition& def, const std::string& id,
                                bool echo) {
    auto img = image(images, def, id);
    if (!img) return img.error();
    if (*img) return (*img)->entity_reference;
    if (o.api_contact_id > 0) {  // the APIv4 applier keeps its idmap in the store
      auto mapped = store.value(Store::apiv4_reference_key(def.table, id));
      if (!mapped) return mapped.error();
      if (!mapped->empty()) return *mapped;
    }
    if (!echo && unmapped_tables[def.table]) return o.node + "-" + id;
    return db::global_reference(lookup, o.node, def.table, id);
  }

  Status refresh_unmapped_tables() {
    for (const auto* t : o.types) {
      for (const TypeDefinition* d : {t, t->parent ? registry().find(t->parent->type) : nullptr}) {
        if (!d) continue;
        auto any =
            lookup.scalar("SELECT EXISTS (SELECT 1 FROM civishare_idmap WHERE entity_table = " +
                          lookup.quote(d->table) + ")");
        if (!any) return any.error();
        unmapped_tables[d->table] = any->value_or("0") == "0";
      }
    }
    return ok_status();
  }

  // Whether our own appliers wrote this row (SQL marker in log_conn_id, or the API contact).
  bool written_by_us(const LogRow& lr) const {
    auto conn = lr.get("log_conn_id");
    if (conn && db::apply_id_from_marker(*conn)) return true;
    auto user = lr.get("log_user_id");
    return o.api_contact_id > 0 && user && *user == std::to_string(o.api_contact_id);
  }

  // New contacts carry their primary email (context.primary_email) so a peer can match them:
  // one query per batch, not per contact.
  Status add_primary_emails(std::vector<OutboxEntry>& records) {
    std::map<std::string, std::vector<Change*>> by_id;
    const std::string own = o.node + "-";
    for (auto& r : records) {
      Change& c = r.change;
      if (c.operation != Operation::create || c.entity != "Contact" ||
          c.entity_reference.compare(0, own.size(), own) != 0) {
        continue;
      }
      by_id[c.entity_reference.substr(own.size())].push_back(&c);
    }
    if (by_id.empty()) return ok_status();
    std::string ids;
    for (const auto& [id, changes] : by_id) ids += (ids.empty() ? "" : ",") + lookup.quote(id);
    auto emails = lookup.query(
        "SELECT contact_id, email FROM civicrm_email WHERE is_primary = 1 AND "
        "contact_id IN (" +
        ids + ")");
    if (!emails) return emails.error();
    for (const auto& row : emails->rows) {
      if (!row[0] || !row[1]) continue;
      for (Change* c : by_id[*row[0]]) c->context["primary_email"] = *row[1];
    }
    return ok_status();
  }

  // The row as an image in wire form (ids translated to names).
  Result<EntityImage> image_of(const LogRow& lr, Images& images, const std::string& id) {
    const TypeDefinition& def = *lr.type;
    EntityImage img;
    const bool echo = written_by_us(lr);
    auto ref = reference(images, def, id, echo);
    if (!ref) return ref.error();
    img.entity_reference = *ref;
    if (def.parent) {
      const TypeDefinition* parent_def = registry().find(def.parent->type);
      auto parent_id = lr.get(def.parent->column);
      if (parent_def && parent_id) {
        auto pref = reference(images, *parent_def, *parent_id, echo);
        if (!pref) return pref.error();
        img.parent_reference = *pref;
      }
    }
    std::vector<std::string> warnings;
    auto values = wire_values(
        def, *lr.columns, *lr.row,
        [this](const ColumnDefinition& col, const db::Cell& c) {
          return translator.to_wire(col, c);
        },
        warnings);
    if (!values) return values.error();
    for (const auto& w : warnings) log_warn("capture", def.table + " id " + id + ": " + w);
    img.values = std::move(*values);
    return img;
  }

  // Maps one row to at most one change, updating the image overlay.
  Status map_row(const LogRow& lr, Images& images, std::vector<OutboxEntry>& out) {
    const TypeDefinition& def = *lr.type;
    auto id = lr.get(def.key);
    if (!id || lr.action.empty()) {
      log_warn("capture", def.log_table() + ": a row without id or log_action was skipped");
      return ok_status();
    }
    const std::string key = image_key(def.table, *id);
    auto previous = image(images, def, *id);
    if (!previous) return previous.error();

    Change change;
    change.type = def.type;
    change.entity = def.entity;
    change.timestamp = utc_iso(lr.ts);
    if (lr.action == "Delete") {
      images.pending[key] = std::nullopt;
      if (!*previous) return ok_status();  // never shared: nothing to delete elsewhere
      change.operation = Operation::remove;
      change.entity_reference = (*previous)->entity_reference;
      if (def.parent && !(*previous)->parent_reference.empty()) {
        change.context[def.parent->context_key] = (*previous)->parent_reference;
      }
    } else {
      auto img = image_of(lr, images, *id);
      if (!img) return img.error();
      change.operation = *previous ? Operation::update : Operation::create;
      change.entity_reference = img->entity_reference;
      if (def.parent && !img->parent_reference.empty()) {
        change.context[def.parent->context_key] = img->parent_reference;
      }
      change.attribute_changes =
          diff_values(def, *previous ? &(*previous)->values : nullptr, img->values);
      // A moved child (merge re-parents emails) must tell peers its new parent.
      const bool reparented = *previous && (*previous)->parent_reference != img->parent_reference;
      images.pending[key] = std::move(*img);
      if (change.attribute_changes.empty() && !reparented) return ok_status();
    }
    change.id = o.node + "-" + lr.hash();

    // Echo linking: rows our own SQL applier wrote carry its marker in log_conn_id; rows the
    // APIv4 applier had CiviCRM write carry the API contact in log_user_id, and the applier noted
    // what it wrote per entity.
    OutboxEntry entry;
    if (auto user = lr.get("log_user_id");
        o.api_contact_id > 0 && user && *user == std::to_string(o.api_contact_id)) {
      auto noted = store.value(Store::apiv4_echo_key(def.table, *id));
      if (!noted) return noted.error();
      boost::system::error_code ec;
      json::value v = noted->empty() ? json::value() : json::parse(*noted, ec);
      if (!ec && v.is_object()) {
        const auto& n = v.get_object();
        change.id = std::string(n.at("change_id").as_string());
        change.timestamp = std::string(n.at("timestamp").as_string());
        for (const auto& s : n.at("chain").as_array())
          change.loop_detection.emplace_back(s.as_string());
        entry.came_from = std::string(n.at("came_from").as_string());
      }
    }
    auto conn = lr.get("log_conn_id");
    if (auto apply_id = conn ? db::apply_id_from_marker(*conn) : std::nullopt) {
      auto applied = lookup.query(
          "SELECT change_id, chain, came_from, change_timestamp FROM civishare_applied "
          "WHERE apply_id = " +
          std::to_string(*apply_id));
      if (!applied) return applied.error();
      if (!applied->rows.empty()) {
        const auto& a = applied->rows[0];
        change.id = a[0].value_or(change.id);
        change.timestamp = a[3].value_or(change.timestamp);
        boost::system::error_code ec;
        json::value chain = json::parse(a[1].value_or("[]"), ec);
        if (!ec && chain.is_array()) {
          for (const auto& s : chain.get_array()) {
            if (s.is_string()) change.loop_detection.emplace_back(s.get_string());
          }
        }
        entry.came_from = a[2].value_or("");
      }
    }
    change.loop_detection.push_back(change_signature(change, o.node));
    entry.change = std::move(change);
    out.push_back(std::move(entry));
    return ok_status();
  }

  Images store_images() {
    Images images;
    images.load = [this](const TypeDefinition& def, const std::string& id) {
      return store.image(image_key(def.table, id));
    };
    return images;
  }

  // Streams [from, to) of every captured log table, parents' table first, and takes each row
  // whose occurrence count exceeds what the store has seen for identical rows: new rows, and in
  // the trailing part rows that appeared stamped in the past. With `process`, the rows become
  // change records; without, they are only counted (the baseline of history). Commits every
  // kChunk rows (records, images and counts together: a crash resumes where it stopped, nothing
  // twice) and finally the cursor `to`. Run inside the reader's snapshot.
  Status scan(std::int64_t from, std::int64_t to, std::int64_t new_from, bool process,
              PollResult& result) {
    std::unordered_map<std::uint64_t, std::pair<std::uint32_t, std::uint32_t>> seen;
    Images images = store_images();
    CaptureBatch batch;
    std::size_t in_chunk = 0;
    // Rows at or after new_from were never counted, unless an earlier scan of this very window
    // committed some chunks and then stopped (crash): the partial marker says so. Only then, and
    // for the trailing part, does each row need a look-up.
    const std::string partial = std::to_string(new_from);
    auto marker = store.cursor(kPartialName);
    if (!marker) return marker.error();
    const bool resuming = *marker && **marker == partial;
    if (auto s = refresh_unmapped_tables(); !s) return s;
    auto flush = [&](bool final) -> Status {
      if (auto s = add_primary_emails(batch.records); !s) return s;
      for (auto& [key, img] : images.pending) batch.images.emplace_back(key, std::move(img));
      images.pending.clear();
      batch.more_cursors.emplace_back(kPartialName, final ? std::string() : partial);
      if (final) {
        batch.cursor_name = kCursorName;
        batch.cursor = format_cursor(to);
      }
      result.records += batch.records.size();
      crash_point("capture.before_commit");
      auto s = store.commit_capture(std::move(batch));
      if (s) crash_point("capture.after_commit");
      batch = CaptureBatch{};
      in_chunk = 0;
      return s;
    };
    for (std::size_t t = 0; t < o.types.size(); ++t) {
      const TypeDefinition* type = o.types[t];
      std::vector<std::string> names;
      Columns cols;
      bool have_cols = false;
      auto s = db.stream("SELECT *, UNIX_TIMESTAMP(log_date) AS civishare_ts FROM " +
                             log_table(*type) + " WHERE " + window(from, to),
                         names, [&](const db::Row& row) -> Status {
                           if (!have_cols) {
                             cols = Columns(names);
                             have_cols = true;
                           }
                           auto made = make_row(type, t, cols, row);
                           if (!made) return made.error();
                           LogRow& lr = *made;
                           auto& [stored, occurrences] = seen[lr.hash64()];
                           const std::string key = Store::row_key(lr.ts, lr.hash());
                           if (occurrences == 0 && (resuming || lr.ts < new_from)) {
                             auto n = store.row_count(key);
                             if (!n) return n.error();
                             stored = *n;
                           }
                           if (++occurrences <= stored) return ok_status();  // seen before
                           batch.row_counts.emplace_back(key, occurrences);
                           if (process) {
                             if (lr.ts < new_from)
                               ++result.late_rows;
                             else
                               ++result.rows;
                             if (auto m = map_row(lr, images, batch.records); !m) return m;
                           }
                           if (++in_chunk >= kChunk) return flush(false);
                           return ok_status();
                         });
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

  // One consistent snapshot across every captured log table; the trailing re-read, when due,
  // is the same scan started `reread_horizon_s` earlier.
  const std::int64_t scan_from = reread ? *from - impl_->o.reread_horizon_s : *from;
  auto& db = impl_->db;
  if (auto s = db.exec("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"); !s)
    return s.error();
  auto s = impl_->scan(scan_from, to, *from, true, result);
  (void)db.exec("COMMIT");
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
  Impl::Images images;
  images.load = [&](const TypeDefinition& def,
                    const std::string& id) -> Result<std::optional<EntityImage>> {
    auto rows = db.query("SELECT *, UNIX_TIMESTAMP(log_date) AS civishare_ts FROM " +
                         impl_->log_table(def) + " WHERE " +
                         db::Connection::quote_identifier(def.key) + " = " + db.quote(id) +
                         " AND log_date < FROM_UNIXTIME(" + std::to_string(from) + ")");
    if (!rows) return rows.error();
    if (rows->rows.empty()) return std::optional<EntityImage>{};
    before_rows.push_back(std::move(*rows));
    const db::Rows& r = before_rows.back();
    Columns cols(r.columns);
    auto made = Impl::make_row(&def, 0, cols, r.rows.back());
    if (!made) return made.error();
    LogRow& last = *made;
    if (last.action == "Delete") return std::optional<EntityImage>{};
    Impl::Images none;
    none.load = [](const TypeDefinition&, const std::string&) {
      return Result<std::optional<EntityImage>>(std::optional<EntityImage>{});
    };
    auto img = impl_->image_of(last, none, id);
    if (!img) return img.error();
    return std::optional<EntityImage>{std::move(*img)};
  };
  std::vector<OutboxEntry> records;
  std::vector<Columns> columns;
  auto ordered = impl_->order(*tables, columns);
  if (!ordered) {
    (void)db.exec("COMMIT");
    return ordered.error();
  }
  for (const auto& r : *ordered) {
    if (auto s = impl_->map_row(r, images, records); !s) {
      (void)db.exec("COMMIT");
      return s.error();
    }
  }
  (void)db.exec("COMMIT");
  if (auto s = impl_->add_primary_emails(records); !s) return s.error();
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
  auto& db = impl_->db;
  if (auto s = db.exec("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"); !s)
    return s.error();
  std::vector<db::Rows> tables;
  for (const auto* def : types) {
    auto rows = db.query("SELECT * FROM " + db::Connection::quote_identifier(def->table));
    if (!rows) {
      (void)db.exec("COMMIT");
      return rows.error();
    }
    tables.push_back(std::move(*rows));
  }
  (void)db.exec("COMMIT");
  const std::int64_t now = unix_now();
  auto images = impl_->store_images();
  CaptureBatch batch;
  for (std::size_t t = 0; t < tables.size(); ++t) {
    Columns cols(tables[t].columns);
    for (const auto& r : tables[t].rows) {
      auto made = Impl::make_row(types[t], t, cols, r);
      if (!made) return made.error();
      LogRow& lr = *made;
      lr.ts = now;
      lr.action = "Initialization";
      if (auto s = impl_->map_row(lr, images, batch.records); !s) return s.error();
    }
  }
  for (auto& [key, img] : images.pending) batch.images.emplace_back(key, std::move(img));
  for (auto& r : batch.records) r.only_to = only_to;
  if (auto s = impl_->add_primary_emails(batch.records); !s) return s.error();
  const std::size_t n = batch.records.size();
  if (auto s = impl_->store.commit_capture(std::move(batch)); !s) return s.error();
  return n;
}

}  // namespace civishare
