// The shared capture suite: the same scenarios against both capture sources (CiviCRM's log
// tables and the MariaDB binlog), each on a real MariaDB with CiviCRM's triggers, with the server
// in UTC and in UTC+5:30. Every test asserts the exact changes emitted into the outbox, and those
// are the same for both sources.
#include "capture/binlog_source.h"
#include "capture/change_mapper.h"
#include "capture/log_table_source.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <thread>

#include "schemas/db/civishare_tables.h"
#include "tests/support/mariadb_server.h"

namespace civishare {
namespace {
using namespace std::chrono_literals;
using testing::MariaDbServer;

// "operation reference name=to name=to" for each change, in outbox order.
std::string describe(const Change& c) {
  std::string out = std::string(to_string(c.operation)) + " " + c.entity_reference;
  for (const auto& a : c.attribute_changes)
    out += " " + a.name + "=" + boost::json::serialize(a.to);
  return out;
}

struct Setup {
  std::string source;  // log_tables | binlog
  std::string tz;
};

class Capture : public ::testing::TestWithParam<Setup> {
 protected:
  bool binlog() const { return GetParam().source == "binlog"; }

  void SetUp() override {
    server_ = std::make_unique<MariaDbServer>(GetParam().tz);
    server_->load_civicrm();
    auto root = server_->connect();
    for (const auto& ddl : db::civishare_table_ddl()) ASSERT_TRUE(root.exec(ddl));
    dir_ = server_->dir() + "/agent";
    std::filesystem::create_directories(dir_);
    store_ = std::move(*Store::open(dir_));
    open_source();
  }

  // reread_interval_s: the trailing re-read would also catch what a wrong watermark misses, so the
  // watermark tests switch it off to test the watermark alone.
  void open_source(std::vector<std::string> extra_types = {}, int reread_interval_s = 1) {
    source_.reset();
    if (!extra_types.empty()) {
      std::vector<std::string> texts = {};
      for (const auto& t : extra_types) texts.push_back(t);
      auto all = TypeRegistry::from_texts([&] {
        std::vector<std::string> v;
        for (const auto& d : builtin_texts_) v.push_back(d);
        for (const auto& t : texts) v.push_back(t);
        return v;
      }());
      ASSERT_TRUE(all.ok()) << all.error().message;
      registry_ = std::make_unique<TypeRegistry>(std::move(*all));
    } else {
      registry_ = std::make_unique<TypeRegistry>(TypeRegistry::builtin());
    }
    std::vector<const TypeDefinition*> types;
    for (int pass = 0; pass < 2; ++pass) {
      for (const auto& d : registry_->all()) {
        if (static_cast<bool>(d.parent) == (pass == 1)) types.push_back(&d);
      }
    }
    if (binlog()) {
      BinlogOptions o;
      o.node = "civi1";
      o.registry = registry_.get();
      o.types = types;
      o.server_id = 4243;
      o.follow = false;
      auto s = BinlogSource::open(o, server_->agent_options(), *store_);
      ASSERT_TRUE(s.ok()) << s.error().message;
      source_ = std::move(*s);
    } else {
      LogTableOptions o;
      o.node = "civi1";
      o.registry = registry_.get();
      o.types = types;
      o.reread_interval_s = reread_interval_s;
      auto s = LogTableSource::open(o, server_->agent_options(), *store_);
      ASSERT_TRUE(s.ok()) << s.error().message;
      source_ = LogTableSource::as_capture_source(std::move(*s));
    }
    auto cursor = source_->ensure_cursor();
    ASSERT_TRUE(cursor.ok()) << cursor.error().message;
  }

  db::Connection connect() { return server_->connect(); }

  std::int64_t server_now() {
    auto c = connect();
    return std::stoll(c.scalar("SELECT UNIX_TIMESTAMP()")->value());
  }

  // Polls until the cursor has passed everything written so far: the log tables' watermark past
  // the server's clock now, the binlog read to its end.
  void capture_until_now() {
    const std::int64_t target = server_now();
    for (int i = 0; i < 200; ++i) {
      auto r = source_->poll();
      ASSERT_TRUE(r.ok()) << r.error().message;
      if (binlog() ? r->at_head : r->watermark > target) return;
      std::this_thread::sleep_for(100ms);
    }
    FAIL() << "capture did not catch up with " << target;
  }
  std::string cursor() { return store_->cursor(source_->cursor_name())->value_or(""); }

  // Polls in the background until stopped (capture running while writers work).
  void start_poller() {
    polling_ = true;
    poller_ = std::thread([this] {
      while (polling_) {
        auto r = source_->poll();
        if (!r) poll_error_ = r.error().message;
        std::this_thread::sleep_for(100ms);
      }
    });
  }
  void stop_poller() {
    polling_ = false;
    if (poller_.joinable()) poller_.join();
    EXPECT_EQ(poll_error_, "");
  }

  std::vector<Change> outbox() {
    std::vector<Change> out;
    auto entries = store_->read_outbox(0, 1000000);
    for (const auto& e : *entries) out.push_back(e.change);
    return out;
  }
  std::multiset<std::string> described() {
    std::multiset<std::string> out;
    for (const auto& c : outbox()) out.insert(describe(c));
    return out;
  }
  std::vector<std::string> described_in_order() {
    std::vector<std::string> out;
    for (const auto& c : outbox()) out.push_back(describe(c));
    return out;
  }

  // Creates n contacts and captures them; returns their ids.
  std::vector<std::string> contacts(int n) {
    auto c = connect();
    std::vector<std::string> ids;
    for (int i = 0; i < n; ++i) {
      EXPECT_TRUE(
          c.exec("INSERT INTO civicrm_contact (contact_type, first_name, last_name) VALUES "
                 "('Individual', 'F', 'L" +
                 std::to_string(i) + "')"));
      ids.push_back(std::to_string(c.last_insert_id()));
    }
    capture_until_now();
    baseline_ = outbox().size();
    return ids;
  }
  std::multiset<std::string> described_since_baseline() {
    auto all = outbox();
    std::multiset<std::string> out;
    for (std::size_t i = baseline_; i < all.size(); ++i) out.insert(describe(all[i]));
    return out;
  }

  // Rewrites the (closed) store's log-row counts as builds before 2026-12-08 kept them: every
  // log row of the captured tables counted by its sha512 (keys r/<16 hex second>/#<8 hex n>),
  // none by its sha256.
  void rewrite_row_counts_as_earlier_builds() {
    std::map<std::int64_t, std::map<std::uint64_t, std::uint32_t>> counts;
    auto conn = connect();  // a session in UTC, as the capture's reader
    for (const auto& def : registry_->all()) {
      auto rows =
          conn.query("SELECT *, UNIX_TIMESTAMP(log_date) AS civishare_ts FROM " + def.log_table());
      ASSERT_TRUE(rows.ok()) << rows.error().message;
      ColumnIndex cols(rows->columns);
      for (const auto& r : rows->rows) {
        SourceRow row;
        row.type = &def;
        row.columns = &cols;
        row.row = &r;
        ++counts[std::stoll(row.get("civishare_ts").value())][row.legacy_hash64()];
      }
    }
    const std::string path = dir_ + "/store";
    std::vector<std::string> names;
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path, &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> families;
    for (const auto& n : names) families.emplace_back(n, rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(), path, families, &handles, &raw).ok());
    rocksdb::WriteBatch wb;
    std::unique_ptr<rocksdb::Iterator> it(raw->NewIterator(rocksdb::ReadOptions()));
    std::size_t dropped = 0;
    for (it->Seek("r/"); it->Valid() && it->key().starts_with("r/"); it->Next(), ++dropped)
      wb.Delete(it->key());
    it.reset();
    EXPECT_GT(dropped, 0u);
    for (const auto& [ts, by_hash] : counts) {
      char key[40];
      std::snprintf(key, sizeof key, "r/%016" PRIx64 "/#00000000", static_cast<std::uint64_t>(ts));
      std::string value;
      for (const auto& [hash, n] : by_hash) {
        for (int i = 0; i < 8; ++i) value.push_back(static_cast<char>(hash >> (8 * i)));
        for (int i = 0; i < 4; ++i) value.push_back(static_cast<char>(n >> (8 * i)));
      }
      wb.Put(key, value);
    }
    ASSERT_TRUE(raw->Write(rocksdb::WriteOptions(), &wb).ok());
    for (auto* h : handles) ASSERT_TRUE(raw->DestroyColumnFamilyHandle(h).ok());
    delete raw;
  }

  void TearDown() override {
    stop_poller();
    source_.reset();
    store_.reset();
  }

  std::unique_ptr<MariaDbServer> server_;
  std::string dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<TypeRegistry> registry_;
  std::unique_ptr<CaptureSource> source_;
  std::atomic<bool> polling_{false};
  std::thread poller_;
  std::string poll_error_;
  std::size_t baseline_ = 0;
  std::vector<std::string> builtin_texts_ = builtin_texts();

  static std::vector<std::string> builtin_texts();
};

}  // namespace
}  // namespace civishare

#include "schemas/builtin_types.h"

namespace civishare {
namespace {

std::vector<std::string> Capture::builtin_texts() {
  return builtin_type_texts();
}

TEST_P(Capture, CreateUpdateTrashDeleteOnlySharedColumns) {
  auto c = connect();
  ASSERT_TRUE(
      c.exec("INSERT INTO civicrm_contact (contact_type, first_name, last_name, gender_id, "
             "birth_date, hash) VALUES ('Individual', 'Karl', 'Müller', 2, '1980-05-17', 'h1')"));
  const std::string ref = "civi1-" + std::to_string(c.last_insert_id());
  const std::string where = " WHERE id = " + std::to_string(c.last_insert_id());
  ASSERT_TRUE(c.exec("UPDATE civicrm_contact SET first_name = 'Carl'" + where));
  ASSERT_TRUE(
      c.exec("UPDATE civicrm_contact SET hash = 'h2', display_name = 'x'" + where));  // unshared
  ASSERT_TRUE(c.exec("UPDATE civicrm_contact SET is_deleted = 1" + where));
  ASSERT_TRUE(c.exec("DELETE FROM civicrm_contact" + where));
  capture_until_now();
  EXPECT_EQ(described_in_order(),
            (std::vector<std::string>{
                "create " + ref +
                    " contact_type=\"Individual\" first_name=\"Karl\" last_name=\"Müller\" "
                    "gender_id:name=\"Male\" birth_date=\"1980-05-17\" is_deceased=false "
                    "is_opt_out=false "
                    "do_not_email=false do_not_phone=false do_not_mail=false do_not_sms=false "
                    "do_not_trade=false is_deleted=false",
                "update " + ref + " first_name=\"Carl\"", "update " + ref + " is_deleted=true",
                "delete " + ref}));
  // `from` comes from the last emitted image.
  auto changes = outbox();
  EXPECT_EQ(changes[1].attribute_changes[0].from, boost::json::value("Karl"));
}

TEST_P(Capture, LongTransactionCommittedAfterALaterOneIsCapturedOnce) {
  open_source({}, 3600);  // log tables: the watermark alone
  auto ids = contacts(2);
  start_poller();
  auto t1 = connect();
  ASSERT_TRUE(t1.exec("START TRANSACTION"));
  ASSERT_TRUE(t1.exec("UPDATE civicrm_contact SET last_name = 'T1' WHERE id = " + ids[0]));
  std::this_thread::sleep_for(1s);
  auto t2 = connect();
  ASSERT_TRUE(t2.exec("UPDATE civicrm_contact SET last_name = 'T2' WHERE id = " + ids[1]));
  std::this_thread::sleep_for(2s);
  ASSERT_TRUE(t1.exec("COMMIT"));
  std::this_thread::sleep_for(500ms);
  stop_poller();
  capture_until_now();
  EXPECT_EQ(described_since_baseline(),
            (std::multiset<std::string>{"update civi1-" + ids[0] + " last_name=\"T1\"",
                                        "update civi1-" + ids[1] + " last_name=\"T2\""}));
}

TEST_P(Capture, FiveThousandChangesFromFourConnectionsEachCapturedOnce) {
  open_source({}, 3600);  // log tables: the watermark alone
  auto ids = contacts(40);
  start_poller();
  std::vector<std::thread> writers;
  std::multiset<std::string> expected;
  for (int w = 0; w < 4; ++w) {
    for (int i = 0; i < 1250; ++i) {
      expected.insert("update civi1-" + ids[static_cast<std::size_t>(w * 10 + i % 10)] +
                      " last_name=\"w" + std::to_string(w) + "-" + std::to_string(i) + "\"");
    }
    writers.emplace_back([&, w] {
      auto c = connect();
      for (int i = 0; i < 1250; ++i) {
        (void)c.exec("UPDATE civicrm_contact SET last_name = 'w" + std::to_string(w) + "-" +
                     std::to_string(i) +
                     "' WHERE id = " + ids[static_cast<std::size_t>(w * 10 + i % 10)]);
      }
    });
  }
  for (auto& t : writers) t.join();
  stop_poller();
  capture_until_now();
  EXPECT_EQ(described_since_baseline(), expected);
}

TEST_P(Capture, ContactWithEmailPhoneAddressInOneTransactionComesParentFirst) {
  auto c = connect();
  ASSERT_TRUE(c.exec("START TRANSACTION"));
  ASSERT_TRUE(
      c.exec("INSERT INTO civicrm_contact (contact_type, first_name, last_name) VALUES "
             "('Individual', 'Ada', 'Lovelace')"));
  const std::string id = std::to_string(c.last_insert_id());
  ASSERT_TRUE(
      c.exec("INSERT INTO civicrm_email (contact_id, location_type_id, email, is_primary) "
             "VALUES (" +
             id + ", 2, 'ada@example.org', 1)"));
  ASSERT_TRUE(
      c.exec("INSERT INTO civicrm_phone (contact_id, location_type_id, phone, phone_type_id, "
             "is_primary) VALUES (" +
             id + ", 1, '+44 20 7946 0000', 2, 1)"));
  ASSERT_TRUE(
      c.exec("INSERT INTO civicrm_address (contact_id, location_type_id, street_address, city, "
             "country_id, is_primary) VALUES (" +
             id + ", 1, '12 St James Sq', 'London', 1226, 1)"));
  ASSERT_TRUE(c.exec("COMMIT"));
  capture_until_now();
  auto changes = outbox();
  ASSERT_EQ(changes.size(), 4u);
  EXPECT_EQ(changes[0].type, "civishare.change.contact.base");
  for (std::size_t i = 1; i < 4; ++i) {
    EXPECT_EQ(changes[i].context.at("contact_reference"), "civi1-" + id) << changes[i].type;
    EXPECT_EQ(changes[i].operation, Operation::create);
  }
  std::multiset<std::string> children;
  for (std::size_t i = 1; i < 4; ++i) children.insert(changes[i].type);
  EXPECT_EQ(children, (std::multiset<std::string>{"civishare.change.contact.address",
                                                  "civishare.change.contact.email",
                                                  "civishare.change.contact.phone"}));
  // Per-instance ids travel as names.
  for (const auto& ch : changes) {
    if (ch.type == "civishare.change.contact.email") {
      EXPECT_EQ(ch.find_attribute("location_type_id:name")->to, "Work");
    }
    if (ch.type == "civishare.change.contact.phone") {
      EXPECT_EQ(ch.find_attribute("phone_type_id:name")->to, "Mobile");
    }
    if (ch.type == "civishare.change.contact.address") {
      EXPECT_EQ(ch.find_attribute("country_id:iso_code")->to, "GB");
    }
  }
}

TEST_P(Capture, ReplayReEmitsExactlyTheChangesAfterACursor) {
  auto ids = contacts(3);
  auto c = connect();
  ASSERT_TRUE(c.exec("UPDATE civicrm_contact SET last_name = 'before' WHERE id = " + ids[0]));
  capture_until_now();
  const auto saved = cursor();
  const std::size_t before = outbox().size();
  std::this_thread::sleep_for(1100ms);
  ASSERT_TRUE(c.exec("UPDATE civicrm_contact SET last_name = 'after1' WHERE id = " + ids[0]));
  ASSERT_TRUE(c.exec("UPDATE civicrm_contact SET first_name = 'G' WHERE id = " + ids[1]));
  ASSERT_TRUE(c.exec("DELETE FROM civicrm_contact WHERE id = " + ids[2]));
  capture_until_now();
  auto all = outbox();
  std::vector<Change> after(all.begin() + static_cast<std::ptrdiff_t>(before), all.end());
  ASSERT_EQ(after.size(), 3u);
  auto replayed = source_->replay(saved, cursor(), true);
  ASSERT_TRUE(replayed.ok()) << replayed.error().message;
  EXPECT_EQ(*replayed, after);             // same ids, attributes, `from` values and signatures
  EXPECT_EQ(outbox().size(), all.size());  // a dry run queues nothing
}

TEST_P(Capture, UpdateBlockedOnAMetadataLockThenIdleIsCaptured) {
  open_source({}, 3600);  // log tables: the watermark alone
  auto ids = contacts(1);
  start_poller();
  auto locker = connect();
  ASSERT_TRUE(locker.exec("LOCK TABLES civicrm_contact WRITE"));
  std::thread blocked([&] {
    auto c = connect();
    EXPECT_TRUE(c.exec("START TRANSACTION"));
    EXPECT_TRUE(c.exec("UPDATE civicrm_contact SET last_name = 'waited' WHERE id = " + ids[0]));
    std::this_thread::sleep_for(4s);  // idle inside the transaction
    EXPECT_TRUE(c.exec("COMMIT"));
  });
  std::this_thread::sleep_for(4700ms);
  ASSERT_TRUE(locker.exec("UNLOCK TABLES"));
  blocked.join();
  std::this_thread::sleep_for(500ms);
  stop_poller();
  capture_until_now();
  EXPECT_EQ(described_since_baseline(),
            (std::multiset<std::string>{"update civi1-" + ids[0] + " last_name=\"waited\""}));
}

TEST_P(Capture, RowStampedAnHourInThePastIsCapturedOnceByTheReRead) {
  auto ids = contacts(1);
  auto c = connect();
  ASSERT_TRUE(c.exec("SET timestamp = UNIX_TIMESTAMP() - 3600"));
  ASSERT_TRUE(c.exec("UPDATE civicrm_contact SET last_name = 'past' WHERE id = " + ids[0]));
  auto other = connect();  // NOW() in `c` is the faked time
  ASSERT_EQ(other
                .scalar("SELECT COUNT(*) FROM log_civicrm_contact WHERE log_date < NOW() - "
                        "INTERVAL 50 MINUTE")
                ->value(),
            "1");
  for (int i = 0; i < 4; ++i) {  // several re-reads: still once
    std::this_thread::sleep_for(1100ms);
    capture_until_now();
  }
  EXPECT_EQ(described_since_baseline(),
            (std::multiset<std::string>{"update civi1-" + ids[0] + " last_name=\"past\""}));
}

// After an upgrade from a build that counted log rows by their sha512, the trailing re-read finds
// the rows that build captured by those counts: it takes none of them again (re-taking the
// contact's Insert row would send its first last name out as a change), and new rows still come.
TEST_P(Capture, RowsCountedByAnEarlierBuildAreNotTakenAgainByTheReRead) {
  if (binlog()) GTEST_SKIP() << "row counts belong to the log-table capture";
  auto ids = contacts(1);
  auto c = connect();
  ASSERT_TRUE(c.exec("UPDATE civicrm_contact SET last_name = 'X' WHERE id = " + ids[0]));
  capture_until_now();
  const std::string x = "update civi1-" + ids[0] + " last_name=\"X\"";
  ASSERT_EQ(described_since_baseline(), (std::multiset<std::string>{x}));
  source_.reset();
  store_.reset();
  rewrite_row_counts_as_earlier_builds();
  store_ = std::move(*Store::open(dir_));
  open_source();
  for (int i = 0; i < 3; ++i) {  // re-reads of the whole horizon
    std::this_thread::sleep_for(1100ms);
    capture_until_now();
  }
  EXPECT_EQ(described_since_baseline(), (std::multiset<std::string>{x}));
  ASSERT_TRUE(c.exec("UPDATE civicrm_contact SET last_name = 'Y' WHERE id = " + ids[0]));
  capture_until_now();
  EXPECT_EQ(described_since_baseline(),
            (std::multiset<std::string>{x, "update civi1-" + ids[0] + " last_name=\"Y\""}));
}

// A name set to A, B, A, B by one connection within one second: the log rows of the two As (and
// of the two Bs) are identical, byte for byte. Each is a change of its own, captured once, and
// the re-reads that follow take none of them again.
TEST_P(Capture, IdenticalLogRowsInOneSecondAreEachCapturedOnce) {
  auto ids = contacts(1);
  auto c = connect();
  ASSERT_TRUE(c.exec("SET timestamp = UNIX_TIMESTAMP()"));  // one second for all four
  for (const char* name : {"A", "B", "A", "B"}) {
    ASSERT_TRUE(c.exec("UPDATE civicrm_contact SET last_name = '" + std::string(name) +
                       "' WHERE id = " + ids[0]));
  }
  if (!binlog()) {
    auto other = connect();
    ASSERT_EQ(other
                  .scalar("SELECT COUNT(*) FROM (SELECT COUNT(*) AS n FROM log_civicrm_contact "
                          "WHERE id = " +
                          ids[0] +
                          " AND last_name IN ('A', 'B') GROUP BY last_name) twins "
                          "WHERE n = 2")
                  ->value(),
              "2");
  }
  for (int i = 0; i < 3; ++i) {  // re-reads: still once each
    std::this_thread::sleep_for(1100ms);
    capture_until_now();
  }
  const std::string a = "update civi1-" + ids[0] + " last_name=\"A\"";
  const std::string b = "update civi1-" + ids[0] + " last_name=\"B\"";
  EXPECT_EQ(described_since_baseline(), (std::multiset<std::string>{a, b, a, b}));
}

TEST_P(Capture, HistoryBeforeTheStartIsNotCapturedButSnapshotSharesIt) {
  // Rows written before the cursor existed: the re-read must not take them for late rows.
  source_.reset();
  store_.reset();
  std::filesystem::remove_all(dir_);
  std::filesystem::create_directories(dir_);
  auto c = connect();
  ASSERT_TRUE(
      c.exec("INSERT INTO civicrm_contact (contact_type, first_name, last_name) VALUES "
             "('Individual', 'Old', 'Timer')"));
  const std::string ref = "civi1-" + std::to_string(c.last_insert_id());
  std::this_thread::sleep_for(2s);  // history: stamped before the first watermark
  store_ = std::move(*Store::open(dir_));
  open_source();
  for (int i = 0; i < 3; ++i) {
    std::this_thread::sleep_for(1100ms);
    capture_until_now();
  }
  EXPECT_TRUE(outbox().empty()) << describe(outbox()[0]);
  auto n = source_->snapshot({registry_->find("civishare.change.contact.base")}, "");
  ASSERT_TRUE(n.ok()) << n.error().message;
  EXPECT_EQ(*n, 1u);
  ASSERT_EQ(outbox().size(), 1u);
  EXPECT_EQ(outbox()[0].operation, Operation::create);
  EXPECT_EQ(outbox()[0].entity_reference, ref);
  EXPECT_EQ(*source_->snapshot({registry_->find("civishare.change.contact.base")}, ""),
            0u);  // nothing differs
}

TEST_P(Capture, AFifthTypeNeedsOnlyADefinitionFile) {
  auto c = connect();
  // civicrm_website, its log table and logging trigger, as CiviCRM generates them.
  ASSERT_TRUE(
      c.exec("CREATE TABLE civicrm_website (id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, "
             "contact_id INT UNSIGNED, url VARCHAR(255), website_type_id INT UNSIGNED) "
             "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"));
  ASSERT_TRUE(
      c.exec("CREATE TABLE log_civicrm_website (id INT UNSIGNED, contact_id INT UNSIGNED, "
             "url VARCHAR(255), website_type_id INT UNSIGNED, log_date TIMESTAMP NOT NULL "
             "DEFAULT CURRENT_TIMESTAMP, log_conn_id VARCHAR(17), log_user_id INT, log_action "
             "ENUM('Initialization','Insert','Update','Delete')) ENGINE=InnoDB"));
  ASSERT_TRUE(
      c.exec("CREATE TRIGGER civicrm_website_after_insert AFTER INSERT ON civicrm_website FOR "
             "EACH ROW INSERT INTO log_civicrm_website (id, contact_id, url, website_type_id, "
             "log_conn_id, log_user_id, log_action) VALUES (NEW.id, NEW.contact_id, NEW.url, "
             "NEW.website_type_id, COALESCE(@uniqueID, 'c_x'), @civicrm_user_id, 'insert')"));
  open_source({R"({"type": "civishare.change.contact.website", "entity": "Website",
      "table": "civicrm_website", "parent": {"column": "contact_id",
      "type": "civishare.change.contact.base", "context_key": "contact_reference"},
      "columns": [{"column": "url", "kind": "string"}]})"});
  ASSERT_TRUE(
      c.exec("INSERT INTO civicrm_contact (contact_type, first_name) VALUES ('Individual', 'W')"));
  const std::string id = std::to_string(c.last_insert_id());
  ASSERT_TRUE(c.exec("INSERT INTO civicrm_website (contact_id, url) VALUES (" + id +
                     ", 'https://example.org')"));
  capture_until_now();
  auto changes = outbox();
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[1].type, "civishare.change.contact.website");
  EXPECT_EQ(changes[1].context.at("contact_reference"), "civi1-" + id);
  EXPECT_EQ(changes[1].find_attribute("url")->to, "https://example.org");
}

TEST_P(Capture, CompressedBinlogEventsGiveTheSameChanges) {
  if (!binlog()) GTEST_SKIP() << "binlog only";
  auto root = server_->connect();
  ASSERT_TRUE(root.exec("SET GLOBAL log_bin_compress = ON"));
  ASSERT_TRUE(root.exec("SET GLOBAL log_bin_compress_min_len = 10"));
  auto c = connect();  // a new session: the settings apply to it
  ASSERT_TRUE(
      c.exec("INSERT INTO civicrm_contact (contact_type, first_name, last_name) VALUES "
             "('Individual', 'Zip', 'Compressed-Row-With-A-Long-Enough-Name')"));
  const std::string ref = "civi1-" + std::to_string(c.last_insert_id());
  ASSERT_TRUE(c.exec("UPDATE civicrm_contact SET first_name = 'Unzipped' WHERE id = " +
                     std::to_string(c.last_insert_id())));
  // The binlog really holds compressed row events.
  std::string file = *root.query("SHOW MASTER STATUS")->rows[0][0];
  auto events = root.query("SHOW BINLOG EVENTS IN '" + file + "'");
  ASSERT_TRUE(events.ok());
  std::string types;
  for (const auto& e : events->rows) types += e[2].value_or("") + " ";
  ASSERT_NE(types.find("ompressed"), std::string::npos) << "no compressed row event: " << types;
  capture_until_now();
  EXPECT_EQ(described_in_order(),
            (std::vector<std::string>{
                "create " + ref +
                    " contact_type=\"Individual\" first_name=\"Zip\" "
                    "last_name=\"Compressed-Row-With-A-Long-Enough-Name\" is_deceased=false "
                    "is_opt_out=false do_not_email=false do_not_phone=false do_not_mail=false "
                    "do_not_sms=false do_not_trade=false is_deleted=false",
                "update " + ref + " first_name=\"Unzipped\""}));
}

// Everything a peer sees of a change but its id, signature and timestamp.
std::string full_description(const Change& c) {
  std::string out = c.type + " " + describe(c);
  for (const auto& a : c.attribute_changes)
    out += " from:" + a.name + "=" + (a.from ? boost::json::serialize(*a.from) : "-");
  for (const auto& [k, v] : c.context) out += " " + k + ":" + v;
  return out;
}

TEST(BothSources, TheSameWritesGiveTheSameChangeRecords) {
  MariaDbServer server;
  server.load_civicrm();
  auto root = server.connect();
  for (const auto& ddl : db::civishare_table_ddl()) ASSERT_TRUE(root.exec(ddl));
  const auto& registry = TypeRegistry::builtin();
  std::vector<const TypeDefinition*> types;
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& d : registry.all()) {
      if (static_cast<bool>(d.parent) == (pass == 1)) types.push_back(&d);
    }
  }
  std::filesystem::create_directories(server.dir() + "/lt");
  std::filesystem::create_directories(server.dir() + "/bl");
  auto lt_store = std::move(*Store::open(server.dir() + "/lt"));
  auto bl_store = std::move(*Store::open(server.dir() + "/bl"));
  LogTableOptions lo;
  lo.node = "civi1";
  lo.types = types;
  auto lt = LogTableSource::open(lo, server.agent_options(), *lt_store);
  ASSERT_TRUE(lt.ok()) << lt.error().message;
  BinlogOptions bo;
  bo.node = "civi1";
  bo.types = types;
  bo.server_id = 4244;
  bo.follow = false;
  auto bl = BinlogSource::open(bo, server.agent_options(), *bl_store);
  ASSERT_TRUE(bl.ok()) << bl.error().message;
  ASSERT_TRUE((*lt)->ensure_cursor().ok());
  ASSERT_TRUE((*bl)->ensure_cursor().ok());

  auto c = server.connect();
  ASSERT_TRUE(c.exec("START TRANSACTION"));
  ASSERT_TRUE(
      c.exec("INSERT INTO civicrm_contact (contact_type, first_name, last_name, gender_id, "
             "prefix_id, birth_date) VALUES ('Individual', 'Ada', 'Lovelace', 1, 2, "
             "'1815-12-10')"));
  const std::string id = std::to_string(c.last_insert_id());
  ASSERT_TRUE(
      c.exec("INSERT INTO civicrm_email (contact_id, location_type_id, email, is_primary) VALUES "
             "(" +
             id + ", 2, 'ada@example.org', 1)"));
  const std::string email = std::to_string(c.last_insert_id());
  ASSERT_TRUE(
      c.exec("INSERT INTO civicrm_phone (contact_id, location_type_id, phone, phone_type_id) "
             "VALUES (" +
             id + ", 1, '+44 20 7946 0000', 2)"));
  const std::string phone = std::to_string(c.last_insert_id());
  ASSERT_TRUE(
      c.exec("INSERT INTO civicrm_address (contact_id, location_type_id, street_address, city, "
             "country_id, state_province_id) VALUES (" +
             id + ", 1, '12 St James Sq', 'London', 1226, NULL)"));
  ASSERT_TRUE(c.exec("COMMIT"));
  ASSERT_TRUE(
      c.exec("UPDATE civicrm_contact SET first_name = 'Augusta Ada', gender_id = 2, "
             "hash = 'unshared' WHERE id = " +
             id));
  ASSERT_TRUE(c.exec("UPDATE civicrm_contact SET hash = 'only unshared' WHERE id = " + id));
  ASSERT_TRUE(
      c.exec("UPDATE civicrm_email SET email = 'ada@new.example.org', location_type_id "
             "= 1 WHERE id = " +
             email));
  ASSERT_TRUE(c.exec("DELETE FROM civicrm_phone WHERE id = " + phone));
  ASSERT_TRUE(
      c.exec("INSERT INTO civicrm_contact (contact_type, organization_name) VALUES "
             "('Organization', 'Analytical Engines Ltd')"));
  const std::string org = std::to_string(c.last_insert_id());
  ASSERT_TRUE(c.exec("UPDATE civicrm_contact SET is_deleted = 1 WHERE id = " + org));
  ASSERT_TRUE(c.exec("DELETE FROM civicrm_contact WHERE id = " + org));

  const std::int64_t target = std::stoll(c.scalar("SELECT UNIX_TIMESTAMP()")->value());
  for (int i = 0; i < 200; ++i) {
    auto r = (*lt)->poll();
    ASSERT_TRUE(r.ok()) << r.error().message;
    if (r->watermark > target) break;
    std::this_thread::sleep_for(100ms);
  }
  auto r = (*bl)->poll();
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_TRUE(r->at_head);
  auto described = [](Store& store) {
    std::multiset<std::string> out;
    auto entries = store.read_outbox(0, 1000);
    for (const auto& e : *entries) out.insert(full_description(e.change));
    return out;
  };
  const auto from_log_tables = described(*lt_store);
  EXPECT_EQ(from_log_tables.size(), 10u);
  EXPECT_EQ(described(*bl_store), from_log_tables);
}

INSTANTIATE_TEST_SUITE_P(SourceAndServerTimeZone, Capture,
                         ::testing::Values(Setup{"log_tables", "UTC"},
                                           Setup{"log_tables", "IST-5:30"}, Setup{"binlog", "UTC"},
                                           Setup{"binlog", "IST-5:30"}),
                         [](const auto& info) {
                           return std::string(info.param.source == "binlog" ? "Binlog"
                                                                            : "LogTables") +
                                  (info.param.tz == "UTC" ? "Utc" : "UtcPlus0530");
                         });

}  // namespace
}  // namespace civishare
