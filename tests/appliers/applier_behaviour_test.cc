// One behaviour suite, run against every applier: the SQL applier on a real MariaDB, and the
// APIv4 applier against the CiviCRM stand-in over the same kind of database. Changes are offered
// as the receiver would put them in the inbox; the assertions read the database.
#include <gtest/gtest.h>

#include <filesystem>

#include "appliers/apiv4_applier.h"
#include "appliers/sql_applier.h"
#include "schemas/db/civishare_tables.h"
#include "tests/support/civicrm_standin.h"
#include "tests/support/mariadb_server.h"

namespace civishare {
namespace {
namespace json = boost::json;
using testing::MariaDbServer;

struct Environment {
  std::unique_ptr<MariaDbServer> server;
  std::unique_ptr<Store> store;
  std::unique_ptr<testing::CiviCrmStandIn> standin;
};

struct SqlKind {
  static std::unique_ptr<Applier> make(Environment& env) {
    auto conn = db::Connection::open(env.server->agent_options());
    EXPECT_TRUE(conn.ok());
    return std::make_unique<SqlApplier>(SqlApplierOptions{"civi2"}, std::move(*conn), *env.store,
                                        TypeRegistry::builtin());
  }
};

struct Apiv4Kind {
  static std::unique_ptr<Applier> make(Environment& env) {
    env.standin =
        std::make_unique<testing::CiviCrmStandIn>(*env.server, "api-key-1", "site-key-1", 2);
    Apiv4ApplierOptions o;
    o.node = "civi2";
    o.url = env.standin->url();
    o.api_key = "api-key-1";
    o.site_key = "site-key-1";
    o.contact_id = 2;
    return std::make_unique<Apiv4Applier>(o, *env.store, TypeRegistry::builtin());
  }
};

template <typename Kind>
class ApplierBehaviour : public ::testing::Test {
 protected:
  void SetUp() override {
    env_.server = std::make_unique<MariaDbServer>();
    env_.server->load_civicrm(10);  // this instance's ids differ from the sender's
    auto root = env_.server->connect();
    for (const auto& ddl : db::civishare_table_ddl()) ASSERT_TRUE(root.exec(ddl));
    const std::string dir = env_.server->dir() + "/agent";
    std::filesystem::create_directories(dir);
    env_.store = std::move(*Store::open(dir));
    applier_ = Kind::make(env_);
  }
  void TearDown() override {
    if (env_.standin) {
      const auto violations = env_.standin->violations();
      EXPECT_TRUE(violations.empty()) << violations.front();
    }
  }

  std::string query(const std::string& sql) {
    auto c = env_.server->connect();
    auto r = c.scalar(sql);
    if (!r) throw std::runtime_error(r.error().message);
    return r->value_or("NULL");
  }

  static InboxEntry entry(Change c) {
    if (c.timestamp.empty()) c.timestamp = utc_now_iso();
    c.loop_detection = {change_signature(c, "civi1")};
    return InboxEntry{0, std::move(c), "civi1", unix_now()};
  }
  static Change contact(Operation op, const std::string& ref, std::vector<AttributeChange> attrs) {
    Change c;
    c.id =
        "civi1-" + ref + "-" + std::to_string(attrs.size()) + std::to_string(static_cast<int>(op));
    c.type = "civishare.change.contact.base";
    c.entity = "Contact";
    c.entity_reference = ref;
    c.operation = op;
    c.attribute_changes = std::move(attrs);
    return c;
  }
  ApplyOutcome apply(const Change& c) {
    auto r = applier_->apply(entry(c));
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r.ok() ? *r : ApplyOutcome::refused;
  }
  std::string local_of(const std::string& ref) {
    // Either applier's idmap: the SQL one in the database, the APIv4 one in the store.
    std::string id = query("SELECT local_id FROM civishare_idmap WHERE global_ref = '" + ref + "'");
    if (id != "NULL") return id;
    auto v = env_.store->value("apiv4/idmap/civicrm_contact/" + ref);
    return v.ok() && !v->empty() ? *v : "NULL";
  }

  Environment env_;
  std::unique_ptr<Applier> applier_;
};

using Kinds = ::testing::Types<SqlKind, Apiv4Kind>;
class KindNames {
 public:
  template <typename T>
  static std::string GetName(int) {
    return std::is_same_v<T, SqlKind> ? "Sql" : "Apiv4";
  }
};
TYPED_TEST_SUITE(ApplierBehaviour, Kinds, KindNames);

TYPED_TEST(ApplierBehaviour, CreatesUpdatesAndDeletesWithLocalIds) {
  auto create = this->contact(Operation::create, "civi1-7",
                              {{"contact_type", std::nullopt, json::value("Individual")},
                               {"first_name", std::nullopt, json::value("Ada")},
                               {"last_name", std::nullopt, json::value("Lovelace")},
                               {"gender_id:name", std::nullopt, json::value("Female")}});
  EXPECT_EQ(this->apply(create), ApplyOutcome::applied);
  const std::string id = this->local_of("civi1-7");
  ASSERT_NE(id, "NULL");
  // Female is value 11 on this instance (1 on the sender's); CiviCRM-style names are derived.
  EXPECT_EQ(
      this->query("SELECT CONCAT_WS('|', first_name, last_name, gender_id, display_name) FROM "
                  "civicrm_contact WHERE id = " +
                  id),
      "Ada|Lovelace|11|Ada Lovelace");
  auto update = this->contact(Operation::update, "civi1-7",
                              {{"first_name", json::value("Ada"), json::value("Augusta")}});
  EXPECT_EQ(this->apply(update), ApplyOutcome::applied);
  EXPECT_EQ(this->query("SELECT first_name FROM civicrm_contact WHERE id = " + id), "Augusta");
  EXPECT_EQ(this->apply(this->contact(Operation::remove, "civi1-7", {})), ApplyOutcome::applied);
  EXPECT_EQ(this->query("SELECT COUNT(*) FROM civicrm_contact"), "0");
}

TYPED_TEST(ApplierBehaviour, AChangeOfferedTwiceIsAppliedOnce) {
  auto create = this->contact(Operation::create, "civi1-8",
                              {{"last_name", std::nullopt, json::value("Once")}});
  InboxEntry e = this->entry(create);
  EXPECT_EQ(*this->applier_->apply(e), ApplyOutcome::applied);
  EXPECT_EQ(*this->applier_->apply(e), ApplyOutcome::already_applied);
  EXPECT_EQ(this->query("SELECT COUNT(*) FROM civicrm_contact"), "1");
}

TYPED_TEST(ApplierBehaviour, AChangeThatChangesNothingWritesNothing) {
  this->apply(this->contact(Operation::create, "civi1-9",
                            {{"last_name", std::nullopt, json::value("Same")}}));
  const std::string rows = this->query("SELECT COUNT(*) FROM log_civicrm_contact");
  EXPECT_EQ(this->apply(this->contact(Operation::update, "civi1-9",
                                      {{"last_name", json::value("Same"), json::value("Same")}})),
            ApplyOutcome::unchanged);
  EXPECT_EQ(this->query("SELECT COUNT(*) FROM log_civicrm_contact"), rows);
}

TYPED_TEST(ApplierBehaviour, AnUnknownNameIsRefusedAndNothingIsWritten) {
  EXPECT_EQ(this->apply(this->contact(Operation::create, "civi1-10",
                                      {{"last_name", std::nullopt, json::value("X")},
                                       {"gender_id:name", std::nullopt, json::value("Martian")}})),
            ApplyOutcome::refused);
  EXPECT_EQ(this->query("SELECT COUNT(*) FROM civicrm_contact"), "0");
}

TYPED_TEST(ApplierBehaviour, EmailsNeedTheirContactAndStayUniquelyPrimary) {
  auto email = [](const std::string& ref, const std::string& address, bool primary) {
    Change c;
    c.id = "civi1-e-" + ref;
    c.type = "civishare.change.contact.email";
    c.entity = "Email";
    c.entity_reference = ref;
    c.operation = Operation::create;
    c.context["contact_reference"] = "civi1-11";
    c.attribute_changes = {{"email", std::nullopt, json::value(address)},
                           {"location_type_id:name", std::nullopt, json::value("Work")},
                           {"is_primary", std::nullopt, json::value(primary)}};
    return c;
  };
  EXPECT_EQ(this->apply(email("civi1-e1", "a@example.org", true)),
            ApplyOutcome::refused);  // no contact yet
  this->apply(this->contact(Operation::create, "civi1-11",
                            {{"last_name", std::nullopt, json::value("Mail")}}));
  EXPECT_EQ(this->apply(email("civi1-e2", "a@example.org", true)), ApplyOutcome::applied);
  EXPECT_EQ(this->apply(email("civi1-e3", "b@example.org", true)), ApplyOutcome::applied);
  const std::string id = this->local_of("civi1-11");
  EXPECT_EQ(this->query("SELECT GROUP_CONCAT(CONCAT(email, '=', is_primary, '@', location_type_id) "
                        "ORDER BY email) "
                        "FROM civicrm_email WHERE contact_id = " +
                        id),
            "a@example.org=0@12,b@example.org=1@12");
}

TYPED_TEST(ApplierBehaviour, AnExistingContactIsMatchedByExternalIdentifier) {
  auto c = this->env_.server->connect();
  ASSERT_TRUE(
      c.exec("INSERT INTO civicrm_contact (contact_type, last_name, external_identifier) VALUES "
             "('Individual', 'Known', 'EXT-9')"));
  const std::string existing = std::to_string(c.last_insert_id());
  EXPECT_EQ(
      this->apply(this->contact(Operation::create, "civi1-12",
                                {{"last_name", std::nullopt, json::value("Known")},
                                 {"first_name", std::nullopt, json::value("Now")},
                                 {"external_identifier", std::nullopt, json::value("EXT-9")}})),
      ApplyOutcome::applied);
  EXPECT_EQ(this->local_of("civi1-12"), existing);
  EXPECT_EQ(this->query("SELECT COUNT(*) FROM civicrm_contact"), "1");
  EXPECT_EQ(this->query("SELECT first_name FROM civicrm_contact WHERE id = " + existing), "Now");
}

TYPED_TEST(ApplierBehaviour, ConflictsGoToTheNewerChange) {
  this->apply(this->contact(Operation::create, "civi1-13",
                            {{"last_name", std::nullopt, json::value("Base")}}));
  const std::string id = this->local_of("civi1-13");
  auto c = this->env_.server->connect();
  ASSERT_TRUE(c.exec("UPDATE civicrm_contact SET last_name = 'Local' WHERE id = " + id));
  // An older change (an hour ago) that did not know about the local edit loses...
  auto old = this->contact(Operation::update, "civi1-13",
                           {{"last_name", json::value("Base"), json::value("Older")}});
  old.timestamp = utc_iso(unix_now() - 3600);
  EXPECT_EQ(this->apply(old), ApplyOutcome::unchanged);
  EXPECT_EQ(this->query("SELECT last_name FROM civicrm_contact WHERE id = " + id), "Local");
  // ... a newer one wins.
  auto newer = this->contact(Operation::update, "civi1-13",
                             {{"first_name", json::value(nullptr), json::value("N")},
                              {"last_name", json::value("Base"), json::value("Newer")}});
  newer.timestamp = utc_iso(unix_now() + 5);
  EXPECT_EQ(this->apply(newer), ApplyOutcome::applied);
  EXPECT_EQ(this->query("SELECT last_name FROM civicrm_contact WHERE id = " + id), "Newer");
}

}  // namespace
}  // namespace civishare
