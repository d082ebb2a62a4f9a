#include "schemas/db/mariadb.h"

#include <mysql.h>

namespace civishare::db {

int Rows::index(std::string_view name) const {
  for (std::size_t i = 0; i < columns.size(); ++i) {
    if (columns[i] == name) return static_cast<int>(i);
  }
  return -1;
}

Connection::Connection(MYSQL* handle) : handle_(handle) {}
Connection::Connection(Connection&& other) noexcept
    : handle_(other.handle_),
      affected_rows_(other.affected_rows_),
      last_insert_id_(other.last_insert_id_) {
  other.handle_ = nullptr;
}
Connection& Connection::operator=(Connection&& other) noexcept {
  if (this != &other) {
    if (handle_) mysql_close(handle_);
    handle_ = other.handle_;
    affected_rows_ = other.affected_rows_;
    last_insert_id_ = other.last_insert_id_;
    other.handle_ = nullptr;
  }
  return *this;
}
Connection::~Connection() {
  if (handle_) mysql_close(handle_);
}

Result<Connection> Connection::open(const ConnectionOptions& o) {
  MYSQL* h = mysql_init(nullptr);
  if (!h) return make_error(Errc::database, "out of memory creating a MariaDB handle");
  mysql_options(h, MYSQL_OPT_CONNECT_TIMEOUT, &o.connect_timeout_s);
  mysql_options(h, MYSQL_OPT_READ_TIMEOUT, &o.read_timeout_s);
  mysql_options(h, MYSQL_OPT_WRITE_TIMEOUT, &o.read_timeout_s);
  mysql_options(h, MYSQL_SET_CHARSET_NAME, "utf8mb4");
  const char* host = o.socket.empty() ? o.host.c_str() : "localhost";
  if (!mysql_real_connect(h, host, o.user.c_str(), o.password.c_str(),
                          o.schema.empty() ? nullptr : o.schema.c_str(), o.port,
                          o.socket.empty() ? nullptr : o.socket.c_str(), CLIENT_MULTI_RESULTS)) {
    std::string where = o.socket.empty() ? o.host + ":" + std::to_string(o.port) : o.socket;
    Error e = make_error(Errc::database, "cannot connect to MariaDB at " + where + " as `" +
                                             o.user + "`: " + mysql_error(h));
    mysql_close(h);
    return e;
  }
  Connection c(h);
  if (auto s = c.exec("SET time_zone = '+00:00'"); !s) return s.error();
  return c;
}

Error Connection::error(std::string_view what) const {
  std::string sql(what.substr(0, 200));
  return make_error(Errc::database, std::string(mysql_error(handle_)) + " (MariaDB error " +
                                        std::to_string(mysql_errno(handle_)) + ") in: " + sql);
}

Status Connection::exec(std::string_view sql) {
  if (mysql_real_query(handle_, sql.data(), sql.size()) != 0) return error(sql);
  // Read these now: draining the results below resets them.
  affected_rows_ = mysql_affected_rows(handle_);
  last_insert_id_ = mysql_insert_id(handle_);
  // Drain any result so the connection stays usable.
  do {
    if (MYSQL_RES* res = mysql_store_result(handle_)) mysql_free_result(res);
  } while (mysql_next_result(handle_) == 0);
  if (mysql_errno(handle_) != 0) return error(sql);
  return ok_status();
}

Result<Rows> Connection::query(std::string_view sql) {
  if (mysql_real_query(handle_, sql.data(), sql.size()) != 0) return error(sql);
  MYSQL_RES* res = mysql_store_result(handle_);
  if (!res) {
    if (mysql_field_count(handle_) != 0) return error(sql);
    return Rows{};
  }
  Rows out;
  unsigned n = mysql_num_fields(res);
  MYSQL_FIELD* fields = mysql_fetch_fields(res);
  for (unsigned i = 0; i < n; ++i) out.columns.emplace_back(fields[i].name);
  while (MYSQL_ROW row = mysql_fetch_row(res)) {
    unsigned long* lengths = mysql_fetch_lengths(res);
    Row r;
    r.reserve(n);
    for (unsigned i = 0; i < n; ++i) {
      if (row[i])
        r.emplace_back(std::string(row[i], lengths[i]));
      else
        r.emplace_back(std::nullopt);
    }
    out.rows.push_back(std::move(r));
  }
  mysql_free_result(res);
  while (mysql_next_result(handle_) == 0) {
    if (MYSQL_RES* extra = mysql_store_result(handle_)) mysql_free_result(extra);
  }
  return out;
}

Status Connection::stream(std::string_view sql, std::vector<std::string>& columns,
                          const std::function<Status(const Row&)>& on_row) {
  if (mysql_real_query(handle_, sql.data(), sql.size()) != 0) return error(sql);
  MYSQL_RES* res = mysql_use_result(handle_);
  if (!res) {
    if (mysql_field_count(handle_) != 0) return error(sql);
    return ok_status();
  }
  unsigned n = mysql_num_fields(res);
  MYSQL_FIELD* fields = mysql_fetch_fields(res);
  columns.clear();
  for (unsigned i = 0; i < n; ++i) columns.emplace_back(fields[i].name);
  Row r(n);
  Status result = ok_status();
  while (MYSQL_ROW row = mysql_fetch_row(res)) {
    unsigned long* lengths = mysql_fetch_lengths(res);
    for (unsigned i = 0; i < n; ++i) {
      if (!row[i])
        r[i].reset();
      else if (r[i])
        r[i]->assign(row[i], lengths[i]);  // keeps the string's storage from the last row
      else
        r[i].emplace(row[i], lengths[i]);
    }
    result = on_row(r);
    if (!result) break;
  }
  if (result && mysql_errno(handle_) != 0) result = error(sql);
  mysql_free_result(res);  // drains what is left of the stream
  while (mysql_next_result(handle_) == 0) {
    if (MYSQL_RES* extra = mysql_store_result(handle_)) mysql_free_result(extra);
  }
  return result;
}

Result<Cell> Connection::scalar(std::string_view sql) {
  auto rows = query(sql);
  if (!rows) return rows.error();
  if (rows->rows.empty() || rows->rows[0].empty()) return Cell{};
  return rows->rows[0][0];
}

std::string Connection::quote(std::string_view value) {
  std::string out(value.size() * 2 + 3, '\0');
  out[0] = '\'';
  unsigned long n = mysql_real_escape_string(handle_, out.data() + 1, value.data(), value.size());
  out.resize(n + 1);
  out.push_back('\'');
  return out;
}

std::string Connection::quote_identifier(std::string_view name) {
  std::string out = "`";
  for (char c : name) {
    if (c == '`') out.push_back('`');
    out.push_back(c);
  }
  out.push_back('`');
  return out;
}

std::uint64_t Connection::last_insert_id() const {
  return last_insert_id_;
}
std::uint64_t Connection::affected_rows() const {
  return affected_rows_;
}

}  // namespace civishare::db
