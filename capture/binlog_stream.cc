#include "capture/binlog_stream.h"

#include <cstdio>

// clang-format off
#include <mysql.h>  // before mariadb_rpl.h
#include <mariadb_rpl.h>
// clang-format on

namespace civishare::binlog {

namespace {
constexpr std::uint8_t kHeartbeat = 27;

std::uint64_t le(const unsigned char* p, int n) {
  std::uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
  return v;
}
}  // namespace

std::vector<std::string> split_gtids(const std::string& position) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at < position.size()) {
    std::size_t comma = position.find(',', at);
    if (comma == std::string::npos) comma = position.size();
    std::string part = position.substr(at, comma - at);
    while (!part.empty() && part.front() == ' ') part.erase(0, 1);
    while (!part.empty() && part.back() == ' ') part.pop_back();
    if (!part.empty()) out.push_back(part);
    at = comma + 1;
  }
  return out;
}

Result<std::map<std::uint32_t, std::uint64_t>> parse_gtid_position(const std::string& position) {
  std::map<std::uint32_t, std::uint64_t> out;
  for (const auto& gtid : split_gtids(position)) {
    unsigned long long d = 0, s = 0, n = 0;
    char tail = 0;
    if (std::sscanf(gtid.c_str(), "%llu-%llu-%llu%c", &d, &s, &n, &tail) != 3 ||
        gtid.find_first_not_of("0123456789-") != std::string::npos || d > 0xffffffffULL) {
      return make_error(Errc::invalid_input,
                        "`" + gtid + "` is not a GTID (domain-server-sequence, e.g. 0-1-42)");
    }
    if (out.count(static_cast<std::uint32_t>(d))) {
      return make_error(Errc::invalid_input, "GTID position `" + position + "` names domain " +
                                                 std::to_string(d) + " twice");
    }
    out[static_cast<std::uint32_t>(d)] = n;
  }
  return out;
}

Result<std::vector<std::string>> check_server(db::Connection& conn) {
  std::vector<std::string> problems;
  auto v = conn.query(
      "SELECT @@global.log_bin, @@global.binlog_format, @@global.binlog_row_image, "
      "@@global.binlog_row_metadata");
  if (!v) return v.error();
  if (v->rows.empty()) return make_error(Errc::database, "cannot read the binlog settings");
  const auto& r = v->rows[0];
  auto is = [](const db::Cell& c, const char* want) { return c && *c == want; };
  if (!is(r[0], "1")) {
    problems.push_back("binary logging is off: start mariadbd with log_bin (and restart it)");
  }
  if (!is(r[1], "ROW")) {
    problems.push_back("binlog_format is " + r[1].value_or("NULL") +
                       ": set binlog_format=ROW (SET GLOBAL binlog_format='ROW' and in my.cnf)");
  }
  if (!is(r[2], "FULL")) {
    problems.push_back("binlog_row_image is " + r[2].value_or("NULL") +
                       ": set binlog_row_image=FULL (before-images of every column are needed)");
  }
  if (!is(r[3], "FULL")) {
    problems.push_back("binlog_row_metadata is " + r[3].value_or("NULL") +
                       ": set binlog_row_metadata=FULL (the column names come from it)");
  }
  auto grants = conn.query("SHOW GRANTS");
  if (!grants) return grants.error();
  bool slave = false, client = false;
  for (const auto& g : grants->rows) {
    const std::string line = g[0].value_or("");
    if (line.find(" ON *.*") == std::string::npos) continue;
    const bool all = line.find("ALL PRIVILEGES") != std::string::npos;
    slave = slave || all || line.find("REPLICATION SLAVE") != std::string::npos;
    client = client || all || line.find("REPLICATION CLIENT") != std::string::npos ||
             line.find("BINLOG MONITOR") != std::string::npos;
  }
  if (!slave) {
    problems.push_back("the user lacks REPLICATION SLAVE: GRANT REPLICATION SLAVE ON *.* TO it");
  }
  if (!client) {
    problems.push_back(
        "the user lacks REPLICATION CLIENT (BINLOG MONITOR): GRANT REPLICATION CLIENT ON *.* TO "
        "it");
  }
  return problems;
}

struct Stream::Rpl {
  MARIADB_RPL* rpl = nullptr;
  MARIADB_RPL_EVENT* event = nullptr;
  std::size_t checksum = 0;  // CRC32 bytes at the end of each event
  ~Rpl() {
    if (event) mariadb_free_rpl_event(event);
    if (rpl) mariadb_rpl_close(rpl);
  }
};

Result<std::unique_ptr<Stream>> Stream::open(const StreamOptions& o) {
  if (o.server_id == 0) {
    return make_error(Errc::invalid_config,
                      "the binlog reader needs a server_id other than 0 (unique among replicas)");
  }
  auto conn = db::Connection::open(o.connection);
  if (!conn) return conn.error();
  std::unique_ptr<Stream> s(new Stream());
  s->owned_ = std::make_unique<db::Connection>(std::move(*conn));
  s->conn_ = s->owned_.get();
  auto checksum = s->conn_->scalar("SELECT @@global.binlog_checksum");
  if (!checksum) return checksum.error();
  for (const std::string& sql :
       {std::string("SET @master_binlog_checksum = @@global.binlog_checksum"),
        std::string("SET @mariadb_slave_capability = 4"),
        "SET @slave_connect_state = " + s->conn_->quote(o.gtid_position),
        std::string("SET @slave_gtid_strict_mode = 0"),
        "SET @master_heartbeat_period = " +
            std::to_string(o.blocking ? static_cast<long long>(o.heartbeat_ms) * 1000000 : 0)}) {
    if (auto r = s->conn_->exec(sql); !r) return r.error();
  }
  for (const auto& gtid : split_gtids(o.gtid_position)) {
    s->gtids_[static_cast<std::uint32_t>(std::stoul(gtid.substr(0, gtid.find('-'))))] = gtid;
  }
  s->rpl_ = std::make_unique<Rpl>();
  s->rpl_->checksum = checksum->value_or("NONE") == "CRC32" ? 4 : 0;
  MARIADB_RPL* rpl = mariadb_rpl_init(s->conn_->native());
  if (!rpl) return make_error(Errc::database, "mariadb_rpl_init failed");
  s->rpl_->rpl = rpl;
  const unsigned flags = o.blocking ? 0 : MARIADB_RPL_BINLOG_DUMP_NON_BLOCK;
  mariadb_rpl_optionsv(rpl, MARIADB_RPL_FILENAME, "", static_cast<size_t>(0));
  mariadb_rpl_optionsv(rpl, MARIADB_RPL_START, static_cast<unsigned long>(4));
  mariadb_rpl_optionsv(rpl, MARIADB_RPL_SERVER_ID, o.server_id);
  mariadb_rpl_optionsv(rpl, MARIADB_RPL_FLAGS, flags);
  if (mariadb_rpl_open(rpl) != 0) {
    return make_error(Errc::database,
                      std::string("cannot start the binlog dump: ") + mariadb_rpl_error(rpl));
  }
  return s;
}

Stream::~Stream() = default;

Result<std::optional<FileEvent>> Stream::next() {
  for (;;) {
    errno = 0;
    MARIADB_RPL_EVENT* ev = mariadb_rpl_fetch(rpl_->rpl, rpl_->event);
    rpl_->event = ev;  // freed by the next fetch (or the destructor)
    if (!ev) {
      MYSQL* m = conn_->native();
      if (mysql_errno(m) == 1236) {
        return make_error(Errc::position_lost, std::string("binlog stream: ") + mysql_error(m) +
                                                   " (MariaDB error 1236)");
      }
      if (mysql_errno(m) != 0) {
        return make_error(Errc::database, std::string("binlog stream: ") + mysql_error(m) +
                                              " (MariaDB error " + std::to_string(mysql_errno(m)) +
                                              ")");
      }
      return std::optional<FileEvent>{};  // end of a non-blocking stream
    }
    // raw_data holds the event from its common header on (after the packet's OK byte in some
    // library versions: find the header by its type byte).
    const auto* raw = ev->raw_data;
    std::size_t size = ev->raw_data_size;
    std::size_t start = 0;
    if (size >= 20 && raw[0] == 0 && raw[5] == static_cast<unsigned char>(ev->event_type))
      start = 1;
    if (size < start + 19) return make_error(Errc::database, "binlog stream: event too short");
    const unsigned char* header = raw + start;
    const auto type = header[4];
    const auto server_id = static_cast<std::uint32_t>(le(header + 5, 4));
    const std::size_t event_size = static_cast<std::size_t>(le(header + 9, 4));
    if (event_size < 19 || start + event_size > size) {
      return make_error(Errc::database, "binlog stream: event size does not match its packet");
    }
    if (type == kHeartbeat) return std::optional<FileEvent>{};
    std::size_t body = event_size - 19;
    // The format description carries its checksum like every other event once checksums are on.
    if (body < rpl_->checksum) return make_error(Errc::database, "binlog stream: event too short");
    body -= rpl_->checksum;
    FileEvent out{type, std::string(reinterpret_cast<const char*>(header + 19), body),
                  static_cast<std::uint32_t>(le(header, 4))};
    if (type == kGtid && out.body.size() >= 12) {
      const auto* b = reinterpret_cast<const unsigned char*>(out.body.data());
      const auto seq = le(b, 8);
      const auto domain = static_cast<std::uint32_t>(le(b + 8, 4));
      last_gtid_ =
          std::to_string(domain) + "-" + std::to_string(server_id) + "-" + std::to_string(seq);
      gtids_[domain] = last_gtid_;
    }
    return std::optional<FileEvent>{std::move(out)};
  }
}

std::string Stream::gtid_position() const {
  std::string out;
  for (const auto& [domain, gtid] : gtids_) out += (out.empty() ? "" : ",") + gtid;
  return out;
}

}  // namespace civishare::binlog
