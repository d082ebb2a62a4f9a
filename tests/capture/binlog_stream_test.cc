// The binlog stream against a real MariaDB server: events after a GTID position, decoded by the
// row decoder into exactly the rows written; the GTID position follows; a position whose binlog
// was purged is an error that says so.
#include "capture/binlog_stream.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <thread>

#include "tests/support/mariadb_server.h"

namespace civishare::binlog {
namespace {
using civishare::testing::MariaDbServer;

struct Decoded {
  std::vector<std::pair<std::uint8_t, RowImage>> rows;  // (event type, image)
  std::string gtid;
};

Result<Decoded> read_all(MariaDbServer& server, const std::string& from) {
  StreamOptions o;
  o.connection.socket = server.socket();
  o.connection.user = "root";
  o.server_id = 4242;
  o.gtid_position = from;
  auto stream = Stream::open(o);
  if (!stream) return stream.error();
  Decoded d;
  std::map<std::uint64_t, TableMap> maps;
  for (;;) {
    auto ev = (*stream)->next();
    if (!ev) return ev.error();
    if (!*ev) break;
    const FileEvent& e = **ev;
    if (e.type == kTableMap) {
      auto m = parse_table_map(e.body);
      if (!m) return m.error();
      maps[m->table_id] = *m;
    } else if (e.type == kWriteRowsV1 || e.type == kUpdateRowsV1 || e.type == kDeleteRowsV1) {
      auto id = rows_table_id(e.body);
      if (!id) return id.error();
      auto rows = parse_rows(e.type, e.body, maps.at(*id));
      if (!rows) return rows.error();
      for (auto& r : rows->rows) d.rows.emplace_back(e.type, std::move(r));
    }
  }
  d.gtid = (*stream)->gtid_position();
  return d;
}

TEST(BinlogStream, EventsAfterAGtidPositionDecodeToTheRowsWritten) {
  MariaDbServer server;
  auto c = server.connect("");
  ASSERT_TRUE(c.exec("CREATE DATABASE t"));
  ASSERT_TRUE(c.exec("CREATE TABLE t.x (id INT PRIMARY KEY, name VARCHAR(20), n INT)"));
  const std::string from = c.scalar("SELECT @@gtid_binlog_pos")->value_or("");
  ASSERT_TRUE(
      c.exec("INSERT INTO t.x VALUES (1, 'Ada', -1), (2, 'Grace', NULL), (3, 'Émilie', 3)"));
  ASSERT_TRUE(c.exec("UPDATE t.x SET name = 'Ada L.' WHERE id = 1"));
  ASSERT_TRUE(c.exec("DELETE FROM t.x WHERE id = 2"));
  const std::string head = c.scalar("SELECT @@gtid_binlog_pos")->value_or("");

  auto d = read_all(server, from);
  ASSERT_TRUE(d.ok()) << d.error().message;
  using R = RowImage;
  const std::vector<std::pair<std::uint8_t, RowImage>> want = {
      {kWriteRowsV1, R{"1", "Ada", "-1"}},     {kWriteRowsV1, R{"2", "Grace", std::nullopt}},
      {kWriteRowsV1, R{"3", "Émilie", "3"}},   {kUpdateRowsV1, R{"1", "Ada", "-1"}},
      {kUpdateRowsV1, R{"1", "Ada L.", "-1"}}, {kDeleteRowsV1, R{"2", "Grace", std::nullopt}}};
  EXPECT_EQ(d->rows, want);
  EXPECT_EQ(d->gtid, head);

  // From the head: nothing more.
  auto none = read_all(server, head);
  ASSERT_TRUE(none.ok()) << none.error().message;
  EXPECT_TRUE(none->rows.empty());
}

TEST(BinlogStream, APositionWhoseBinlogWasPurgedIsAnErrorThatSaysSo) {
  MariaDbServer server;
  auto c = server.connect("");
  ASSERT_TRUE(c.exec("CREATE DATABASE t"));
  ASSERT_TRUE(c.exec("CREATE TABLE t.x (id INT PRIMARY KEY)"));
  const std::string old = c.scalar("SELECT @@gtid_binlog_pos")->value_or("");
  ASSERT_TRUE(c.exec("INSERT INTO t.x VALUES (1)"));
  ASSERT_TRUE(c.exec("FLUSH BINARY LOGS"));
  ASSERT_TRUE(c.exec("INSERT INTO t.x VALUES (2)"));
  // PURGE skips files InnoDB still needs for crash recovery (a binlog checkpoint): repeat until
  // only the current file is left.
  bool purged = false;
  for (int i = 0; i < 50 && !purged; ++i) {
    ASSERT_TRUE(c.exec("FLUSH BINARY LOGS"));
    const std::string current = *c.query("SHOW MASTER STATUS")->rows[0][0];
    ASSERT_TRUE(c.exec("PURGE BINARY LOGS TO '" + current + "'"));
    purged = c.query("SHOW BINARY LOGS")->rows.size() == 1;
    if (!purged) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_TRUE(purged);

  auto d = read_all(server, old);
  ASSERT_FALSE(d.ok()) << "from " << old << " to " << d->gtid << ": " << d->rows.size() << " rows";
  EXPECT_NE(d.error().message.find("1236"), std::string::npos) << d.error().message;
}

TEST(BinlogStream, TheServerCheckNamesEachSettingAndGrantToChange) {
  MariaDbServer server;
  auto root = server.connect("");
  auto ok = check_server(root);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_TRUE(ok->empty()) << (*ok)[0];  // the test servers run ROW / FULL / FULL

  ASSERT_TRUE(root.exec("SET GLOBAL binlog_format = 'MIXED'"));
  ASSERT_TRUE(root.exec("SET GLOBAL binlog_row_image = 'MINIMAL'"));
  ASSERT_TRUE(root.exec("SET GLOBAL binlog_row_metadata = 'MINIMAL'"));
  ASSERT_TRUE(root.exec("CREATE USER plain@localhost IDENTIFIED BY 'pw'"));
  db::ConnectionOptions o;
  o.socket = server.socket();
  o.user = "plain";
  o.password = "pw";
  auto plain = db::Connection::open(o);
  ASSERT_TRUE(plain.ok()) << plain.error().message;
  auto bad = check_server(*plain);
  ASSERT_TRUE(bad.ok()) << bad.error().message;
  std::string all;
  for (const auto& p : *bad) all += p + "\n";
  EXPECT_EQ(bad->size(), 5u) << all;
  for (const char* fix : {"binlog_format=ROW", "binlog_row_image=FULL", "binlog_row_metadata=FULL",
                          "GRANT REPLICATION SLAVE", "GRANT REPLICATION CLIENT"}) {
    EXPECT_NE(all.find(fix), std::string::npos) << fix << " missing in:\n" << all;
  }
}

}  // namespace
}  // namespace civishare::binlog
