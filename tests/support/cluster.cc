#include "tests/support/cluster.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <stdexcept>

namespace civishare::testing {

namespace {
std::string toml_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? ", \"" : "\"") + items[i] + "\"";
  return out + "]";
}
}  // namespace

TestNode::TestNode(std::string name, int id_offset) : name_(std::move(name)) {
  db_ = std::make_unique<MariaDbServer>();
  db_->load_civicrm(id_offset);
  dir_ = temp_dir("civishare-" + name_);
  config_path_ = dir_ + "/civishare.toml";
  port_ = free_port();
}

TestNode::~TestNode() {
  if (agent_) {
    if (::testing::Test::HasFailure()) std::cerr << "--- log of " << name_ << "\n" << agent_->log();
    agent_.reset();
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

void TestNode::configure(const std::vector<std::pair<Link, const TestNode*>>& links,
                         const std::string& receiver_extra, const std::string& extra) {
  auto o = db_->agent_options();
  std::string text = "[node]\nname = \"" + name_ + "\"\ndata_dir = \"" + dir_ +
                     "/data\"\nmin_free_mb = 20\n\n"  // test machines may have little room in /tmp
                     "[database]\nhost = \"127.0.0.1\"\nport = " +
                     std::to_string(o.port) +
                     "\nuser = \"civishare\"\npassword = \"civishare\"\nschema = \"civicrm\"\n\n"
                     "[capture]\nsource = \"" +
                     capture_source + "\"\npoll_interval_ms = " + std::to_string(poll_interval_ms) +
                     (capture_source == "binlog" ? "\nserver_id = " + std::to_string(1000 + port_)
                                                 : std::string()) +
                     "\n" + capture_extra +
                     "\n"
                     "[receiver]\nlisten = \"127.0.0.1:" +
                     std::to_string(port_) + "\"\n" + receiver_extra + "\n[applier]\n" +
                     applier_section + "\n";
  for (const auto& [link, peer] : links) {
    const std::uint16_t port = link.via_port ? link.via_port : peer->port();
    text += "[[peer]]\nname = \"" + link.peer + "\"\nurl = \"" + link.scheme +
            "://127.0.0.1:" + std::to_string(port) + "\"\nsecret = \"" + link.secret + "\"\n" +
            "outgoing = " + toml_list(link.outgoing) + "\nincoming = " + toml_list(link.incoming) +
            "\n" + (link.ca_file.empty() ? "" : "ca_file = \"" + link.ca_file + "\"\n") + "\n";
  }
  write_file(config_path_, text + extra);
}

void TestNode::init() {
  std::string out;
  int rc = run_civishare({"init", "--config", config_path_}, &out);
  if (rc != 0) throw std::runtime_error("civishare init failed for " + name_ + ":\n" + out);
}

void TestNode::start(const std::vector<std::string>& env) {
  agent_ = std::make_unique<AgentProcess>(std::vector<std::string>{"run", "--config", config_path_},
                                          dir_ + "/agent.log", env);
}

int TestNode::stop() {
  return agent_ ? agent_->stop() : -1;
}

std::string TestNode::status_json() {
  std::string out;
  run_civishare({"status", "--json", "--config", config_path_}, &out);
  return out;
}

std::string TestNode::query(const std::string& sql) {
  auto c = db_->connect();
  auto r = c.scalar(sql);
  if (!r) throw std::runtime_error(r.error().message);
  return r->value_or("NULL");
}

void write_burst(TestNode& node, const std::string& tag, int contacts) {
  auto c = node.db().connect();
  auto must = [](const Status& s) {
    if (!s) throw std::runtime_error(s.error().message);
  };
  std::vector<std::string> ids;
  for (int i = 0; i < contacts; ++i) {
    const std::string n = tag + std::to_string(i);
    must(c.exec("START TRANSACTION"));
    must(c.exec(
        "INSERT INTO civicrm_contact (contact_type, first_name, last_name, external_identifier) "
        "VALUES ('Individual', 'F" +
        n + "', 'L" + n + "', 'burst-" + n + "')"));
    ids.push_back(std::to_string(c.last_insert_id()));
    must(c.exec(
        "INSERT INTO civicrm_email (contact_id, location_type_id, email, is_primary) VALUES (" +
        ids.back() + ", 1, 'p" + n + "@example.org', 1)"));
    must(c.exec("COMMIT"));
  }
  for (const auto& id : ids) {
    must(c.exec("UPDATE civicrm_contact SET last_name = CONCAT(last_name, '-2') WHERE id = " + id));
  }
}

std::string burst_state_at_origin(TestNode& origin) {
  return origin.query(
      "SELECT GROUP_CONCAT(CONCAT_WS('|', CONCAT('" + origin.name() +
      "-', c.id), c.first_name, c.last_name, c.external_identifier, e.email, e.is_primary) "
      "ORDER BY c.id SEPARATOR '\n') FROM civicrm_contact c LEFT JOIN civicrm_email e ON "
      "e.contact_id = c.id WHERE c.external_identifier LIKE 'burst-%'");
}

std::string burst_state_at_copy(TestNode& copy) {
  return copy.query(
      "SELECT GROUP_CONCAT(CONCAT_WS('|', m.global_ref, c.first_name, c.last_name, "
      "c.external_identifier, e.email, e.is_primary) ORDER BY CAST(SUBSTRING_INDEX(m.global_ref, "
      "'-', -1) AS UNSIGNED) SEPARATOR '\n') FROM civicrm_contact c JOIN civishare_idmap m ON "
      "m.entity_table = 'civicrm_contact' AND m.local_id = c.id LEFT JOIN civicrm_email e ON "
      "e.contact_id = c.id WHERE c.external_identifier LIKE 'burst-%'");
}

std::string log_row_counts(const std::vector<TestNode*>& nodes) {
  std::string out;
  for (TestNode* n : nodes) {
    out +=
        n->query(
            "SELECT CONCAT_WS('/', (SELECT COUNT(*) FROM log_civicrm_contact), "
            "(SELECT COUNT(*) FROM log_civicrm_email), (SELECT COUNT(*) FROM log_civicrm_phone), "
            "(SELECT COUNT(*) FROM log_civicrm_address))") +
        " ";
  }
  return out;
}

}  // namespace civishare::testing
