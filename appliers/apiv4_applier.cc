#include "appliers/apiv4_applier.h"

#include <curl/curl.h>

#include "schemas/log.h"

namespace civishare {
namespace json = boost::json;

namespace {

// APIv4 `where`: [[field, "=", value]]. Built step by step: `json::array{json::array{...}}`
// is an array of arrays for gcc but a copy of the inner array for clang.
json::array where_equal(const char* field, json::value value) {
  json::array where;
  where.emplace_back(json::array{json::string(field), json::string("="), std::move(value)});
  return where;
}
std::size_t collect(char* data, std::size_t size, std::size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}
std::string entity_of(const TypeDefinition& def) {
  return def.entity;
}
}  // namespace

std::string apiv4_field(const ColumnDefinition& column) {
  switch (column.kind) {
    case ColumnKind::option:
      return column.column + ":name";
    case ColumnKind::lookup:
      return column.column + ":" + (column.lookup_name == "iso_code" ? "abbr" : column.lookup_name);
    default:
      return column.column;
  }
}

Apiv4Applier::Apiv4Applier(Apiv4ApplierOptions options, Store& store, const TypeRegistry& types)
    : Applier(store), options_(std::move(options)), types_(types) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  curl_ = curl_easy_init();
}

Apiv4Applier::~Apiv4Applier() {
  if (curl_) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

Result<json::array> Apiv4Applier::call(const std::string& entity, const std::string& action,
                                       const json::object& params) {
  CURL* c = static_cast<CURL*>(curl_);
  curl_easy_reset(c);
  std::string url = options_.url;
  while (!url.empty() && url.back() == '/') url.pop_back();
  url += "/" + entity + "/" + action;
  const std::string json_text = json::serialize(params);
  char* escaped = curl_easy_escape(c, json_text.data(), static_cast<int>(json_text.size()));
  const std::string body = std::string("params=") + escaped;
  curl_free(escaped);
  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Content-Type: application/x-www-form-urlencoded");
  headers = curl_slist_append(headers, "X-Requested-With: XMLHttpRequest");
  headers = curl_slist_append(headers, ("X-Civi-Auth: Bearer " + options_.api_key).c_str());
  headers = curl_slist_append(headers, ("X-Civi-Key: " + options_.site_key).c_str());
  std::string response;
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &response);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, options_.timeout_ms);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  if (!options_.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, options_.ca_file.c_str());
  CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(headers);
  if (rc != CURLE_OK) {
    return make_error(Errc::network,
                      "CiviCRM API at " + url + " unreachable: " + curl_easy_strerror(rc));
  }
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (status == 401 || status == 403) {
    return make_error(Errc::unauthorized,
                      "CiviCRM refused the API key or site key (HTTP " + std::to_string(status) +
                          "): " + response.substr(0, 200) +
                          "; check applier.api_key, applier.site_key and the API "
                          "contact's permissions");
  }
  boost::system::error_code ec;
  json::value v = json::parse(response, ec);
  if (ec || !v.is_object()) {
    return make_error(Errc::peer_rejected, "CiviCRM answered HTTP " + std::to_string(status) +
                                               " with no JSON: " + response.substr(0, 200));
  }
  const auto& o = v.get_object();
  if (o.contains("error_code") || o.contains("error_message") || status >= 400) {
    std::string message = o.contains("error_message") && o.at("error_message").is_string()
                              ? std::string(o.at("error_message").get_string())
                              : "HTTP " + std::to_string(status);
    return make_error(Errc::peer_rejected, entity + "." + action + ": " + message);
  }
  auto* values = o.if_contains("values");
  if (!values || !values->is_array()) return json::array{};
  return values->get_array();
}

Result<std::optional<std::string>> Apiv4Applier::local_id(const TypeDefinition& def,
                                                          const std::string& ref) {
  const std::string own = options_.node + "-";
  if (ref.compare(0, own.size(), own) == 0)
    return std::optional<std::string>(ref.substr(own.size()));
  auto v = store_.value("apiv4/idmap/" + def.table + "/" + ref);
  if (!v) return v.error();
  if (v->empty()) return std::optional<std::string>{};
  return std::optional<std::string>(*v);
}

Result<ApplyOutcome> Apiv4Applier::apply(const InboxEntry& e) {
  const Change& c = e.change;
  if (c.loop_detection.empty()) return make_error(Errc::invalid_input, "change without signature");
  const std::string applied_key = "apiv4/applied/" + c.loop_detection.back();
  auto seen = store_.value(applied_key);
  if (!seen) return seen.error();
  if (!seen->empty()) return ApplyOutcome::already_applied;
  std::string detail;
  std::vector<std::pair<std::string, std::string>> record;
  auto outcome = apply_change(e, &detail, &record);
  if (!outcome) {
    if (outcome.error().code != Errc::invalid_input && outcome.error().code != Errc::not_found &&
        outcome.error().code != Errc::peer_rejected) {
      return outcome.error();  // the API is down or refuses us: retry later
    }
    log_error("applier", "refused change " + c.id + " (" + c.type + " " + c.entity_reference +
                             ") from `" + e.came_from + "`: " + outcome.error().message);
    detail = outcome.error().message;
    outcome = ApplyOutcome::refused;
  }
  record.emplace_back(applied_key,
                      std::string(to_string(*outcome)) + (detail.empty() ? "" : ": " + detail));
  if (auto s = store_.put_values(record); !s) return s.error();
  log_info("applier", std::string(to_string(*outcome)) + " " + to_string(c.operation) + " " +
                          c.type + " " + c.entity_reference + " from `" + e.came_from +
                          "` via APIv4" + (detail.empty() ? "" : " (" + detail + ")"));
  return *outcome;
}

Result<ApplyOutcome> Apiv4Applier::apply_change(
    const InboxEntry& e, std::string* detail,
    std::vector<std::pair<std::string, std::string>>* record) {
  const Change& c = e.change;
  const TypeDefinition* def = types_.find(c.type);
  if (!def) return make_error(Errc::invalid_input, "unknown type " + c.type);
  const std::string entity = entity_of(*def);
  auto local = local_id(*def, c.entity_reference);
  if (!local) return local.error();
  const std::string idmap_key = "apiv4/idmap/" + def->table + "/" + c.entity_reference;
  auto id_where = [](const std::string& id) { return where_equal("id", std::stoll(id)); };
  auto note_echo = [&](const std::string& id) {
    json::array chain;
    for (const auto& s : c.loop_detection) chain.push_back(json::string(s));
    record->emplace_back(Store::apiv4_echo_key(def->table, id),
                         json::serialize(json::object{{"change_id", c.id},
                                                      {"chain", chain},
                                                      {"came_from", e.came_from},
                                                      {"timestamp", c.timestamp},
                                                      {"at", unix_now()}}));
  };

  if (c.operation == Operation::remove) {
    if (!*local) {
      *detail = "not known here";
      return ApplyOutcome::unchanged;
    }
    auto r = call(entity, "delete", json::object{{"where", id_where(**local)}});
    if (!r) return r.error();
    record->emplace_back(idmap_key, "");
    note_echo(**local);
    return ApplyOutcome::applied;
  }

  json::object values;
  for (const auto& a : c.attribute_changes) {
    const ColumnDefinition* col = def->find_wire(a.name);
    if (!col)
      return make_error(Errc::invalid_input, "attribute " + a.name + " is not in " + c.type);
    values[apiv4_field(*col)] = a.to;
  }

  if (!*local && !def->parent && options_.match_external_identifier &&
      def->find_column("external_identifier")) {
    const AttributeChange* ext = c.find_attribute("external_identifier");
    if (ext && ext->to.is_string() && !ext->to.get_string().empty()) {
      auto found = call(entity, "get",
                        json::object{{"select", json::array{"id"}},
                                     {"where", where_equal("external_identifier", ext->to)},
                                     {"limit", 2}});
      if (!found) return found.error();
      if (found->size() == 1) {
        const std::string id = json::serialize(found->at(0).at("id"));
        auto reverse = store_.value(Store::apiv4_reference_key(def->table, id));
        if (!reverse) return reverse.error();
        if (reverse->empty()) {
          *local = id;
          record->emplace_back(idmap_key, id);
          record->emplace_back(Store::apiv4_reference_key(def->table, id), c.entity_reference);
          *detail = "matched local id " + id + " by external_identifier";
        }
      }
    }
  }

  if (!*local) {
    if (def->parent) {
      auto p = named_parent(c, *def, types_);
      if (!p) return p.error();
      auto parent = local_id(*p->type, p->reference);
      if (!parent) return parent.error();
      if (!*parent) return unknown_parent(*def, p->reference);
      values[def->parent->column] = std::stoll(**parent);
    }
    auto created = call(entity, "create", json::object{{"values", values}});
    if (!created) return created.error();
    if (created->empty())
      return make_error(Errc::peer_rejected, entity + ".create returned nothing");
    const std::string id = json::serialize(created->at(0).at("id"));
    if (c.entity_reference != options_.node + "-" + id) {
      record->emplace_back(idmap_key, id);
      record->emplace_back(Store::apiv4_reference_key(def->table, id), c.entity_reference);
    }
    note_echo(id);
    *detail = "local id " + id;
    return ApplyOutcome::applied;
  }

  // Update: only what differs; a conflict when the local value is neither `from` nor `to`.
  json::array select;
  for (const auto& [k, v] : values) select.push_back(json::string(k));
  auto current =
      call(entity, "get", json::object{{"select", select}, {"where", id_where(**local)}});
  if (!current) return current.error();
  if (current->empty()) {
    return make_error(Errc::not_found, entity + " " + **local + " no longer exists here");
  }
  const json::object& now = current->at(0).as_object();
  // When was this entity last changed here (for newer_wins)? Its contact's modified_date.
  std::string local_modified;
  auto modified = [&]() -> Result<std::string> {
    if (!local_modified.empty()) return local_modified;
    std::int64_t contact = std::stoll(**local);
    if (def->parent) {
      auto row = call(
          entity, "get",
          json::object{{"select", json::array{def->parent->column}}, {"where", id_where(**local)}});
      if (!row) return row.error();
      if (row->empty()) return std::string();
      contact = row->at(0).at(def->parent->column).to_number<std::int64_t>();
    }
    auto row = call("Contact", "get",
                    json::object{{"select", json::array{"modified_date"}},
                                 {"where", where_equal("id", contact)}});
    if (!row) return row.error();
    if (row->empty() || !row->at(0).at("modified_date").is_string()) return std::string();
    local_modified = std::string(row->at(0).at("modified_date").get_string());
    return local_modified;
  };
  json::object changes;
  for (const auto& a : c.attribute_changes) {
    const std::string field = apiv4_field(*def->find_wire(a.name));
    const json::value* here = now.if_contains(field);
    const json::value local_value = here ? *here : json::value(nullptr);
    if (local_value == a.to) continue;
    if (a.from && local_value != *a.from) {
      bool take = false;
      auto by_type = options_.conflict_policy_by_type.find(c.type);
      const ConflictPolicy policy = by_type != options_.conflict_policy_by_type.end()
                                        ? by_type->second
                                        : options_.conflict_policy;
      if (policy == ConflictPolicy::newer_wins) {
        auto mine = modified();
        if (!mine) return mine.error();
        // "2026-11-28T09:59:58Z" and CiviCRM's "2026-11-28 09:59:58" (the API answers in the
        // site's time zone; run the site in UTC or this compares local times with UTC).
        std::string theirs = c.timestamp.substr(0, 19);
        if (theirs.size() > 10) theirs[10] = ' ';
        const std::string origin = c.id.substr(0, c.id.find('-'));
        take = theirs > *mine || (theirs == *mine && origin > options_.node);
      }
      log_warn("applier", "conflict on " + c.entity_reference + " " + a.name + ": here " +
                              json::serialize(local_value) + ", " + e.came_from + " had " +
                              json::serialize(*a.from) + " and sends " + json::serialize(a.to) +
                              (take ? "; applied" : "; kept local"));
      record->emplace_back(
          "apiv4/conflict/" + c.id + "/" + a.name,
          json::serialize(json::object{
              {"local", local_value}, {"from", *a.from}, {"to", a.to}, {"taken", take}}));
      if (!take) continue;
    }
    changes[field] = a.to;
  }
  if (changes.empty()) return ApplyOutcome::unchanged;
  auto updated =
      call(entity, "update", json::object{{"where", id_where(**local)}, {"values", changes}});
  if (!updated) return updated.error();
  note_echo(**local);
  return ApplyOutcome::applied;
}

}  // namespace civishare
