#include "transport/queue/store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <rocksdb/db.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <random>

#include "schemas/crypto.h"

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
}

// Log-table capture's row counts: absolute counts per second and row hash, one key per second and
// batch; the latest (highest) count wins, the counts of earlier builds (rows hashed with sha512:
// one key per row, then one per second and batch) are still read, apart, and pruning drops whole
// seconds.
TEST_F(StoreTest, RowCountsAddUpAcrossBatchesAndReopensAndOlderKeysStillCount) {
  using Counts = std::unordered_map<std::uint64_t, std::uint32_t>;
  store_.reset();
  {  // what earlier builds wrote: r/<16 hex second>/<24 hex of the row sha512> -> "count", and
     // r/<16 hex second>/#<8 hex n> -> (8-byte hash, 4-byte count)...
    std::filesystem::remove_all(dir_ / "store");  // a store of an earlier build: one family
    rocksdb::DB* raw = nullptr;
    rocksdb::Options o;
    o.create_if_missing = true;
    ASSERT_TRUE(rocksdb::DB::Open(o, (dir_ / "store").string(), &raw).ok());
    ASSERT_TRUE(
        raw->Put(rocksdb::WriteOptions(), "r/0000000000000064/0a0b0c0d0e0f1011aabbccdd", "3").ok());
    const std::string entry("\x07\0\0\0\0\0\0\0\x05\0\0\0", 12);  // hash 7, count 5
    ASSERT_TRUE(raw->Put(rocksdb::WriteOptions(), "r/0000000000000064/#00000000", entry).ok());
    delete raw;
  }
  reopen();
  const std::uint64_t legacy = 0x11100f0e0d0c0b0aULL;  // its first 8 bytes, little-endian
  CaptureBatch first;
  first.row_counts[100] = {{7, 1}, {8, 2}};
  first.row_counts[101] = {{7, 1}};
  ASSERT_TRUE(store_->commit_capture(std::move(first)));
  CaptureBatch second;
  second.row_counts[100] = {{8, 3}, {legacy, 4}};
  ASSERT_TRUE(store_->commit_capture(std::move(second)));
  reopen();
  auto at100 = store_->row_counts(100);
  ASSERT_TRUE(at100.ok()) << at100.error().message;
  // A legacy hash and a current one are different hashes of rows: never mixed up.
  EXPECT_EQ(at100->by_hash, (Counts{{7, 1}, {8, 3}, {legacy, 4}}));
  EXPECT_EQ(at100->legacy, (Counts{{legacy, 3}, {7, 5}}));
  EXPECT_EQ(store_->row_counts(101)->by_hash, (Counts{{7, 1}}));
  EXPECT_TRUE(store_->row_counts(101)->legacy.empty());
  EXPECT_TRUE(store_->row_counts(102)->empty());
  ASSERT_TRUE(store_->prune_row_counts(101));
  EXPECT_TRUE(store_->row_counts(100)->empty());
  EXPECT_EQ(store_->row_counts(101)->by_hash.size(), 1u);
}

// Entity images keep every value's JSON text byte for byte (quotes, control characters, UTF-8,
// empty strings); images stored as JSON by earlier versions read as the same texts; an image that
// is neither is reported as corrupt, not guessed at.
TEST_F(StoreTest, ImagesRoundTripAndOlderJsonImagesStillRead) {
  store_.reset();
  {
    std::filesystem::remove_all(dir_ / "store");  // a store of an earlier build: one family
    rocksdb::DB* raw = nullptr;
    rocksdb::Options o;
    o.create_if_missing = true;
    ASSERT_TRUE(rocksdb::DB::Open(o, (dir_ / "store").string(), &raw).ok());
    ASSERT_TRUE(
        raw->Put(
               rocksdb::WriteOptions(), "m/civicrm_contact/7",
               R"({"ref":"civi1-7","parent":"","values":{"first_name":"Karl","is_deleted":false,"x":null,"n":12}})")
            .ok());
    ASSERT_TRUE(raw->Put(rocksdb::WriteOptions(), "m/civicrm_contact/8",
                         "\x01\x07"
                         "civi1")
                    .ok());
    // The 0x01 encoding (every value with its name), written by the builds of session 5.
    ASSERT_TRUE(raw->Put(rocksdb::WriteOptions(), "m/civicrm_contact/9",
                         std::string("\x01\x07"
                                     "civi1-9\x00\x02\x09last_name\x05\"Kim\"\x02id\x01"
                                     "9",
                                     32))
                    .ok());
    delete raw;
  }
  reopen();
  auto legacy = store_->image("civicrm_contact/7");
  ASSERT_TRUE(legacy.ok() && *legacy) << (legacy.ok() ? "absent" : legacy.error().message);
  EXPECT_EQ((*legacy)->entity_reference, "civi1-7");
  EXPECT_EQ((*legacy)->values,
            (WireValues{
                {"first_name", "\"Karl\""}, {"is_deleted", "false"}, {"x", "null"}, {"n", "12"}}));
  EXPECT_FALSE(store_->image("civicrm_contact/8").ok());  // cut short
  auto v1 = store_->image("civicrm_contact/9");
  ASSERT_TRUE(v1.ok() && *v1) << (v1.ok() ? "absent" : v1.error().message);
  EXPECT_EQ((*v1)->entity_reference, "civi1-9");
  EXPECT_EQ((*v1)->values, (WireValues{{"last_name", "\"Kim\""}, {"id", "9"}}));

  EntityImage img;
  img.entity_reference = "civi2-1";
  img.parent_reference = "civi2-9";
  img.values = {{"last_name", "\"M\u00fcller \\\"x\\\"\\n\""},
                {"empty", "\"\""},
                {std::string(200, 'k'), std::string(300, '7')}};
  CaptureBatch b;
  b.images.emplace_back("civicrm_email/1", img);
  b.images.emplace_back("civicrm_contact/7", std::nullopt);  // erased
  ASSERT_TRUE(store_->commit_capture(std::move(b)));
  reopen();
  auto back = store_->image("civicrm_email/1");
  ASSERT_TRUE(back.ok() && *back);
  EXPECT_EQ((*back)->entity_reference, img.entity_reference);
  EXPECT_EQ((*back)->parent_reference, img.parent_reference);
  EXPECT_EQ((*back)->values, img.values);
  EXPECT_FALSE(*store_->image("civicrm_contact/7"));
  // Read into an image that held another one (capture reuses one per row): nothing of the old
  // one is left, whichever encoding the new one has; an absent image leaves a false.
  for (const char* key : {"civicrm_email/1", "civicrm_contact/9", "civicrm_email/1"}) {
    EntityImage reused = **legacy;
    reused.values.resize(7, {"left over", "\"x\""});
    auto found = store_->image_into(key, reused);
    ASSERT_TRUE(found.ok() && *found) << key;
    auto fresh = store_->image(key);
    EXPECT_EQ(reused.entity_reference, (*fresh)->entity_reference) << key;
    EXPECT_EQ(reused.parent_reference, (*fresh)->parent_reference) << key;
    EXPECT_EQ(reused.values, (*fresh)->values) << key;
  }
  EntityImage none;
  EXPECT_FALSE(*store_->image_into("civicrm_contact/7", none));
}

// Images name their values once per list of names (per type): images of two types and of the same
// type in later batches read back exactly, before and after a reopen, including the one-byte forms
// of null, false and true and texts that only start like them. What a read sees follows every
// commit (the store caches images it has read or written).
TEST_F(StoreTest, ImagesOfSeveralTypesShareTheirNamesAndReadsFollowCommits) {
  auto contact = [](const std::string& ref, const std::string& last) {
    EntityImage img;
    img.entity_reference = ref;
    img.values = {{"first_name", "null"}, {"last_name", last},   {"is_deleted", "false"},
                  {"is_opt_out", "true"}, {"nick", "\"nullx\""}, {"n", "truex"},
                  {"empty", "\"\""}};
    return img;
  };
  EntityImage email;
  email.entity_reference = "civi1-3";
  email.parent_reference = "civi1-1";
  email.values = {{"email", "\"a@example.org\""}, {"is_primary", "true"}};
  EXPECT_FALSE(*store_->image("civicrm_contact/1"));  // read (and remembered as absent) first
  CaptureBatch b;
  b.images.emplace_back("civicrm_contact/1", contact("civi1-1", "\"A\""));
  b.images.emplace_back("civicrm_email/3", email);
  ASSERT_TRUE(store_->commit_capture(std::move(b)));
  auto check = [&](const std::string& key, const EntityImage& want) {
    auto got = store_->image(key);
    ASSERT_TRUE(got.ok() && *got) << key << ": " << (got.ok() ? "absent" : got.error().message);
    EXPECT_EQ((*got)->entity_reference, want.entity_reference) << key;
    EXPECT_EQ((*got)->parent_reference, want.parent_reference) << key;
    EXPECT_EQ((*got)->values, want.values) << key;
  };
  check("civicrm_contact/1", contact("civi1-1", "\"A\""));
  check("civicrm_email/3", email);
  CaptureBatch later;
  later.images.emplace_back("civicrm_contact/1", contact("civi1-1", "\"B\""));
  later.images.emplace_back("civicrm_contact/2", contact("civi1-2", "\"C\""));
  later.images.emplace_back("civicrm_email/3", std::nullopt);
  ASSERT_TRUE(store_->commit_capture(std::move(later)));
  check("civicrm_contact/1", contact("civi1-1", "\"B\""));
  EXPECT_FALSE(*store_->image("civicrm_email/3"));
  reopen();
  check("civicrm_contact/1", contact("civi1-1", "\"B\""));
  check("civicrm_contact/2", contact("civi1-2", "\"C\""));
  EXPECT_FALSE(*store_->image("civicrm_email/3"));
  store_.reset();
  auto view = Store::open_read_only(dir_.string());
  ASSERT_TRUE(view.ok()) << view.error().message;
  auto seen = (*view)->image("civicrm_contact/2");
  ASSERT_TRUE(seen.ok() && *seen);
  EXPECT_EQ((*seen)->values, contact("civi1-2", "\"C\"").values);
}

// The images capture gathers until a checkpoint: whatever sequence of puts (new keys, images that
// fit where the old one was, bigger ones, erasures as ""), every key reads back as the last put
// left it, each once in for_each, and keys never put are absent.
TEST(EncodedImagesTest, EveryKeyReadsBackAsTheLastPutLeftIt) {
  EncodedImages images;
  std::map<std::string, std::string> model;
  std::mt19937 rng(7);
  EXPECT_FALSE(images.find("civicrm_contact/1"));
  for (int i = 0; i < 200000; ++i) {
    const std::string key = "civicrm_contact/" + std::to_string(rng() % 30000);
    const std::size_t size = rng() % 7 == 0 ? 0 : rng() % 300;  // "" now and then: erased
    std::string bytes(size, static_cast<char>('a' + rng() % 26));
    if (size > 0) bytes[rng() % size] = '\0';  // any bytes at all
    if (size == 0)
      images.put(key, {});  // as capture erases: a view with no data at all
    else
      images.put(key, bytes);
    model[key] = bytes;
    if (i % 997 == 0) {  // a key just put reads back at once, before anything else is put
      ASSERT_EQ(images.find(key), std::optional<std::string_view>(bytes)) << key;
    }
  }
  ASSERT_EQ(images.size(), model.size());
  for (const auto& [key, bytes] : model)
    ASSERT_EQ(images.find(key), std::optional<std::string_view>(bytes)) << key;
  EXPECT_FALSE(images.find("civicrm_contact/30000"));
  EXPECT_FALSE(images.find("civicrm_email/1"));
  std::map<std::string, std::string> seen;
  images.for_each([&](std::string_view key, std::string_view bytes) {
    EXPECT_TRUE(seen.emplace(std::string(key), std::string(bytes)).second) << key;
  });
  EXPECT_EQ(seen, model);
  EXPECT_GT(images.bytes(), 30000u * 150);  // what it holds, roughly: about 150 bytes each
  // Moved (as capture hands a checkpoint's images to the committer): all of it goes along, and
  // the moved-from one is empty and takes new images of its own.
  EncodedImages moved(std::move(images));
  EXPECT_EQ(moved.size(), model.size());
  EXPECT_EQ(moved.find(model.begin()->first),
            std::optional<std::string_view>(model.begin()->second));
  EXPECT_TRUE(images.empty());  // NOLINT(bugprone-use-after-move): what a move leaves is specified
  EXPECT_EQ(images.bytes(), 0u);
  images.put("civicrm_contact/1", "new");
  EXPECT_EQ(images.find("civicrm_contact/1"), std::optional<std::string_view>("new"));
  EXPECT_EQ(moved.find(model.begin()->first),
            std::optional<std::string_view>(model.begin()->second));
}

// Capture writes images itself (begin_image with the id the store gives a list of names) and
// hands them over encoded: they read back decoded, after a reopen too, so the list was saved with
// them. A list registered while a commit is between reading the unsaved lists and marking them
// saved (capture registers from its own thread) stays unsaved until a later commit writes it.
TEST_F(StoreTest, ImagesCaptureEncodedReadBackAndTheirNamesAreSaved) {
  const std::vector<std::string> names = {"first_name", "last_name", "is_deleted"};
  const std::uint64_t id = store_->image_names_id(names);
  ASSERT_NE(id, 0u);
  EXPECT_EQ(store_->image_names_id(names), id);  // the same list, the same id
  auto encoded = std::make_shared<EncodedImages>();
  std::string bytes;
  begin_image(bytes, id, "civi1-5", "");
  for (const char* text : {"\"Karl\"", "null", "false"}) append_image_value(bytes, text);
  encoded->put("civicrm_contact/5", bytes);
  encoded->put("civicrm_contact/6", "");  // erased
  CaptureBatch b;
  b.shared_images = encoded;
  ASSERT_TRUE(store_->commit_capture(std::move(b)));
  std::string raw;
  ASSERT_TRUE(*store_->image_encoded("civicrm_contact/5", raw));
  EXPECT_EQ(raw, bytes);  // stored as handed over
  reopen();
  auto back = store_->image("civicrm_contact/5");
  ASSERT_TRUE(back.ok() && *back) << (back.ok() ? "absent" : back.error().message);
  EXPECT_EQ((*back)->entity_reference, "civi1-5");
  const WireValues want = {
      {"first_name", "\"Karl\""}, {"last_name", "null"}, {"is_deleted", "false"}};
  EXPECT_EQ((*back)->values, want);
  EXPECT_FALSE(*store_->image("civicrm_contact/6"));

  ImageCodec codec;
  const std::uint64_t a = codec.register_names({"a"});
  const auto listed = codec.unsaved();
  ASSERT_EQ(listed.size(), 1u);
  const std::uint64_t later = codec.register_names({"b"});  // meanwhile, from another thread
  codec.saved(listed.size());
  const auto left = codec.unsaved();
  ASSERT_EQ(left.size(), 1u);
  EXPECT_NE(a, later);
  EXPECT_NE(left[0].first, listed[0].first);  // the later list, not the saved one
  EXPECT_EQ(codec.register_names({"b"}), later);
}

// The image cache takes the memory it is given and no more; on a cyclic pass over more entries
// than fit it still hits about in proportion (no cliff); an image too big for a bucket replaces
// nothing stale; a read that raced with a commit does not put what it read over what the commit
// wrote.
TEST(ImageCacheTest, FixedMemoryKeepsHittingWhenOverfullAndNeverStale) {
  ImageCache cache(8 * ImageCache::kBucketBytes);
  EXPECT_EQ(cache.stats().bytes, 8 * ImageCache::kBucketBytes);
  // Entries of 3 + 18 + 100 bytes: eight fit a bucket, 64 the cache; 96 keys are 1.5 times that.
  auto value = [](int i) { return std::string(100, 'a' + i % 26); };
  int later_hits = 0;
  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < 96; ++i) {
      const std::string key = "civicrm_contact/" + std::to_string(10 + i);
      auto got = cache.find(key);
      if (got) {
        EXPECT_EQ(*got, value(i));
        if (round > 0) ++later_hits;
      } else {
        cache.update({{key, value(i)}});
      }
    }
  }
  const auto s = cache.stats();
  EXPECT_LE(s.entries, 64u);
  EXPECT_GT(s.entries, 40u);
  EXPECT_GT(later_hits, 19 * 96 / 5) << later_hits << " of " << 19 * 96;
  // Smaller entries: more of them share the same memory.
  ImageCache small(8 * ImageCache::kBucketBytes);
  for (int i = 0; i < 400; ++i) small.update({{"e/" + std::to_string(i), "v"}});
  EXPECT_GT(small.stats().entries, 2 * s.entries);
  for (int i = 0; i < 400; ++i) {
    auto got = small.find("e/" + std::to_string(i));
    if (got) {
      EXPECT_EQ(*got, "v");
    }
  }

  cache.update({{"civicrm_contact/1", "small"}});
  cache.update({{"civicrm_contact/1", std::string(1100, 'b')}});  // does not fit a bucket
  EXPECT_FALSE(cache.find("civicrm_contact/1"));
  const auto before = cache.epoch();
  cache.update({{"x", "new"}});        // a commit while a read was under way
  cache.fill("x", "old", before);      // the read's (older) value
  cache.fill("y", "absent?", before);  // any fill begun before that commit is dropped
  EXPECT_EQ(*cache.find("x"), "new");
  EXPECT_FALSE(cache.find("y"));
  cache.fill("y", "", cache.epoch());  // known absent
  EXPECT_EQ(*cache.find("y"), "");
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
    // `status` does not count held records as queued for a peer
    EXPECT_EQ(store_->backlog("p", "all", [](const OutboxEntry&) { return true; })->queued, 1u);
  }
  CaptureBatch end;
  end.records = {entry("t3")};
  end.cursor_name = "binlog";
  end.cursor = "0-1-9";
  ASSERT_TRUE(store_->commit_capture(std::move(end)));
  auto out = store_->read_outbox(0, 10);
  ASSERT_EQ(out->size(), 6u);  // released whole, in order
  EXPECT_EQ(store_->backlog("p", "all", [](const OutboxEntry&) { return true; })->queued, 6u);
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
  auto backlog = store_->backlog("p", "base not from p", [](const OutboxEntry& e) {
    return e.change.type == "base" && e.came_from != "p";
  });
  ASSERT_TRUE(backlog.ok());
  EXPECT_EQ(backlog->acked, 1u);
  EXPECT_EQ(backlog->queued, 1u);
  EXPECT_GT(backlog->oldest_queued_at, 0);
}

// backlog() keeps its count from one call to the next (a running agent's /metrics asks every few
// seconds); whatever happened in between, it must say what a fresh count of the outbox says.
TEST_F(StoreTest, BacklogKeptUpToDateAgreesWithAFreshCountAfterEveryStep) {
  const std::function<bool(const OutboxEntry&)> rules[] = {
      [](const OutboxEntry& e) { return e.change.type == "base" && e.came_from != "p"; },
      [](const OutboxEntry& e) { return e.came_from != "p"; }};
  const char* names[] = {"base not from p", "not from p"};
  std::uint64_t acked = 0, last = 0;
  std::uint32_t random = 12345;
  auto next = [&random](std::uint32_t n) {
    random = random * 1103515245u + 12345u;
    return (random >> 16) % n;
  };
  for (int step = 0; step < 200; ++step) {
    const int rule = step < 120 ? 0 : 1;  // the peer's accepted types change once
    switch (next(6)) {
      case 0:
      case 1:
      case 2: {  // capture a few records; now and then a held part of a big transaction
        CaptureBatch b;
        for (std::uint32_t i = 0, n = 1 + next(4); i < n; ++i) {
          b.records.push_back(entry(next(2) ? "base" : "email", next(3) == 0 ? "p" : ""));
        }
        b.hold = next(5) == 0;
        last += b.records.size();
        ASSERT_TRUE(store_->commit_capture(std::move(b)));
        break;
      }
      case 3:  // the peer acknowledges some
        acked = std::min(last, acked + next(6));
        ASSERT_TRUE(store_->set_acked("p", acked));
        break;
      case 4:  // what every peer has acknowledged goes
        ASSERT_TRUE(store_->prune({"p"}, 0, 3600, 3600));
        break;
      case 5:
        if (next(4) == 0) reopen();
        break;
    }
    auto counted = store_->backlog("p", names[rule], rules[rule]);
    ASSERT_TRUE(counted.ok()) << step;
    auto fresh = store_->read_outbox(acked, 100000);
    ASSERT_TRUE(fresh.ok());
    std::uint64_t want = 0;
    std::int64_t oldest = 0;
    for (const auto& e : *fresh) {
      if (!rules[rule](e)) continue;
      if (want++ == 0) oldest = e.queued_at;
    }
    EXPECT_EQ(counted->acked, acked) << step;
    EXPECT_EQ(counted->queued, want) << "step " << step;
    EXPECT_EQ(counted->oldest_queued_at, oldest) << step;
  }
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

// Opens the store (closed) with RocksDB itself and hands `use` its family `family`.
void with_family(const std::filesystem::path& store_dir, const std::string& family, bool writable,
                 const std::function<void(rocksdb::DB&, rocksdb::ColumnFamilyHandle*)>& use) {
  std::vector<std::string> names;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::Options(), store_dir.string(), &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const auto& n : names) descriptors.emplace_back(n, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  const auto opened =
      writable
          ? rocksdb::DB::Open(rocksdb::Options(), store_dir.string(), descriptors, &handles, &raw)
          : rocksdb::DB::OpenForReadOnly(rocksdb::Options(), store_dir.string(), descriptors,
                                         &handles, &raw);
  ASSERT_TRUE(opened.ok()) << opened.ToString();
  for (std::size_t i = 0; i < handles.size(); ++i) {
    if (names[i] == family) use(*raw, handles[i]);
    raw->DestroyColumnFamilyHandle(handles[i]);
  }
  delete raw;
}

std::vector<std::string> seen_keys(const std::filesystem::path& store_dir) {
  std::vector<std::string> keys;
  with_family(store_dir, "seen", false, [&](rocksdb::DB& db, rocksdb::ColumnFamilyHandle* seen) {
    std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(rocksdb::ReadOptions(), seen));
    for (it->SeekToFirst(); it->Valid(); it->Next()) keys.push_back(it->key().ToString());
  });
  return keys;
}

// A signature (base64 of a sha512) is kept as 32 raw bytes, anything else as its text; both are
// found again, a different signature is not, and a text that only looks like a signature (not
// canonical base64) is not taken for the one it resembles. Signatures an earlier build kept as
// text ("s/" + text) still count after a reopen, and pruning drops both kinds.
TEST_F(StoreTest, SeenSignaturesAreKeptCompactlyAndThoseOfEarlierBuildsStillCount) {
  const std::string a = base64_encode(sha512("change a")), b = base64_encode(sha512("change b"));
  const std::string old_sig = base64_encode(sha512("seen by an earlier build"));
  ASSERT_EQ(a.size(), 88u);
  std::string look_alike = a;  // the last character's unused bits set: not canonical base64
  look_alike[85] = static_cast<char>(look_alike[85] + 1);
  ASSERT_TRUE(store_->mark_signatures_seen({a, "peer's odd signature"}));
  EXPECT_TRUE(*store_->any_signature_seen({a}));
  EXPECT_TRUE(*store_->any_signature_seen({b, "peer's odd signature"}));
  EXPECT_FALSE(*store_->any_signature_seen({b}));
  EXPECT_FALSE(*store_->any_signature_seen({look_alike}));
  EXPECT_FALSE(*store_->any_signature_seen({"peer's odd signature 2"}));
  store_.reset();
  auto keys = seen_keys(dir_ / "store");
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0].size(), 2u + 1 + 32);  // "s/" 0x00 + 32 bytes
  EXPECT_EQ(keys[0].substr(3), sha512("change a").substr(0, 32));
  EXPECT_EQ(keys[1], std::string("s/\x01") + "peer's odd signature");

  // What an earlier build wrote: "s/" + the signature's text.
  with_family(dir_ / "store", "seen", true,
              [&](rocksdb::DB& db, rocksdb::ColumnFamilyHandle* seen) {
                const std::string now = std::to_string(unix_now());
                ASSERT_TRUE(db.Put(rocksdb::WriteOptions(), seen, "s/" + old_sig, now).ok());
                ASSERT_TRUE(db.Put(rocksdb::WriteOptions(), seen, "s/old odd one", now).ok());
              });
  reopen();
  EXPECT_TRUE(*store_->any_signature_seen({old_sig}));
  EXPECT_TRUE(*store_->any_signature_seen({"old odd one"}));
  EXPECT_TRUE(*store_->any_signature_seen({a}));
  EXPECT_FALSE(*store_->any_signature_seen({b}));
  sleep(1);
  ASSERT_TRUE(store_->prune({}, 3600, 3600, 0).ok());  // a signature window of 0 s: all go
  EXPECT_FALSE(*store_->any_signature_seen({old_sig}));
  EXPECT_FALSE(*store_->any_signature_seen({"old odd one"}));
  EXPECT_FALSE(*store_->any_signature_seen({a}));
  store_.reset();
  EXPECT_TRUE(seen_keys(dir_ / "store").empty());
}

// Capture keeps no signature of what it emits (a change of ours that comes back is known by its
// id, see the receiver): its commits leave the seen family empty. Keys of the builds that kept
// them ("s/" 0x02, the timestamp's length and text, the 32 bytes) do not make a store look like
// one with text keys of older builds, and pruning drops them like the rest.
TEST_F(StoreTest, CaptureKeepsNoSignatureAndOwnKeysOfEarlierBuildsArePruned) {
  CaptureBatch b;
  for (const char* name : {"t1", "t2"}) {
    OutboxEntry e = entry(name);
    e.change.loop_detection = {base64_encode(sha512(std::string("captured ") + name))};
    b.records.push_back(std::move(e));
  }
  ASSERT_TRUE(store_->commit_capture(std::move(b)));
  ASSERT_EQ(store_->read_outbox(0, 10)->size(), 2u);
  store_.reset();
  EXPECT_TRUE(seen_keys(dir_ / "store").empty());

  const std::string own = std::string("s/\x02\x14") + "2026-11-28T10:00:01Z" + std::string(32, 'x');
  with_family(
      dir_ / "store", "seen", true, [&](rocksdb::DB& db, rocksdb::ColumnFamilyHandle* seen) {
        ASSERT_TRUE(db.Put(rocksdb::WriteOptions(), seen, own, std::to_string(unix_now())).ok());
      });
  reopen();
  // Were the store taken for one with text keys, a text would be looked up as "s/" + text.
  EXPECT_FALSE(*store_->any_signature_seen({own.substr(2)}));
  sleep(1);
  ASSERT_TRUE(store_->prune({}, 3600, 0, 0).ok());
  store_.reset();
  EXPECT_TRUE(seen_keys(dir_ / "store").empty());
  reopen();
}

// Queued changes are kept in a compact binary form: every field comes back as it went in (context,
// `from` absent or null, numbers, text that needs escaping, several signatures, the peer it came
// from, only_to), in the outbox and the inbox alike. Entries that earlier builds wrote as JSON are
// still read, and a damaged entry is an error that names it, not a wrong change.
TEST_F(StoreTest, QueuedChangesReadBackWhateverTheyHoldAndEntriesOfEarlierBuildsToo) {
  OutboxEntry rich = entry("civishare.change.contact.email", "civi2");
  rich.change.operation = Operation::remove;
  rich.change.context = {{"contact_reference", "civi1-312"}, {"primary_email", "k\"@x.org"}};
  rich.change.attribute_changes = {
      {"email", boost::json::value("karl@example.org"), boost::json::value("carl\n\u00e9")},
      {"is_primary", std::nullopt, boost::json::value(true)},
      {"location_type_id:name", boost::json::value(nullptr), boost::json::value(2.5)},
      {"n", boost::json::value(-12), boost::json::value(std::uint64_t{18446744073709551615u})}};
  rich.change.loop_detection = {"c2lnMQ==", "c2lnMg==", ""};
  rich.only_to = "civi3";
  OutboxEntry plain = entry("t1");
  CaptureBatch b;
  b.records = {rich, plain};
  ASSERT_TRUE(store_->commit_capture(std::move(b)));
  ASSERT_TRUE(store_->commit_receive("civi2", "m1", {InboxEntry{0, rich.change, "civi2"}}));
  reopen();
  auto out = store_->read_outbox(0, 10);
  ASSERT_TRUE(out.ok()) << out.error().message;
  ASSERT_EQ(out->size(), 2u);
  EXPECT_EQ((*out)[0].change, rich.change);
  EXPECT_EQ((*out)[0].came_from, "civi2");
  EXPECT_EQ((*out)[0].only_to, "civi3");
  EXPECT_GT((*out)[0].queued_at, 0);
  EXPECT_EQ((*out)[1].change, plain.change);
  EXPECT_EQ((*out)[1].only_to, "");
  auto in = store_->read_inbox(10);
  ASSERT_TRUE(in.ok()) << in.error().message;
  ASSERT_EQ(in->size(), 1u);
  EXPECT_EQ((*in)[0].change, rich.change);
  EXPECT_EQ((*in)[0].came_from, "civi2");

  // Counting what a peer still gets reads an entry's routing fields only (no values parsed).
  std::vector<OutboxEntry> routed;
  auto counted = store_->backlog("civi3", "all", [&](const OutboxEntry& e) {
    routed.push_back(e);
    return true;
  });
  ASSERT_TRUE(counted.ok()) << counted.error().message;
  EXPECT_EQ(counted->queued, 2u);
  ASSERT_EQ(routed.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    const OutboxEntry& want = i == 0 ? rich : plain;
    EXPECT_EQ(routed[i].seq, i + 1);
    EXPECT_EQ(routed[i].change.id, want.change.id);
    EXPECT_EQ(routed[i].change.type, want.change.type);
    EXPECT_EQ(routed[i].change.entity_reference, want.change.entity_reference);
    EXPECT_EQ(routed[i].came_from, want.came_from);
    EXPECT_EQ(routed[i].only_to, want.only_to);
    EXPECT_EQ(routed[i].queued_at, (*out)[i].queued_at);
  }
  // The sender reads the same way: what it declines comes back with its routing fields only,
  // what it wants whole, every seq in order either way.
  for (const std::string& want_type : {rich.change.type, plain.change.type}) {
    std::vector<std::string> shown;
    auto read = store_->read_outbox(0, 10, [&](const OutboxEntry& e) {
      shown.push_back(e.change.type);
      EXPECT_TRUE(e.change.attribute_changes.empty() && e.change.loop_detection.empty());
      return e.change.type == want_type;
    });
    ASSERT_TRUE(read.ok()) << read.error().message;
    EXPECT_EQ(shown, (std::vector<std::string>{rich.change.type, plain.change.type}));
    ASSERT_EQ(read->size(), 2u);
    for (std::size_t i = 0; i < 2; ++i) {
      const OutboxEntry& got = (*read)[i];
      EXPECT_EQ(got.seq, i + 1);
      EXPECT_EQ(got.change.type, (*out)[i].change.type);
      EXPECT_EQ(got.came_from, (*out)[i].came_from);
      EXPECT_EQ(got.only_to, (*out)[i].only_to);
      if (got.change.type == want_type) {
        EXPECT_EQ(got.change, (*out)[i].change);
      } else {
        EXPECT_TRUE(got.change.attribute_changes.empty());
        EXPECT_TRUE(got.change.loop_detection.empty());
      }
    }
  }

  // Overwrite the two outbox entries as an earlier build (JSON) and as damaged bytes.
  store_.reset();
  with_family(dir_ / "store", "outbox", true, [&](rocksdb::DB& db, rocksdb::ColumnFamilyHandle* h) {
    const std::string json = "{\"change\":" + boost::json::serialize(to_json(rich.change)) +
                             ",\"from\":\"civi2\",\"at\":1700000000,\"to\":\"civi3\"}";
    ASSERT_TRUE(db.Put(rocksdb::WriteOptions(), h, "o/0000000000000001", json).ok());
    const std::string damaged = {'\xb1', '\x05', 'a', 'b'};  // a text of 5 bytes cut after 2
    ASSERT_TRUE(db.Put(rocksdb::WriteOptions(), h, "o/0000000000000002", damaged).ok());
  });
  reopen();
  auto old = store_->read_outbox(0, 1);
  ASSERT_TRUE(old.ok()) << old.error().message;
  ASSERT_EQ(old->size(), 1u);
  EXPECT_EQ((*old)[0].change, rich.change);
  EXPECT_EQ((*old)[0].came_from, "civi2");
  EXPECT_EQ((*old)[0].only_to, "civi3");
  EXPECT_EQ((*old)[0].queued_at, 1700000000);
  auto old_wanted = store_->read_outbox(0, 1, [](const OutboxEntry&) { return true; });
  ASSERT_TRUE(old_wanted.ok()) << old_wanted.error().message;
  ASSERT_EQ(old_wanted->size(), 1u);
  EXPECT_EQ((*old_wanted)[0].change, rich.change);  // read whole once, as the sender gets it
  auto damaged = store_->read_outbox(1, 1);
  ASSERT_FALSE(damaged.ok());
  EXPECT_NE(damaged.error().message.find("corrupt queue entry 2"), std::string::npos)
      << damaged.error().message;
  auto count_damaged = store_->backlog("civi3", "all", [](const OutboxEntry&) { return true; });
  ASSERT_FALSE(count_damaged.ok());
  EXPECT_NE(count_damaged.error().message.find("corrupt queue entry 2"), std::string::npos)
      << count_damaged.error().message;
}

// Capture does not store its own signature: a batch committed with sign_as is read back with that
// node's signature appended to each record's chain (after a chain it carries, as an applied
// change's echo does), the same on every read and after a reopen, without the 88 characters in
// the stored bytes. Reading for routing only makes no signature.
TEST_F(StoreTest, CapturedRecordsAreSignedWhenReadAndTheSignatureIsNotStored) {
  OutboxEntry fresh = entry("civishare.change.contact.base");
  fresh.change.loop_detection.clear();
  fresh.change.attribute_changes = {
      {"first_name", boost::json::value("Karl"), boost::json::value("Carl")}};
  OutboxEntry echo = entry("civishare.change.contact.email", "civi2");
  echo.change.loop_detection = {"c2lnMQ=="};
  CaptureBatch b;
  b.records = {fresh, echo};
  b.sign_as = "civi9";
  ASSERT_TRUE(store_->commit_capture(std::move(b)));
  const std::string fresh_sig = change_signature(fresh.change, "civi9");
  const std::string echo_sig = change_signature(echo.change, "civi9");
  ASSERT_NE(fresh_sig, echo_sig);
  for (int round = 0; round < 2; ++round) {
    auto out = store_->read_outbox(0, 10);
    ASSERT_TRUE(out.ok()) << out.error().message;
    ASSERT_EQ(out->size(), 2u);
    EXPECT_EQ((*out)[0].change.loop_detection, std::vector<std::string>{fresh_sig});
    EXPECT_EQ((*out)[1].change.loop_detection, (std::vector<std::string>{"c2lnMQ==", echo_sig}));
    EXPECT_EQ((*out)[0].change.attribute_changes, fresh.change.attribute_changes);
    std::vector<OutboxEntry> routed;
    ASSERT_TRUE(store_
                    ->backlog("civi3", "all",
                              [&](const OutboxEntry& e) {
                                routed.push_back(e);
                                return true;
                              })
                    .ok());
    ASSERT_EQ(routed.size(), 2u);
    EXPECT_TRUE(routed[0].change.loop_detection.empty());
    EXPECT_TRUE(routed[1].change.loop_detection.empty());
    reopen();
  }
  store_.reset();
  std::string stored;
  with_family(dir_ / "store", "outbox", false,
              [&](rocksdb::DB& db, rocksdb::ColumnFamilyHandle* h) {
                ASSERT_TRUE(db.Get(rocksdb::ReadOptions(), h, "o/0000000000000001", &stored).ok());
              });
  EXPECT_EQ(stored.find(fresh_sig), std::string::npos);
  EXPECT_NE(stored.find("civi9"), std::string::npos);  // the signing node instead
  // Cut before the signing node's name: a damaged entry, not an unsigned change.
  with_family(dir_ / "store", "outbox", true, [&](rocksdb::DB& db, rocksdb::ColumnFamilyHandle* h) {
    ASSERT_TRUE(db.Put(rocksdb::WriteOptions(), h, "o/0000000000000001",
                       stored.substr(0, stored.size() - 6))
                    .ok());
  });
  reopen();
  auto damaged = store_->read_outbox(0, 1);
  ASSERT_FALSE(damaged.ok());
  EXPECT_NE(damaged.error().message.find("corrupt queue entry 1"), std::string::npos)
      << damaged.error().message;
}

// Outbox keys are "o/" + the sequence number as 16 lower-case hex digits, as every earlier build
// wrote them (with printf): entries queued by an older binary are read in order with new ones.
TEST_F(StoreTest, OutboxKeysAreSixteenLowerCaseHexDigitsAsEarlierBuildsWroteThem) {
  CaptureBatch b;
  for (int i = 0; i < 300; ++i) b.records.push_back(entry("t" + std::to_string(i)));
  ASSERT_TRUE(store_->commit_capture(std::move(b)));
  store_.reset();
  std::vector<std::string> keys;
  with_family(dir_ / "store", "outbox", false,
              [&](rocksdb::DB& db, rocksdb::ColumnFamilyHandle* h) {
                std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(rocksdb::ReadOptions(), h));
                for (it->Seek("o/"); it->Valid() && it->key().starts_with("o/"); it->Next())
                  keys.push_back(it->key().ToString());
              });
  ASSERT_EQ(keys.size(), 300u);
  for (unsigned i = 0; i < 300; ++i) {
    char want[32];
    std::snprintf(want, sizeof want, "o/%016x", i + 1);
    EXPECT_EQ(keys[i], want);
  }
  reopen();
  auto out = store_->read_outbox(0xfe, 3);
  ASSERT_TRUE(out.ok()) << out.error().message;
  ASSERT_EQ(out->size(), 3u);
  EXPECT_EQ((*out)[0].seq, 0xffu);
  EXPECT_EQ((*out)[0].change.type, "t254");
  EXPECT_EQ((*out)[2].seq, 0x101u);
}

// Earlier builds kept every key in RocksDB's default column family. Such a store, holding a bit
// of everything, opens read-only as it is, and the first read-write open moves the outbox, images
// and seen signatures into their own families: everything reads back as before, nothing stays
// behind in the default family, and the next open has nothing left to move.
TEST_F(StoreTest, AStoreOfAnEarlierBuildWithOneColumnFamilyMovesWholeIntoTheFamilies) {
  CaptureBatch b;
  b.records = {entry("t1"), entry("t2")};
  EntityImage img;
  img.entity_reference = "civi1-7";
  img.values = {{"first_name", "\"Karl\""}};
  b.images.emplace_back("civicrm_contact/7", img);
  b.cursor_name = "log_tables";
  b.cursor = "lt1:100";
  b.row_counts[100] = {{7, 1}};
  ASSERT_TRUE(store_->commit_capture(std::move(b)));
  ASSERT_TRUE(store_->set_acked("p", 1));
  ASSERT_TRUE(store_->commit_receive("p", "m1", {InboxEntry{0, entry("t3").change, "p"}}));
  store_.reset();

  // The same keys and values, all in the default family (as an earlier build wrote them).
  std::vector<std::pair<std::string, std::string>> all;
  {
    std::vector<std::string> names;
    ASSERT_TRUE(
        rocksdb::DB::ListColumnFamilies(rocksdb::Options(), (dir_ / "store").string(), &names)
            .ok());
    EXPECT_EQ(names.size(), 4u);
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
    for (const auto& n : names) descriptors.emplace_back(n, rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::OpenForReadOnly(rocksdb::Options(), (dir_ / "store").string(),
                                             descriptors, &handles, &raw)
                    .ok());
    for (auto* h : handles) {
      std::unique_ptr<rocksdb::Iterator> it(raw->NewIterator(rocksdb::ReadOptions(), h));
      for (it->SeekToFirst(); it->Valid(); it->Next())
        all.emplace_back(it->key().ToString(), it->value().ToString());
      raw->DestroyColumnFamilyHandle(h);
    }
    delete raw;
  }
  std::filesystem::remove_all(dir_ / "store");
  {
    rocksdb::DB* raw = nullptr;
    rocksdb::Options o;
    o.create_if_missing = true;
    ASSERT_TRUE(rocksdb::DB::Open(o, (dir_ / "store").string(), &raw).ok());
    for (const auto& [k, v] : all) ASSERT_TRUE(raw->Put(rocksdb::WriteOptions(), k, v).ok());
    delete raw;
  }
  auto check = [&](Store& s, std::size_t records) {
    auto out = s.read_outbox(0, 10);
    ASSERT_TRUE(out.ok()) << out.error().message;
    ASSERT_EQ(out->size(), records);
    EXPECT_EQ((*out)[1].change.type, "t2");
    auto back = s.image("civicrm_contact/7");
    ASSERT_TRUE(back.ok() && *back);
    EXPECT_EQ((*back)->values, img.values);
    EXPECT_FALSE(*s.any_signature_seen({"sig-t1"}));  // captured here: not kept
    EXPECT_TRUE(*s.any_signature_seen({"sig-t3"}));
    EXPECT_FALSE(*s.any_signature_seen({"sig-t4"}));
    EXPECT_EQ(*s.cursor("log_tables"), std::optional<std::string>("lt1:100"));
    EXPECT_EQ(*s.acked("p"), 1u);
    EXPECT_EQ(s.row_counts(100)->by_hash.size(), 1u);
  };
  {
    auto ro = Store::open_read_only(dir_.string());
    ASSERT_TRUE(ro.ok()) << ro.error().message;
    check(**ro, 2);
  }
  for (int open = 0; open < 2; ++open) {
    reopen();
    check(*store_, 2 + open);
    EXPECT_EQ(*store_->message_seen("p", "m1"), true);
    EXPECT_EQ(store_->read_inbox(10)->size(), 1u);
    CaptureBatch more;  // sequences go on after the moved records
    more.records = {entry("t5")};
    ASSERT_TRUE(store_->commit_capture(std::move(more)));
    auto out = store_->read_outbox(2 + open, 10);
    ASSERT_EQ(out->size(), 1u);
    EXPECT_EQ((*out)[0].seq, 3u + open);
  }
  store_.reset();
  {  // nothing of the three families stayed behind in the default one
    rocksdb::DB* raw = nullptr;
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors{
        {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()}};
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    ASSERT_TRUE(rocksdb::DB::OpenForReadOnly(rocksdb::Options(), (dir_ / "store").string(),
                                             descriptors, &handles, &raw)
                    .ok());
    std::unique_ptr<rocksdb::Iterator> it(raw->NewIterator(rocksdb::ReadOptions(), handles[0]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const std::string k = it->key().ToString();
      EXPECT_FALSE(k.starts_with("o/") || k.starts_with("m/") || k.starts_with("s/")) << k;
    }
    it.reset();
    raw->DestroyColumnFamilyHandle(handles[0]);
    delete raw;
  }
  reopen();
  check(*store_, 4);
}

TEST_F(StoreTest, ReadOnlyViewWorksBesideTheWriter) {
  ASSERT_TRUE(store_->set_acked("p", 7));
  auto ro = Store::open_read_only(dir_.string());
  ASSERT_TRUE(ro.ok()) << ro.error().message;
  EXPECT_EQ(*(*ro)->acked("p"), 7u);
}

}  // namespace
}  // namespace civishare
