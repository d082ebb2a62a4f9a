#include "capture/log_table_source.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <thread>

#include "schemas/crypto.h"
#include "schemas/db/civishare_tables.h"
#include "schemas/log.h"

namespace civishare {
namespace json = boost::json;

namespace {

using Clock = std::chrono::steady_clock;

// One log row (or, for snapshots, one base-table row) with what capture needs to know about it.
struct LogRow {
  const TypeDefinition* type = nullptr;
  std::size_t type_index = 0;
  std::int64_t ts = 0;
  std::string action;  // Insert, Update, Delete, Initialization
  const db::Rows* rows = nullptr;
  const db::Row* row = nullptr;

  db::Cell get(std::string_view column) const {
    int i = rows->index(column);
    return i < 0 ? db::Cell{} : (*row)[static_cast<std::size_t>(i)];
  }
  // Content hash of the whole row, every column: identical rows hash alike.
  std::string hash() const {
    std::string text = type->table;
    for (const auto& cell : *row) text += "\x1f" + cell.value_or("\x1e");
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned char c : sha512(text).substr(0, 12)) {
      out.push_back(digits[c >> 4]);
      out.push_back(digits[c & 15]);
    }
    return out;
  }
};

std::string image_key(const std::string& table, const std::string& id) { return table + "/" + id; }

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

struct LogTableSource::Impl {
  LogTableOptions o;
  db::Connection db;
  db::Translator translator;
  Store& store;
  std::unique_ptr<WatermarkSampler> sampler;
  Clock::time_point next_reread = Clock::now();

  Impl(LogTableOptions options, db::Connection connection, Store& s)
      : o(std::move(options)), db(std::move(connection)), translator(db), store(s) {}

  const TypeRegistry& registry() const { return o.registry ? *o.registry : TypeRegistry::builtin(); }

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

  // Rows come back in insertion order per table; order across tables by stamp, parents first.
  std::vector<LogRow> order(const std::vector<db::Rows>& tables) const {
    std::vector<LogRow> rows;
    for (std::size_t t = 0; t < tables.size(); ++t) {
      const int ts_col = tables[t].index("civishare_ts");
      const int action_col = tables[t].index("log_action");
      for (const auto& r : tables[t].rows) {
        LogRow lr;
        lr.type = o.types[t];
        lr.type_index = t;
        lr.ts = ts_col < 0 ? 0 : std::stoll(r[static_cast<std::size_t>(ts_col)].value_or("0"));
        lr.action = action_col < 0 ? "" : r[static_cast<std::size_t>(action_col)].value_or("");
        lr.rows = &tables[t];
        lr.row = &r;
        rows.push_back(lr);
      }
    }
    std::stable_sort(rows.begin(), rows.end(), [](const LogRow& a, const LogRow& b) {
      return a.ts != b.ts ? a.ts < b.ts : a.type_index < b.type_index;
    });
    return rows;
  }

  // The images capture works against: the store (or, for replay, the log table) plus what this
  // batch has changed so far.
  struct Images {
    std::map<std::string, std::optional<EntityImage>> pending;
    std::function<Result<std::optional<EntityImage>>(const TypeDefinition&, const std::string&)> load;
  };

  Result<std::optional<EntityImage>> image(Images& images, const TypeDefinition& def,
                                           const std::string& id) {
    const std::string key = image_key(def.table, id);
    auto it = images.pending.find(key);
    if (it != images.pending.end()) return it->second;
    return images.load(def, id);
  }

  Result<std::string> reference(Images& images, const TypeDefinition& def, const std::string& id) {
    auto img = image(images, def, id);
    if (!img) return img.error();
    if (*img) return (*img)->entity_reference;
    return db::global_reference(db, o.node, def.table, id);
  }

  // The row as an image in wire form (ids translated to names).
  Result<EntityImage> image_of(const LogRow& lr, Images& images, const std::string& id) {
    const TypeDefinition& def = *lr.type;
    EntityImage img;
    auto ref = reference(images, def, id);
    if (!ref) return ref.error();
    img.entity_reference = *ref;
    if (def.parent) {
      const TypeDefinition* parent_def = registry().find(def.parent->type);
      auto parent_id = lr.get(def.parent->column);
      if (parent_def && parent_id) {
        auto pref = reference(images, *parent_def, *parent_id);
        if (!pref) return pref.error();
        img.parent_reference = *pref;
      }
    }
    for (const auto& col : def.columns) {
      auto v = translator.to_wire(col, lr.get(col.column));
      if (!v) {
        if (v.error().code == Errc::database) return v.error();
        log_warn("capture", def.table + " id " + id + ": " + v.error().message + "; sent as null");
        img.values[col.wire_name()] = nullptr;
        continue;
      }
      img.values[col.wire_name()] = std::move(*v);
    }
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
      for (const auto& col : def.columns) {
        const std::string name = col.wire_name();
        const json::value& now = img->values[name];
        if (*previous) {
          const json::value* old = (*previous)->values.if_contains(name);
          json::value old_value = old ? *old : json::value(nullptr);
          if (old_value == now) continue;
          change.attribute_changes.push_back({name, old_value, now});
        } else if (!now.is_null()) {
          change.attribute_changes.push_back({name, std::nullopt, now});
        }
      }
      // A moved child (merge re-parents emails) must tell peers its new parent.
      const bool reparented = *previous && (*previous)->parent_reference != img->parent_reference;
      images.pending[key] = std::move(*img);
      if (change.attribute_changes.empty() && !reparented) return ok_status();
    }
    change.id = o.node + "-" + lr.hash();

    // Echo linking: rows our own SQL applier wrote carry its marker in log_conn_id.
    OutboxEntry entry;
    auto conn = lr.get("log_conn_id");
    if (auto apply_id = conn ? db::apply_id_from_marker(*conn) : std::nullopt) {
      auto applied = db.query(
          "SELECT change_id, chain, came_from, change_timestamp FROM civishare_applied "
          "WHERE apply_id = " + std::to_string(*apply_id));
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

  // Row counts of `rows`, added to what the store already has.
  Result<std::map<std::string, std::uint32_t>> counted(const std::vector<LogRow>& rows) {
    std::map<std::string, std::uint32_t> counts;
    for (const auto& r : rows) {
      const std::string key = Store::row_key(r.ts, r.hash());
      auto it = counts.find(key);
      if (it == counts.end()) {
        auto stored = store.row_count(key);
        if (!stored) return stored.error();
        it = counts.emplace(key, *stored).first;
      }
      ++it->second;
    }
    return counts;
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

Result<std::unique_ptr<LogTableSource>> LogTableSource::open(LogTableOptions options,
                                                             const db::ConnectionOptions& connection,
                                                             Store& store) {
  auto conn = db::Connection::open(connection);
  if (!conn) return conn.error();
  auto own_id = conn->scalar("SELECT CONNECTION_ID()");
  if (!own_id) return own_id.error();
  const int interval = options.sample_interval_ms;
  const int lag = options.fallback_lag_s;
  auto impl = std::make_unique<Impl>(std::move(options), std::move(*conn), store);
  auto sampler = WatermarkSampler::start(connection, {std::stoull(own_id->value_or("0"))},
                                         interval, lag);
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
  // History is not shared by capture (that is `snapshot`): mark the horizon's rows as seen.
  if (auto s = impl_->db.exec("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"); !s) {
    return s.error();
  }
  auto tables = impl_->read(Impl::window(*w - impl_->o.reread_horizon_s, *w));
  (void)impl_->db.exec("COMMIT");
  if (!tables) return tables.error();
  auto counts = impl_->counted(impl_->order(*tables));
  if (!counts) return counts.error();
  CaptureBatch batch;
  batch.cursor_name = kCursorName;
  batch.cursor = format_cursor(*w);
  batch.row_counts.assign(counts->begin(), counts->end());
  if (auto s = impl_->store.commit_capture(std::move(batch)); !s) return s.error();
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

  // One consistent snapshot across every captured log table, for both reads.
  auto& db = impl_->db;
  if (auto s = db.exec("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"); !s) return s.error();
  Result<std::vector<db::Rows>> fresh = std::vector<db::Rows>{};
  if (to > *from) fresh = impl_->read(Impl::window(*from, to));
  Result<std::vector<db::Rows>> trailing = std::vector<db::Rows>{};
  if (fresh && reread) {
    trailing = impl_->read(Impl::window(*from - impl_->o.reread_horizon_s, *from));
  }
  (void)db.exec("COMMIT");
  if (!fresh) return fresh.error();
  if (!trailing) return trailing.error();

  std::vector<LogRow> rows = impl_->order(*fresh);
  result.rows = rows.size();
  auto counts = impl_->counted(rows);
  if (!counts) return counts.error();

  // Late rows: more identical rows in the trailing window than capture has seen.
  std::vector<LogRow> late;
  if (reread) {
    std::map<std::string, std::vector<LogRow>> by_key;
    for (const auto& r : impl_->order(*trailing)) by_key[Store::row_key(r.ts, r.hash())].push_back(r);
    for (auto& [key, same] : by_key) {
      auto seen = impl_->store.row_count(key);
      if (!seen) return seen.error();
      if (same.size() > *seen) {
        late.insert(late.end(), same.begin() + *seen, same.end());
        (*counts)[key] = static_cast<std::uint32_t>(same.size());
      }
    }
    std::stable_sort(late.begin(), late.end(), [](const LogRow& a, const LogRow& b) {
      return a.ts != b.ts ? a.ts < b.ts : a.type_index < b.type_index;
    });
    result.late_rows = late.size();
    if (!late.empty()) {
      log_warn("capture", std::to_string(late.size()) +
                              " log row(s) appeared stamped in the past (SET timestamp?); "
                              "captured by the trailing re-read");
    }
  }

  auto images = impl_->store_images();
  CaptureBatch batch;
  for (const auto* set : {&late, &rows}) {
    for (const auto& r : *set) {
      if (auto s = impl_->map_row(r, images, batch.records); !s) return s.error();
    }
  }
  for (auto& [key, img] : images.pending) batch.images.emplace_back(key, std::move(img));
  batch.row_counts.assign(counts->begin(), counts->end());
  batch.cursor_name = kCursorName;
  batch.cursor = format_cursor(to);
  result.records = batch.records.size();
  if (auto s = impl_->store.commit_capture(std::move(batch)); !s) return s.error();
  result.watermark = to;
  if (reread) {
    impl_->next_reread = Clock::now() + std::chrono::seconds(impl_->o.reread_interval_s);
    if (auto s = impl_->store.prune_row_counts(*from - impl_->o.reread_horizon_s - 3600); !s) {
      return s.error();
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
  if (auto s = db.exec("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"); !s) return s.error();
  auto tables = impl_->read(Impl::window(from, to));
  if (!tables) {
    (void)db.exec("COMMIT");
    return tables.error();
  }
  // Images as the log table had them at `from`: each entity's last log row before it.
  std::vector<db::Rows> before_rows;
  before_rows.reserve(4096);
  Impl::Images images;
  images.load = [&](const TypeDefinition& def, const std::string& id)
      -> Result<std::optional<EntityImage>> {
    auto rows = db.query("SELECT *, UNIX_TIMESTAMP(log_date) AS civishare_ts FROM " +
                         impl_->log_table(def) + " WHERE " + db::Connection::quote_identifier(def.key) +
                         " = " + db.quote(id) + " AND log_date < FROM_UNIXTIME(" +
                         std::to_string(from) + ")");
    if (!rows) return rows.error();
    if (rows->rows.empty()) return std::optional<EntityImage>{};
    before_rows.push_back(std::move(*rows));
    const db::Rows& r = before_rows.back();
    LogRow last;
    last.type = &def;
    last.rows = &r;
    last.row = &r.rows.back();
    last.action = last.get("log_action").value_or("");
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
  for (const auto& r : impl_->order(*tables)) {
    if (auto s = impl_->map_row(r, images, records); !s) {
      (void)db.exec("COMMIT");
      return s.error();
    }
  }
  (void)db.exec("COMMIT");
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
  if (auto s = db.exec("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"); !s) return s.error();
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
    for (const auto& r : tables[t].rows) {
      LogRow lr;
      lr.type = types[t];
      lr.type_index = t;
      lr.ts = now;
      lr.action = "Initialization";
      lr.rows = &tables[t];
      lr.row = &r;
      if (auto s = impl_->map_row(lr, images, batch.records); !s) return s.error();
    }
  }
  for (auto& [key, img] : images.pending) batch.images.emplace_back(key, std::move(img));
  for (auto& r : batch.records) r.only_to = only_to;
  const std::size_t n = batch.records.size();
  if (auto s = impl_->store.commit_capture(std::move(batch)); !s) return s.error();
  return n;
}

}  // namespace civishare
