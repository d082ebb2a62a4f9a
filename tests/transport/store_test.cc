#include "transport/queue/store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace civishare {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("civishare-store-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    reopen();
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void reopen() {
    store_.reset();
    auto s = Store::open(dir_.string());
    ASSERT_TRUE(s.ok()) << s.error().message;
    store_ = std::move(*s);
  }
  static OutboxEntry entry(const std::string& type, const std::string& from = "") {
    OutboxEntry e;
    e.change.id = "x";
    e.change.type = type;
    e.change.timestamp = "2026-11-28T09:59:58Z";
    e.change.entity = "Contact";
    e.change.entity_reference = "civi1-1";
    e.change.loop_detection = {"sig-" + type + from};
    e.came_from = from;
    return e;
  }
  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreTest, RecordsAndCursorCommitTogetherAndSurviveAReopen) {
  CaptureBatch b;
  b.records = {entry("t1"), entry("t2")};
  b.cursor_name = "log_tables";
  b.cursor = "lt1:100";
  ASSERT_TRUE(store_->commit_capture(std::move(b)));
  reopen();
  EXPECT_EQ(*store_->cursor("log_tables"), std::optional<std::string>("lt1:100"));
  auto out = store_->read_outbox(0, 10);
  ASSERT_EQ(out->size(), 2u);
  EXPECT_EQ((*out)[0].seq, 1u);
  EXPECT_EQ((*out)[1].change.type, "t2");
  EXPECT_GT((*out)[0].queued_at, 0);
  // Our own signatures count as processed.
  EXPECT_TRUE(*store_->any_signature_seen({"sig-t1"}));
}

TEST_F(StoreTest, HeldRecordsOfAnUnfinishedTransactionStayInvisibleAcrossAReopen) {
  CaptureBatch before;
  before.records = {entry("t1")};
  ASSERT_TRUE(store_->commit_capture(std::move(before)));
  for (int part = 0; part < 2; ++part) {  // a huge transaction, committed in two parts
    CaptureBatch b;
    b.records = {entry("t2"), entry("t2")};
    b.hold = true;
    ASSERT_TRUE(store_->commit_capture(std::move(b)));
    EXPECT_EQ(store_->read_outbox(0, 10)->size(), 1u) << "part " << part;
    reopen();  // a crash between the parts keeps what was held, and holds it
    EXPECT_EQ(store_->read_outbox(0, 10)->size(), 1u) << "part " << part;
  }
  CaptureBatch end;
  end.records = {entry("t3")};
  end.cursor_name = "binlog";
  end.cursor = "0-1-9";
  ASSERT_TRUE(store_->commit_capture(std::move(end)));
  auto out = store_->read_outbox(0, 10);
  ASSERT_EQ(out->size(), 6u);  // released whole, in order
  EXPECT_EQ((*out)[1].change.type, "t2");
  EXPECT_EQ((*out)[5].change.type, "t3");
  reopen();
  EXPECT_EQ(store_->read_outbox(0, 10)->size(), 6u);
}

TEST_F(StoreTest, SequencesNeverRestartEvenAfterEverythingWasPruned) {
  CaptureBatch b;
  b.records = {entry("t1"), entry("t1")};
  ASSERT_TRUE(store_->commit_capture(std::move(b)));
  ASSERT_TRUE(store_->set_acked("p", 2));
  EXPECT_EQ(*store_->prune({"p"}, 0, 3600, 3600), 2u);
  reopen();
  CaptureBatch c;
  c.records = {entry("t1")};
  ASSERT_TRUE(store_->commit_capture(std::move(c)));
  auto out = store_->read_outbox(2, 10);
  ASSERT_EQ(out->size(), 1u);
  EXPECT_EQ((*out)[0].seq, 3u);  // a peer acked at 2 must not miss it
}

TEST_F(StoreTest, PruneKeepsWhatAnyPeerStillNeedsAndWhatIsInsideRetention) {
  CaptureBatch b;
  b.records = {entry("t1"), entry("t1"), entry("t1")};
  ASSERT_TRUE(store_->commit_capture(std::move(b)));
  ASSERT_TRUE(store_->set_acked("fast", 3));
  ASSERT_TRUE(store_->set_acked("slow", 1));
  EXPECT_EQ(*store_->prune({"fast", "slow"}, 3600, 3600, 3600), 0u);  // retention keeps all
  EXPECT_EQ(*store_->prune({"fast", "slow"}, 0, 3600, 3600), 1u);     // slow still needs 2, 3
  EXPECT_EQ(store_->read_outbox(0, 10)->size(), 2u);
}

TEST_F(StoreTest, BacklogCountsOnlyWhatThePeerGets) {
  CaptureBatch b;
  b.records = {entry("base"), entry("email"), entry("base", "p"), entry("base")};
  ASSERT_TRUE(store_->commit_capture(std::move(b)));
  ASSERT_TRUE(store_->set_acked("p", 1));
  auto backlog = store_->backlog(
      "p", [](const OutboxEntry& e) { return e.change.type == "base" && e.came_from != "p"; });
  ASSERT_TRUE(backlog.ok());
  EXPECT_EQ(backlog->acked, 1u);
  EXPECT_EQ(backlog->queued, 1u);
  EXPECT_GT(backlog->oldest_queued_at, 0);
}

TEST_F(StoreTest, InboxKeepsOrderAndRemembersMessageIds) {
  InboxEntry e1{0, entry("t1").change, "p"}, e2{0, entry("t2").change, "p"};
  ASSERT_TRUE(store_->commit_receive("p", "m1", {e1, e2}));
  EXPECT_TRUE(*store_->message_seen("p", "m1"));
  EXPECT_FALSE(*store_->message_seen("q", "m1"));
  auto in = store_->read_inbox(10);
  ASSERT_EQ(in->size(), 2u);
  EXPECT_EQ((*in)[0].change.type, "t1");
  ASSERT_TRUE(store_->remove_inbox((*in)[0].seq));
  EXPECT_EQ(store_->inbox_size(), 1u);
  EXPECT_TRUE(*store_->any_signature_seen({"sig-t2"}));
}

TEST_F(StoreTest, ReadOnlyViewWorksBesideTheWriter) {
  ASSERT_TRUE(store_->set_acked("p", 7));
  auto ro = Store::open_read_only(dir_.string());
  ASSERT_TRUE(ro.ok()) << ro.error().message;
  EXPECT_EQ(*(*ro)->acked("p"), 7u);
}

}  // namespace
}  // namespace civishare
