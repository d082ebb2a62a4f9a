#include "agent/agent.h"

#include <unistd.h>
#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

#include "agent/metrics.h"
#include "agent/status_page.h"
#include "appliers/apiv4_applier.h"
#include "appliers/sql_applier.h"
#include "capture/binlog_source.h"
#include "capture/binlog_stream.h"
#include "capture/log_table_source.h"
#include "schemas/db/civishare_tables.h"
#include "schemas/log.h"
#include "transport/http_sender.h"
#include "transport/receiver.h"

namespace civishare {

namespace {

using Clock = std::chrono::steady_clock;

// Wakes sleeping loops early: on stop, on new outbox records, on new inbox entries.
class Signal {
 public:
  void notify() {
    {
      std::lock_guard lock(mu_);
      ++generation_;
    }
    cv_.notify_all();
  }
  // Waits up to `ms` or until notified after `seen`; returns the current generation.
  std::uint64_t wait(std::uint64_t seen, int ms, const std::atomic<bool>& stop) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(ms),
                 [&] { return generation_ != seen || stop.load(); });
    return generation_;
  }
  std::uint64_t generation() {
    std::lock_guard lock(mu_);
    return generation_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t generation_ = 0;
};

// Exponential backoff with jitter, 0.5 s to 30 s.
int backoff_ms(int failures) {
  static thread_local std::mt19937 rng{std::random_device{}()};
  int cap = std::min(30000, 500 << std::min(failures, 6));
  return std::uniform_int_distribution<int>(cap / 2, cap)(rng);
}

// Every type some peer receives from us, parents before children.
std::vector<const TypeDefinition*> captured_types(const Config& c) {
  std::vector<const TypeDefinition*> out;
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& def : c.types.all()) {
      if (static_cast<bool>(def.parent) != (pass == 1)) continue;
      bool wanted = false;
      for (const auto& p : c.peers) {
        for (const auto& t : p.outgoing) wanted = wanted || t == def.type;
      }
      if (wanted) out.push_back(&def);
    }
  }
  return out;
}

Result<db::Connection> connect(const Config& c) {
  return db::Connection::open(c.connection_options());
}

// The configured capture source. `follow`: the binlog source waits for new events (the daemon);
// without, it stops at the end of the binlog (run --once, replay, snapshot).
Result<std::unique_ptr<CaptureSource>> open_source(const Config& c, Store& store,
                                                   std::vector<const TypeDefinition*> types,
                                                   bool follow = false) {
  if (c.capture.source == "binlog") {
    BinlogOptions b;
    b.node = c.node.name;
    b.schema = c.database.schema;
    b.types = std::move(types);
    b.registry = &c.types;
    b.server_id = static_cast<unsigned>(c.capture.server_id);
    b.follow = follow;
    b.max_pending_bytes = static_cast<std::size_t>(c.capture.max_pending_mb) << 20;
    auto source = BinlogSource::open(std::move(b), c.connection_options(), store);
    if (!source) return source.error();
    return std::unique_ptr<CaptureSource>(std::move(*source));
  }
  LogTableOptions o;
  o.node = c.node.name;
  o.log_schema = c.database.log_schema;
  o.types = std::move(types);
  o.registry = &c.types;
  o.fallback_lag_s = c.capture.fallback_lag_s;
  o.reread_horizon_s = c.capture.reread_horizon_s;
  o.reread_interval_s = c.capture.reread_interval_s;
  o.max_pending_image_bytes = static_cast<std::size_t>(c.capture.max_pending_mb) << 20;
  if (c.applier.kind == "apiv4") o.api_contact_id = c.applier.contact_id;
  auto source = LogTableSource::open(std::move(o), c.connection_options(), store);
  if (!source) return source.error();
  return LogTableSource::as_capture_source(std::move(*source));
}

// A number the agent stored itself; nullopt if the store holds anything else (never throws).
std::optional<std::int64_t> stored_number(const Result<std::optional<std::string>>& value) {
  if (!value || !*value) return std::nullopt;
  std::int64_t n = 0;
  const std::string& s = **value;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return n;
}

const char* cursor_name(const Config& c) {
  return c.capture.source == "binlog" ? BinlogSource::kCursorName : LogTableSource::kCursorName;
}

// Seconds the capture cursor is behind now, when known.
std::optional<std::int64_t> capture_lag(const Config& c, Store& store, std::int64_t now) {
  if (c.capture.source == "binlog") {
    auto at = stored_number(store.cursor(BinlogSource::kCursorTimeName));
    if (!at) return std::nullopt;
    return now - *at;
  }
  auto cur = store.cursor(LogTableSource::kCursorName);
  if (!cur || !*cur) return std::nullopt;
  auto w = LogTableSource::parse_cursor(**cur);
  if (!w) return std::nullopt;
  return now - *w;
}

}  // namespace

Agent::Agent(Config config) : config_(std::move(config)) {}
Agent::~Agent() = default;

Status Agent::open(bool read_only) {
  if (read_only) {
    auto store = Store::open_read_only(config_.node.data_dir);
    if (!store) return store.error();
    store_ = std::move(*store);
    return ok_status();
  }
  std::error_code ec;
  std::filesystem::create_directories(config_.node.data_dir, ec);
  if (ec) {
    return make_error(Errc::storage,
                      "cannot create node.data_dir " + config_.node.data_dir + ": " + ec.message());
  }
  auto store = Store::open(config_.node.data_dir);
  if (!store) return store.error();
  store_ = std::move(*store);
  store_->set_min_free_bytes(static_cast<std::uint64_t>(config_.node.min_free_mb) << 20);
  return ok_status();
}

Result<std::string> Agent::cursor() {
  auto c = store_->cursor(cursor_name(config_));
  if (!c) return c.error();
  if (!*c) return make_error(Errc::not_found, "no cursor yet: run `civishare init` first");
  return **c;
}

namespace {

// One finding of the database checks shared by `init` and `check`.
struct Finding {
  bool problem = false;
  std::string what;
  std::string fix;      // what to do about it
  std::string fix_sql;  // SQL that fixes it, when there is one (init --add-indexes runs these)
};

Result<std::vector<Finding>> database_findings(const Config& c, db::Connection& conn) {
  std::vector<Finding> out;
  const std::string log_schema =
      c.database.log_schema.empty() ? c.database.schema : c.database.log_schema;
  for (const char* table : {"civishare_idmap", "civishare_applied"}) {
    auto exists =
        conn.scalar("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = " +
                    conn.quote(c.database.schema) + " AND TABLE_NAME = " + conn.quote(table));
    if (!exists) return exists.error();
    if (exists->value_or("0") == "0") {
      out.push_back({true, std::string(table) + " is missing", "run `civishare init`", ""});
    }
  }
  if (c.capture.source == "binlog") {
    auto problems = binlog::check_server(conn);
    if (!problems) return problems.error();
    for (const auto& p : *problems) {
      const auto colon = p.find(": ");
      out.push_back(
          {true, p.substr(0, colon), colon == std::string::npos ? "" : p.substr(colon + 2), ""});
    }
    if (problems->empty()) {
      out.push_back({false,
                     "binlog: ROW format, FULL row image and metadata, replication grants in place",
                     "", ""});
    }
    return out;  // the log tables are not used
  }
  auto trx = conn.query("SELECT COUNT(*) FROM information_schema.INNODB_TRX");
  if (trx) {
    out.push_back({false, "PROCESS privilege granted: the capture watermark is exact", "", ""});
  } else {
    out.push_back({true,
                   "no PROCESS privilege: capture falls back to a fixed lag of " +
                       std::to_string(c.capture.fallback_lag_s) +
                       " s and can miss rows of transactions longer than that",
                   "GRANT PROCESS ON *.* TO '" + c.database.user + "'@'<host>'", ""});
  }
  for (const auto* def : captured_types(c)) {
    auto engine =
        conn.scalar("SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = " +
                    conn.quote(log_schema) + " AND TABLE_NAME = " + conn.quote(def->log_table()));
    if (!engine) return engine.error();
    if (!*engine) {
      out.push_back({true, log_schema + "." + def->log_table() + " does not exist",
                     "enable CiviCRM's detailed logging (Administer > System Settings > Misc), or "
                     "set database.log_schema if CIVICRM_LOGGING_DSN points elsewhere",
                     ""});
      continue;
    }
    if (**engine != "InnoDB") {
      out.push_back({true,
                     def->log_table() + " uses the " + **engine +
                         " engine: not transactional, so rolled-back changes still appear "
                         "and the table cannot be indexed",
                     "migrate it with `cv api3 System.updatelogtables forceEngineMigration=1`",
                     ""});
    }
    auto triggers = conn.scalar(
        "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = " +
        conn.quote(c.database.schema) + " AND EVENT_OBJECT_TABLE = " + conn.quote(def->table) +
        " AND ACTION_STATEMENT LIKE " + conn.quote("%" + def->log_table() + "%"));
    if (!triggers) return triggers.error();
    if (triggers->value_or("0") != "3") {
      out.push_back({true,
                     def->table + " has " + triggers->value_or("0") +
                         " of 3 logging triggers: changes to it are not logged",
                     "rebuild them with `cv api4 System.flush triggers=1`", ""});
    }
    auto indexed =
        conn.scalar("SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = " +
                    conn.quote(log_schema) + " AND TABLE_NAME = " + conn.quote(def->log_table()) +
                    " AND COLUMN_NAME = 'log_date' AND SEQ_IN_INDEX = 1");
    if (!indexed) return indexed.error();
    if (indexed->value_or("0") == "0" && **engine == "InnoDB") {
      out.push_back(
          {true, def->log_table() + " has no index on log_date: every poll scans the whole table",
           "run `civishare init --add-indexes`",
           "ALTER TABLE " + db::Connection::quote_identifier(log_schema) + "." +
               db::Connection::quote_identifier(def->log_table()) +
               " ADD INDEX civishare_log_date (log_date)"});
    } else if (**engine == "InnoDB") {
      out.push_back(
          {false, def->log_table() + ": InnoDB, 3 triggers, indexed on log_date", "", ""});
    }
  }
  return out;
}

}  // namespace

Status Agent::init(bool add_indexes) {
  auto conn = connect(config_);
  if (!conn) return conn.error();
  for (const auto& ddl : db::civishare_table_ddl()) {
    if (auto s = conn->exec(ddl); !s) return s.error();
  }
  log_info("init", "civishare_idmap and civishare_applied are in place");
  auto findings = database_findings(config_, *conn);
  if (!findings) return findings.error();
  for (const auto& f : *findings) {
    if (!f.problem) continue;
    if (add_indexes && !f.fix_sql.empty()) {
      if (auto s = conn->exec(f.fix_sql); !s) return s.error();
      log_info("init", "fixed: " + f.what);
    } else {
      log_warn("init",
               f.what + "; " + f.fix + (f.fix_sql.empty() ? "" : " (or: " + f.fix_sql + ")"));
    }
  }
  auto source = open_source(config_, *store_, captured_types(config_));
  if (!source) return source.error();
  auto w = (*source)->ensure_cursor();
  if (!w) return w.error();
  log_info("init", "capture starts at cursor " + *w);
  return ok_status();
}

Result<bool> Agent::check() {
  bool problems = false;
  auto print = [&](const Finding& f) {
    problems = problems || f.problem;
    std::printf("%s %s\n", f.problem ? "PROBLEM" : "ok     ", f.what.c_str());
    if (f.problem && !f.fix.empty()) std::printf("        fix: %s\n", f.fix.c_str());
  };
  print({false,
         "configuration is valid (node " + config_.node.name + ", " +
             std::to_string(config_.peers.size()) + " peer(s))",
         "", ""});
  auto conn = connect(config_);
  if (!conn) {
    print({true, conn.error().message, "check [database] and that MariaDB is running", ""});
    return !problems;
  }
  print({false, "database reachable", "", ""});
  auto findings = database_findings(config_, *conn);
  if (!findings) return findings.error();
  for (const auto& f : *findings) print(f);
  // Peers: reachable, the secret accepted, and which of our types each takes.
  // HttpSender needs a store; the hello touches none of it, so a throw-away one will do.
  const std::string scratch =
      (std::filesystem::temp_directory_path() / ("civishare-check-" + std::to_string(::getpid())))
          .string();
  std::filesystem::create_directories(scratch);
  auto scratch_store = Store::open(scratch);
  if (!scratch_store) {
    print({true, "cannot check peers: " + scratch_store.error().message, "", ""});
    return !problems;
  }
  for (const auto& link : config_.links()) {
    HttpSender sender(config_.node.name, link, **scratch_store);
    auto accepts = sender.hello();
    if (!accepts) {
      print({true, "peer " + link.name + ": " + accepts.error().message,
             "check peer.url, that the peer runs, and that both sides have the same secret", ""});
      continue;
    }
    std::string sends;
    for (const auto& t : link.outgoing) {
      if (std::find(accepts->begin(), accepts->end(), t) != accepts->end())
        sends += (sends.empty() ? "" : ", ") + t;
    }
    print({false,
           "peer " + link.name + " reachable; it takes " + (sends.empty() ? "nothing" : sends) +
               " of what we send",
           "", ""});
  }
  scratch_store->reset();
  std::error_code ec;
  std::filesystem::remove_all(scratch, ec);
  return !problems;
}

Result<std::size_t> Agent::replay(const std::string& from, const std::string& to, bool dry_run) {
  if (to.empty()) {
    if (auto current = cursor(); !current) return current.error();
  }
  auto source = open_source(config_, *store_, captured_types(config_));
  if (!source) return source.error();
  auto changes = (*source)->replay(from, to, dry_run);
  if (!changes) return changes.error();
  if (dry_run) {
    for (const auto& c : *changes) std::printf("%s\n", boost::json::serialize(to_json(c)).c_str());
  }
  return changes->size();
}

Result<std::size_t> Agent::snapshot(const std::string& type, const std::string& peer,
                                    bool reset_cursor) {
  std::vector<const TypeDefinition*> types;
  for (const auto* def : captured_types(config_)) {
    if (type.empty() || def->type == type) types.push_back(def);
  }
  if (types.empty()) {
    return make_error(Errc::invalid_input,
                      type.empty()
                          ? "no peer receives any type from this node"
                          : "`" + type + "` is not a type any peer receives from this node");
  }
  if (!peer.empty()) {
    bool known = false;
    for (const auto& p : config_.peers) known = known || p.name == peer;
    if (!known) return make_error(Errc::invalid_input, "`" + peer + "` is not a [[peer]]");
  }
  auto source = open_source(config_, *store_, captured_types(config_));
  if (!source) return source.error();
  if (reset_cursor) {  // first: what changes while the snapshot reads is captured after it
    auto moved = (*source)->reset_cursor();
    if (!moved) return moved.error();
  }
  return (*source)->snapshot(types, peer);
}

namespace {

// What is stuck, one sentence each; empty = healthy (GET /healthz).
std::vector<std::string> health(const boost::json::object& status, const Metrics& m, bool capturing,
                                int poll_interval_ms) {
  std::vector<std::string> out;
  const std::int64_t now = unix_now();
  const std::int64_t stale = std::max<std::int64_t>(15, 10 * poll_interval_ms / 1000);
  if (capturing && m.capture.failing()) {
    out.push_back("capture is failing: " + m.capture.last_error());
  } else if (capturing && m.capture.last_ok_at > 0 && now - m.capture.last_ok_at > stale) {
    out.push_back("capture has not completed a poll for " +
                  std::to_string(now - m.capture.last_ok_at) + " s");
  }
  for (const auto& pv : status.at("peers").as_array()) {
    const auto& p = pv.as_object();
    if (p.at("failing").as_bool()) {
      out.push_back("link to " + std::string(p.at("name").as_string()) + " is down (" +
                    std::to_string(p.at("queued").to_number<std::int64_t>()) + " queued, oldest " +
                    std::to_string(p.at("oldest_queued_age_s").to_number<std::int64_t>()) +
                    " s): " + std::string(p.at("last_error").as_string()));
    }
  }
  if (m.applier.failing()) {
    out.push_back("applier is failing (" +
                  std::to_string(status.at("inbox").to_number<std::int64_t>()) +
                  " waiting in the inbox): " + m.applier.last_error());
  }
  return out;
}

// What `civishare status --json`, /status.json and /metrics report. Reads the store (and the
// database for the apply counts, when reachable).
Result<boost::json::object> status_object(const Config& config, Store& store) {
  namespace json = boost::json;
  const std::int64_t now = unix_now();
  json::object out;
  out["node"] = config.node.name;
  out["capture_source"] = config.capture.source;
  auto cur = store.cursor(cursor_name(config));
  if (!cur) return cur.error();
  out["cursor"] = cur->value_or("");
  if (auto lag = capture_lag(config, store, now)) out["capture_lag_s"] = *lag;
  if (config.capture.source == "binlog") {
    // How long until the server's binlog expiry would purge the binlog the cursor is in.
    auto expire = stored_number(store.cursor(BinlogSource::kExpiryName));
    auto at = stored_number(store.cursor(BinlogSource::kCursorTimeName));
    if (expire && at) {
      out["binlog_expire_s"] = *expire;
      if (*expire > 0) out["binlog_retention_headroom_s"] = *expire - (now - *at);
    }
  }
  out["inbox"] = store.inbox_size();
  auto loops = store.counter(Store::kLoopsDropped);
  if (!loops) return loops.error();
  out["loops_dropped"] = *loops;
  if (auto conn = connect(config)) {
    auto counts = conn->query("SELECT outcome, COUNT(*) FROM civishare_applied GROUP BY outcome");
    if (counts) {
      for (const char* k : {"applied", "unchanged", "refused"}) out[k] = 0;
      for (const auto& r : counts->rows) {
        if (r[0] && r[1] && out.contains(*r[0])) out[*r[0]] = std::stoll(*r[1]);
      }
    }
    auto conflicts = conn->query(
        "SELECT COUNT(*), COALESCE(SUM(resolution = 'held'), 0) FROM civishare_conflict");
    if (conflicts && !conflicts->rows.empty()) {
      out["conflicts"] = std::stoll(conflicts->rows[0][0].value_or("0"));
      out["conflicts_held_for_review"] = std::stoll(conflicts->rows[0][1].value_or("0"));
    }
  } else {
    out["database_error"] = conn.error().message;
  }
  json::array peers;
  for (const auto& link : config.links()) {
    auto st = store.peer_state(link.name);
    if (!st) return st.error();
    // Before the first hello, count what our side would send.
    std::vector<std::string> accepts =
        st->negotiated ? st->accepts
                       : std::vector<std::string>(link.outgoing.begin(), link.outgoing.end());
    std::string filter;  // what peer_gets looks at besides the entry
    for (const auto& t : link.outgoing) filter += t + ",";
    filter += "|";
    for (const auto& t : accepts) filter += t + ",";
    auto backlog = store.backlog(link.name, filter,
                                 [&](const OutboxEntry& e) { return peer_gets(link, accepts, e); });
    if (!backlog) return backlog.error();
    json::array sends, receives;
    for (const auto& t : link.outgoing) {
      if (std::find(accepts.begin(), accepts.end(), t) != accepts.end())
        sends.push_back(json::string(t));
    }
    for (const auto& t : link.incoming) receives.push_back(json::string(t));
    json::object p{
        {"name", link.name},
        {"url", link.url},
        {"negotiated", st->negotiated},
        {"sends", std::move(sends)},
        {"receives", std::move(receives)},
        {"queued", backlog->queued},
        {"oldest_queued_age_s", backlog->queued ? now - backlog->oldest_queued_at : 0},
        {"last_success_at",
         st->last_success_at ? json::value(utc_iso(st->last_success_at)) : nullptr},
        {"last_error", st->last_error.empty() ? json::value(nullptr) : json::value(st->last_error)},
        {"last_error_at", st->last_error_at ? json::value(utc_iso(st->last_error_at)) : nullptr},
        {"failing", st->last_error_at > st->last_success_at && backlog->queued > 0}};
    peers.push_back(std::move(p));
  }
  out["peers"] = std::move(peers);
  return out;
}

}  // namespace

int Agent::run(bool once, std::atomic<bool>& stop) {
  const auto& types = config_.types;
  Signal outbox_signal;
  Signal inbox_signal;
  std::atomic<bool> failed{false};
  std::atomic<bool> storage_failed{false};
  std::atomic<bool> position_lost{false};
  std::atomic<bool> peer_unreachable{false};
  std::atomic<bool> finished{false};

  ChangeReceiver receiver(
      config_.node.name, config_.links(), *store_, types, [&] { inbox_signal.notify(); },
      config_.transport.timestamp_tolerance_s);
  ServerOptions server_options;
  server_options.host = config_.receiver.host;
  server_options.port = config_.receiver.port;
  server_options.body_limit = static_cast<std::size_t>(config_.receiver.body_limit_bytes);
  server_options.tls_cert_file = config_.receiver.tls_cert;
  server_options.tls_key_file = config_.receiver.tls_key;
  std::vector<std::string> names;
  for (const auto& pc : config_.peers) names.push_back(pc.name);
  Metrics metrics(names);
  std::mutex lag_mu;
  std::deque<std::pair<std::int64_t, std::int64_t>> lag_history;  // (time, lag), last hour
  const bool capturing = !captured_types(config_).empty();
  auto live_status = [&]() -> Result<boost::json::object> {
    auto out = status_object(config_, *store_);
    if (!out) return out;
    boost::json::array problems;
    for (const auto& h : health(*out, metrics, capturing, config_.capture.poll_interval_ms)) {
      problems.push_back(boost::json::string(h));
    }
    (*out)["health"] = std::move(problems);
    boost::json::array lag;
    {
      std::lock_guard lock(lag_mu);
      for (const auto& [t, l] : lag_history) lag.push_back(boost::json::array{t, l});
    }
    (*out)["lag_history"] = std::move(lag);
    boost::json::array recent;
    for (const auto& line : recent_problems()) recent.push_back(boost::json::string(line));
    (*out)["recent_problems"] = std::move(recent);
    return out;
  };
  auto route = [&](const HttpRequest& r) -> HttpResponse {
    const std::string path = r.target.substr(0, r.target.find('?'));
    const bool ops = path == "/" || path == "/status.json" || path == "/metrics";
    if (ops && !r.from_loopback) {
      return HttpResponse{403, "text/plain",
                          "the status page and metrics are served to loopback clients only\n"};
    }
    if (path == "/healthz" || ops) {
      auto st = live_status();
      if (!st) return HttpResponse{503, "text/plain", st.error().message + "\n"};
      if (path == "/healthz") {
        const auto& problems = st->at("health").as_array();
        std::string body;
        for (const auto& pr : problems) body += std::string(pr.as_string()) + "\n";
        return problems.empty() ? HttpResponse{200, "text/plain", "ok\n"}
                                : HttpResponse{503, "text/plain", body};
      }
      if (path == "/metrics") {
        return HttpResponse{200, "text/plain; version=0.0.4", metrics.render(*st)};
      }
      if (path == "/status.json") {
        return HttpResponse{200, "application/json", boost::json::serialize(*st)};
      }
      return HttpResponse{200, "text/html; charset=utf-8", status_page_html()};
    }
    return receiver.handle(r);
  };
  auto server = HttpServer::start(server_options, route);
  if (!server) {
    log_error("agent", server.error().message);
    return 1;
  }
  log_info("agent", "node `" + config_.node.name + "` receiving on " + config_.receiver.listen);

  const int poll_ms = config_.capture.poll_interval_ms;
  const auto capture_types = captured_types(config_);
  const std::int64_t started = unix_now();
  std::atomic<bool> capture_done{capture_types.empty()};
  Signal capture_signal;  // only ever woken for stop

  std::vector<std::string> peer_names;
  for (const auto& p : config_.peers) peer_names.push_back(p.name);
  auto prune = [&] {
    const auto& t = config_.transport;
    auto dropped = store_->prune(peer_names, t.retention_hours * 3600,
                                 std::max<std::int64_t>(3600, 4 * t.timestamp_tolerance_s),
                                 t.loop_window_days * 86400);
    if (!dropped)
      log_error("agent", "pruning the store: " + dropped.error().message);
    else if (*dropped)
      log_debug("agent", "pruned " + std::to_string(*dropped) + " delivered record(s)");
  };
  auto next_prune = Clock::now();

  std::thread capture_thread([&] {
    std::unique_ptr<CaptureSource> source;
    int failures = 0;
    std::uint64_t seen = 0;
    while (!stop && !capture_done) {
      if (!source) {
        auto opened = open_source(config_, *store_, capture_types, !once);
        if (!opened) {
          log_error("capture", opened.error().message + "; retrying");
          if (once) {
            failed = true;
            break;
          }
          seen = capture_signal.wait(seen, backoff_ms(failures++), stop);
          continue;
        }
        source = std::move(*opened);
      }
      auto r = source->poll();
      if (!r) {
        log_error("capture", r.error().message);
        metrics.capture_errors++;
        metrics.capture.error(unix_now(), r.error().message);
        source.reset();                               // reconnect: the connection may be gone
        if (r.error().code == Errc::position_lost) {  // retrying cannot help: an operator must act
          position_lost = true;
          stop = true;
          break;
        }
        if (once) {
          failed = true;
          break;
        }
        seen = capture_signal.wait(seen, backoff_ms(failures++), stop);
        continue;
      }
      failures = 0;
      metrics.captured += r->records;
      metrics.capture.ok(unix_now());
      if (r->records) outbox_signal.notify();
      if (Clock::now() >= next_prune) {
        prune();
        next_prune = Clock::now() + std::chrono::seconds(60);
      }
      // Catch-up: done once the cursor has passed the moment the run started (log tables) or
      // the end of the binlog.
      if (once && (r->at_head || r->watermark > started)) break;
      // The binlog source waits for events inside poll().
      if (config_.capture.source == "binlog" && !once) continue;
      seen = capture_signal.wait(seen, once ? 200 : poll_ms, stop);
    }
    capture_done = true;
    outbox_signal.notify();
  });

  std::vector<std::thread> senders;
  for (const auto& link : config_.links()) {
    senders.emplace_back([&, link] {
      SenderOptions sender_options;
      sender_options.max_batch_changes =
          static_cast<std::size_t>(config_.transport.max_batch_changes);
      sender_options.max_batch_bytes = static_cast<std::size_t>(config_.transport.max_batch_bytes);
      Metrics::Peer& peer_metrics = *metrics.peers.at(link.name);
      sender_options.on_delivered = [&](const std::vector<std::int64_t>& queued_at) {
        const std::int64_t now = unix_now();
        peer_metrics.sent += queued_at.size();
        for (auto q : queued_at) metrics.capture_to_send.observe(static_cast<double>(now - q));
      };
      HttpSender sender(config_.node.name, link, *store_, sender_options);
      int failures = 0;
      std::string last_error;
      std::uint64_t seen = outbox_signal.generation();
      std::int64_t failing_since = 0;
      bool escalated = false;
      while (!stop) {
        auto r = sender.send_once();
        if (!r) {
          peer_metrics.send_errors++;
          // A peer that is briefly away is normal (restarts, deploys): WARN. One that stays away
          // for a minute needs an operator: ERROR, once.
          if (last_error.empty()) failing_since = unix_now();
          if (r.error().message != last_error) {
            log_warn("sender", r.error().message + " (changes stay queued; retrying with backoff)");
            last_error = r.error().message;
          }
          if (!escalated && unix_now() - failing_since >= 60) {
            log_error("sender", "peer `" + link.name + "` has failed for " +
                                    std::to_string(unix_now() - failing_since) +
                                    " s: " + r.error().message + " (changes stay queued)");
            escalated = true;
          }
          if (once) {
            peer_unreachable = true;
            break;
          }
          seen = outbox_signal.wait(seen, backoff_ms(failures++), stop);
          // Outbox notifications must not cut the backoff short: wait out the rest.
          continue;
        }
        if (!last_error.empty()) {
          log_info("sender", "peer `" + link.name + "` reachable again");
          last_error.clear();
          escalated = false;
        }
        failures = 0;
        if (*r > 0) continue;  // more may be pending
        if (once && capture_done) break;
        seen = outbox_signal.wait(seen, once ? 100 : poll_ms, stop);
      }
    });
  }

  std::thread applier_thread([&] {
    std::unique_ptr<Applier> applier;
    int failures = 0;
    std::uint64_t seen = inbox_signal.generation();
    auto policy_of = [](const std::string& name) {
      return name == "keep_local" ? ConflictPolicy::keep_local
             : name == "review"   ? ConflictPolicy::review
                                  : ConflictPolicy::newer_wins;
    };
    const ConflictPolicy policy = policy_of(config_.applier.conflict_policy);
    std::map<std::string, ConflictPolicy> policy_by_type;
    for (const auto& [type, name] : config_.applier.conflict_policy_by_type)
      policy_by_type[type] = policy_of(name);
    auto matches = [&](const char* rule) {
      const auto& m = config_.applier.match;
      return std::find(m.begin(), m.end(), rule) != m.end();
    };
    while (!stop) {
      if (!applier) {
        auto on_outcome = [&](const InboxEntry& e, ApplyOutcome outcome) {
          switch (outcome) {
            case ApplyOutcome::applied:
              metrics.applied++;
              break;
            case ApplyOutcome::unchanged:
              metrics.unchanged++;
              break;
            case ApplyOutcome::refused:
              metrics.refused++;
              break;
            case ApplyOutcome::already_applied:
              break;
          }
          if (e.received_at) {
            metrics.receive_to_apply.observe(static_cast<double>(unix_now() - e.received_at));
          }
        };
        if (config_.applier.kind == "apiv4") {
          Apiv4ApplierOptions o;
          o.node = config_.node.name;
          o.url = config_.applier.url;
          o.api_key = config_.applier.api_key;
          o.site_key = config_.applier.site_key;
          o.contact_id = config_.applier.contact_id;
          o.conflict_policy = policy;
          o.match_external_identifier = matches("external_identifier");
          o.conflict_policy_by_type = policy_by_type;
          o.on_outcome = on_outcome;
          applier = std::make_unique<Apiv4Applier>(o, *store_, types);
        } else {
          auto conn = connect(config_);
          if (!conn) {
            log_error("applier", conn.error().message + "; received changes stay in the inbox");
            if (once) {
              failed = true;
              break;
            }
            seen = inbox_signal.wait(seen, backoff_ms(failures++), stop);
            continue;
          }
          SqlApplierOptions o;
          o.node = config_.node.name;
          o.conflict_policy = policy;
          o.match_external_identifier = matches("external_identifier");
          o.match_email_last_name = matches("email_last_name");
          o.conflict_policy_by_type = policy_by_type;
          o.on_outcome = on_outcome;
          applier = std::make_unique<SqlApplier>(o, std::move(*conn), *store_, types);
        }
      }
      auto r = applier->apply_pending();
      if (!r) {
        log_error("applier", r.error().message + "; the change stays in the inbox");
        metrics.apply_errors++;
        metrics.applier.error(unix_now(), r.error().message);
        applier.reset();
        if (once) {
          failed = true;
          break;
        }
        seen = inbox_signal.wait(seen, backoff_ms(failures++), stop);
        continue;
      }
      failures = 0;
      metrics.applier.ok(unix_now());
      if (*r > 0) continue;
      if (once) break;
      seen = inbox_signal.wait(seen, poll_ms, stop);
    }
  });

  // Wake every sleeping loop as soon as a stop is requested (signal handlers only set the flag).
  // It also samples the capture lag every 10 s for the status page's chart.
  std::thread stopper([&] {
    auto next_sample = Clock::now();
    while (!stop && !(once && finished)) {
      // A store that failed a write (disk full, I/O error) refuses every later write until it is
      // reopened: stop cleanly and let the service manager start us again (exit code 75).
      if (auto why = store_->write_failure()) {
        log_error("agent", "the store in " + config_.node.data_dir + " cannot write (" + *why +
                               "); stopping with exit code 75 so that a restart reopens it. "
                               "Nothing is lost: what was not written was not acknowledged. "
                               "Free space there; systemd restarts civishare (Restart=on-failure)");
        storage_failed = true;
        stop = true;
        break;
      }
      if (Clock::now() >= next_sample) {
        next_sample = Clock::now() + std::chrono::seconds(10);
        const std::int64_t now = unix_now();
        if (auto lag = capture_lag(config_, *store_, now)) {
          std::lock_guard lock(lag_mu);
          lag_history.emplace_back(now, *lag);
          while (!lag_history.empty() && lag_history.front().first < now - 3600)
            lag_history.pop_front();
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    capture_signal.notify();
    outbox_signal.notify();
    inbox_signal.notify();
  });
  capture_thread.join();
  for (auto& t : senders) t.join();
  applier_thread.join();
  finished = true;
  stopper.join();
  (*server)->stop();
  if (storage_failed) return 75;
  if (position_lost) return 4;
  if (failed) return 1;
  if (peer_unreachable) return 3;
  return 0;
}

}  // namespace civishare

namespace civishare {

Status Agent::status(bool as_json) {
  namespace json = boost::json;
  auto object = status_object(config_, *store_);
  if (!object) return object.error();
  json::object& out = *object;
  if (as_json) {
    std::printf("%s\n", json::serialize(out).c_str());
    return ok_status();
  }
  auto str = [](const json::value& v) {
    return v.is_string() ? std::string(v.get_string()) : json::serialize(v);
  };
  std::printf("node %s, capture %s, cursor %s", config_.node.name.c_str(),
              config_.capture.source.c_str(), str(out["cursor"]).c_str());
  if (out.contains("capture_lag_s"))
    std::printf(" (%s s behind)", str(out["capture_lag_s"]).c_str());
  if (out.contains("binlog_retention_headroom_s")) {
    const std::int64_t h = out["binlog_retention_headroom_s"].to_number<std::int64_t>();
    std::printf("\nbinlog retention headroom: %lld h %02lld min (binlog_expire_logs_seconds %s)%s",
                static_cast<long long>(h / 3600), static_cast<long long>((h % 3600) / 60),
                str(out["binlog_expire_s"]).c_str(),
                h < 3600 ? ": the cursor's binlog is close to being purged" : "");
  } else if (out.contains("binlog_expire_s")) {
    std::printf("\nbinlog retention: binlogs never expire (binlog_expire_logs_seconds 0)");
  }
  std::printf("\ninbox: %s change(s) waiting to be applied\n", str(out["inbox"]).c_str());
  for (const auto& pv : out["peers"].as_array()) {
    const auto& p = pv.as_object();
    auto list = [&](const char* key) {
      std::string s;
      for (const auto& t : p.at(key).as_array()) s += (s.empty() ? "" : ", ") + str(t);
      return s.empty() ? std::string("nothing") : s;
    };
    std::printf("peer %s (%s)\n", str(p.at("name")).c_str(), str(p.at("url")).c_str());
    std::printf("  sends:    %s%s\n", list("sends").c_str(),
                p.at("negotiated").as_bool() ? "" : " (not negotiated yet)");
    std::printf("  receives: %s\n", list("receives").c_str());
    std::printf("  queued:   %s, oldest %s s\n", str(p.at("queued")).c_str(),
                str(p.at("oldest_queued_age_s")).c_str());
    std::printf("  last success: %s\n", str(p.at("last_success_at")).c_str());
    if (!p.at("last_error").is_null()) {
      std::printf("  last error (%s): %s\n", str(p.at("last_error_at")).c_str(),
                  str(p.at("last_error")).c_str());
    }
  }
  return ok_status();
}

}  // namespace civishare
