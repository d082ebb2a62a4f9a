// Records tests/data/binlog/all_types.binlog and all_types.expected: a binlog of one table with
// every MariaDB column type (NULLs, negative numbers, utf8mb4, extremes) written, updated and
// deleted on a throw-away server (ROW format, FULL image and metadata), and the text values a
// '+00:00' session SELECTs for each row image, hex-encoded, one image per line:
//   write|update_before|update_after|delete <TAB> hex or \N per column
// Rebuild and run after changing the table: build/tests/record_binlog <dir>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <stdexcept>

#include "tests/support/mariadb_server.h"

namespace {
using civishare::testing::MariaDbServer;

const char* kTable = R"(CREATE TABLE all_types (
  id INT NOT NULL PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
  mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
  f FLOAT, d DOUBLE, dec1 DECIMAL(10,2), dec2 DECIMAL(30,10), dec3 DECIMAL(5,0), dec4 DECIMAL(4,4),
  y YEAR, dt DATE, tm TIME, tm3 TIME(3), dtm DATETIME, dtm6 DATETIME(6),
  ts TIMESTAMP NULL DEFAULT NULL, ts2 TIMESTAMP(2) NULL DEFAULT NULL,
  c CHAR(10), cwide CHAR(100) CHARACTER SET utf8mb4, vc VARCHAR(50), vcwide VARCHAR(300),
  txt TEXT, mtxt MEDIUMTEXT, bl BLOB, js JSON,
  e ENUM('Insert','Update','Delete'), s SET('a','b','c'), b BIT(10), bin BINARY(4), vbin VARBINARY(20)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4)";

const char* kRows = R"(INSERT INTO all_types VALUES
 (1, 1, 200, 1000, 60000, 100000, 16000000, 123456, 4000000000, 1234567890123, 18000000000000000000,
  3.5, 2.718281828459045, 12345678.91, 12345678901234567890.0123456789, 99999, 0.1234,
  2026, '2026-11-28', '12:34:56', '01:02:03.456', '2026-11-28 10:00:00', '2026-11-28 10:00:00.123456',
  '2026-11-28 10:00:01', '2026-11-28 10:00:01.25',
  'abc', 'wide', 'varchar', REPEAT('x', 280), 'text', 'medium', x'00ff10', '{"a": [1, 2]}',
  'Update', 'a,c', b'1010101010', x'01020304', x'ff00'),
 (2, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0,
  -1.25, -1e300, -12345678.91, -0.0000000001, -99999, -0.5,
  1901, '1000-01-01', '-838:59:59', '-00:00:01.5', '1000-01-01 00:00:00', '9999-12-31 23:59:59.999999',
  '1970-01-02 00:00:00', '2038-01-19 03:14:07.99',
  '', '', '', '', '', '', '', '[]',
  'Insert', '', b'0', x'00000000', ''),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL),
 (4, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807,
  18446744073709551615, 0, 0, 0, 0, 0, 0,
  2155, '9999-12-31', '838:59:59', '00:00:00.001', '2000-02-29 12:00:00', '2000-02-29 12:00:00.000001',
  '2000-02-29 12:00:00', '2000-02-29 12:00:00.01',
  'Müller', 'Ærøskøbing 🎉', 'Łódź 🚀', CONCAT(REPEAT('é', 100), '😀'), 'Grüße 🌍', '中文', x'', '{"k": "🎉"}',
  'Delete', 'a,b,c', b'1111111111', x'ffffffff', x'00')
)";

std::string hex(const std::string& s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char ch : s) {
    out += d[ch >> 4];
    out += d[ch & 15];
  }
  return out;
}

std::string image(civishare::db::Connection& c, int id) {
  auto rows = c.query("SELECT * FROM all_types WHERE id = " + std::to_string(id));
  if (!rows || rows->rows.size() != 1) throw std::runtime_error("row " + std::to_string(id));
  std::string line;
  for (const auto& cell : rows->rows[0]) line += "\t" + (cell ? hex(*cell) : std::string("\\N"));
  return line;
}

void must(const civishare::Status& s) {
  if (!s) throw std::runtime_error(s.error().message);
}
}  // namespace

int main(int argc, char** argv) try {
  if (argc != 2) {
    std::cerr << "usage: record_binlog <dir>\n";
    return 2;
  }
  const std::string dir = argv[1];
  MariaDbServer server;
  auto c = server.connect("");
  must(c.exec("SET time_zone = '+00:00'"));
  must(c.exec("CREATE DATABASE t"));
  must(c.exec("USE t"));
  must(c.exec(kTable));
  must(c.exec("FLUSH BINARY LOGS"));  // the recorded file starts here
  auto status = c.query("SHOW MASTER STATUS");
  if (!status || status->rows.empty()) throw std::runtime_error("no binlog");
  const std::string binlog = *status->rows[0][0];
  std::ofstream expected(dir + "/all_types.expected");
  must(c.exec(kRows));
  for (int id = 1; id <= 4; ++id) expected << "write" << image(c, id) << "\n";
  const std::string before = image(c, 1);
  must(
      c.exec("UPDATE all_types SET ti = -5, vc = 'changed 🎉', dec1 = -0.01, e = 'Delete', "
             "dtm6 = '2026-11-29 01:02:03.5' WHERE id = 1"));
  expected << "update_before" << before << "\n";
  expected << "update_after" << image(c, 1) << "\n";
  const std::string gone = image(c, 2);
  must(c.exec("DELETE FROM all_types WHERE id = 2"));
  expected << "delete" << gone << "\n";
  must(c.exec("FLUSH BINARY LOGS"));
  std::filesystem::copy_file(server.dir() + "/data/" + binlog, dir + "/all_types.binlog",
                             std::filesystem::copy_options::overwrite_existing);
  std::cout << "recorded " << binlog << " into " << dir << "\n";
  return 0;
} catch (const std::exception& e) {
  std::cerr << "record_binlog: " << e.what() << "\n";
  return 1;
}
