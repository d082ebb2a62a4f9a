// The capture through the real binary, for both sources: SIGKILL at random moments loses and
// duplicates nothing; `replay --dry-run`, `check`, `snapshot` as an administrator uses them; the
// binlog source's purged cursor (exit 4 and the way out) and a 200,000-row transaction in bounded
// memory.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <cstdlib>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "tests/support/cluster.h"
#include "transport/queue/store.h"
#include "transport/webhook.h"

namespace civishare::testing {
namespace {
using namespace std::chrono_literals;

std::string describe(const Change& c) {
  std::string out = std::string(to_string(c.operation)) + " " + c.entity_reference;
  for (const auto& a : c.attribute_changes)
    out += " " + a.name + "=" + boost::json::serialize(a.to);
  return out;
}

class CaptureCli : public ::testing::Test {
 protected:
  virtual std::string source() const { return "log_tables"; }
  void SetUp() override {
    a_ = std::make_unique<TestNode>("civi1", 0);
    a_->capture_source = source();
    // A peer that never answers: everything stays in the outbox for the test to read.
    a_->configure({}, "",
                  "[[peer]]\nname = \"civi2\"\nurl = \"http://127.0.0.1:" +
                      std::to_string(free_port()) + "\"\nsecret = \"" + webhook::new_secret() +
                      "\"\noutgoing = [\"civishare.change.contact.base\"]\nincoming = []\n");
  }
  std::multiset<std::string> outbox() {
    auto store = Store::open_read_only(a_->dir() + "/data");
    EXPECT_TRUE(store.ok()) << store.error().message;
    std::multiset<std::string> out;
    auto entries = (*store)->read_outbox(0, 1000000);
    for (const auto& e : *entries) out.insert(describe(e.change));
    return out;
  }
  std::string civishare(const std::vector<std::string>& args, int* rc) {
    std::vector<std::string> full = args;
    full.push_back("--config");
    full.push_back(a_->config_path());
    std::string out;
    *rc = run_civishare(full, &out);
    return out;
  }
  std::unique_ptr<TestNode> a_;
};

// The scenarios every capture source must pass.
class EachSourceCli : public CaptureCli, public ::testing::WithParamInterface<std::string> {
 protected:
  std::string source() const override { return GetParam(); }
};

class BinlogCli : public CaptureCli {
 protected:
  std::string source() const override { return "binlog"; }
};

TEST_P(EachSourceCli, KilledAtRandomMomentsTheUnionOfWhatWasCapturedIsExact) {
  a_->init();
  auto c = a_->db().connect();
  std::vector<std::string> ids;
  std::multiset<std::string> expected;
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(
        c.exec("INSERT INTO civicrm_contact (contact_type, last_name) VALUES ('Individual', 'L')"));
    ids.push_back(std::to_string(c.last_insert_id()));
    expected.insert("create civi1-" + ids.back() +
                    " contact_type=\"Individual\" last_name=\"L\" "
                    "is_deceased=false is_opt_out=false do_not_email=false do_not_phone=false "
                    "do_not_mail=false do_not_sms=false do_not_trade=false is_deleted=false");
  }
  a_->start();
  std::atomic<int> writers_left{4};
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) {
    for (int i = 0; i < 1250; ++i) {
      expected.insert("update civi1-" + ids[static_cast<std::size_t>(w * 10 + i % 10)] +
                      " last_name=\"w" + std::to_string(w) + "-" + std::to_string(i) + "\"");
    }
    writers.emplace_back([&, w] {
      auto conn = a_->db().connect();
      for (int i = 0; i < 1250; ++i) {
        (void)conn.exec("UPDATE civicrm_contact SET last_name = 'w" + std::to_string(w) + "-" +
                        std::to_string(i) +
                        "' WHERE id = " + ids[static_cast<std::size_t>(w * 10 + i % 10)]);
        if (i % 100 == 0) std::this_thread::sleep_for(300ms);  // spread over several seconds
      }
      --writers_left;
    });
  }
  std::mt19937 rng(12345);
  int kills = 0;
  while (writers_left > 0 || kills < 8) {
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(200, 1200)(rng)));
    a_->kill();
    ++kills;
    a_->start();
  }
  for (auto& t : writers) t.join();
  a_->stop();
  int rc = 0;
  std::string out = civishare({"run", "--once"}, &rc);
  EXPECT_EQ(rc, 3) << out;  // caught up; the peer was unreachable
  EXPECT_GE(kills, 8);
  EXPECT_EQ(outbox(), expected) << "after " << kills << " kills";
}

TEST_P(EachSourceCli, ReplayDryRunPrintsExactlyTheChangesAfterTheCursor) {
  a_->init();
  auto c = a_->db().connect();
  ASSERT_TRUE(
      c.exec("INSERT INTO civicrm_contact (contact_type, last_name) VALUES ('Individual', 'One')"));
  const std::string id = std::to_string(c.last_insert_id());
  int rc = 0;
  civishare({"run", "--once"}, &rc);
  std::string cursor = civishare({"cursor"}, &rc);
  ASSERT_EQ(rc, 0) << cursor;
  cursor = cursor.substr(0, cursor.find('\n'));
  std::this_thread::sleep_for(1100ms);
  ASSERT_TRUE(c.exec("UPDATE civicrm_contact SET last_name = 'Two' WHERE id = " + id));
  ASSERT_TRUE(c.exec("UPDATE civicrm_contact SET last_name = 'Three' WHERE id = " + id));
  civishare({"run", "--once"}, &rc);
  std::string out = civishare({"replay", "--from", cursor, "--dry-run"}, &rc);
  ASSERT_EQ(rc, 0) << out;
  std::multiset<std::string> replayed;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] != '{') continue;
    replayed.insert(describe(*change_from_json(boost::json::parse(line))));
  }
  EXPECT_EQ(replayed, (std::multiset<std::string>{"update civi1-" + id + " last_name=\"Two\"",
                                                  "update civi1-" + id + " last_name=\"Three\""}));
  // Replay for real queues them again; usage errors are exit 2.
  civishare({"replay", "--from", cursor}, &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(outbox().size(), 5u);
  civishare({"replay"}, &rc);
  EXPECT_EQ(rc, 2);
  std::string bad = civishare({"replay", "--from", "yesterday"}, &rc);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(bad.find(source() == "binlog" ? "gtid:" : "lt1:"), std::string::npos) << bad;
}

TEST_F(CaptureCli, CheckSaysWhatToFixAndInitCanFixIndexes) {
  int rc = 0;
  std::string out = civishare({"check"}, &rc);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("civishare_idmap is missing"), std::string::npos) << out;
  EXPECT_NE(out.find("no index on log_date"), std::string::npos) << out;
  EXPECT_NE(out.find("civishare init --add-indexes"), std::string::npos) << out;
  // A missing trigger is a problem too.
  auto c = a_->db().connect();
  ASSERT_TRUE(c.exec("DROP TRIGGER civicrm_contact_after_update"));
  out = civishare({"init", "--add-indexes"}, &rc);
  EXPECT_EQ(rc, 0) << out;
  out = civishare({"check"}, &rc);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("2 of 3 logging triggers"), std::string::npos) << out;
  EXPECT_EQ(out.find("no index on log_date"), std::string::npos) << out;
  EXPECT_NE(out.find("PROCESS privilege granted"), std::string::npos) << out;
}

TEST_F(CaptureCli, SnapshotSharesWhatExistedBeforeInit) {
  auto c = a_->db().connect();
  ASSERT_TRUE(
      c.exec("INSERT INTO civicrm_contact (contact_type, organization_name) VALUES "
             "('Organization', 'Alt e.V.'), ('Organization', 'Older e.V.')"));
  std::this_thread::sleep_for(2s);
  a_->init();
  int rc = 0;
  civishare({"run", "--once"}, &rc);
  EXPECT_TRUE(outbox().empty());
  std::string out = civishare({"snapshot", "--type", "civishare.change.contact.base"}, &rc);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("queued 2 change(s)"), std::string::npos) << out;
  EXPECT_EQ(outbox().size(), 2u);
  out = civishare({"snapshot", "--type", "civishare.change.contact.email"}, &rc);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(out.find("not a type any peer receives"), std::string::npos) << out;
}

INSTANTIATE_TEST_SUITE_P(Source, EachSourceCli, ::testing::Values("log_tables", "binlog"));

// PURGE skips files InnoDB still needs for crash recovery (a binlog checkpoint): repeat until only
// the current binlog is left.
void purge_all_but_the_current_binlog(db::Connection& c) {
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(c.exec("FLUSH BINARY LOGS"));
    const std::string current = *c.query("SHOW MASTER STATUS")->rows[0][0];
    ASSERT_TRUE(c.exec("PURGE BINARY LOGS TO '" + current + "'"));
    if (c.query("SHOW BINARY LOGS")->rows.size() == 1) return;
    std::this_thread::sleep_for(200ms);
  }
  FAIL() << "older binlogs could not be purged";
}

TEST_F(BinlogCli, ACursorWhoseBinlogWasPurgedStopsCaptureWithExit4UntilSnapshotResetsIt) {
  a_->init();
  int rc = 0;
  civishare({"run", "--once"}, &rc);
  ASSERT_EQ(rc, 3);  // caught up; the peer is unreachable
  auto c = a_->db().connect();
  ASSERT_TRUE(
      c.exec("INSERT INTO civicrm_contact (contact_type, last_name) VALUES ('Individual', 'Gap')"));
  const std::string id = std::to_string(c.last_insert_id());
  purge_all_but_the_current_binlog(c);

  std::string out = civishare({"run", "--once"}, &rc);
  EXPECT_EQ(rc, 4) << out;
  EXPECT_NE(out.find("is no longer on the server (purged"), std::string::npos) << out;
  EXPECT_NE(out.find("civishare snapshot --reset-cursor"), std::string::npos) << out;
  // The daemon stops too, rather than retrying what cannot work.
  a_->start();
  ASSERT_TRUE(wait_until([&] { return !a_->running(); }, 30s)) << a_->log();
  EXPECT_EQ(a_->stop(), 4) << a_->log();
  EXPECT_TRUE(outbox().empty());  // nothing was skipped silently

  out = civishare({"snapshot", "--reset-cursor"}, &rc);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(outbox(), (std::multiset<std::string>{
                          "create civi1-" + id +
                          " contact_type=\"Individual\" last_name=\"Gap\" is_deceased=false "
                          "is_opt_out=false do_not_email=false do_not_phone=false "
                          "do_not_mail=false do_not_sms=false do_not_trade=false "
                          "is_deleted=false"}));
  ASSERT_TRUE(c.exec("UPDATE civicrm_contact SET last_name = 'After' WHERE id = " + id));
  out = civishare({"run", "--once"}, &rc);
  EXPECT_EQ(rc, 3) << out;
  EXPECT_EQ(outbox().count("update civi1-" + id + " last_name=\"After\""), 1u);
}

TEST_F(BinlogCli, CheckAndStatusShowTheBinlogSettingsAndTheRetentionHeadroom) {
  auto root = a_->db().connect();
  ASSERT_TRUE(root.exec("SET GLOBAL binlog_row_metadata = 'MINIMAL'"));
  int rc = 0;
  std::string out = civishare({"check"}, &rc);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("binlog_row_metadata is MINIMAL"), std::string::npos) << out;
  EXPECT_NE(out.find("fix: set binlog_row_metadata=FULL"), std::string::npos) << out;
  EXPECT_EQ(out.find("log_date"), std::string::npos) << out;  // the log tables are not used
  ASSERT_TRUE(root.exec("SET GLOBAL binlog_row_metadata = 'FULL'"));
  ASSERT_TRUE(root.exec("SET GLOBAL binlog_expire_logs_seconds = 86400"));
  a_->init();
  out = civishare({"check"}, &rc);
  EXPECT_NE(out.find("ok      binlog: ROW format"), std::string::npos) << out;
  civishare({"run", "--once"}, &rc);
  EXPECT_EQ(rc, 3);
  out = civishare({"status", "--json"}, &rc);
  ASSERT_EQ(rc, 0) << out;
  auto status = boost::json::parse(out.substr(out.find('{'))).as_object();
  EXPECT_EQ(status.at("capture_source"), "binlog");
  EXPECT_EQ(std::string(status.at("cursor").as_string()).rfind("gtid:", 0), 0u) << out;
  EXPECT_EQ(status.at("binlog_expire_s").as_int64(), 86400);
  const auto headroom = status.at("binlog_retention_headroom_s").as_int64();
  EXPECT_GT(headroom, 86400 - 120);
  EXPECT_LE(headroom, 86400);
  out = civishare({"status"}, &rc);
  EXPECT_NE(out.find("binlog retention headroom: "), std::string::npos) << out;
  EXPECT_NE(out.find("(binlog_expire_logs_seconds 86400)"), std::string::npos) << out;
}

// Memory does not grow with the size of a transaction: ten times the rows, less than twice the
// peak (release build: 66 MB for 20,000 rows, 94 MB for 200,000; without the held parts the
// 200,000-row transaction took 1.5 GB). Sanitizer builds start higher but do not scale either.
TEST_F(BinlogCli, ATwoHundredThousandRowTransactionIsCapturedWholeInBoundedMemory) {
  a_->capture_extra = "max_pending_mb = 8\n";  // the configured bound
  a_->configure({}, "",
                "[[peer]]\nname = \"civi2\"\nurl = \"http://127.0.0.1:" +
                    std::to_string(free_port()) + "\"\nsecret = \"" + webhook::new_secret() +
                    "\"\noutgoing = [\"civishare.change.contact.base\"]\nincoming = []\n");
  const std::string config = a_->config_path();
  a_->init();
  // Sanitizer builds keep freed memory in a quarantine: keep it small so RSS shows our use.
  const char* asan = std::getenv("ASAN_OPTIONS");
  const std::vector<std::string> env = {std::string("ASAN_OPTIONS=") + (asan ? asan : "") +
                                        (asan && *asan ? ":" : "") + "quarantine_size_mb=16"};
  auto c = a_->db().connect();
  ASSERT_TRUE(c.exec("SET SESSION max_heap_table_size = 1073741824"));
  auto transaction_peak_kb = [&](long rows) {
    EXPECT_TRUE(
        c.exec("INSERT INTO civicrm_contact (contact_type, first_name, last_name) SELECT "
               "'Individual', CONCAT('F', seq), CONCAT('Last name number ', seq) FROM "
               "seq_1_to_" +
               std::to_string(rows)));
    long peak_kb = 0;
    std::string out;
    EXPECT_EQ(run_civishare({"run", "--once", "--config", config}, &out, env, &peak_kb), 3) << out;
    return peak_kb;
  };
  const long small_kb = transaction_peak_kb(20000);
  const long big_kb = transaction_peak_kb(200000);
  EXPECT_EQ(outbox().size(), 220000u);
  std::printf("peak RSS: %ld MB for a 20,000-row transaction, %ld MB for 200,000 rows\n",
              small_kb / 1024, big_kb / 1024);
  EXPECT_LT(big_kb, 2 * small_kb);
}

}  // namespace
}  // namespace civishare::testing
