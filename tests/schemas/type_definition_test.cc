#include "schemas/type_definition.h"

#include <gtest/gtest.h>

namespace civishare {
namespace {

TEST(TypeRegistry, BuiltinHasTheFourContactTypes) {
  const auto& r = TypeRegistry::builtin();
  for (const char* t : {"civishare.change.contact.base", "civishare.change.contact.email",
                        "civishare.change.contact.phone", "civishare.change.contact.address"}) {
    EXPECT_NE(r.find(t), nullptr) << t;
  }
  const TypeDefinition* base = r.find("civishare.change.contact.base");
  EXPECT_EQ(base->table, "civicrm_contact");
  EXPECT_EQ(base->log_table(), "log_civicrm_contact");
  EXPECT_FALSE(base->parent.has_value());
  // Derived and secret columns are never shared.
  for (const char* never :
       {"display_name", "sort_name", "hash", "api_key", "created_date", "modified_date"}) {
    EXPECT_EQ(base->find_column(never), nullptr) << never;
  }
  // Per-instance ids travel as names.
  ASSERT_NE(base->find_column("gender_id"), nullptr);
  EXPECT_EQ(base->find_column("gender_id")->wire_name(), "gender_id:name");

  const TypeDefinition* email = r.find("civishare.change.contact.email");
  ASSERT_TRUE(email->parent.has_value());
  EXPECT_EQ(email->parent->column, "contact_id");
  EXPECT_EQ(email->parent->context_key, "contact_reference");
  EXPECT_EQ(email->find_column("location_type_id")->wire_name(), "location_type_id:name");
  EXPECT_EQ(r.find("civishare.change.contact.address")->find_column("country_id")->wire_name(),
            "country_id:iso_code");
  EXPECT_EQ(r.find_by_table("civicrm_phone")->type, "civishare.change.contact.phone");
}

TEST(TypeRegistry, ANewTypeIsOnlyADefinition) {
  auto r = TypeRegistry::from_texts({R"({"type": "civishare.change.contact.website",
    "entity": "Website", "table": "civicrm_website",
    "columns": [{"column": "url", "kind": "string"}]})"});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->find("civishare.change.contact.website")->log_table(), "log_civicrm_website");
}

TEST(TypeRegistry, BadDefinitionsSayWhatIsWrong) {
  auto unknown_kind = TypeRegistry::from_texts({R"({"type": "t", "entity": "E", "table": "x",
    "columns": [{"column": "a", "kind": "blob"}]})"});
  ASSERT_FALSE(unknown_kind.ok());
  EXPECT_NE(unknown_kind.error().message.find("unknown kind `blob`"), std::string::npos);

  auto missing_parent = TypeRegistry::from_texts({R"({"type": "t", "entity": "E", "table": "x",
    "parent": {"column": "contact_id", "type": "nope", "context_key": "c"},
    "columns": [{"column": "a", "kind": "string"}]})"});
  ASSERT_FALSE(missing_parent.ok());
  EXPECT_NE(missing_parent.error().message.find("nope"), std::string::npos);

  EXPECT_FALSE(TypeRegistry::from_texts({R"({"type": "t", "entity": "E", "table": "x; DROP",
    "columns": [{"column": "a", "kind": "string"}]})"})
                   .ok());
}

}  // namespace
}  // namespace civishare
