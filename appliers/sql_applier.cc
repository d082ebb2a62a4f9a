#include "appliers/sql_applier.h"

#include <algorithm>

#include "schemas/crash_point.h"
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
    crash_point("applier.after_commit");
    if (auto s = store_.remove_inbox(e.seq); !s) return s.error();
    observe(e, *outcome);
    ++done;
  }
  return done;
}

Result<NamedParent> named_parent(const Change& c, const TypeDefinition& def,
                                 const TypeRegistry& types) {
  auto it = c.context.find(def.parent->context_key);
  const TypeDefinition* pdef = types.find(def.parent->type);
  if (it == c.context.end() || !pdef) {
    return make_error(Errc::invalid_input, "no " + def.parent->context_key + " in the change");
  }
  return NamedParent{pdef, it->second};
}

Error unknown_parent(const TypeDefinition& def, const std::string& reference) {
  return make_error(Errc::not_found,
                    def.parent->context_key + " " + reference + " is not known here");
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

Result<std::optional<std::string>> SqlApplier::local_id(const std::string& table,
                                                        const std::string& reference) {
  const std::string key = table + '\n' + reference;
  if (auto it = idmap_cache_.find(key); it != idmap_cache_.end()) return {it->second};
  auto id = db::local_id(db_, options_.node, table, reference);
  if (!id) return id.error();
  const bool own = reference.compare(0, options_.node.size() + 1, options_.node + "-") == 0;
  if (*id && !own) {
    if (idmap_cache_.size() >= 100000) idmap_cache_.clear();
    idmap_cache_.emplace(key, **id);
  }
  return id;
}

Status SqlApplier::map_reference(const std::string& table, const std::string& reference,
                                 const std::string& id) {
  auto s = db_.exec("INSERT INTO civishare_idmap (entity_table, global_ref, local_id) VALUES (" +
                    db_.quote(table) + ", " + db_.quote(reference) + ", " + db_.quote(id) + ")");
  if (s) idmap_cache_[table + '\n' + reference] = id;
  return s;
}

Result<std::size_t> SqlApplier::apply_pending(std::size_t max) {
  auto entries = store_.read_inbox(max);
  if (!entries) return entries.error();
  if (entries->empty()) return std::size_t{0};
  auto outcomes = apply_together(*entries);
  if (!outcomes) return outcomes.error();  // nothing of this batch happened; the inbox has it all
  crash_point("applier.after_commit");
  // Committed: a crash before this removal only offers the entries again, and their signatures
  // are in civishare_applied now (already_applied).
  std::vector<std::uint64_t> seqs;
  for (const auto& e : *entries) seqs.push_back(e.seq);
  if (auto s = store_.remove_inbox(seqs); !s) return s.error();
  for (std::size_t i = 0; i < entries->size(); ++i) {
    log_outcome((*entries)[i], (*outcomes)[i].first, (*outcomes)[i].second);
    observe((*entries)[i], (*outcomes)[i].first);
  }
  return entries->size();
}

Result<ApplyOutcome> SqlApplier::apply(const InboxEntry& e) {
  auto outcomes = apply_together(std::span<const InboxEntry>(&e, 1));
  if (!outcomes) return outcomes.error();
  log_outcome(e, outcomes->front().first, outcomes->front().second);
  return outcomes->front().first;
}

Result<std::vector<std::pair<ApplyOutcome, std::string>>> SqlApplier::apply_together(
    std::span<const InboxEntry> entries) {
  if (auto s = db_.exec("START TRANSACTION"); !s) return s.error();
  std::vector<std::pair<ApplyOutcome, std::string>> outcomes;
  for (const auto& e : entries) {
    std::string detail;
    auto outcome = apply_one(e, &detail);
    if (!outcome) {
      (void)db_.exec("ROLLBACK");
      idmap_cache_.clear();
      return outcome.error();
    }
    outcomes.emplace_back(*outcome, std::move(detail));
  }
  (void)db_.exec("SET @uniqueID = NULL");
  if (auto s = db_.exec("COMMIT"); !s) {
    idmap_cache_.clear();
    return s.error();
  }
  return outcomes;
}

void SqlApplier::log_outcome(const InboxEntry& e, ApplyOutcome outcome, const std::string& detail) {
  const Change& c = e.change;
  switch (outcome) {
    case ApplyOutcome::already_applied:
      return;
    case ApplyOutcome::refused:
      log_error("applier", "refused change " + c.id + " (" + c.type + " " + c.entity_reference +
                               ") from `" + e.came_from + "`: " + detail);
      return;
    default:
      log_info("applier", std::string(to_string(outcome)) + " " + to_string(c.operation) + " " +
                              c.type + " " + c.entity_reference + " from `" + e.came_from + "`" +
                              (detail.empty() ? "" : " (" + detail + ")"));
  }
}

Result<ApplyOutcome> SqlApplier::apply_one(const InboxEntry& e, std::string* detail) {
  const Change& c = e.change;
  if (auto s = db_.exec("SAVEPOINT civishare_change"); !s) return s.error();
  auto undo = [&]() -> Status {
    idmap_cache_.clear();
    return db_.exec("ROLLBACK TO SAVEPOINT civishare_change");
  };
  auto refuse = [&](const std::string& why) -> Result<ApplyOutcome> {
    if (auto s = undo(); !s) return s.error();
    *detail = why;
    if (auto s = record_refusal(e, why); !s) return s.error();
    return ApplyOutcome::refused;
  };
  if (c.loop_detection.empty()) {
    // Nothing to key civishare_applied on; the receiver never accepts such a change.
    *detail = "change without signature";
    return ApplyOutcome::refused;
  }
  auto inserted = db_.exec(
      "INSERT IGNORE INTO civishare_applied (signature, change_id, change_type, entity_reference, "
      "change_timestamp, came_from, chain, outcome) VALUES (" +
      db_.quote(c.loop_detection.back()) + ", " + db_.quote(c.id) + ", " + db_.quote(c.type) +
      ", " + db_.quote(c.entity_reference) + ", " + db_.quote(c.timestamp) + ", " +
      db_.quote(e.came_from) + ", " + db_.quote(chain_json(c)) + ", 'applied')");
  if (!inserted) return inserted.error();
  if (db_.affected_rows() == 0) return ApplyOutcome::already_applied;
  const std::uint64_t apply_id = db_.last_insert_id();
  auto outcome = apply_in_transaction(e, apply_id, detail);
  if (!outcome) {
    // A database failure ends the batch (the caller rolls back); anything else is a property of
    // the change itself: undo it alone, keep a record and move on.
    if (outcome.error().code == Errc::database) return outcome.error();
    return refuse(outcome.error().message);
  }
  if (*outcome != ApplyOutcome::applied || !detail->empty()) {
    auto s = db_.exec("UPDATE civishare_applied SET outcome = " + db_.quote(to_string(*outcome)) +
                      ", detail = " + (detail->empty() ? std::string("NULL") : db_.quote(*detail)) +
                      " WHERE apply_id = " + std::to_string(apply_id));
    if (!s) return s.error();
  }
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
  auto local = local_id(def->table, c.entity_reference);
  if (!local) return local.error();

  if (c.operation == Operation::remove) {
    if (!*local) {
      *detail = "not known here";
      return ApplyOutcome::unchanged;
    }
    if (auto s = db_.exec("DELETE FROM " + table + " WHERE id = " + db_.quote(**local)); !s) {
      return s.error();
    }
    idmap_cache_.erase(def->table + '\n' + c.entity_reference);
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
    if (auto s = map_reference(def->table, c.entity_reference, matched); !s) return s;
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
  bool derived_done = false;
  const bool creating = !*local;
  if (!*local) {
    // Unknown here: create it (an update for an entity we never saw creates it too).
    if (def->parent) {
      auto p = named_parent(c, *def, types_);
      if (!p) return p.error();
      auto parent = local_id(p->type->table, p->reference);
      if (!parent) return parent.error();
      if (!*parent) return unknown_parent(*def, p->reference);
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
      if (auto s = map_reference(def->table, c.entity_reference, id); !s) return s.error();
    }
    *detail = "local id " + id;
    wrote = true;
  } else {
    id = **local;
    // Only the columns whose stored value differs: a no-op change writes nothing.
    std::string where = " WHERE id = " + db_.quote(id);
    // One look at the row: per attribute, is the local value already the new one, and is it
    // still the one the sender had before? BINARY: the column collation would call a case-only
    // change "equal".
    std::string probes;
    std::vector<int> from_probe(values.size(), -1);
    std::vector<std::optional<Error>> from_error(values.size());  // matters only if not `same`
    int n_probes = 0;
    auto probe = [&](const std::string& q, const std::string& lit) {
      probes += std::string(probes.empty() ? "" : ", ") + "CAST(" + q + " AS BINARY) <=> CAST(" +
                lit + " AS BINARY)";
      return n_probes++;
    };
    for (std::size_t i = 0; i < values.size(); ++i) {
      const auto& [col, lit] = values[i];
      const std::string q = Connection::quote_identifier(col);
      probe(q, lit);
      const AttributeChange& a = c.attribute_changes[i];
      if (a.from) {
        auto from_lit = translator_.to_sql(*def->find_wire(a.name), *a.from);
        if (from_lit)
          from_probe[i] = probe(q, *from_lit);
        else
          from_error[i] = from_lit.error();
      }
    }
    std::vector<bool> truth(static_cast<std::size_t>(n_probes), false);
    if (n_probes > 0) {
      auto row = db_.query("SELECT " + probes + " FROM " + table + where);
      if (!row) return row.error();
      if (!row->rows.empty()) {
        for (std::size_t k = 0; k < truth.size(); ++k) {
          truth[k] = row->rows[0][k].value_or("0") == "1";
        }
      }
    }
    std::string sets;
    for (std::size_t i = 0, k = 0; i < values.size(); ++i) {
      const auto& [col, lit] = values[i];
      const std::string q = Connection::quote_identifier(col);
      const bool same = truth[k++];
      if (from_probe[i] >= 0) ++k;
      if (same) continue;
      // A conflict: the local value is neither what the sender had before nor what it sends.
      const AttributeChange& a = c.attribute_changes[i];
      if (a.from) {
        if (from_error[i]) return *from_error[i];
        const bool unchanged_here = truth[static_cast<std::size_t>(from_probe[i])];
        if (!unchanged_here) {
          auto take = resolve_conflict(e, *def, id, a, q, table + where, apply_id);
          if (!take) return take.error();
          if (!*take) continue;
        }
      }
      sets += (sets.empty() ? "" : ", ") + q + " = " + lit;
    }
    if (sets.empty()) return ApplyOutcome::unchanged;
    // Derived columns in the same statement (assignments run left to right, so they see the new
    // values): one write, one log row.
    for (const auto& [col, expr] : def->derived) {
      sets += ", " + Connection::quote_identifier(col) + " = (" + expr + ")";
    }
    if (auto s = db_.exec("UPDATE " + table + " SET " + sets + where); !s) return s.error();
    wrote = true;
    derived_done = true;
  }
  // A contact keeps exactly one primary email/phone/address: this one now, if it says so (a
  // create, or an update of is_primary or of the parent).
  const bool primary_may_move =
      creating || std::any_of(values.begin(), values.end(), [&](const auto& v) {
        return v.first == "is_primary" || (def->parent && v.first == def->parent->column);
      });
  if (wrote && def->parent && def->find_column("is_primary") && primary_may_move) {
    const std::string parent_col = Connection::quote_identifier(def->parent->column);
    if (auto s = db_.exec("UPDATE " + table + " other JOIN " + table + " me ON me.id = " +
                          db_.quote(id) + " AND other." + parent_col + " = me." + parent_col +
                          " SET other.is_primary = 0 WHERE me.is_primary = 1 AND other.id <> me.id "
                          "AND other.is_primary = 1");
        !s) {
      return s.error();
    }
  }
  if (wrote && !derived_done && !def->derived.empty()) {
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
