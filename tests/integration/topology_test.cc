// Three real MariaDB servers and three agents: changes travel along a chain and around a
// triangle, carry their signature chains, are applied once per node, and stop travelling.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <thread>

#include "tests/support/cluster.h"
#include "transport/webhook.h"

namespace civishare::testing {
namespace {
using namespace std::chrono_literals;

class ThreeNodes : public ::testing::Test {
 protected:
  void SetUp() override {
    a_ = std::make_unique<TestNode>("civi1", 0);
    b_ = std::make_unique<TestNode>("civi2", 10);
    c_ = std::make_unique<TestNode>("civi3", 20);
  }
  // Links every listed pair (x, y) with its own secret: both ways, or with `one_way` x sends to y
  // only.
  void link(const std::vector<std::pair<TestNode*, TestNode*>>& pairs,
            const std::vector<std::string>& types = {"civishare.change.contact.base"},
            bool one_way = false) {
    const std::vector<std::string> back = one_way ? std::vector<std::string>{} : types;
    std::map<TestNode*, std::vector<std::pair<Link, const TestNode*>>> links;
    for (auto [x, y] : pairs) {
      const std::string secret = webhook::new_secret();
      links[x].push_back({Link{y->name(), secret, types, back}, y});
      links[y].push_back({Link{x->name(), secret, back, types}, x});
    }
    for (auto& [node, l] : links) {
      node->configure(l);
      node->init();
    }
  }
  void start_all() {
    for (TestNode* n : {a_.get(), b_.get(), c_.get()}) n->start();
  }
  std::unique_ptr<TestNode> a_, b_, c_;
};

TEST_F(ThreeNodes, ChainCarriesChangesBothWaysWithTheirSignatureChains) {
  link({{a_.get(), b_.get()}, {b_.get(), c_.get()}});  // no A-C link
  start_all();
  auto a = a_->db().connect();
  ASSERT_TRUE(
      a.exec("INSERT INTO civicrm_contact (contact_type, first_name, last_name) VALUES "
             "('Individual', 'Chain', 'FromA')"));
  const std::string ref = "civi1-" + std::to_string(a.last_insert_id());
  std::string c_id;
  ASSERT_TRUE(wait_until(
      [&] {
        c_id = c_->query("SELECT local_id FROM civishare_idmap WHERE global_ref = '" + ref + "'");
        return c_id != "NULL";
      },
      60s))
      << "A's contact never reached C through B";
  // On C the change arrived from B with A's and B's signatures.
  auto chain = boost::json::parse(
      c_->query("SELECT chain FROM civishare_applied WHERE entity_reference = '" + ref + "'"));
  EXPECT_EQ(chain.as_array().size(), 2u) << chain;
  EXPECT_EQ(
      c_->query("SELECT came_from FROM civishare_applied WHERE entity_reference = '" + ref + "'"),
      "civi2");

  // A change on C reaches A through B, under A's own id.
  auto c = c_->db().connect();
  ASSERT_TRUE(c.exec("UPDATE civicrm_contact SET last_name = 'FromC' WHERE id = " + c_id));
  ASSERT_TRUE(wait_until(
      [&] {
        return a_->query("SELECT last_name FROM civicrm_contact WHERE id = " + ref.substr(6)) ==
               "FromC";
      },
      60s))
      << "C's change never reached A";
  EXPECT_EQ(
      b_->query("SELECT last_name FROM civicrm_contact c JOIN civishare_idmap m ON m.local_id = "
                "c.id WHERE m.global_ref = '" +
                ref + "'"),
      "FromC");

  // Quiet afterwards.
  std::this_thread::sleep_for(3s);
  const std::string rows = log_row_counts({a_.get(), b_.get(), c_.get()});
  std::this_thread::sleep_for(5s);
  EXPECT_EQ(log_row_counts({a_.get(), b_.get(), c_.get()}), rows);
}

// A ring of one-way links (A sends to B, B to C, C to A): split horizon cannot stop A's change
// from coming back, so A must recognise it. It arrives from C with three signatures, and A drops it
// as a loop (its id names A as the origin) instead of applying it: loops_dropped counts it and A's
// civishare_applied stays empty.
TEST_F(ThreeNodes, RingOfOneWayLinksDropsAChangeWhenItComesBackToItsOrigin) {
  link({{a_.get(), b_.get()}, {b_.get(), c_.get()}, {c_.get(), a_.get()}},
       {"civishare.change.contact.base"}, true);
  start_all();
  auto a = a_->db().connect();
  ASSERT_TRUE(
      a.exec("INSERT INTO civicrm_contact (contact_type, first_name, last_name) VALUES "
             "('Individual', 'Round', 'TheRing')"));
  const std::string ref = "civi1-" + std::to_string(a.last_insert_id());
  auto loops_dropped = [](TestNode& n) {
    auto v = boost::json::parse(n.status_json());
    return v.as_object().at("loops_dropped").to_number<std::int64_t>();
  };
  ASSERT_TRUE(wait_until([&] { return loops_dropped(*a_) == 1; }, 60s))
      << "A's change never came back to A as a dropped loop: " << a_->status_json();
  auto chain = boost::json::parse(
      c_->query("SELECT chain FROM civishare_applied WHERE entity_reference = '" + ref + "'"));
  EXPECT_EQ(chain.as_array().size(), 2u) << chain;  // A's and B's; C's is added when it sends
  EXPECT_EQ(
      c_->query("SELECT came_from FROM civishare_applied WHERE entity_reference = '" + ref + "'"),
      "civi2");
  std::this_thread::sleep_for(3s);
  EXPECT_EQ(a_->query("SELECT COUNT(*) FROM civishare_applied"), "0");
  EXPECT_EQ(loops_dropped(*a_), 1);
  EXPECT_EQ(loops_dropped(*b_), 0);
  EXPECT_EQ(loops_dropped(*c_), 0);
}

// "log_tables" everywhere, or "mixed": civi1 and civi3 capture from the binlog, civi2 from the log
// tables, so each source's records (and echo recognition) meet the other's.
class ThreeNodesSources : public ThreeNodes, public ::testing::WithParamInterface<std::string> {};

TEST_P(ThreeNodesSources, TriangleOfAllTypesConvergesAppliesOnceAndFallsQuiet) {
  if (GetParam() == "mixed") a_->capture_source = c_->capture_source = "binlog";
  link({{a_.get(), b_.get()}, {b_.get(), c_.get()}, {c_.get(), a_.get()}},
       {"civishare.change.contact.base", "civishare.change.contact.email",
        "civishare.change.contact.phone", "civishare.change.contact.address"});
  start_all();
  // Each node, at the same time: 48 contacts, each with an email, a phone and an address, then
  // an edit of each of the four: 3 x 48 x 8 = 1,152 changes.
  std::vector<std::thread> writers;
  for (TestNode* n : {a_.get(), b_.get(), c_.get()}) {
    writers.emplace_back([n] {
      auto conn = n->db().connect();
      const int off = n->name() == "civi1" ? 0 : n->name() == "civi2" ? 10 : 20;  // reference ids
      for (int i = 0; i < 48; ++i) {
        const std::string ext = n->name() + "-" + std::to_string(i);
        (void)conn.exec(
            "INSERT INTO civicrm_contact (contact_type, first_name, last_name, "
            "external_identifier) "
            "VALUES ('Individual', 'F', 'L', '" +
            ext + "')");
        const std::string id = std::to_string(conn.last_insert_id());
        (void)conn.exec(
            "INSERT INTO civicrm_email (contact_id, location_type_id, email, is_primary) VALUES (" +
            id + ", " + std::to_string(off + 1) + ", '" + ext + "@example.org', 1)");
        const std::string email = std::to_string(conn.last_insert_id());
        (void)conn.exec(
            "INSERT INTO civicrm_phone (contact_id, location_type_id, phone, phone_type_id) VALUES "
            "(" +
            id + ", " + std::to_string(off + 2) + ", '555-" + std::to_string(i) + "', " +
            std::to_string(off + 2) + ")");
        const std::string phone = std::to_string(conn.last_insert_id());
        (void)conn.exec(
            "INSERT INTO civicrm_address (contact_id, location_type_id, city, country_id) VALUES "
            "(" +
            id + ", " + std::to_string(off + 1) + ", 'Town', " + std::to_string(off + 1082) + ")");
        const std::string address = std::to_string(conn.last_insert_id());
        (void)conn.exec("UPDATE civicrm_contact SET last_name = 'edited' WHERE id = " + id);
        (void)conn.exec("UPDATE civicrm_email SET email = '" + ext +
                        "@new.example.org' WHERE id = " + email);
        (void)conn.exec("UPDATE civicrm_phone SET phone = '556-" + std::to_string(i) +
                        "' WHERE id = " + phone);
        (void)conn.exec("UPDATE civicrm_address SET city = 'City' WHERE id = " + address);
      }
    });
  }
  for (auto& t : writers) t.join();
  // The same data everywhere, keyed by the contacts' external identifiers and names, not ids.
  const std::string digest =
      "SELECT CONCAT("
      "(SELECT CONCAT(COUNT(*), ':', MD5(GROUP_CONCAT(CONCAT_WS('|', external_identifier, "
      "first_name, last_name) "
      "ORDER BY external_identifier))) FROM civicrm_contact), ' ', "
      "(SELECT CONCAT(COUNT(*), ':', MD5(GROUP_CONCAT(CONCAT_WS('|', c.external_identifier, "
      "e.email, lt.name, "
      "e.is_primary) ORDER BY c.external_identifier))) FROM civicrm_email e JOIN civicrm_contact c "
      "ON c.id = "
      "e.contact_id JOIN civicrm_location_type lt ON lt.id = e.location_type_id), ' ', "
      "(SELECT CONCAT(COUNT(*), ':', MD5(GROUP_CONCAT(CONCAT_WS('|', c.external_identifier, "
      "p.phone, lt.name) "
      "ORDER BY c.external_identifier))) FROM civicrm_phone p JOIN civicrm_contact c ON c.id = "
      "p.contact_id "
      "JOIN civicrm_location_type lt ON lt.id = p.location_type_id), ' ', "
      "(SELECT CONCAT(COUNT(*), ':', MD5(GROUP_CONCAT(CONCAT_WS('|', c.external_identifier, "
      "a.city, co.iso_code) "
      "ORDER BY c.external_identifier))) FROM civicrm_address a JOIN civicrm_contact c ON c.id = "
      "a.contact_id "
      "JOIN civicrm_country co ON co.id = a.country_id))";
  ASSERT_TRUE(wait_until(
      [&] {
        const std::string d = a_->query(digest);
        return d.rfind("144:", 0) == 0 && d.find(" 144:") != std::string::npos &&
               b_->query(digest) == d && c_->query(digest) == d;
      },
      240s))
      << a_->query(digest) << "\n"
      << b_->query(digest) << "\n"
      << c_->query(digest);
  for (TestNode* n : {a_.get(), b_.get(), c_.get()}) {
    EXPECT_EQ(
        n->query("SELECT COUNT(*) FROM (SELECT change_id FROM civishare_applied WHERE outcome = "
                 "'applied' GROUP BY change_id HAVING COUNT(*) > 1) d"),
        "0")
        << n->name();
    EXPECT_EQ(n->query("SELECT COUNT(*) FROM civishare_applied WHERE outcome = 'refused'"), "0")
        << n->name();
  }
  // Within 10 s of quiescence nothing moves any more.
  std::this_thread::sleep_for(5s);
  auto counts = [&] {
    return a_->query("SELECT COUNT(*) FROM civishare_applied") + "/" +
           b_->query("SELECT COUNT(*) FROM civishare_applied") + "/" +
           c_->query("SELECT COUNT(*) FROM civishare_applied");
  };
  const std::string before = counts();
  auto sent = [&] {  // what each agent has delivered, from its own figures
    std::string out;
    for (TestNode* n : {a_.get(), b_.get(), c_.get()}) {
      std::string metrics;
      run_command("curl -s http://127.0.0.1:" + std::to_string(n->port()) + "/metrics", &metrics);
      for (std::size_t pos = metrics.find("civishare_sent_changes_total{");
           pos != std::string::npos; pos = metrics.find("civishare_sent_changes_total{", pos + 1)) {
        out += metrics.substr(pos, metrics.find('\n', pos) - pos) + ";";
      }
    }
    return out;
  };
  const std::string sent_before = sent();
  std::this_thread::sleep_for(10s);
  EXPECT_EQ(counts(), before);
  EXPECT_EQ(sent(), sent_before);
  EXPECT_NE(sent_before.find("civishare_sent_changes_total"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Capture, ThreeNodesSources, ::testing::Values("log_tables", "mixed"));

}  // namespace
}  // namespace civishare::testing
