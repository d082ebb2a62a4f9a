#include "agent/config.h"
#include "schemas/log.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

namespace civishare {
namespace {

const std::string kSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

std::string valid() {
  return R"(
[node]
name = "civi1"
data_dir = "/tmp/civishare-test"

[database]
host = "127.0.0.1"
port = 3306
user = "civishare"
password = "pw"
schema = "civicrm"

[capture]
source = "log_tables"
poll_interval_ms = 250

[receiver]
listen = "127.0.0.1:7800"

[applier]
kind = "sql"

[[peer]]
name = "civi2"
url = "http://127.0.0.1:7801"
secret = ")" +
         kSecret + R"("
outgoing = ["civishare.change.contact.base", "civishare.change.contact.email"]
incoming = ["civishare.change.contact.base"]
)";
}

std::string replace(std::string text, const std::string& from, const std::string& to) {
  auto pos = text.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  return text.replace(pos, from.size(), to);
}

std::string error_of(const std::string& text) {
  auto c = parse_config(text);
  EXPECT_FALSE(c.ok());
  return c.ok() ? "" : c.error().message;
}

TEST(Config, ParsesTheContractExample) {
  auto c = parse_config(valid());
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->node.name, "civi1");
  EXPECT_EQ(c->capture.poll_interval_ms, 250);
  EXPECT_EQ(c->receiver.host, "127.0.0.1");
  EXPECT_EQ(c->receiver.port, 7800);
  ASSERT_EQ(c->peers.size(), 1u);
  EXPECT_EQ(c->peers[0].outgoing.size(), 2u);
  auto links = c->links();
  EXPECT_EQ(links[0].key.size(), 24u);
  EXPECT_TRUE(links[0].incoming.count("civishare.change.contact.base"));
}

TEST(Config, MissingNodeSectionNamesIt) {
  std::string text = valid();
  text = replace(text, "[node]\nname = \"civi1\"\ndata_dir = \"/tmp/civishare-test\"\n", "");
  EXPECT_NE(error_of(text).find("`node`"), std::string::npos);
}

TEST(Config, UnknownKeysAreRejectedWithTheirFullName) {
  EXPECT_NE(error_of(replace(valid(), "poll_interval_ms = 250", "poll_interval = 250"))
                .find("`capture.poll_interval`"),
            std::string::npos);
  EXPECT_NE(error_of(valid() + "\n[extra]\nx = 1\n").find("`extra`"), std::string::npos);
  EXPECT_NE(error_of(replace(valid(), "outgoing =", "outgoin =")).find("`peer[0].outgoin`"),
            std::string::npos);
}

TEST(Config, BadValuesSayHowToFixThem) {
  auto url = error_of(replace(valid(), "http://127.0.0.1:7801", "127.0.0.1:7801"));
  EXPECT_NE(url.find("`peer[0].url`"), std::string::npos);
  EXPECT_NE(url.find("scheme"), std::string::npos);
  EXPECT_NE(error_of(replace(valid(), "\"civi1\"", "\"Civi 1\"")).find("`node.name`"),
            std::string::npos);
  EXPECT_NE(error_of(replace(valid(), kSecret, "hunter2")).find("civishare secret"),
            std::string::npos);
  EXPECT_NE(error_of(replace(valid(), "\"civishare.change.contact.email\"", "\"contact.email\""))
                .find("unknown type `contact.email`"),
            std::string::npos);
  EXPECT_NE(error_of(replace(valid(), "127.0.0.1:7800", "localhost")).find("`receiver.listen`"),
            std::string::npos);
  EXPECT_NE(error_of(replace(valid(), "port = 3306", "port = \"3306\"")).find("`database.port`"),
            std::string::npos);
  EXPECT_NE(error_of(replace(valid(), "name = \"civi2\"", "name = \"civi1\"")).find("own name"),
            std::string::npos);
  EXPECT_NE(error_of("[node\nname=").find("not valid TOML"), std::string::npos);
}

TEST(Config, TheBinlogSourceNeedsAServerIdAndTheSqlApplier) {
  auto binlog = replace(valid(), "source = \"log_tables\"", "source = \"binlog\"");
  EXPECT_NE(error_of(binlog).find("`capture.server_id`"), std::string::npos) << error_of(binlog);
  binlog = replace(binlog, "poll_interval_ms = 250", "server_id = 7001\nmax_pending_mb = 8");
  auto c = parse_config(binlog);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->capture.server_id, 7001);
  EXPECT_EQ(c->capture.max_pending_mb, 8);
  EXPECT_NE(error_of(replace(binlog, "server_id = 7001", "server_id = 0"))
                .find("unique among the server's replicas"),
            std::string::npos);
  EXPECT_NE(error_of(replace(binlog, "max_pending_mb = 8", "max_pending_mb = 0"))
                .find("`capture.max_pending_mb`"),
            std::string::npos);
  auto apiv4 = replace(binlog, "kind = \"sql\"",
                       "kind = \"apiv4\"\nurl = \"https://civi.example.org/civicrm/ajax/api4\"\n"
                       "api_key = \"k\"\nsite_key = \"s\"\ncontact_id = 5");
  EXPECT_NE(error_of(apiv4).find("needs applier.kind = \"sql\""), std::string::npos)
      << error_of(apiv4);
  EXPECT_NE(error_of(replace(valid(), "source = \"log_tables\"", "source = \"triggers\""))
                .find("`capture.source`"),
            std::string::npos);
}

TEST(Config, TheDocumentedExampleSecretIsRefused) {
  std::string text =
      replace(valid(), kSecret, "whsec_EXAMPLE0EXAMPLE0EXAMPLE0EXAMPLE0EXAMPLE0EXA=");
  EXPECT_NE(error_of(text).find("civishare secret"), std::string::npos);
}

TEST(Config, AWorldReadableFileIsLoadedWithAWarningAndNoSecretInIt) {
  const std::string path = ::testing::TempDir() + "civishare-perm.toml";
  std::ofstream(path) << valid();
  ::chmod(path.c_str(), 0600);
  ASSERT_TRUE(load_config(path).ok());
  auto mentions_path = [&] {
    for (const auto& line : recent_problems())
      if (line.find(path) != std::string::npos) return true;
    return false;
  };
  EXPECT_FALSE(mentions_path()) << "a 0600 file needs no warning";
  ::chmod(path.c_str(), 0644);
  ASSERT_TRUE(load_config(path).ok());
  ASSERT_TRUE(mentions_path());
  for (const auto& line : recent_problems()) {
    EXPECT_EQ(line.find(kSecret.substr(6)), std::string::npos) << line;
    EXPECT_NE(line.find("chmod 600"), std::string::npos) << line;
  }
}

TEST(Config, EveryShippedExampleParses) {
  for (const char* name : {"sidecar", "catchup", "replay", "binlog"}) {
    std::ifstream in(std::string(CIVISHARE_SOURCE_DIR) + "/deploy/examples/" + name + ".toml");
    ASSERT_TRUE(in) << name;
    std::stringstream ss;
    ss << in.rdbuf();
    // Real deployments put their own secret in; the example one is refused on purpose.
    std::string text = ss.str();
    for (auto pos = text.find("whsec_EXAMPLE"); pos != std::string::npos;
         pos = text.find("whsec_EXAMPLE")) {
      text.replace(pos, 50, kSecret);
    }
    const std::string pw = ::testing::TempDir() + "db-password";
    std::ofstream(pw) << "secret\n";
    for (auto pos = text.find("/etc/civishare/db-password"); pos != std::string::npos;
         pos = text.find("/etc/civishare/db-password")) {
      text.replace(pos, 26, pw);
    }
    auto c = parse_config(text, name);
    EXPECT_TRUE(c.ok()) << name << ": " << (c.ok() ? "" : c.error().message);
  }
}

TEST(Config, ApplierPoliciesAndMatchRules) {
  auto c = parse_config(
      replace(valid(), "kind = \"sql\"",
              "kind = \"sql\"\nconflict_policy = \"review\"\nmatch = []\n"
              "conflict_policy_by_type = { \"civishare.change.contact.email\" = \"keep_local\" }"));
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->applier.conflict_policy, "review");
  EXPECT_TRUE(c->applier.match.empty());
  EXPECT_EQ(c->applier.conflict_policy_by_type.at("civishare.change.contact.email"), "keep_local");
  EXPECT_NE(error_of(replace(valid(), "kind = \"sql\"", "kind = \"sql\"\nmatch = [\"phone\"]"))
                .find("`applier.match`"),
            std::string::npos);
  EXPECT_NE(
      error_of(replace(valid(), "kind = \"sql\"", "kind = \"sql\"\nconflict_policy = \"coin\""))
          .find("`applier.conflict_policy`"),
      std::string::npos);
  auto api = error_of(replace(valid(), "kind = \"sql\"", "kind = \"apiv4\""));
  EXPECT_NE(api.find("`applier.url`"), std::string::npos) << api;
}

TEST(Config, EmptyTypeListsMakeOneWayLinks) {
  auto c = parse_config(
      replace(valid(), "incoming = [\"civishare.change.contact.base\"]", "incoming = []"));
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_TRUE(c->peers[0].incoming.empty());
}

}  // namespace
}  // namespace civishare
