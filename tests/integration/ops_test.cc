// What an administrator sees while a peer is down: `status --json`, /metrics, /healthz and the
// status page (rendered by headless Chromium), and that they recover when the peer is back.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <thread>

#include "tests/support/cluster.h"
#include "transport/webhook.h"

namespace civishare::testing {
namespace {
using namespace std::chrono_literals;
namespace json = boost::json;

std::string http_get(std::uint16_t port, const std::string& path, int* status) {
  std::string out;
  run_command("curl -s -o - -w '\\n%{http_code}' http://127.0.0.1:" + std::to_string(port) + path,
              &out);
  auto nl = out.rfind('\n');
  *status = nl == std::string::npos ? -1 : std::atoi(out.c_str() + nl + 1);
  return nl == std::string::npos ? out : out.substr(0, nl);
}

json::object peer_of(TestNode& n) {
  auto out = n.status_json();
  auto v = json::parse(out.substr(out.find('{')));
  return v.at("peers").as_array()[0].as_object();
}

class Ops : public ::testing::Test {
 protected:
  void SetUp() override {
    a_ = std::make_unique<TestNode>("civi1", 0);
    b_ = std::make_unique<TestNode>("civi2", 10);
    const std::string secret = webhook::new_secret();
    a_->configure({{Link{"civi2", secret}, b_.get()}});
    b_->configure({{Link{"civi1", secret}, a_.get()}});
    a_->init();
    b_->init();
  }
  std::unique_ptr<TestNode> a_, b_;
};

TEST_F(Ops, FiguresShowAPeerThatIsDownAndItsRecovery) {
  a_->start();
  auto a = a_->db().connect();
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(
        a.exec("INSERT INTO civicrm_contact (contact_type, last_name) VALUES ('Individual', 'Q" +
               std::to_string(i) + "')"));
  }
  ASSERT_TRUE(wait_until([&] { return peer_of(*a_).at("queued") == 3; })) << a_->status_json();
  const auto first_age = peer_of(*a_).at("oldest_queued_age_s").to_number<std::int64_t>();
  std::this_thread::sleep_for(2500ms);
  auto peer = peer_of(*a_);
  EXPECT_GT(peer.at("oldest_queued_age_s").to_number<std::int64_t>(), first_age);
  EXPECT_FALSE(peer.at("last_error").is_null());
  EXPECT_TRUE(peer.at("failing").as_bool());

  int status = 0;
  std::string health = http_get(a_->port(), "/healthz", &status);
  EXPECT_EQ(status, 503);
  EXPECT_NE(health.find("link to civi2 is down (3 queued"), std::string::npos) << health;

  std::string metrics = http_get(a_->port(), "/metrics", &status);
  EXPECT_EQ(status, 200);
  EXPECT_NE(metrics.find("civishare_peer_queued_changes{peer=\"civi2\"} 3"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("civishare_captured_changes_total 3"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("civishare_send_errors_total{peer=\"civi2\"}"), std::string::npos);
  EXPECT_NE(metrics.find("# TYPE civishare_capture_to_send_seconds histogram"), std::string::npos);

  // The status page, as a browser renders it.
  std::string dom;
  ASSERT_EQ(
      run_command("chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
                  "--disable-background-networking --disable-component-update --disable-sync "
                  "--user-data-dir=" +
                      a_->dir() +
                      "/chromium --virtual-time-budget=5000 "
                      "--dump-dom http://127.0.0.1:" +
                      std::to_string(a_->port()) + "/ 2>/dev/null",
                  &dom),
      0)
      << dom;
  EXPECT_NE(dom.find("CiviShare node <span id=\"node\">civi1</span>"), std::string::npos) << dom;
  EXPECT_NE(dom.find("<tr class=\"peer\" data-peer=\"civi2\"><td>civi2</td>"), std::string::npos)
      << dom;
  EXPECT_NE(dom.find("<td class=\"queued\">3</td>"), std::string::npos) << dom;
  EXPECT_NE(dom.find("Problems: link to civi2 is down"), std::string::npos) << dom;

  // The peer comes back: everything drains and health turns green.
  b_->start();
  ASSERT_TRUE(wait_until([&] { return peer_of(*a_).at("queued") == 0; }, 60s)) << a_->status_json();
  ASSERT_TRUE(wait_until(
      [&] {
        int s = 0;
        http_get(a_->port(), "/healthz", &s);
        return s == 200;
      },
      30s));
  metrics = http_get(a_->port(), "/metrics", &status);
  EXPECT_NE(metrics.find("civishare_sent_changes_total{peer=\"civi2\"} 3"), std::string::npos)
      << metrics;
  ASSERT_TRUE(
      wait_until([&] { return b_->query("SELECT COUNT(*) FROM civishare_applied") == "3"; }));
  metrics = http_get(b_->port(), "/metrics", &status);
  EXPECT_NE(metrics.find("civishare_applied_changes_total 3"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("civishare_receive_to_apply_seconds_count 3"), std::string::npos)
      << metrics;
  // A graceful stop exits 0.
  EXPECT_EQ(a_->stop(), 0);
}

TEST_F(Ops, CheckReportsPeers) {
  b_->start();
  ASSERT_TRUE(wait_until([&] { return b_->log().find("receiving on") != std::string::npos; }));
  std::string out;
  int rc = run_civishare({"check", "--config", a_->config_path()}, &out);
  EXPECT_NE(out.find("peer civi2 reachable; it takes civishare.change.contact.base"),
            std::string::npos)
      << out;
  EXPECT_EQ(rc, 1) << out;  // the log tables have no log_date index yet
  b_->stop();
  rc = run_civishare({"check", "--config", a_->config_path()}, &out);
  EXPECT_NE(out.find("PROBLEM peer civi2"), std::string::npos) << out;
}

}  // namespace
}  // namespace civishare::testing
