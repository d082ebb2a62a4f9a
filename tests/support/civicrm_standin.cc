#include "tests/support/civicrm_standin.h"

#include <map>

#include "schemas/type_definition.h"

namespace civishare::testing {
namespace json = boost::json;

namespace {

std::string url_decode(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+')
      out.push_back(' ');
    else if (s[i] == '%' && i + 2 < s.size()) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else
      out.push_back(s[i]);
  }
  return out;
}

HttpResponse api_error(const std::string& message) {
  return HttpResponse{500, "application/json",
                      json::serialize(json::object{
                          {"error_code", 0}, {"error_message", message}, {"status", 500}})};
}

const std::map<std::string, std::string> kTables = {{"Contact", "civicrm_contact"},
                                                    {"Email", "civicrm_email"},
                                                    {"Phone", "civicrm_phone"},
                                                    {"Address", "civicrm_address"}};

// SQL expression reading an API field (with suffix) from row alias t.
std::string read_expr(const std::string& table, const std::string& field) {
  auto colon = field.find(':');
  const std::string col = field.substr(0, colon);
  if (colon == std::string::npos) return "t.`" + col + "`";
  const std::string suffix = field.substr(colon + 1);
  const TypeDefinition* def = TypeRegistry::builtin().find_by_table(table);
  const ColumnDefinition* cd = def ? def->find_column(col) : nullptr;
  if (cd && cd->kind == ColumnKind::option) {
    return "(SELECT v.name FROM civicrm_option_value v JOIN civicrm_option_group g ON g.id = "
           "v.option_group_id WHERE g.name = '" +
           cd->option_group + "' AND v.value = t.`" + col + "`)";
  }
  if (cd && cd->kind == ColumnKind::lookup) {
    return "(SELECT `" + cd->lookup_name + "` FROM `" + cd->lookup_table + "` WHERE id = t.`" +
           col + "`)";
  }
  return "t.`" + col + "`";
}

// The id for a name, or an error message as CiviCRM would give it.
std::string write_expr(db::Connection& c, const std::string& table, const std::string& field,
                       const json::value& v, std::string* column, std::string* error) {
  auto colon = field.find(':');
  *column = field.substr(0, colon);
  if (v.is_null()) return "NULL";
  if (v.is_bool()) return v.get_bool() ? "1" : "0";
  if (v.is_int64() || v.is_uint64()) return json::serialize(v);
  const std::string s(v.as_string());
  if (colon == std::string::npos) return c.quote(s);
  const TypeDefinition* def = TypeRegistry::builtin().find_by_table(table);
  const ColumnDefinition* cd = def ? def->find_column(*column) : nullptr;
  std::string sql;
  if (cd && cd->kind == ColumnKind::option) {
    sql =
        "SELECT v.value FROM civicrm_option_value v JOIN civicrm_option_group g ON g.id = "
        "v.option_group_id WHERE g.name = '" +
        cd->option_group + "' AND v.name = " + c.quote(s);
  } else if (cd && cd->kind == ColumnKind::lookup) {
    sql =
        "SELECT id FROM `" + cd->lookup_table + "` WHERE `" + cd->lookup_name + "` = " + c.quote(s);
  }
  auto id = c.scalar(sql);
  if (!id || !*id) {
    *error = "Invalid value '" + s + "' for " + field;
    return "";
  }
  return c.quote(**id);
}

json::value typed(const std::string& table, const std::string& field, const db::Cell& cell) {
  if (!cell) return nullptr;
  const std::string col = field.substr(0, field.find(':'));
  if (field.find(':') != std::string::npos) return json::string(*cell);
  if (col == "id" || col == "contact_id") return std::stoll(*cell);
  const TypeDefinition* def = TypeRegistry::builtin().find_by_table(table);
  const ColumnDefinition* cd = def ? def->find_column(col) : nullptr;
  if (cd && cd->kind == ColumnKind::boolean) return *cell != "0";
  if (cd && cd->kind == ColumnKind::integer) return std::stoll(*cell);
  return json::string(*cell);
}

}  // namespace

CiviCrmStandIn::CiviCrmStandIn(MariaDbServer& server, std::string api_key, std::string site_key,
                               int contact_id)
    : server_(server),
      api_key_(std::move(api_key)),
      site_key_(std::move(site_key)),
      contact_id_(contact_id) {
  auto h = HttpServer::start(ServerOptions{}, [this](const HttpRequest& r) { return handle(r); });
  if (!h) throw std::runtime_error(h.error().message);
  http_ = std::move(*h);
}

std::string CiviCrmStandIn::url() const {
  return "http://127.0.0.1:" + std::to_string(http_->port()) + "/civicrm/ajax/api4";
}

std::vector<std::string> CiviCrmStandIn::violations() {
  std::lock_guard lock(mu_);
  return violations_;
}

std::size_t CiviCrmStandIn::requests() {
  std::lock_guard lock(mu_);
  return requests_;
}

HttpResponse CiviCrmStandIn::handle(const HttpRequest& r) {
  auto violation = [&](const std::string& what, HttpResponse answer) {
    std::lock_guard lock(mu_);
    violations_.push_back(what);
    return answer;
  };
  {
    std::lock_guard lock(mu_);
    ++requests_;
  }
  auto header = [&](const std::string& k) {
    auto it = r.headers.find(k);
    return it == r.headers.end() ? std::string() : it->second;
  };
  const std::string prefix = "/civicrm/ajax/api4/";
  if (r.target.rfind(prefix, 0) != 0)
    return violation("path " + r.target, HttpResponse{404, "text/plain", "Not found"});
  if (r.method != "POST")
    return violation("method " + r.method, HttpResponse{405, "text/plain", "Method not allowed"});
  if (header("x-requested-with") != "XMLHttpRequest") {
    return violation(
        "no X-Requested-With",
        HttpResponse{400, "text/plain",
                     "SECURITY ALERT: Ajax requests can only be issued by javascript clients."});
  }
  if (header("x-civi-auth") != "Bearer " + api_key_) {
    return violation("bad X-Civi-Auth",
                     HttpResponse{401, "text/plain", "HTTP 401 Invalid credential"});
  }
  if (header("x-civi-key") != site_key_) {
    return violation("bad X-Civi-Key",
                     HttpResponse{401, "text/plain", "HTTP 401 Incorrect site key"});
  }
  if (header("content-type").rfind("application/x-www-form-urlencoded", 0) != 0) {
    return violation("content type " + header("content-type"), api_error("expected a form"));
  }
  if (r.body.rfind("params=", 0) != 0 || r.body.find('&') != std::string::npos) {
    return violation("body is not params=<json>", api_error("missing params"));
  }
  boost::system::error_code ec;
  json::value params = json::parse(url_decode(r.body.substr(7)), ec);
  if (ec || !params.is_object())
    return violation("params is not a JSON object", api_error("bad params"));
  const std::string rest = r.target.substr(prefix.size());
  const std::string entity = rest.substr(0, rest.find('/'));
  const std::string action = rest.substr(rest.find('/') + 1);
  auto table_it = kTables.find(entity);
  if (table_it == kTables.end())
    return api_error("API (" + entity + ", " + action + ") does not exist");
  const std::string table = table_it->second;
  auto c = server_.connect();
  (void)c.exec("SET @civicrm_user_id = " + std::to_string(contact_id_) +
               ", @uniqueID = 'api4standin000001'");
  const json::object& p = params.get_object();

  std::string where = " WHERE 1";
  if (auto* w = p.if_contains("where"); w && w->is_array()) {
    for (const auto& cond : w->get_array()) {
      const auto& a = cond.as_array();
      if (a.size() != 3 || a[1] != "=")
        return violation("unsupported where", api_error("unsupported where"));
      std::string col, err;
      std::string lit = write_expr(c, table, std::string(a[0].as_string()), a[2], &col, &err);
      if (!err.empty()) return api_error(err);
      where += " AND t.`" + col + "` = " + lit;
    }
  }
  json::array values;
  auto derive = [&](const std::string& id_where) {
    if (entity == "Contact") {
      (void)c.exec(
          "UPDATE civicrm_contact t SET display_name = CASE contact_type WHEN 'Organization' THEN "
          "organization_name WHEN 'Household' THEN household_name ELSE NULLIF(CONCAT_WS(' ', "
          "first_name, last_name), '') END, sort_name = NULLIF(CONCAT_WS(', ', last_name, "
          "first_name), '')" +
          id_where);
    } else {  // CiviCRM's BAO keeps one primary per contact
      (void)c.exec("UPDATE " + table + " o JOIN " + table +
                   " t ON o.contact_id = t.contact_id AND o.id <> t.id "
                   "SET o.is_primary = 0" +
                   id_where + " AND t.is_primary = 1");
    }
  };
  if (action == "get") {
    std::vector<std::string> select = {"id"};
    if (auto* s = p.if_contains("select"); s && s->is_array()) {
      select.clear();
      for (const auto& f : s->get_array()) select.emplace_back(f.as_string());
    }
    std::string cols;
    for (const auto& f : select) cols += (cols.empty() ? "" : ", ") + read_expr(table, f);
    std::string limit;
    if (auto* l = p.if_contains("limit"); l && l->is_int64())
      limit = " LIMIT " + std::to_string(l->get_int64());
    auto rows = c.query("SELECT " + cols + " FROM " + table + " t" + where + limit);
    if (!rows) return api_error(rows.error().message);
    for (const auto& row : rows->rows) {
      json::object o;
      for (std::size_t i = 0; i < select.size(); ++i)
        o[select[i]] = typed(table, select[i], row[i]);
      values.push_back(std::move(o));
    }
  } else if (action == "create" || action == "update") {
    auto* v = p.if_contains("values");
    if (!v || !v->is_object())
      return violation(action + " without values", api_error("values are required"));
    std::string sets;
    for (const auto& [k, val] : v->get_object()) {
      std::string col, err;
      std::string lit = write_expr(c, table, std::string(k), val, &col, &err);
      if (!err.empty()) return api_error(err);
      sets += (sets.empty() ? "" : ", ") + ("`" + col + "` = " + lit);
    }
    if (action == "create") {
      if (auto s =
              c.exec("INSERT INTO " + table + (sets.empty() ? " () VALUES ()" : " SET " + sets));
          !s) {
        return api_error(s.error().message);
      }
      const std::string id = std::to_string(c.last_insert_id());
      derive(" WHERE t.id = " + id);
      values.push_back(json::object{{"id", std::stoll(id)}});
    } else {
      if (!p.contains("where"))
        return violation("update without where", api_error("where is required"));
      auto ids = c.query("SELECT t.id FROM " + table + " t" + where);
      if (!ids) return api_error(ids.error().message);
      if (auto s = c.exec("UPDATE " + table + " t SET " + sets + where); !s)
        return api_error(s.error().message);
      derive(where);
      for (const auto& row : ids->rows) values.push_back(json::object{{"id", std::stoll(*row[0])}});
    }
  } else if (action == "delete") {
    if (!p.contains("where"))
      return violation("delete without where", api_error("where is required"));
    auto ids = c.query("SELECT t.id FROM " + table + " t" + where);
    if (!ids) return api_error(ids.error().message);
    if (auto s = c.exec("DELETE t FROM " + table + " t" + where); !s)
      return api_error(s.error().message);
    for (const auto& row : ids->rows) values.push_back(json::object{{"id", std::stoll(*row[0])}});
  } else {
    return api_error("API (" + entity + ", " + action + ") does not exist");
  }
  const auto n = static_cast<std::int64_t>(values.size());
  return HttpResponse{200, "application/json",
                      json::serialize(json::object{{"values", std::move(values)},
                                                   {"entity", entity},
                                                   {"action", action},
                                                   {"debug", nullptr},
                                                   {"version", 4},
                                                   {"count", n},
                                                   {"countFetched", n}})};
}

}  // namespace civishare::testing
