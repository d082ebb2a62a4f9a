#include "transport/receiver.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>

#include "transport/webhook.h"

namespace civishare {
namespace {
namespace json = boost::json;

std::int64_t now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class ReceiverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("civishare-receiver-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    store_ = std::move(*Store::open(dir_.string()));
    key_ = *webhook::key_from_secret(webhook::new_secret());
    PeerLink civi1{"civi1", "http://127.0.0.1:1", key_, {}, {"civishare.change.contact.base"}, ""};
    receiver_ = std::make_unique<ChangeReceiver>("civi2", std::vector<PeerLink>{civi1}, *store_,
                                                 TypeRegistry::builtin(), [this] { ++notified_; });
  }
  void TearDown() override {
    receiver_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  static Change change(const std::string& type, const std::string& first_name) {
    Change c;
    c.id = "civi1-" + first_name;
    c.type = type;
    c.timestamp = "2026-11-28T09:59:58Z";
    c.entity = type == "civishare.change.contact.email" ? "Email" : "Contact";
    c.entity_reference = "civi1-1";
    c.operation = Operation::create;
    c.attribute_changes = {{type == "civishare.change.contact.email" ? "email" : "first_name",
                            std::nullopt, json::value(first_name)}};
    c.context["contact_reference"] = "civi1-1";
    c.loop_detection = {change_signature(c, "civi1")};
    return c;
  }

  HttpRequest request(const std::string& id, std::vector<Change> changes, std::string key = "",
                      std::int64_t ts = 0, std::string sender = "civi1") {
    Message m{id, sender, "2026-11-28T10:00:00Z", std::move(changes)};
    HttpRequest r;
    r.method = "POST";
    r.target = "/v1/changes";
    r.body = json::serialize(to_json(m));
    if (ts == 0) ts = now();
    r.headers["content-type"] = "application/json";
    r.headers["webhook-id"] = id;
    r.headers["webhook-timestamp"] = std::to_string(ts);
    r.headers["webhook-signature"] = webhook::sign(key.empty() ? key_ : key, id, ts, r.body);
    return r;
  }

  static json::array results(const HttpResponse& r) {
    return json::parse(r.body).at("results").as_array();
  }

  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
  std::string key_;
  std::unique_ptr<ChangeReceiver> receiver_;
  int notified_ = 0;
};

TEST_F(ReceiverTest, AcceptsASignedBatchIntoTheInbox) {
  auto r = receiver_->handle(request("m1", {change("civishare.change.contact.base", "Karl")}));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(results(r)[0].at("status"), "accepted");
  auto inbox = store_->read_inbox(10);
  ASSERT_EQ(inbox->size(), 1u);
  EXPECT_EQ((*inbox)[0].came_from, "civi1");
  EXPECT_EQ((*inbox)[0].change.find_attribute("first_name")->to, "Karl");
  EXPECT_EQ(notified_, 1);
}

TEST_F(ReceiverTest, WrongSignatureIs401AndStoresNothing) {
  auto other = *webhook::key_from_secret(webhook::new_secret());
  auto r =
      receiver_->handle(request("m1", {change("civishare.change.contact.base", "Karl")}, other));
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(store_->inbox_size(), 0u);
}

TEST_F(ReceiverTest, StaleTimestampIs401) {
  auto r = receiver_->handle(
      request("m1", {change("civishare.change.contact.base", "Karl")}, "", now() - 600));
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(r.body.find("tolerance"), std::string::npos);
}

TEST_F(ReceiverTest, UnknownSenderIs403) {
  auto r = receiver_->handle(
      request("m1", {change("civishare.change.contact.base", "Karl")}, "", 0, "civi9"));
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(r.body.find("civi9"), std::string::npos);
}

TEST_F(ReceiverTest, MalformedBodiesAre400) {
  HttpRequest r = request("m1", {});
  r.body = "{\"id\": ";
  EXPECT_EQ(receiver_->handle(r).status, 400);
  r.body = "[]";
  EXPECT_EQ(receiver_->handle(r).status, 400);
}

TEST_F(ReceiverTest, WrongContentTypeIs415) {
  auto r = request("m1", {change("civishare.change.contact.base", "Karl")});
  r.headers["content-type"] = "text/plain";
  EXPECT_EQ(receiver_->handle(r).status, 415);
  EXPECT_EQ(store_->inbox_size(), 0u);
}

TEST_F(ReceiverTest, TooManyChangesIs413) {
  std::vector<Change> many(ChangeReceiver::kMaxChangesPerMessage + 1,
                           change("civishare.change.contact.base", "Karl"));
  EXPECT_EQ(receiver_->handle(request("m1", std::move(many))).status, 413);
  EXPECT_EQ(store_->inbox_size(), 0u);
}

TEST_F(ReceiverTest, ReplayedMessageIdIs409) {
  auto first = receiver_->handle(request("m1", {change("civishare.change.contact.base", "Karl")}));
  ASSERT_EQ(first.status, 200);
  auto again = receiver_->handle(request("m1", {change("civishare.change.contact.base", "Karl")}));
  EXPECT_EQ(again.status, 409);
  EXPECT_EQ(store_->inbox_size(), 1u);
}

TEST_F(ReceiverTest, RefusesPerChangeNotPerBatch) {
  auto bad = change("civishare.change.contact.base", "Bad");
  bad.attribute_changes.push_back({"api_key", std::nullopt, json::value("secret")});
  auto only_refused =
      receiver_->handle(request("m0", {change("civishare.change.contact.email", "x@b.org")}));
  EXPECT_EQ(only_refused.status, 422);
  EXPECT_EQ(results(only_refused)[0].at("status"), "refused");
  auto r = receiver_->handle(request("m1", {change("civishare.change.contact.email", "a@b.org"),
                                            change("civishare.change.contact.base", "Karl"), bad}));
  ASSERT_EQ(r.status, 200);
  auto res = results(r);
  EXPECT_EQ(res[0].at("status"), "refused");  // email is not in our incoming for civi1
  EXPECT_NE(json::serialize(res[0]).find("not accepted"), std::string::npos);
  EXPECT_EQ(res[1].at("status"), "accepted");
  EXPECT_EQ(res[2].at("status"), "refused");  // api_key is not a shared column
  EXPECT_EQ(store_->inbox_size(), 1u);
}

// A change this node (civi2) captured comes back over two more nodes: its id still names civi2 as
// its origin, so it is a loop, whatever its chain holds. Ids of other origins are not taken for
// ours, nor are ids that merely begin with our name.
TEST_F(ReceiverTest, AChangeThisNodeCapturedIsALoopWhenItComesBack) {
  const std::string hex24 = "0123456789abcdef01234567";
  Change back = change("civishare.change.contact.base", "Karl");
  back.id = change_id("civi2", hex24);
  back.loop_detection = {change_signature(back, "civi2"), change_signature(back, "civi3"),
                         change_signature(back, "civi1")};
  Change other = back;
  other.id = change_id("civi2-east", hex24);  // another node whose name begins like ours
  other.loop_detection = {change_signature(other, "civi1")};
  Change odd = back;
  odd.id = "civi2-not-a-hash";
  odd.timestamp = "2026-11-28T10:00:01Z";  // else its signature would be `other`'s
  odd.loop_detection = {change_signature(odd, "civi1")};
  auto r = receiver_->handle(request("m1", {back, other, odd}));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(results(r)[0].at("status"), "duplicate");
  EXPECT_EQ(results(r)[1].at("status"), "accepted");
  EXPECT_EQ(results(r)[2].at("status"), "accepted");
  EXPECT_EQ(store_->inbox_size(), 2u);
  EXPECT_EQ(*store_->counter(Store::kLoopsDropped), 1u);
}

TEST_F(ReceiverTest, AChangeSeenBeforeIsADuplicateEvenInANewMessage) {
  auto c = change("civishare.change.contact.base", "Karl");
  ASSERT_EQ(receiver_->handle(request("m1", {c})).status, 200);
  auto r = receiver_->handle(request("m2", {c}));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(results(r)[0].at("status"), "duplicate");
  EXPECT_EQ(store_->inbox_size(), 1u);
}

TEST_F(ReceiverTest, HelloNamesTheNodeAndTheAcceptedTypes) {
  HttpRequest r;
  r.method = "GET";
  r.target = "/v1/hello";
  auto ts = now();
  r.headers["webhook-id"] = "hello-1";
  r.headers["webhook-timestamp"] = std::to_string(ts);
  r.headers["webhook-signature"] = webhook::sign(key_, "hello-1", ts, "");
  auto res = receiver_->handle(r);
  ASSERT_EQ(res.status, 200) << res.body;
  auto body = json::parse(res.body);
  EXPECT_EQ(body.at("node"), "civi2");
  EXPECT_EQ(body.at("accepts").as_array().size(), 1u);
  r.headers["webhook-signature"] = "v1,AAAA";
  EXPECT_EQ(receiver_->handle(r).status, 401);
}

TEST(HttpServer, ServesOverLoopbackAndLimitsBodies) {
  ServerOptions options;
  options.body_limit = 1024;
  auto server = HttpServer::start(options, [](const HttpRequest& r) {
    return HttpResponse{200, "text/plain",
                        r.method + " " + r.target + " " + std::to_string(r.body.size())};
  });
  ASSERT_TRUE(server.ok()) << server.error().message;
  const std::string port = std::to_string((*server)->port());
  auto curl = [&](const std::string& args) {
    std::string cmd =
        "curl -s -o - -w ' %{http_code}' " + args + " http://127.0.0.1:" + port + "/x 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    char buf[4096];
    std::string out;
    while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    ::pclose(p);
    return out;
  };
  EXPECT_EQ(curl("-d hello"), "POST /x 5 200");
  std::string big(2048, 'x');
  EXPECT_NE(curl("-d " + big).find("413"), std::string::npos);
  EXPECT_EQ(curl(""), "GET /x 0 200");  // still serving after a refused request
}

}  // namespace
}  // namespace civishare
