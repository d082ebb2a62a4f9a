#include "appliers/sql_applier.h"

#include "schemas/db/civishare_tables.h"
#include "schemas/log.h"

namespace civishare {
namespace json = boost::json;
using db::Connection;

Result<std::size_t> Applier::apply_pending(std::size_t max) {
  auto entries = store_.read_inbox(max);
  if (!entries) return entries.error();
  std::size_t done = 0;
  for (const auto& e : *entries) {
    auto outcome = apply(e);
    if (!outcome) return outcome.error();
    if (auto s = store_.remove_inbox(e.seq); !s) return s.error();
    observe(e, *outcome);
    ++done;
  }
  return done;
}

const char* to_string(ApplyOutcome o) {
  switch (o) {
    case ApplyOutcome::applied:
      return "applied";
    case ApplyOutcome::unchanged:
      return "unchanged";
    case ApplyOutcome::refused:
      return "refused";
    case ApplyOutcome::already_applied:
      return "already_applied";
  }
  return "applied";
}

namespace {

// A refusal is a property of the change (unknown name, unknown parent): retrying cannot help.
struct Refusal {
  std::string why;
};

std::string chain_json(const Change& c) {
  json::array a;
  for (const auto& s : c.loop_detection) a.push_back(json::string(s));
  return json::serialize(a);
}

}  // namespace

SqlApplier::SqlApplier(SqlApplierOptions options, db::Connection connection, Store& store,
                       const TypeRegistry& types)
    : Applier(store),
      options_(std::move(options)),
      db_(std::move(connection)),
      translator_(db_),
      types_(types) {}

Status SqlApplier::record_refusal(const InboxEntry& e, const std::string& why) {
  const Change& c = e.change;
  return db_.exec(
      "INSERT IGNORE INTO civishare_applied (signature, change_id, change_type, entity_reference, "
      "change_timestamp, came_from, chain, outcome, detail) VALUES (" +
      db_.quote(c.loop_detection.back()) + ", " + db_.quote(c.id) + ", " + db_.quote(c.type) +
      ", " + db_.quote(c.entity_reference) + ", " + db_.quote(c.timestamp) + ", " +
      db_.quote(e.came_from) + ", " + db_.quote(chain_json(c)) + ", 'refused', " +
      db_.quote(why.substr(0, 1000)) + ")");
}

Result<ApplyOutcome> SqlApplier::apply(const InboxEntry& e) {
  const Change& c = e.change;
  if (c.loop_detection.empty()) return make_error(Errc::invalid_input, "change without signature");
  if (auto s = db_.exec("START TRANSACTION"); !s) return s.error();
  auto rollback = [&] { (void)db_.exec("ROLLBACK"); };
  auto inserted = db_.exec(
      "INSERT IGNORE INTO civishare_applied (signature, change_id, change_type, entity_reference, "
      "change_timestamp, came_from, chain, outcome) VALUES (" +
      db_.quote(c.loop_detection.back()) + ", " + db_.quote(c.id) + ", " + db_.quote(c.type) +
      ", " + db_.quote(c.entity_reference) + ", " + db_.quote(c.timestamp) + ", " +
      db_.quote(e.came_from) + ", " + db_.quote(chain_json(c)) + ", 'pending')");
  if (!inserted) {
    rollback();
    return inserted.error();
  }
  if (db_.affected_rows() == 0) {
    rollback();
    return ApplyOutcome::already_applied;
  }
  const std::uint64_t apply_id = db_.last_insert_id();
  std::string detail;
  auto outcome = apply_in_transaction(e, apply_id, &detail);
  (void)db_.exec("SET @uniqueID = NULL");
  if (!outcome) {
    rollback();
    if (outcome.error().code == Errc::database) return outcome.error();
    // The change itself cannot be applied here: keep a record and move on.
    log_error("applier", "refused change " + c.id + " (" + c.type + " " + c.entity_reference +
                             ") from `" + e.came_from + "`: " + outcome.error().message);
    if (auto s = record_refusal(e, outcome.error().message); !s) return s.error();
    return ApplyOutcome::refused;
  }
  auto s = db_.exec("UPDATE civishare_applied SET outcome = " + db_.quote(to_string(*outcome)) +
                    ", detail = " + (detail.empty() ? std::string("NULL") : db_.quote(detail)) +
                    " WHERE apply_id = " + std::to_string(apply_id));
  if (!s) {
    rollback();
    return s.error();
  }
  if (auto commit = db_.exec("COMMIT"); !commit) return commit.error();
  log_info("applier", std::string(to_string(*outcome)) + " " + to_string(c.operation) + " " +
                          c.type + " " + c.entity_reference + " from `" + e.came_from + "`" +
                          (detail.empty() ? "" : " (" + detail + ")"));
  return *outcome;
}

Result<bool> SqlApplier::resolve_conflict(const InboxEntry& e, const TypeDefinition& def,
                                          const std::string& id, const AttributeChange& a,
                                          const std::string& column, const std::string& from_where,
                                          std::uint64_t apply_id) {
  const Change& c = e.change;
  auto local = db_.scalar("SELECT " + column + " FROM " + from_where);
  if (!local) return local.error();
  bool take = false;
  std::string policy, resolution;
  auto by_type = options_.conflict_policy_by_type.find(c.type);
  switch (by_type != options_.conflict_policy_by_type.end() ? by_type->second
                                                            : options_.conflict_policy) {
    case ConflictPolicy::newer_wins: {
      policy = "newer_wins";
      // When was this entity last changed here? The contact's modified_date (CiviCRM bumps it for
      // its emails, phones and addresses too).
      std::string contact_where = " WHERE id = " + db_.quote(id);
      std::string contact_table = def.table;
      if (def.parent) {
        auto parent = db_.scalar("SELECT " + Connection::quote_identifier(def.parent->column) +
                                 " " + "FROM " + from_where);
        if (!parent) return parent.error();
        contact_where = " WHERE id = " + db_.quote(parent->value_or("0"));
        const TypeDefinition* pdef = types_.find(def.parent->type);
        contact_table = pdef ? pdef->table : "civicrm_contact";
      }
      auto local_ts = db_.scalar("SELECT UNIX_TIMESTAMP(modified_date) FROM " +
                                 Connection::quote_identifier(contact_table) + contact_where);
      auto incoming_ts =
          db_.scalar("SELECT UNIX_TIMESTAMP(" + db_.quote(c.timestamp.substr(0, 19)) + ")");
      if (!local_ts) return local_ts.error();
      if (!incoming_ts) return incoming_ts.error();
      const double mine = std::stod(local_ts->value_or("0"));
      const double theirs = std::stod(incoming_ts->value_or("0"));
      const std::string origin = c.id.substr(0, c.id.find('-'));
      take = theirs > mine || (theirs == mine && origin > options_.node);
      resolution = take ? "applied" : "kept_local";
      break;
    }
    case ConflictPolicy::keep_local:
      policy = "keep_local";
      resolution = "kept_local";
      break;
    case ConflictPolicy::review:
      policy = "review";
      resolution = "held";
      break;
  }
  auto s = db_.exec(
      "INSERT INTO civishare_conflict (apply_id, change_id, came_from, entity_table, local_id, "
      "entity_reference, attribute, local_value, from_value, to_value, policy, resolution) VALUES "
      "(" +
      std::to_string(apply_id) + ", " + db_.quote(c.id) + ", " + db_.quote(e.came_from) + ", " +
      db_.quote(def.table) + ", " + db_.quote(id) + ", " + db_.quote(c.entity_reference) + ", " +
      db_.quote(a.name) + ", " + (*local ? db_.quote(**local) : std::string("NULL")) + ", " +
      db_.quote(boost::json::serialize(*a.from)) + ", " + db_.quote(boost::json::serialize(a.to)) +
      ", " + db_.quote(policy) + ", " + db_.quote(resolution) + ")");
  if (!s) return s.error();
  log_warn("applier", "conflict on " + c.entity_reference + " " + a.name + ": here `" +
                          local->value_or("NULL") + "`, " + e.came_from + " had `" +
                          boost::json::serialize(*a.from) + "` and sends `" +
                          boost::json::serialize(a.to) + "`; " + policy + " -> " + resolution);
  return take;
}

Result<ApplyOutcome> SqlApplier::apply_in_transaction(const InboxEntry& e, std::uint64_t apply_id,
                                                      std::string* detail) {
  const Change& c = e.change;
  const TypeDefinition* def = types_.find(c.type);
  if (!def) return make_error(Errc::invalid_input, "unknown type " + c.type);
  if (auto s = db_.exec("SET @uniqueID = " + db_.quote(db::applier_marker(apply_id))); !s) {
    return s.error();
  }
  const std::string table = Connection::quote_identifier(def->table);
  auto local = db::local_id(db_, options_.node, def->table, c.entity_reference);
  if (!local) return local.error();

  if (c.operation == Operation::remove) {
    if (!*local) {
      *detail = "not known here";
      return ApplyOutcome::unchanged;
    }
    if (auto s = db_.exec("DELETE FROM " + table + " WHERE id = " + db_.quote(**local)); !s) {
      return s.error();
    }
    if (auto s = db_.exec("DELETE FROM civishare_idmap WHERE entity_table = " +
                          db_.quote(def->table) + " AND local_id = " + db_.quote(**local));
        !s) {
      return s.error();
    }
    return ApplyOutcome::applied;
  }

  // Column -> SQL literal for every attribute the change sets.
  std::vector<std::pair<std::string, std::string>> values;
  for (const auto& a : c.attribute_changes) {
    const ColumnDefinition* col = def->find_wire(a.name);
    if (!col)
      return make_error(Errc::invalid_input, "attribute " + a.name + " is not in " + c.type);
    auto literal = translator_.to_sql(*col, a.to);
    if (!literal) {
      if (literal.error().code == Errc::database) return literal.error();
      return make_error(Errc::invalid_input, literal.error().message);
    }
    values.emplace_back(col->column, std::move(*literal));
  }

  // Matching, before creating a contact this node has never seen: an existing contact that no
  // other reference maps to, found by the configured rules in order, becomes this entity.
  auto match_by = [&](const std::string& condition, const std::string& rule) -> Status {
    auto match =
        db_.query("SELECT t.id FROM " + table + " t " + condition +
                  " AND NOT EXISTS (SELECT 1 FROM civishare_idmap m WHERE m.entity_table = " +
                  db_.quote(def->table) + " AND m.local_id = t.id) LIMIT 2");
    if (!match) return match.error();
    if (match->rows.size() != 1 || !match->rows[0][0]) return ok_status();
    const std::string matched = *match->rows[0][0];
    if (auto s =
            db_.exec("INSERT INTO civishare_idmap (entity_table, global_ref, local_id) VALUES (" +
                     db_.quote(def->table) + ", " + db_.quote(c.entity_reference) + ", " +
                     db_.quote(matched) + ")");
        !s) {
      return s;
    }
    *local = matched;
    *detail = "matched local id " + matched + " by " + rule;
    return ok_status();
  };
  const bool matchable = !*local && !def->parent;
  if (matchable && options_.match_external_identifier && def->find_column("external_identifier")) {
    const AttributeChange* ext = c.find_attribute("external_identifier");
    if (ext && ext->to.is_string() && !ext->to.get_string().empty()) {
      if (auto s = match_by("WHERE t.external_identifier = " + db_.quote(ext->to.get_string()),
                            "external_identifier");
          !s) {
        return s.error();
      }
    }
  }
  if (!*local && matchable && options_.match_email_last_name && def->find_column("last_name")) {
    const AttributeChange* last = c.find_attribute("last_name");
    auto email = c.context.find("primary_email");
    if (last && last->to.is_string() && email != c.context.end() && !email->second.empty()) {
      if (auto s = match_by("JOIN civicrm_email e ON e.contact_id = t.id AND e.is_primary = 1 "
                            "WHERE t.is_deleted = 0 AND t.last_name = " +
                                db_.quote(last->to.get_string()) +
                                " AND e.email = " + db_.quote(email->second),
                            "primary email and last name");
          !s) {
        return s.error();
      }
    }
  }

  std::string id;
  bool wrote = false;
  if (!*local) {
    // Unknown here: create it (an update for an entity we never saw creates it too).
    if (def->parent) {
      auto pit = c.context.find(def->parent->context_key);
      const TypeDefinition* pdef = types_.find(def->parent->type);
      if (pit == c.context.end() || !pdef) {
        return make_error(Errc::invalid_input, "no " + def->parent->context_key + " in the change");
      }
      auto parent = db::local_id(db_, options_.node, pdef->table, pit->second);
      if (!parent) return parent.error();
      if (!*parent) {
        return make_error(Errc::not_found,
                          def->parent->context_key + " " + pit->second + " is not known here");
      }
      values.emplace_back(def->parent->column, db_.quote(**parent));
    }
    std::string cols, vals;
    for (const auto& [col, lit] : values) {
      cols += (cols.empty() ? "" : ", ") + Connection::quote_identifier(col);
      vals += (vals.empty() ? "" : ", ") + lit;
    }
    std::string sql = cols.empty()
                          ? "INSERT INTO " + table + " () VALUES ()"
                          : "INSERT INTO " + table + " (" + cols + ") VALUES (" + vals + ")";
    if (auto s = db_.exec(sql); !s) return s.error();
    id = std::to_string(db_.last_insert_id());
    if (c.entity_reference != options_.node + "-" + id) {
      if (auto s =
              db_.exec("INSERT INTO civishare_idmap (entity_table, global_ref, local_id) VALUES (" +
                       db_.quote(def->table) + ", " + db_.quote(c.entity_reference) + ", " +
                       db_.quote(id) + ")");
          !s) {
        return s.error();
      }
    }
    *detail = "local id " + id;
    wrote = true;
  } else {
    id = **local;
    // Only the columns whose stored value differs: a no-op change writes nothing.
    std::string where = " WHERE id = " + db_.quote(id);
    // BINARY: the column collation would call a case-only change "equal".
    auto equal = [&](const std::string& q, const std::string& lit) -> Result<bool> {
      auto same = db_.scalar("SELECT CAST(" + q + " AS BINARY) <=> CAST(" + lit +
                             " AS BINARY) FROM " + table + where);
      if (!same) return same.error();
      return *same && **same == "1";
    };
    std::string sets;
    for (std::size_t i = 0; i < values.size(); ++i) {
      const auto& [col, lit] = values[i];
      const std::string q = Connection::quote_identifier(col);
      auto same = equal(q, lit);
      if (!same) return same.error();
      if (*same) continue;
      // A conflict: the local value is neither what the sender had before nor what it sends.
      const AttributeChange& a = c.attribute_changes[i];
      if (a.from) {
        const ColumnDefinition* cdef = def->find_wire(a.name);
        auto from_lit = translator_.to_sql(*cdef, *a.from);
        if (!from_lit) return from_lit.error();
        auto unchanged_here = equal(q, *from_lit);
        if (!unchanged_here) return unchanged_here.error();
        if (!*unchanged_here) {
          auto take = resolve_conflict(e, *def, id, a, q, table + where, apply_id);
          if (!take) return take.error();
          if (!*take) continue;
        }
      }
      sets += (sets.empty() ? "" : ", ") + q + " = " + lit;
    }
    if (sets.empty()) return ApplyOutcome::unchanged;
    if (auto s = db_.exec("UPDATE " + table + " SET " + sets + where); !s) return s.error();
    wrote = true;
  }
  // A contact keeps exactly one primary email/phone/address: this one now, if it says so.
  if (wrote && def->parent && def->find_column("is_primary")) {
    const std::string parent_col = Connection::quote_identifier(def->parent->column);
    if (auto s = db_.exec("UPDATE " + table + " other JOIN " + table + " me ON me.id = " +
                          db_.quote(id) + " AND other." + parent_col + " = me." + parent_col +
                          " SET other.is_primary = 0 WHERE me.is_primary = 1 AND other.id <> me.id "
                          "AND other.is_primary = 1");
        !s) {
      return s.error();
    }
  }
  if (wrote && !def->derived.empty()) {
    std::string sets;
    for (const auto& [col, expr] : def->derived) {
      sets += (sets.empty() ? "" : ", ") + Connection::quote_identifier(col) + " = (" + expr + ")";
    }
    if (auto s = db_.exec("UPDATE " + table + " SET " + sets + " WHERE id = " + db_.quote(id));
        !s) {
      return s.error();
    }
  }
  return ApplyOutcome::applied;
}

}  // namespace civishare
