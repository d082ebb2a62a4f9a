// Crash-point suite: A sends contacts and emails to B; one agent SIGKILLs itself at a named point
// (schemas/crash_point.h) while a burst of changes is in flight, is restarted, and the end state
// must be exact: B's contacts and emails equal A's (by global reference and shared columns) and
// civishare_applied on B holds each change exactly once.
//
// Needs a build with -DCIVISHARE_CRASH_POINTS=ON (deploy/setup.sh --test does that); without it
// the tests are skipped with a message, since the points would never fire.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <thread>

#include "tests/support/cluster.h"
#include "transport/queue/store.h"
#include "transport/webhook.h"

namespace civishare::testing {
namespace {
using namespace std::chrono_literals;

struct CrashCase {
  const char* point;
  bool on_sender;  // the point is in A's agent (capture, sender); otherwise in B's
};

std::string case_name(const ::testing::TestParamInfo<CrashCase>& info) {
  std::string n = info.param.point;
  for (char& c : n)
    if (c == '.') c = '_';
  return n;
}

// A [[peer]] that sends contact.base to a port nobody listens on: captured records stay queued.
std::string unreachable_peer() {
  return "[[peer]]\nname = \"civi2\"\nurl = \"http://127.0.0.1:" + std::to_string(free_port()) +
         "\"\nsecret = \"" + webhook::new_secret() +
         "\"\noutgoing = [\"civishare.change.contact.base\"]\nincoming = []\n";
}

constexpr int kContacts = 30;  // each with an email: 60 changes, then 30 updates: 90 in all

class CrashPoints : public ::testing::TestWithParam<CrashCase> {
 protected:
  void SetUp() override {
#ifndef CIVISHARE_CRASH_POINTS
    GTEST_SKIP()
        << "built without -DCIVISHARE_CRASH_POINTS=ON: the crash points are not compiled in";
#endif
    a_ = std::make_unique<TestNode>("a", 0);
    b_ = std::make_unique<TestNode>("b", 10);
    secret_ = webhook::new_secret();
    const std::string& secret = secret_;
    const std::vector<std::string> types = {"civishare.change.contact.base",
                                            "civishare.change.contact.email"};
    // Debug logging: the most a log ever says, and still never the link secret.
    a_->configure({{Link{"b", secret, types, {}}, b_.get()}}, "", "[log]\nlevel = \"debug\"\n");
    b_->configure({{Link{"a", secret, {}, types}, a_.get()}}, "", "[log]\nlevel = \"debug\"\n");
    a_->init();
    b_->init();
  }

  std::unique_ptr<TestNode> a_, b_;
  std::string secret_;
};

TEST_P(CrashPoints, RestartAfterSigkillLosesNothingAndAppliesNothingTwice) {
  const CrashCase& k = GetParam();
  TestNode& victim = k.on_sender ? *a_ : *b_;
  TestNode& other = k.on_sender ? *b_ : *a_;

  // The first burst is in the log before the agents start: the victim's first pass over the
  // point carries real changes.
  write_burst(*a_, "x", kContacts);
  std::this_thread::sleep_for(2500ms);  // the burst's log_date seconds are complete: one window
  other.start();
  victim.start({std::string("CIVISHARE_CRASH_AT=") + k.point});
  ASSERT_TRUE(wait_until([&] { return !victim.running(); }, 60s))
      << "crash point " << k.point << " was never reached\n"
      << victim.log();
  ASSERT_NE(victim.log().find(std::string("crash point `") + k.point + "` reached"),
            std::string::npos)
      << victim.log();

  // Restarted without the crash point; a second burst while it catches up.
  victim.start();
  write_burst(*a_, "y", kContacts);
  const std::string expected = burst_state_at_origin(*a_);
  ASSERT_EQ(std::count(expected.begin(), expected.end(), '\n') + 1, 2 * kContacts);
  ASSERT_TRUE(wait_until([&] { return burst_state_at_copy(*b_) == expected; }, 90s))
      << "B never matched A.\nA:\n"
      << expected << "\nB:\n"
      << burst_state_at_copy(*b_) << "\n--- A log\n"
      << a_->log() << "\n--- B log\n"
      << b_->log();

  // Exactly once: 2 bursts x (contact + email + update) changes, each recorded once, all applied.
  EXPECT_EQ(b_->query("SELECT CONCAT(COUNT(*), '/', COUNT(DISTINCT change_id), '/', "
                      "SUM(outcome = 'applied')) FROM civishare_applied WHERE came_from = 'a'"),
            std::to_string(6 * kContacts) + "/" + std::to_string(6 * kContacts) + "/" +
                std::to_string(6 * kContacts));
  EXPECT_EQ(b_->query("SELECT COUNT(*) FROM civishare_applied WHERE outcome <> 'applied'"), "0");
  // Recovered by the atomic outbox commit, not by the trailing re-read's safety net (which would
  // hide a cursor committed apart from its records).
  EXPECT_EQ(a_->log().find("appeared stamped in the past"), std::string::npos) << a_->log();
  const std::string key_part = secret_.substr(6);  // after "whsec_"
  EXPECT_EQ(a_->log().find(key_part), std::string::npos);
  EXPECT_EQ(b_->log().find(key_part), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Points, CrashPoints,
                         ::testing::Values(CrashCase{"capture.before_commit", true},
                                           CrashCase{"capture.after_commit", true},
                                           CrashCase{"capture.cursor_write", true},
                                           CrashCase{"sender.after_send", true},
                                           CrashCase{"receiver.after_persist", false},
                                           CrashCase{"applier.after_commit", false}),
                         case_name);

// The binlog source commits a huge transaction in held parts (5,000 records each): killed between
// two parts, nothing of it is visible to senders, and the restart resumes the transaction after
// the rows already committed: every row once, in order.
TEST(BinlogCrash, KilledBetweenTheHeldPartsOfAHugeTransactionResumesItExactlyOnce) {
#ifndef CIVISHARE_CRASH_POINTS
  GTEST_SKIP() << "built without -DCIVISHARE_CRASH_POINTS=ON: the crash points are not compiled in";
#endif
  TestNode a("civi1", 0);
  a.capture_source = "binlog";
  a.configure({}, "", unreachable_peer());
  a.init();
  auto c = a.db().connect();
  ASSERT_TRUE(
      c.exec("INSERT INTO civicrm_contact (contact_type, last_name) SELECT 'Individual', "
             "CONCAT('L', seq) FROM seq_1_to_20000"));
  const std::vector<std::string> run = {"run", "--once", "--config", a.config_path()};
  std::string out;
  run_civishare(run, &out, {"CIVISHARE_CRASH_AT=capture.after_commit:2"});
  ASSERT_NE(out.find("crash point `capture.after_commit` reached"), std::string::npos) << out;
  {
    auto store = Store::open_read_only(a.dir() + "/data");
    ASSERT_TRUE(store.ok()) << store.error().message;
    EXPECT_EQ((*store)->last_outbox_seq(), 10000u);          // two parts committed ...
    EXPECT_TRUE((*store)->read_outbox(0, 100000)->empty());  // ... and held
  }
  EXPECT_EQ(run_civishare(run, &out), 3) << out;  // caught up; the peer is unreachable
  auto store = Store::open_read_only(a.dir() + "/data");
  ASSERT_TRUE(store.ok()) << store.error().message;
  auto entries = (*store)->read_outbox(0, 100000);
  ASSERT_EQ(entries->size(), 20000u);
  for (std::size_t i = 0; i < entries->size(); ++i) {
    ASSERT_EQ((*entries)[i].change.find_attribute("last_name")->to,
              boost::json::value("L" + std::to_string(i + 1)))
        << "record " << i;
  }
}

// The log-table capture commits a long pass in chunks of 5,000 records, and the images and row
// counts that go with them at checkpoints (capture.max_pending_mb of them gathered, and at the
// end); the chunks in between are held. Killed after a checkpoint and two held chunks, senders see
// only what the checkpoint released, and the restart drops the held records and captures their
// rows again: every change once, each contact's in order, each update's `from` what the change
// before it left.
TEST(LogTableCrash, KilledBetweenCheckpointsResumesFromTheLastOneExactlyOnce) {
#ifndef CIVISHARE_CRASH_POINTS
  GTEST_SKIP() << "built without -DCIVISHARE_CRASH_POINTS=ON: the crash points are not compiled in";
#endif
  TestNode a("civi1", 0);
  a.capture_extra = "max_pending_mb = 1\n";  // a checkpoint after the first 5,000 new contacts
  a.configure({}, "", unreachable_peer());
  a.init();
  auto c = a.db().connect();
  ASSERT_TRUE(  // a long first name: the 5,000 images come to well over 1 MB
      c.exec("INSERT INTO civicrm_contact (contact_type, first_name, last_name) SELECT "
             "'Individual', CONCAT(REPEAT('f', 60), seq), CONCAT('L', seq) FROM seq_1_to_5000"));
  const std::int64_t first = std::stoll(
      c.scalar("SELECT MIN(id) FROM civicrm_contact WHERE last_name = 'L1'")->value_or("0"));
  ASSERT_GT(first, 0);
  constexpr int kUpdates = 110;  // of the first 100 contacts: 11,000 log rows, 100 images
  for (int k = 1; k <= kUpdates; ++k) {
    ASSERT_TRUE(c.exec("UPDATE civicrm_contact SET last_name = CONCAT('L', id - " +
                       std::to_string(first - 1) + ", '-" + std::to_string(k) +
                       "') WHERE id BETWEEN " + std::to_string(first) + " AND " +
                       std::to_string(first + 99)));
  }
  std::this_thread::sleep_for(2s);  // every row below the watermark: one pass takes them all
  const std::vector<std::string> run = {"run", "--once", "--config", a.config_path()};
  std::string out;
  run_civishare(run, &out, {"CIVISHARE_CRASH_AT=capture.after_commit:3"});
  ASSERT_NE(out.find("crash point `capture.after_commit` reached"), std::string::npos) << out;
  {
    auto store = Store::open_read_only(a.dir() + "/data");
    ASSERT_TRUE(store.ok()) << store.error().message;
    EXPECT_EQ((*store)->last_outbox_seq(), 15000u);              // three chunks committed ...
    EXPECT_EQ((*store)->read_outbox(0, 100000)->size(), 5000u);  // ... two of them held
  }
  EXPECT_EQ(run_civishare(run, &out), 3) << out;  // caught up; the peer is unreachable
  EXPECT_NE(out.find("dropped, their rows are captured again"), std::string::npos) << out;
  auto store = Store::open_read_only(a.dir() + "/data");
  ASSERT_TRUE(store.ok()) << store.error().message;
  auto entries = (*store)->read_outbox(0, 100000);
  ASSERT_TRUE(entries.ok()) << entries.error().message;
  ASSERT_EQ(entries->size(), 5000u + 100u * kUpdates);
  std::map<std::string, std::vector<std::string>> names;  // reference -> last names, in order
  for (const auto& e : *entries) {
    const AttributeChange* name = e.change.find_attribute("last_name");
    ASSERT_NE(name, nullptr) << e.change.entity_reference;
    const auto& seen = names[e.change.entity_reference];
    if (seen.empty()) {
      ASSERT_EQ(e.change.operation, Operation::create) << e.change.entity_reference;
    } else {
      ASSERT_EQ(e.change.operation, Operation::update) << e.change.entity_reference;
      ASSERT_TRUE(name->from) << e.change.entity_reference;
      ASSERT_EQ(*name->from, boost::json::value(seen.back())) << e.change.entity_reference;
    }
    names[e.change.entity_reference].push_back(std::string(name->to.as_string()));
  }
  ASSERT_EQ(names.size(), 5000u);
  for (std::int64_t i = 0; i < 5000; ++i) {
    std::vector<std::string> expected = {"L" + std::to_string(i + 1)};
    for (int k = 1; i < 100 && k <= kUpdates; ++k)
      expected.push_back(expected.front() + "-" + std::to_string(k));
    ASSERT_EQ(names["civi1-" + std::to_string(first + i)], expected) << "contact " << first + i;
  }
}

}  // namespace
}  // namespace civishare::testing
