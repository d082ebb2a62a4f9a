// Fault suite: A sends contacts and emails to B while something fails: the local databases are
// restarted mid-run, B's database is down while changes arrive, the network between the agents
// is cut, refused, slowed and cut mid-request (a TcpProxy between them). After each fault the
// agents recover on their own (no restart) and the end state is exact: B's copy equals A's and
// civishare_applied holds each change once.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "tests/support/cluster.h"
#include "tests/support/tcp_proxy.h"
#include "transport/webhook.h"

namespace civishare::testing {
namespace {
using namespace std::chrono_literals;

constexpr int kContacts = 20;  // per burst: 3 x 20 changes

class Faults : public ::testing::Test {
 protected:
  void SetUp() override {
    a_ = std::make_unique<TestNode>("a", 0);
    b_ = std::make_unique<TestNode>("b", 10);
  }

  // A -> B, optionally through a proxy; `a_env`: extra environment of A's agent.
  void link(std::uint16_t via_port = 0, const std::vector<std::string>& a_env = {}) {
    const std::string secret = webhook::new_secret();
    const std::vector<std::string> types = {"civishare.change.contact.base",
                                            "civishare.change.contact.email"};
    Link to_b{"b", secret, types, {}};
    to_b.via_port = via_port;
    a_->configure({{to_b, b_.get()}});
    b_->configure({{Link{"a", secret, {}, types}, a_.get()}});
    a_->init();
    b_->init();
    a_->start(a_env);
    b_->start();
  }

  ::testing::AssertionResult b_matches_a(std::chrono::seconds timeout = 90s) {
    const std::string expected = burst_state_at_origin(*a_);
    if (wait_until([&] { return burst_state_at_copy(*b_) == expected; }, timeout)) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "B never matched A.\nA:\n"
                                         << expected << "\nB:\n"
                                         << burst_state_at_copy(*b_) << "\n--- A log\n"
                                         << a_->log() << "\n--- B log\n"
                                         << b_->log();
  }

  void expect_each_applied_once(int bursts) {
    const std::string n = std::to_string(3 * kContacts * bursts);
    EXPECT_EQ(b_->query("SELECT CONCAT(COUNT(*), '/', COUNT(DISTINCT change_id), '/', "
                        "SUM(outcome = 'applied')) FROM civishare_applied WHERE came_from = 'a'"),
              n + "/" + n + "/" + n);
  }

  void both_databases_restarted_mid_run() {
    link();
    write_burst(*a_, "x", kContacts);
    ASSERT_TRUE(b_matches_a());

    a_->db().stop();
    b_->db().stop();
    std::this_thread::sleep_for(2s);  // both agents notice and keep retrying
    a_->db().start();
    b_->db().start();
    write_burst(*a_, "y", kContacts);
    ASSERT_TRUE(b_matches_a());
    expect_each_applied_once(2);
    EXPECT_TRUE(a_->running());
    EXPECT_TRUE(b_->running());
    // The restarts did hit both: A's capture and B's applier each lost their connection.
    EXPECT_NE(a_->log().find("ERROR capture"), std::string::npos) << a_->log();
    EXPECT_NE(b_->log().find("ERROR applier"), std::string::npos) << b_->log();
  }

  std::unique_ptr<TestNode> a_, b_;
};

TEST_F(Faults, BothDatabasesRestartedMidRunCaptureAndApplierResumeAlone) {
  both_databases_restarted_mid_run();
}

// The binlog source's stream breaks with the server; it reconnects and resumes from its cursor.
TEST_F(Faults, BothDatabasesRestartedMidRunTheBinlogSourceResumesFromItsCursor) {
  a_->capture_source = b_->capture_source = "binlog";
  both_databases_restarted_mid_run();
}

TEST_F(Faults, TargetDatabaseDownChangesWaitInTheInboxAndApplyOnceItReturns) {
  link();
  b_->db().stop();
  write_burst(*a_, "x", kContacts);
  // Received and persisted by B's agent, held in its inbox while the database is away.
  ASSERT_TRUE(wait_until(
      [&] {
        return b_->status_json().find("\"inbox\":" + std::to_string(3 * kContacts)) !=
               std::string::npos;
      },
      60s))
      << b_->status_json() << "\n--- B log\n"
      << b_->log();
  EXPECT_NE(b_->log().find("received changes stay in the inbox"), std::string::npos) << b_->log();

  b_->db().start();
  ASSERT_TRUE(b_matches_a());
  expect_each_applied_once(1);
  EXPECT_NE(b_->status_json().find("\"inbox\":0"), std::string::npos);
}

TEST_F(Faults, NetworkCutRefusedSlowedAndCutMidRequestEverythingArrivesOnce) {
  TcpProxy proxy(b_->port());
  link(proxy.port());
  write_burst(*a_, "x", kContacts);
  ASSERT_TRUE(b_matches_a());

  // Cut: open connections dropped, new ones reset.
  proxy.set_mode(TcpProxy::Mode::refuse);
  proxy.cut();
  write_burst(*a_, "y", kContacts);
  std::this_thread::sleep_for(4s);
  EXPECT_NE(burst_state_at_copy(*b_), burst_state_at_origin(*a_)) << "the cut did not cut";
  EXPECT_NE(a_->log().find("unreachable"), std::string::npos) << a_->log();

  // Restored, but slow (250 ms per chunk each way), and cut again while requests are in flight:
  // a batch B persisted but could not answer is sent again and recognised, not applied twice.
  proxy.set_delay_ms(250);
  proxy.set_mode(TcpProxy::Mode::pass);
  write_burst(*a_, "z", kContacts);
  for (int i = 0; i < 3; ++i) {
    std::this_thread::sleep_for(1500ms);
    proxy.cut();
  }
  proxy.set_delay_ms(0);
  ASSERT_TRUE(b_matches_a());
  expect_each_applied_once(3);
}

TEST_F(Faults, DataDirAlmostFullGivesAClearErrorLosesNothingAndRecoversWhenSpaceReturns) {
  // While `flag` exists, A's data dir looks almost full (1 MB free; an LD_PRELOAD shim over
  // statvfs), below node.min_free_mb (100 by default).
  const std::string flag = a_->dir() + "/disk-full";
  link(0, {std::string("LD_PRELOAD=") + CIVISHARE_DISK_FULL_SHIM,
           "CIVISHARE_DISK_FULL_FLAG=" + flag, "CIVISHARE_DISK_FULL_DIR=" + a_->dir() + "/data"});
  write_burst(*a_, "x", kContacts);
  ASSERT_TRUE(b_matches_a());

  write_file(flag, "");
  write_burst(*a_, "y", kContacts);
  ASSERT_TRUE(wait_until(
      [&] { return a_->log().find("data dir almost full: 1 MB free") != std::string::npos; }, 60s))
      << a_->log();
  std::this_thread::sleep_for(3s);
  EXPECT_TRUE(a_->running()) << "an almost full disk must not stop the agent";
  EXPECT_NE(burst_state_at_copy(*b_), burst_state_at_origin(*a_))
      << "nothing can have been captured while the data dir was full";

  std::filesystem::remove(flag);  // space is back: capture carries on by itself
  ASSERT_TRUE(b_matches_a());
  expect_each_applied_once(2);
  EXPECT_TRUE(a_->running()) << a_->log();
  // Nothing corrupted: the store reopens after a restart and nothing moves again.
  EXPECT_EQ(a_->stop(), 0);
  a_->start();
  std::this_thread::sleep_for(3s);
  EXPECT_TRUE(a_->running()) << a_->log();
  expect_each_applied_once(2);
}

}  // namespace
}  // namespace civishare::testing
