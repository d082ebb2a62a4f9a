#include "agent/config.h"

#include <sys/stat.h>

#include <toml++/toml.h>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "schemas/builtin_types.h"
#include "schemas/log.h"
#include "schemas/type_definition.h"
#include "transport/webhook.h"

namespace civishare {

namespace {

Error bad(const std::string& key, const std::string& what) {
  return make_error(Errc::invalid_config, "`" + key + "` " + what);
}

// Rejects keys the table does not know, naming the closest contract.
Status only_keys(const toml::table& t, const std::string& where, std::set<std::string> allowed) {
  for (const auto& [k, v] : t) {
    (void)v;
    std::string key(k.str());
    if (!allowed.count(key)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      return bad(where.empty() ? key : where + "." + key,
                 "is not a known key" +
                     (where.empty() ? std::string(" (sections: ") : " (" + where + " takes: ") +
                     list + ")");
    }
  }
  return ok_status();
}

template <typename T>
Status read(const toml::table& t, const std::string& where, const char* key, T& out) {
  const toml::node* n = t.get(key);
  if (!n) return ok_status();
  const std::string full = where + "." + key;
  if constexpr (std::is_same_v<T, std::string>) {
    if (auto v = n->value<std::string>(); v && n->is_string()) {
      out = *v;
      return ok_status();
    }
    return bad(full, "must be a string");
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    const toml::array* a = n->as_array();
    if (!a) return bad(full, "must be a list of strings, e.g. [\"civishare.change.contact.base\"]");
    out.clear();
    for (const auto& item : *a) {
      auto v = item.value<std::string>();
      if (!v || !item.is_string()) return bad(full, "must be a list of strings");
      out.push_back(*v);
    }
    return ok_status();
  } else {
    if (!n->is_integer()) return bad(full, "must be an integer");
    out = static_cast<T>(n->as_integer()->get());
    return ok_status();
  }
}

const toml::table* section(const toml::table& root, const char* name) {
  const toml::node* n = root.get(name);
  return n ? n->as_table() : nullptr;
}

#define CIVISHARE_TRY(expr)     \
  do {                          \
    auto _s = (expr);           \
    if (!_s) return _s.error(); \
  } while (0)

Status check_types(const TypeRegistry& registry, const std::string& key,
                   const std::vector<std::string>& types) {
  for (const auto& t : types) {
    if (!registry.find(t)) {
      std::string known;
      for (const auto& d : registry.all()) known += (known.empty() ? "" : ", ") + d.type;
      return bad(key, "names unknown type `" + t + "` (known: " + known + ")");
    }
  }
  return ok_status();
}

bool valid_url(const std::string& url) {
  static const std::regex re(R"(^https?://[A-Za-z0-9.\-\[\]:]+(:[0-9]{1,5})?(/.*)?$)");
  return std::regex_match(url, re);
}

}  // namespace

db::ConnectionOptions Config::connection_options() const {
  db::ConnectionOptions o;
  o.host = database.host;
  o.port = database.port;
  o.socket = database.socket;
  o.user = database.user;
  o.password = database.password;
  o.schema = database.schema;
  return o;
}

std::vector<PeerLink> Config::links() const {
  std::vector<PeerLink> out;
  for (const auto& p : peers) {
    PeerLink l;
    l.name = p.name;
    l.url = p.url;
    l.key = *webhook::key_from_secret(p.secret);
    l.outgoing = {p.outgoing.begin(), p.outgoing.end()};
    l.incoming = {p.incoming.begin(), p.incoming.end()};
    l.ca_file = p.ca_file;
    out.push_back(std::move(l));
  }
  return out;
}

Result<Config> parse_config(std::string_view text, const std::string& origin) {
  toml::table root;
  try {
    root = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    std::ostringstream where;
    where << e.source().begin;
    return make_error(Errc::invalid_config, origin + ": not valid TOML at " + where.str() + ": " +
                                                std::string(e.description()));
  }
  CIVISHARE_TRY(only_keys(
      root, "",
      {"node", "database", "capture", "receiver", "transport", "applier", "peer", "log"}));
  Config c;

  const toml::table* node = section(root, "node");
  if (!node) return bad("node", "section is missing: add [node] with name and data_dir");
  CIVISHARE_TRY(only_keys(*node, "node", {"name", "data_dir", "min_free_mb"}));
  CIVISHARE_TRY(read(*node, "node", "name", c.node.name));
  CIVISHARE_TRY(read(*node, "node", "data_dir", c.node.data_dir));
  CIVISHARE_TRY(read(*node, "node", "min_free_mb", c.node.min_free_mb));
  if (c.node.min_free_mb < 0) return bad("node.min_free_mb", "must be 0 (off) or more");
  static const std::regex name_re("^[a-z0-9_]{1,16}$");
  if (!std::regex_match(c.node.name, name_re)) {
    return bad("node.name", "must be 1-16 characters of a-z, 0-9 and _, e.g. \"civi1\"");
  }
  if (c.node.data_dir.empty())
    return bad("node.data_dir", "is required, e.g. \"/var/lib/civishare\"");

  const toml::table* dbt = section(root, "database");
  if (!dbt) return bad("database", "section is missing: add [database] with user and password");
  CIVISHARE_TRY(only_keys(
      *dbt, "database",
      {"host", "port", "socket", "user", "password", "password_file", "schema", "log_schema"}));
  int port = c.database.port;
  CIVISHARE_TRY(read(*dbt, "database", "host", c.database.host));
  CIVISHARE_TRY(read(*dbt, "database", "port", port));
  CIVISHARE_TRY(read(*dbt, "database", "socket", c.database.socket));
  CIVISHARE_TRY(read(*dbt, "database", "user", c.database.user));
  CIVISHARE_TRY(read(*dbt, "database", "password", c.database.password));
  CIVISHARE_TRY(read(*dbt, "database", "password_file", c.database.password_file));
  CIVISHARE_TRY(read(*dbt, "database", "schema", c.database.schema));
  CIVISHARE_TRY(read(*dbt, "database", "log_schema", c.database.log_schema));
  if (port < 1 || port > 65535) return bad("database.port", "must be between 1 and 65535");
  c.database.port = static_cast<std::uint16_t>(port);
  if (c.database.user.empty()) return bad("database.user", "is required");
  if (!c.database.password.empty() && !c.database.password_file.empty()) {
    return bad("database.password", "and `database.password_file` are both set: keep one");
  }
  if (!c.database.password_file.empty()) {
    std::ifstream in(c.database.password_file);
    if (!in) return bad("database.password_file", "cannot be read: " + c.database.password_file);
    std::getline(in, c.database.password);
  }
  if (c.database.schema.empty()) return bad("database.schema", "must name the CiviCRM database");

  if (const toml::table* cap = section(root, "capture")) {
    CIVISHARE_TRY(only_keys(*cap, "capture",
                            {"source", "poll_interval_ms", "fallback_lag_s", "reread_horizon_s",
                             "reread_interval_s", "types_dir", "server_id", "max_pending_mb"}));
    CIVISHARE_TRY(read(*cap, "capture", "source", c.capture.source));
    CIVISHARE_TRY(read(*cap, "capture", "poll_interval_ms", c.capture.poll_interval_ms));
    CIVISHARE_TRY(read(*cap, "capture", "fallback_lag_s", c.capture.fallback_lag_s));
    CIVISHARE_TRY(read(*cap, "capture", "reread_horizon_s", c.capture.reread_horizon_s));
    CIVISHARE_TRY(read(*cap, "capture", "reread_interval_s", c.capture.reread_interval_s));
    CIVISHARE_TRY(read(*cap, "capture", "types_dir", c.capture.types_dir));
    CIVISHARE_TRY(read(*cap, "capture", "server_id", c.capture.server_id));
    CIVISHARE_TRY(read(*cap, "capture", "max_pending_mb", c.capture.max_pending_mb));
  }
  if (c.capture.fallback_lag_s < 1) return bad("capture.fallback_lag_s", "must be at least 1");
  if (c.capture.reread_horizon_s < 60)
    return bad("capture.reread_horizon_s", "must be at least 60");
  if (c.capture.reread_interval_s < 1)
    return bad("capture.reread_interval_s", "must be at least 1");
  if (!c.capture.types_dir.empty()) {
    std::vector<std::string> texts = builtin_type_texts();
    std::error_code ec;
    std::filesystem::directory_iterator dir(c.capture.types_dir, ec);
    if (ec) return bad("capture.types_dir", "cannot be read: " + ec.message());
    for (const auto& entry : dir) {
      if (entry.path().extension() != ".json") continue;
      std::ifstream in(entry.path());
      std::stringstream content;
      content << in.rdbuf();
      texts.push_back(content.str());
    }
    auto registry = TypeRegistry::from_texts(texts);
    if (!registry) return bad("capture.types_dir", registry.error().message);
    c.types = std::move(*registry);
  }
  if (c.capture.source == "binlog" &&
      (c.capture.server_id < 1 || c.capture.server_id > 4294967295LL)) {
    return bad("capture.server_id",
               "must be set for capture.source = \"binlog\": a number from 1 to 4294967295, "
               "unique among the server's replicas (and not the server's own server_id)");
  }
  if (c.capture.max_pending_mb < 1 || c.capture.max_pending_mb > 4096)
    return bad("capture.max_pending_mb", "must be between 1 and 4096");
  if (c.capture.source != "log_tables" && c.capture.source != "binlog")
    return bad("capture.source", "must be \"log_tables\" or \"binlog\"");
  if (c.capture.poll_interval_ms < 50 || c.capture.poll_interval_ms > 3600000) {
    return bad("capture.poll_interval_ms", "must be between 50 and 3600000");
  }

  if (const toml::table* rec = section(root, "receiver")) {
    CIVISHARE_TRY(
        only_keys(*rec, "receiver", {"listen", "tls_cert", "tls_key", "body_limit_bytes"}));
    CIVISHARE_TRY(read(*rec, "receiver", "listen", c.receiver.listen));
    CIVISHARE_TRY(read(*rec, "receiver", "tls_cert", c.receiver.tls_cert));
    CIVISHARE_TRY(read(*rec, "receiver", "tls_key", c.receiver.tls_key));
    CIVISHARE_TRY(read(*rec, "receiver", "body_limit_bytes", c.receiver.body_limit_bytes));
  }
  if (c.receiver.tls_cert.empty() != c.receiver.tls_key.empty()) {
    return bad(c.receiver.tls_cert.empty() ? "receiver.tls_cert" : "receiver.tls_key",
               "is missing: HTTPS needs both receiver.tls_cert and receiver.tls_key");
  }
  if (c.receiver.body_limit_bytes < 4096 || c.receiver.body_limit_bytes > (1LL << 30)) {
    return bad("receiver.body_limit_bytes", "must be between 4096 and 1073741824");
  }
  if (const toml::table* tr = section(root, "transport")) {
    CIVISHARE_TRY(only_keys(*tr, "transport",
                            {"max_batch_changes", "max_batch_bytes", "retention_hours",
                             "timestamp_tolerance_s", "loop_window_days"}));
    CIVISHARE_TRY(read(*tr, "transport", "max_batch_changes", c.transport.max_batch_changes));
    CIVISHARE_TRY(read(*tr, "transport", "max_batch_bytes", c.transport.max_batch_bytes));
    CIVISHARE_TRY(read(*tr, "transport", "retention_hours", c.transport.retention_hours));
    CIVISHARE_TRY(
        read(*tr, "transport", "timestamp_tolerance_s", c.transport.timestamp_tolerance_s));
    CIVISHARE_TRY(read(*tr, "transport", "loop_window_days", c.transport.loop_window_days));
  }
  if (c.transport.max_batch_changes < 1 || c.transport.max_batch_changes > 10000) {
    return bad("transport.max_batch_changes", "must be between 1 and 10000");
  }
  if (c.transport.max_batch_bytes < 4096)
    return bad("transport.max_batch_bytes", "must be at least 4096");
  if (c.transport.retention_hours < 0) return bad("transport.retention_hours", "must be 0 or more");
  if (c.transport.timestamp_tolerance_s < 10 || c.transport.timestamp_tolerance_s > 86400) {
    return bad("transport.timestamp_tolerance_s", "must be between 10 and 86400");
  }
  if (c.transport.loop_window_days < 1)
    return bad("transport.loop_window_days", "must be at least 1");
  {} {
    static const std::regex listen_re(R"(^([0-9.]+|\[[0-9a-fA-F:]+\]):([0-9]{1,5})$)");
    std::smatch m;
    if (!std::regex_match(c.receiver.listen, m, listen_re) || std::stoi(m[2]) > 65535) {
      return bad("receiver.listen", "must be IP:port, e.g. \"127.0.0.1:7800\"");
    }
    c.receiver.host = m[1];
    if (c.receiver.host.front() == '[')
      c.receiver.host = c.receiver.host.substr(1, c.receiver.host.size() - 2);
    c.receiver.port = static_cast<std::uint16_t>(std::stoi(m[2]));
  }

  if (const toml::table* lg = section(root, "log")) {
    CIVISHARE_TRY(only_keys(*lg, "log", {"level", "format"}));
    CIVISHARE_TRY(read(*lg, "log", "level", c.log.level));
    CIVISHARE_TRY(read(*lg, "log", "format", c.log.format));
  }
  if (c.log.level != "debug" && c.log.level != "info" && c.log.level != "warn" &&
      c.log.level != "error") {
    return bad("log.level", "must be \"debug\", \"info\", \"warn\" or \"error\"");
  }
  if (c.log.format != "text" && c.log.format != "json")
    return bad("log.format", "must be \"text\" or \"json\"");
  if (const toml::table* app = section(root, "applier")) {
    CIVISHARE_TRY(only_keys(*app, "applier",
                            {"kind", "url", "api_key", "site_key", "contact_id", "conflict_policy",
                             "conflict_policy_by_type", "match"}));
    CIVISHARE_TRY(read(*app, "applier", "conflict_policy", c.applier.conflict_policy));
    CIVISHARE_TRY(read(*app, "applier", "match", c.applier.match));
    if (const toml::node* by = app->get("conflict_policy_by_type")) {
      const toml::table* t = by->as_table();
      if (!t) {
        return bad("applier.conflict_policy_by_type",
                   "must be a table, e.g. { \"civishare.change.contact.email\" = \"keep_local\" }");
      }
      for (const auto& [k, v] : *t) {
        auto policy = v.value<std::string>();
        if (!policy) return bad("applier.conflict_policy_by_type", "values must be policy names");
        c.applier.conflict_policy_by_type[std::string(k.str())] = *policy;
      }
    }
    CIVISHARE_TRY(read(*app, "applier", "kind", c.applier.kind));
    CIVISHARE_TRY(read(*app, "applier", "url", c.applier.url));
    CIVISHARE_TRY(read(*app, "applier", "api_key", c.applier.api_key));
    CIVISHARE_TRY(read(*app, "applier", "site_key", c.applier.site_key));
    CIVISHARE_TRY(read(*app, "applier", "contact_id", c.applier.contact_id));
  }
  if (c.applier.kind == "apiv4") {
    if (!valid_url(c.applier.url)) {
      return bad("applier.url",
                 "must be the APIv4 REST base, e.g. "
                 "`https://civi1.example.org/civicrm/ajax/api4`");
    }
    if (c.applier.api_key.empty())
      return bad("applier.api_key", "is required for kind = \"apiv4\"");
    if (c.applier.site_key.empty())
      return bad("applier.site_key", "is required for kind = \"apiv4\"");
    if (c.applier.contact_id <= 0) {
      return bad("applier.contact_id",
                 "must be the id of the API contact (its writes are recognised "
                 "as CiviShare's own by their log_user_id)");
    }
  } else if (c.applier.kind != "sql") {
    return bad("applier.kind", "must be \"sql\" or \"apiv4\"");
  }
  if (c.applier.kind == "apiv4" && c.capture.source == "binlog") {
    return bad("capture.source",
               "= \"binlog\" needs applier.kind = \"sql\": the binlog shows the APIv4 "
               "applier's writes without anything that marks them as CiviShare's own, so they "
               "would travel back as new changes; use capture.source = \"log_tables\" with it");
  }
  auto valid_policy = [](const std::string& p) {
    return p == "newer_wins" || p == "keep_local" || p == "review";
  };
  if (!valid_policy(c.applier.conflict_policy)) {
    return bad("applier.conflict_policy", "must be \"newer_wins\", \"keep_local\" or \"review\"");
  }
  for (const auto& [type, policy] : c.applier.conflict_policy_by_type) {
    if (!c.types.find(type))
      return bad("applier.conflict_policy_by_type", "names unknown type `" + type + "`");
    if (!valid_policy(policy)) {
      return bad("applier.conflict_policy_by_type." + type,
                 "must be \"newer_wins\", \"keep_local\" or \"review\"");
    }
  }
  for (const auto& rule : c.applier.match) {
    if (rule != "external_identifier" && rule != "email_last_name") {
      return bad(
          "applier.match",
          "rules are \"external_identifier\" and \"email_last_name\" (`[]` = always create)");
    }
  }

  if (const toml::node* peers = root.get("peer")) {
    const toml::array* arr = peers->as_array();
    if (!arr) return bad("peer", "must be written as [[peer]] sections");
    std::set<std::string> names;
    for (std::size_t i = 0; i < arr->size(); ++i) {
      const std::string where = "peer[" + std::to_string(i) + "]";
      const toml::table* pt = (*arr)[i].as_table();
      if (!pt) return bad(where, "must be a [[peer]] section");
      CIVISHARE_TRY(
          only_keys(*pt, where, {"name", "url", "secret", "outgoing", "incoming", "ca_file"}));
      Config::Peer p;
      CIVISHARE_TRY(read(*pt, where, "name", p.name));
      CIVISHARE_TRY(read(*pt, where, "url", p.url));
      CIVISHARE_TRY(read(*pt, where, "secret", p.secret));
      CIVISHARE_TRY(read(*pt, where, "outgoing", p.outgoing));
      CIVISHARE_TRY(read(*pt, where, "incoming", p.incoming));
      CIVISHARE_TRY(read(*pt, where, "ca_file", p.ca_file));
      if (!std::regex_match(p.name, name_re)) {
        return bad(where + ".name", "must be the peer's node.name (1-16 of a-z, 0-9, _)");
      }
      if (p.name == c.node.name) return bad(where + ".name", "is this node's own name");
      if (!names.insert(p.name).second)
        return bad(where + ".name", "`" + p.name + "` is listed twice");
      if (!valid_url(p.url)) {
        return bad(where + ".url",
                   "must include a scheme and host, e.g. `https://civi2.example.org:7800`");
      }
      if (p.secret.empty())
        return bad(where + ".secret", "is required; make one with `civishare secret`");
      if (auto k = webhook::key_from_secret(p.secret); !k)
        return bad(where + ".secret", k.error().message);
      if (p.secret.find("EXAMPLE0EXAMPLE0") != std::string::npos) {
        return bad(where + ".secret",
                   "is the example from the documentation: make a real one with "
                   "`civishare secret` and put the same on both sides");
      }
      CIVISHARE_TRY(check_types(c.types, where + ".outgoing", p.outgoing));
      CIVISHARE_TRY(check_types(c.types, where + ".incoming", p.incoming));
      c.peers.push_back(std::move(p));
    }
  }
  return c;
}

Result<Config> load_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) return make_error(Errc::invalid_config, "cannot read config file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & S_IROTH)) {
    log_warn("config", path + " is world-readable and holds secrets: chmod 600 it");
  }
  return parse_config(ss.str(), path);
}

}  // namespace civishare
