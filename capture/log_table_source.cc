#include "capture/log_table_source.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "schemas/crypto.h"
#include "schemas/db/civishare_tables.h"
#include "schemas/log.h"

namespace civishare {
namespace json = boost::json;

namespace {

struct LogRow {
  const TypeDefinition* type = nullptr;
  std::size_t type_index = 0;
  std::int64_t ts = 0;
  const db::Rows* rows = nullptr;
  const db::Row* row = nullptr;

  db::Cell get(std::string_view column) const {
    int i = rows->index(column);
    return i < 0 ? db::Cell{} : (*row)[static_cast<std::size_t>(i)];
  }
};

std::string hex(std::string_view raw) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

std::string image_key(const std::string& table, const std::string& id) {
  return table + "/" + id;
}

}  // namespace

LogTableSource::LogTableSource(LogTableOptions options, db::Connection connection, Store& store)
    : options_(std::move(options)), db_(std::move(connection)), translator_(db_), store_(store) {}

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

Result<std::int64_t> LogTableSource::watermark() {
  // Statements first (with NOW in the same statement), then transactions: LOG_TABLE_CURSOR.md.
  auto stmt = db_.query(
      "SELECT UNIX_TIMESTAMP(NOW(6)), MIN(UNIX_TIMESTAMP(NOW(6)) - TIME_MS / 1000) "
      "FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND COMMAND NOT IN "
      "('Sleep', 'Daemon', 'Binlog Dump', 'Binlog Dump GTID')");
  if (!stmt) return stmt.error();
  if (stmt->rows.empty() || !stmt->rows[0][0]) {
    return make_error(Errc::database, "the server did not report its time");
  }
  double now = std::stod(*stmt->rows[0][0]);
  double low = now;
  if (stmt->rows[0][1]) low = std::min(low, std::stod(*stmt->rows[0][1]));
  // trx_started is in the server's OS time zone whatever the session says.
  if (auto s = db_.exec("SET time_zone = 'SYSTEM'"); !s) return s.error();
  auto trx = db_.query(
      "SELECT MIN(UNIX_TIMESTAMP(trx_started)) FROM information_schema.INNODB_TRX "
      "WHERE trx_mysql_thread_id <> CONNECTION_ID()");
  if (auto s = db_.exec("SET time_zone = '+00:00'"); !s) return s.error();
  if (trx) {
    if (!trx->rows.empty() && trx->rows[0][0]) low = std::min(low, std::stod(*trx->rows[0][0]));
  } else {
    if (!warned_no_process_) {
      log_warn("capture", "no PROCESS privilege (" + trx.error().message +
                              "): falling back to a fixed lag of " +
                              std::to_string(options_.fallback_lag_s) +
                              " s; grant PROCESS for a safe watermark");
      warned_no_process_ = true;
    }
    low = std::min(low, now - options_.fallback_lag_s);
  }
  return static_cast<std::int64_t>(std::floor(low)) - 1;
}

Result<std::int64_t> LogTableSource::ensure_cursor() {
  auto current = store_.cursor(kCursorName);
  if (!current) return current.error();
  if (*current) return parse_cursor(**current);
  auto w = watermark();
  if (!w) return w.error();
  CaptureBatch batch;
  batch.cursor_name = kCursorName;
  batch.cursor = format_cursor(*w);
  if (auto s = store_.commit_capture(std::move(batch)); !s) return s.error();
  return *w;
}

Result<PollResult> LogTableSource::poll() {
  auto from = ensure_cursor();
  if (!from) return from.error();
  auto to = watermark();
  if (!to) return to.error();
  PollResult result;
  result.watermark = *from;
  if (*to <= *from) return result;

  // One consistent snapshot across every captured log table.
  if (auto s = db_.exec("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"); !s)
    return s.error();
  std::vector<db::Rows> tables;
  tables.reserve(options_.types.size());
  std::string prefix = options_.log_schema.empty()
                           ? std::string()
                           : db::Connection::quote_identifier(options_.log_schema) + ".";
  for (const auto* type : options_.types) {
    auto rows = db_.query("SELECT *, UNIX_TIMESTAMP(log_date) AS civishare_ts FROM " + prefix +
                          db::Connection::quote_identifier(type->log_table()) +
                          " WHERE log_date >= FROM_UNIXTIME(" + std::to_string(*from) +
                          ") AND log_date < FROM_UNIXTIME(" + std::to_string(*to) + ")");
    if (!rows) {
      (void)db_.exec("ROLLBACK");
      return rows.error();
    }
    tables.push_back(std::move(*rows));
  }
  (void)db_.exec("COMMIT");

  // Rows come back in insertion order per table; order across tables by stamp, parents first.
  std::vector<LogRow> rows;
  for (std::size_t t = 0; t < tables.size(); ++t) {
    int ts_col = tables[t].index("civishare_ts");
    for (const auto& r : tables[t].rows) {
      LogRow lr{options_.types[t], t, std::stoll(r[static_cast<std::size_t>(ts_col)].value_or("0")),
                &tables[t], &r};
      rows.push_back(lr);
    }
  }
  std::stable_sort(rows.begin(), rows.end(), [](const LogRow& a, const LogRow& b) {
    return a.ts != b.ts ? a.ts < b.ts : a.type_index < b.type_index;
  });
  result.rows = rows.size();

  CaptureBatch batch;
  std::map<std::string, std::optional<EntityImage>> pending_images;  // this batch's view
  auto current_image = [&](const std::string& key) -> Result<std::optional<EntityImage>> {
    auto it = pending_images.find(key);
    if (it != pending_images.end()) return it->second;
    return store_.image(key);
  };

  for (const auto& lr : rows) {
    const TypeDefinition& def = *lr.type;
    auto id = lr.get(def.key);
    auto action = lr.get("log_action");
    if (!id || !action) {
      log_warn("capture", def.log_table() + ": a row without id or log_action was skipped");
      continue;
    }
    const std::string key = image_key(def.table, *id);
    auto previous = current_image(key);
    if (!previous) return previous.error();

    // References: the entity's own, and its parent's for child entities.
    std::string reference;
    if (*previous) {
      reference = (*previous)->entity_reference;
    } else {
      auto ref = db::global_reference(db_, options_.node, def.table, *id);
      if (!ref) return ref.error();
      reference = *ref;
    }
    std::string parent_reference;
    if (def.parent) {
      auto parent_id = lr.get(def.parent->column);
      const TypeDefinition* parent_def = TypeRegistry::builtin().find(def.parent->type);
      if (parent_id && parent_def) {
        auto parent_img = current_image(image_key(parent_def->table, *parent_id));
        if (!parent_img) return parent_img.error();
        if (*parent_img) {
          parent_reference = (*parent_img)->entity_reference;
        } else {
          auto ref = db::global_reference(db_, options_.node, parent_def->table, *parent_id);
          if (!ref) return ref.error();
          parent_reference = *ref;
        }
      } else if (*previous) {
        parent_reference = (*previous)->parent_reference;
      }
    }

    // The new image, in wire form.
    EntityImage image;
    image.entity_reference = reference;
    image.parent_reference = parent_reference;
    for (const auto& col : def.columns) {
      auto v = translator_.to_wire(col, lr.get(col.column));
      if (!v) {
        log_warn("capture",
                 def.log_table() + " id " + *id + ": " + v.error().message + "; sent as null");
        image.values[col.wire_name()] = nullptr;
        continue;
      }
      image.values[col.wire_name()] = std::move(*v);
    }

    Change change;
    change.type = def.type;
    change.entity = def.entity;
    change.entity_reference = reference;
    change.timestamp = utc_iso(lr.ts);
    if (def.parent && !parent_reference.empty())
      change.context[def.parent->context_key] = parent_reference;

    const std::string act = *action;
    if (act == "Delete") {
      if (!*previous) {
        // Never shared: nothing to delete elsewhere.
        pending_images[key] = std::nullopt;
        continue;
      }
      change.operation = Operation::remove;
      pending_images[key] = std::nullopt;
    } else {
      change.operation = *previous ? Operation::update : Operation::create;
      for (const auto& col : def.columns) {
        const std::string name = col.wire_name();
        const json::value& new_value = image.values[name];
        if (*previous) {
          const json::value* old = (*previous)->values.if_contains(name);
          json::value old_value = old ? *old : json::value(nullptr);
          if (old_value == new_value) continue;
          change.attribute_changes.push_back({name, old_value, new_value});
        } else if (!new_value.is_null()) {
          change.attribute_changes.push_back({name, std::nullopt, new_value});
        }
      }
      pending_images[key] = image;
      if (change.attribute_changes.empty()) continue;  // only unshared columns changed
    }

    // Whole-row hash: a stable id for this change on its origin.
    std::string row_text = def.table;
    for (const auto& cell : *lr.row) row_text += "\x1f" + cell.value_or("\x1e");
    change.id = options_.node + "-" + hex(sha512(row_text).substr(0, 12));

    // Echo linking: rows our own SQL applier wrote carry its marker in log_conn_id.
    OutboxEntry entry;
    auto conn = lr.get("log_conn_id");
    if (auto apply_id = conn ? db::apply_id_from_marker(*conn) : std::nullopt) {
      auto applied = db_.query(
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
    change.loop_detection.push_back(change_signature(change, options_.node));
    entry.change = std::move(change);
    batch.records.push_back(std::move(entry));
  }

  for (auto& [key, img] : pending_images) batch.images.emplace_back(key, std::move(img));
  batch.cursor_name = kCursorName;
  batch.cursor = format_cursor(*to);
  result.records = batch.records.size();
  if (auto s = store_.commit_capture(std::move(batch)); !s) return s.error();
  result.watermark = *to;
  if (result.records) {
    log_info("capture", "captured " + std::to_string(result.records) + " change(s) from " +
                            std::to_string(result.rows) + " log row(s)");
  }
  return result;
}

}  // namespace civishare
