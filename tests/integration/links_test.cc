// Transport between real agents on loopback: a peer that is down, type negotiation, one-way
// links, replayed requests, hostile requests, HTTPS.
#include <arpa/inet.h>
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "schemas/change.h"
#include "tests/support/cluster.h"
#include "transport/receiver.h"
#include "transport/webhook.h"

namespace civishare::testing {
namespace {
namespace json = boost::json;
using namespace std::chrono_literals;

const std::string kBase = "civishare.change.contact.base";
const std::string kEmail = "civishare.change.contact.email";

json::object peer_status(TestNode& n, const std::string& peer) {
  auto out = n.status_json();
  auto v = json::parse(out.substr(out.find('{')));
  for (const auto& p : v.at("peers").as_array()) {
    if (p.at("name").as_string() == peer) return p.as_object();
  }
  throw std::runtime_error("no peer " + peer + " in status: " + out);
}

// Sends raw bytes to 127.0.0.1:port and returns the whole response (the server closes).
std::string raw_http(std::uint16_t port, const std::string& request, std::size_t extra_body = 0) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return "connect failed";
  }
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string chunk(1 << 16, 'x');
  for (std::size_t sent = 0; sent < extra_body; sent += chunk.size()) {
    if (::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL) < 0) break;  // server hung up
  }
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) {
    out.append(buf, static_cast<std::size_t>(n));
    if (out.find("\r\n\r\n") != std::string::npos &&
        out.find("Connection: close") == std::string::npos &&
        out.find("connection: close") == std::string::npos) {
      // keep-alive answer: stop once the announced body is in
      auto cl = out.find("Content-Length: ");
      if (cl != std::string::npos) {
        std::size_t len = std::stoul(out.substr(cl + 16));
        if (out.size() >= out.find("\r\n\r\n") + 4 + len) break;
      }
    }
  }
  ::close(fd);
  return out;
}

int status_of(const std::string& response) {
  if (response.rfind("HTTP/1.1 ", 0) != 0) return -1;
  return std::stoi(response.substr(9, 3));
}

Change sample_change(const std::string& type, const std::string& value) {
  Change c;
  c.id = "civi1-" + value;
  c.type = type;
  c.timestamp = utc_now_iso();
  c.entity = type == kEmail ? "Email" : "Contact";
  c.entity_reference = "civi1-999";
  c.operation = Operation::create;
  c.attribute_changes = {
      {type == kEmail ? "email" : "last_name", std::nullopt, json::value(value)}};
  c.context["contact_reference"] = "civi1-999";
  c.loop_detection = {change_signature(c, "civi1")};
  return c;
}

std::string message_body(std::vector<Change> changes, const std::string& sender = "civi1") {
  return json::serialize(to_json(Message{"m", sender, utc_now_iso(), std::move(changes)}));
}

struct RawRequest {
  std::string method = "POST";
  std::string target = "/v1/changes";
  std::string content_type = "application/json";
  std::string body;
  std::string id = "msg-1";
  std::string timestamp;  // "" = now
  std::string signature;  // "" = computed with key
  std::string key;
  bool sign = true;
  std::size_t content_length = 0;  // 0 = body.size()

  std::string text() const {
    std::string ts = timestamp.empty() ? std::to_string(unix_now()) : timestamp;
    std::string out =
        method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
    if (!content_type.empty()) out += "Content-Type: " + content_type + "\r\n";
    if (sign) {
      std::int64_t t = 0;
      try {
        t = std::stoll(ts);
      } catch (...) {
      }
      out += "webhook-id: " + id + "\r\nwebhook-timestamp: " + ts + "\r\nwebhook-signature: " +
             (signature.empty() ? webhook::sign(key, id, t, body) : signature) + "\r\n";
    }
    out += "Content-Length: " + std::to_string(content_length ? content_length : body.size()) +
           "\r\n\r\n" + body;
    return out;
  }
};

class Links : public ::testing::Test {
 protected:
  void SetUp() override {
    a_ = std::make_unique<TestNode>("civi1", 0);
    b_ = std::make_unique<TestNode>("civi2", 10);
    secret_ = webhook::new_secret();
    key_ = *webhook::key_from_secret(secret_);
  }
  void link(Link a_to_b, Link b_to_a, const std::string& b_receiver_extra = "") {
    a_to_b.peer = "civi2";
    b_to_a.peer = "civi1";
    a_to_b.secret = b_to_a.secret = secret_;
    a_->configure({{a_to_b, b_.get()}});
    b_->configure({{b_to_a, a_.get()}}, b_receiver_extra);
    a_->init();
    b_->init();
  }
  std::unique_ptr<TestNode> a_, b_;
  std::string secret_, key_;
};

TEST_F(Links, PeerDownWhileTenThousandChangesAreCapturedGetsAllOfThemOnceInOrder) {
  link(Link{}, Link{});
  a_->start();
  auto a = a_->db().connect();
  const auto written = std::chrono::steady_clock::now();
  // 2,500 contacts created, then each renamed three times: 10,000 changes.
  ASSERT_TRUE(
      a.exec("INSERT INTO civicrm_contact (contact_type, first_name, last_name, "
             "external_identifier) SELECT 'Individual', CONCAT('F', seq, '-0'), "
             "CONCAT('L', seq), CONCAT('X', seq) FROM seq_1_to_2500"));
  for (int k = 1; k <= 3; ++k) {
    ASSERT_TRUE(
        a.exec("UPDATE civicrm_contact SET first_name = CONCAT(SUBSTRING_INDEX(first_name, "
               "'-', 1), '-', " +
               std::to_string(k) + ")"));
  }
  ASSERT_TRUE(wait_until([&] { return peer_status(*a_, "civi2").at("queued") == 10000; }, 60s))
      << a_->status_json();
  EXPECT_NE(peer_status(*a_, "civi2").at("last_error"), nullptr);  // B is down
  std::this_thread::sleep_until(written + 30s);
  EXPECT_GE(peer_status(*a_, "civi2").at("oldest_queued_age_s").as_int64(), 20);

  b_->start();
  ASSERT_TRUE(wait_until(
      [&] { return b_->query("SELECT COUNT(*) FROM civishare_applied") == "10000"; }, 240s))
      << b_->query("SELECT COUNT(*) FROM civishare_applied");
  EXPECT_EQ(b_->query("SELECT COUNT(*) FROM civishare_applied WHERE outcome = 'applied'"), "10000");
  const std::string digest =
      "SELECT MD5(GROUP_CONCAT(CONCAT_WS('|', external_identifier, first_name, last_name) "
      "ORDER BY external_identifier)) FROM civicrm_contact";
  EXPECT_EQ(b_->query(digest), a_->query(digest));
  EXPECT_EQ(b_->query("SELECT COUNT(*) FROM civicrm_contact WHERE first_name LIKE '%-3'"), "2500");
  ASSERT_TRUE(wait_until([&] { return peer_status(*a_, "civi2").at("queued") == 0; }, 30s));
}

TEST_F(Links, APeerGetsOnlyTheTypesBothSidesAgreeOn) {
  Link a_to_b;
  a_to_b.outgoing = {kBase, kEmail};
  Link b_to_a;
  b_to_a.incoming = {kBase};
  link(a_to_b, b_to_a);
  a_->start();
  b_->start();
  auto a = a_->db().connect();
  ASSERT_TRUE(a.exec("START TRANSACTION"));
  ASSERT_TRUE(
      a.exec("INSERT INTO civicrm_contact (contact_type, first_name, last_name) VALUES "
             "('Individual', 'Mia', 'Typed')"));
  ASSERT_TRUE(
      a.exec("INSERT INTO civicrm_email (contact_id, location_type_id, email, is_primary) "
             "VALUES (LAST_INSERT_ID(), 1, 'mia@example.org', 1)"));
  ASSERT_TRUE(a.exec("COMMIT"));
  ASSERT_TRUE(wait_until([&] {
    return b_->query("SELECT COUNT(*) FROM civicrm_contact WHERE last_name = 'Typed'") == "1";
  }));
  ASSERT_TRUE(wait_until([&] { return peer_status(*a_, "civi2").at("queued") == 0; }));
  EXPECT_EQ(b_->query("SELECT COUNT(*) FROM civicrm_email"), "0");
  auto st = peer_status(*a_, "civi2");
  EXPECT_EQ(json::serialize(st.at("sends")), "[\"" + kBase + "\"]");
  EXPECT_NE(a_->log().find("peer `civi2` gets: " + kBase), std::string::npos) << a_->log();
  EXPECT_EQ(b_->log().find("refused"), std::string::npos);  // filtered by the sender, not refused
}

TEST_F(Links, OneWayLinkNeverCarriesTheOtherSidesChanges) {
  Link b_to_a;
  b_to_a.outgoing = {};
  link(Link{}, b_to_a);
  a_->start();
  b_->start();
  auto b = b_->db().connect();
  ASSERT_TRUE(
      b.exec("INSERT INTO civicrm_contact (contact_type, first_name, last_name) VALUES "
             "('Individual', 'Only', 'OnB')"));
  auto a = a_->db().connect();
  ASSERT_TRUE(
      a.exec("INSERT INTO civicrm_contact (contact_type, first_name, last_name) VALUES "
             "('Individual', 'From', 'A')"));
  ASSERT_TRUE(wait_until([&] {
    return b_->query("SELECT COUNT(*) FROM civicrm_contact WHERE last_name = 'A'") == "1";
  }));
  std::this_thread::sleep_for(3s);
  EXPECT_EQ(a_->query("SELECT COUNT(*) FROM civicrm_contact WHERE last_name = 'OnB'"), "0");
  EXPECT_EQ(a_->query("SELECT COUNT(*) FROM civishare_applied"), "0");
  EXPECT_EQ(json::serialize(peer_status(*b_, "civi1").at("sends")), "[]");
}

// Forwards requests to `target_port` and keeps the last POST byte for byte.
struct RecordingProxy {
  std::uint16_t target_port;
  std::mutex mu;
  HttpRequest last_post;
  std::unique_ptr<HttpServer> server;

  static std::size_t collect(char* d, std::size_t s, std::size_t n, void* out) {
    static_cast<std::string*>(out)->append(d, s * n);
    return s * n;
  }

  HttpResponse forward(const HttpRequest& r) {
    if (r.method == "POST") {
      std::lock_guard lock(mu);
      last_post = r;
    }
    CURL* c = curl_easy_init();
    std::string url = "http://127.0.0.1:" + std::to_string(target_port) + r.target;
    curl_slist* h = nullptr;
    for (const auto& [k, v] : r.headers) {
      if (k.rfind("webhook-", 0) == 0 || k == "content-type")
        h = curl_slist_append(h, (k + ": " + v).c_str());
    }
    std::string body;
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (r.method == "POST") {
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, r.body.data());
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(r.body.size()));
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    long status = 502;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return HttpResponse{static_cast<int>(status), "application/json", body};
  }
};

TEST_F(Links, ACapturedRequestReplayedByteForByteIsRefused) {
  RecordingProxy proxy;
  proxy.target_port = b_->port();
  proxy.server = std::move(
      *HttpServer::start(ServerOptions{}, [&](const HttpRequest& r) { return proxy.forward(r); }));
  // A talks to B through the proxy.
  a_->configure({{Link{"civi2", secret_}, b_.get()}});
  b_->configure({{Link{"civi1", secret_}, a_.get()}});
  std::string cfg;
  {
    std::ifstream in(a_->config_path());
    std::stringstream ss;
    ss << in.rdbuf();
    cfg = ss.str();
  }
  const std::string from = "127.0.0.1:" + std::to_string(b_->port()) + "\"";
  cfg.replace(cfg.find(from), from.size(),
              "127.0.0.1:" + std::to_string(proxy.server->port()) + "\"");
  write_file(a_->config_path(), cfg);
  a_->init();
  b_->init();
  a_->start();
  b_->start();
  auto a = a_->db().connect();
  ASSERT_TRUE(
      a.exec("INSERT INTO civicrm_contact (contact_type, first_name, last_name) VALUES "
             "('Individual', 'Rita', 'Replay')"));
  ASSERT_TRUE(
      wait_until([&] { return b_->query("SELECT COUNT(*) FROM civishare_applied") == "1"; }));
  HttpRequest recorded;
  {
    std::lock_guard lock(proxy.mu);
    recorded = proxy.last_post;
  }
  ASSERT_FALSE(recorded.body.empty());
  RawRequest replay;
  replay.body = recorded.body;
  replay.id = recorded.headers["webhook-id"];
  replay.timestamp = recorded.headers["webhook-timestamp"];
  replay.signature = recorded.headers["webhook-signature"];
  EXPECT_EQ(status_of(raw_http(b_->port(), replay.text())), 409);
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(b_->query("SELECT COUNT(*) FROM civishare_applied"), "1");
  EXPECT_EQ(b_->query("SELECT COUNT(*) FROM civicrm_contact"), "1");
}

TEST_F(Links, HostileRequestsGetTheRight4xxAndChangeNothing) {
  link(Link{}, Link{}, "body_limit_bytes = 1048576\n");
  b_->start();
  ASSERT_TRUE(wait_until([&] {
    return status_of(raw_http(
               b_->port(), "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) == 200;
  }));
  const std::string good = message_body({sample_change(kBase, "Hostile")});
  const std::string other_key = *webhook::key_from_secret(webhook::new_secret());
  std::string nested = "{\"id\":\"m\",\"payload\":{\"sender\":\"civi1\",\"changes\":[";
  for (int i = 0; i < 200; ++i) nested += "[";
  for (int i = 0; i < 200; ++i) nested += "]";
  nested += "]}}";
  std::string bad_utf8 = good;
  bad_utf8.replace(bad_utf8.find("Hostile"), 7, "Host\xc3\x28le");
  std::vector<Change> many(10001, sample_change(kBase, "Many"));

  struct Case {
    std::string name;
    RawRequest req;
    int status;
    std::size_t extra_body = 0;
  };
  int counter = 0;
  auto make = [&](auto edit) {
    RawRequest r;
    r.id = "msg-" + std::to_string(++counter);
    r.body = good;
    r.key = key_;
    edit(r);
    return r;
  };
  std::vector<Case> cases = {
      {"no signature headers", make([](RawRequest& r) { r.sign = false; }), 400},
      {"garbage signature", make([](RawRequest& r) { r.signature = "v1,Zm9vYmFy"; }), 401},
      {"signature of another scheme", make([](RawRequest& r) { r.signature = "v2,abc"; }), 401},
      {"wrong secret", make([&](RawRequest& r) { r.key = other_key; }), 401},
      {"timestamp 10 minutes old",
       make([](RawRequest& r) { r.timestamp = std::to_string(unix_now() - 600); }), 401},
      {"timestamp 10 minutes ahead",
       make([](RawRequest& r) { r.timestamp = std::to_string(unix_now() + 600); }), 401},
      {"timestamp not a number", make([](RawRequest& r) { r.timestamp = "yesterday"; }), 400},
      {"truncated JSON", make([&](RawRequest& r) { r.body = good.substr(0, good.size() / 2); }),
       400},
      {"empty body", make([](RawRequest& r) { r.body = ""; }), 400},
      {"JSON but not a message", make([](RawRequest& r) { r.body = "[1,2,3]"; }), 400},
      {"100 MB body", make([](RawRequest& r) { r.content_length = 100u << 20; }), 413, 2u << 20},
      {"wrong content type", make([](RawRequest& r) { r.content_type = "text/plain"; }), 415},
      {"unknown type", make([](RawRequest& r) {
         r.body = message_body({sample_change("civishare.change.contact.tag", "x")});
       }),
       422},
      {"type not accepted",
       make([](RawRequest& r) { r.body = message_body({sample_change(kEmail, "a@b.org")}); }), 422},
      {"unknown sender",
       make([](RawRequest& r) { r.body = message_body({sample_change(kBase, "x")}, "civi9"); }),
       403},
      {"too many changes", make([&](RawRequest& r) { r.body = message_body(many); }), 413},
      {"invalid UTF-8", make([&](RawRequest& r) { r.body = bad_utf8; }), 400},
      {"deeply nested JSON", make([&](RawRequest& r) { r.body = nested; }), 400},
      {"wrong method", make([](RawRequest& r) { r.method = "PUT"; }), 405},
      {"unknown path", make([](RawRequest& r) { r.target = "/v1/admin"; }), 404},
      {"hello with a wrong secret", make([&](RawRequest& r) {
         r.method = "GET";
         r.target = "/v1/hello";
         r.body = "";
         r.key = other_key;
       }),
       401},
  };
  for (const auto& c : cases) {
    std::string response = raw_http(b_->port(), c.req.text(), c.extra_body);
    EXPECT_EQ(status_of(response), c.status) << c.name << "\n" << response.substr(0, 400);
  }
  EXPECT_EQ(status_of(raw_http(b_->port(), "NOT HTTP AT ALL\r\n\r\n")), 400);
  // Nothing reached the inbox or the database, and the receiver still serves.
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(b_->query("SELECT COUNT(*) FROM civicrm_contact"), "0");
  EXPECT_EQ(b_->query("SELECT COUNT(*) FROM civishare_applied"), "0");
  EXPECT_TRUE(b_->running());
  RawRequest fine = make([](RawRequest&) {});
  fine.id = "msg-final";
  EXPECT_EQ(status_of(raw_http(b_->port(), fine.text())), 200);
  ASSERT_TRUE(
      wait_until([&] { return b_->query("SELECT COUNT(*) FROM civishare_applied") == "1"; }));
}

TEST_F(Links, HttpsWithAPrivateCa) {
  const std::string cert = b_->dir() + "/cert.pem", key = b_->dir() + "/key.pem";
  std::string out;
  ASSERT_EQ(run_command("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 "
                        "-addext subjectAltName=IP:127.0.0.1 -keyout " +
                            key + " -out " + cert,
                        &out),
            0)
      << out;
  Link a_to_b;
  a_to_b.scheme = "https";
  a_to_b.ca_file = cert;
  link(a_to_b, Link{}, "tls_cert = \"" + cert + "\"\ntls_key = \"" + key + "\"\n");
  a_->start();
  b_->start();
  auto a = a_->db().connect();
  ASSERT_TRUE(
      a.exec("INSERT INTO civicrm_contact (contact_type, first_name, last_name) VALUES "
             "('Individual', 'Tess', 'Tls')"));
  ASSERT_TRUE(wait_until([&] {
    return b_->query("SELECT COUNT(*) FROM civicrm_contact WHERE last_name = 'Tls'") == "1";
  }));
  // Plain HTTP to the TLS port is not served.
  EXPECT_NE(status_of(raw_http(b_->port(), "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")), 200);
}

}  // namespace
}  // namespace civishare::testing
