// A thin adapter over MariaDB Connector/C: one connection, text-protocol queries, errors as
// values. Not thread-safe: one Connection per thread. Moving is allowed, copying is not.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "schemas/result.h"

typedef struct st_mysql MYSQL;

namespace civishare::db {

struct ConnectionOptions {
  std::string host = "127.0.0.1";  // ignored when socket is set
  std::uint16_t port = 3306;
  std::string socket;  // unix socket path; empty = TCP
  std::string user;
  std::string password;
  std::string schema;  // default database
  unsigned connect_timeout_s = 5;
  unsigned read_timeout_s = 60;
};

using Cell = std::optional<std::string>;  // nullopt = SQL NULL
using Row = std::vector<Cell>;

struct Rows {
  std::vector<std::string> columns;
  std::vector<Row> rows;

  // Index of a column by name, or -1. Columns are read by name so that added columns do no harm.
  int index(std::string_view name) const;
};

class Connection {
 public:
  // Connects, selects utf8mb4 and the UTC session time zone.
  static Result<Connection> open(const ConnectionOptions& options);

  Connection(Connection&&) noexcept;
  Connection& operator=(Connection&&) noexcept;
  ~Connection();

  Status exec(std::string_view sql);
  Result<Rows> query(std::string_view sql);
  // The Connector/C handle, for APIs this class does not wrap (the binlog dump).
  MYSQL* native() { return handle_; }
  // Streams a result row by row (mysql_use_result): memory stays flat whatever the row count.
  // `columns` is filled before the first call. A callback error stops the stream and is returned.
  // No other query may run on this connection until stream() returns.
  Status stream(std::string_view sql, std::vector<std::string>& columns,
                const std::function<Status(const Row&)>& on_row);
  // The first column of the first row, or nullopt when there is no row or it is NULL.
  Result<Cell> scalar(std::string_view sql);

  std::string quote(std::string_view value);  // '...' with escaping, for string literals
  static std::string quote_identifier(std::string_view name);  // `...`
  std::uint64_t last_insert_id() const;
  std::uint64_t affected_rows() const;

 private:
  explicit Connection(MYSQL* handle);
  Error error(std::string_view what) const;
  MYSQL* handle_ = nullptr;
  std::uint64_t affected_rows_ = 0;   // of the last exec()
  std::uint64_t last_insert_id_ = 0;  // of the last exec()
};

}  // namespace civishare::db
