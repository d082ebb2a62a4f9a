#include "schemas/change.h"

#include <gtest/gtest.h>

namespace civishare {
namespace {
namespace json = boost::json;

Change sample() {
  Change c;
  c.id = "civi1-0a1b";
  c.type = "civishare.change.contact.base";
  c.timestamp = "2026-11-28T09:59:58Z";
  c.entity = "Contact";
  c.entity_reference = "civi1-312";
  c.operation = Operation::update;
  c.attribute_changes = {{"first_name", json::value("Karl"), json::value("Carl")},
                         {"last_name", json::value("Muller"), json::value("Müller")},
                         {"gender_id:name", json::value("Male"), json::value(nullptr)},
                         {"is_deleted", json::value(true), json::value(false)},
                         {"on_hold", std::nullopt, json::value(2)}};
  return c;
}

TEST(Change, SignatureMatchesAnIndependentlyComputedVector) {
  // sha512 over {"attributes":{...to values...},"entity":..,"entity_reference":..,"operation":..,
  // "sender":"civi1","timestamp":..,"type":..} as canonical JSON, computed with Python's hashlib.
  EXPECT_EQ(
      change_signature(sample(), "civi1"),
      "Vi3+XaroeYiHTkOH9ScIAWyAs+3b8DzDY092pSqxNIFQLYCyN+hp7LQx41fdFPn3Bu0fz7TcveaRDvnEutrjgQ==");
}

TEST(Change, SignatureDependsOnSenderAndValuesButNotOnFrom) {
  Change c = sample();
  const std::string base = change_signature(c, "civi1");
  EXPECT_NE(change_signature(c, "civi2"), base);
  c.attribute_changes[0].from = json::value("Somebody");
  EXPECT_EQ(change_signature(c, "civi1"), base);
  c.attribute_changes[0].to = json::value("Carla");
  EXPECT_NE(change_signature(c, "civi1"), base);
}

TEST(Change, RoundTripsThroughJson) {
  Change c = sample();
  c.context["contact_reference"] = "civi1-312";
  c.loop_detection = {"sig1", "sig2"};
  auto back = change_from_json(json::parse(json::serialize(to_json(c))));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, c);
  // `from` stays absent for attributes that had none (create semantics).
  EXPECT_FALSE(back->find_attribute("on_hold")->from.has_value());
}

TEST(Change, RejectsMalformedChangesWithTheFieldName) {
  auto v = to_json(sample());
  v.as_object()["operation"] = "merge";
  auto r = change_from_json(v);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("operation"), std::string::npos);

  v = to_json(sample());
  v.as_object().erase("entity_reference");
  r = change_from_json(v);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("entity_reference"), std::string::npos);

  v = to_json(sample());
  v.as_object()["attribute_changes"].as_array()[0].as_object()["to"] = json::array{1, 2};
  EXPECT_FALSE(change_from_json(v).ok());
}

TEST(Message, ParsesTheEnvelopeAndKeepsChangesRaw) {
  Message m{"civi1-1-2", "civi1", "2026-11-28T10:00:00Z", {sample()}};
  auto parsed = parse_message(json::serialize(to_json(m)));
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed->id, "civi1-1-2");
  EXPECT_EQ(parsed->sender, "civi1");
  ASSERT_EQ(parsed->raw_changes.size(), 1u);
  EXPECT_EQ(*change_from_json(parsed->raw_changes[0]), sample());
}

TEST(Message, RejectsNonJsonAndMissingPayload) {
  EXPECT_FALSE(parse_message("{not json").ok());
  EXPECT_FALSE(parse_message(R"({"id":"x"})").ok());
  EXPECT_FALSE(parse_message(R"({"id":"x","payload":{"sender":"a","changes":{}}})").ok());
}

TEST(Time, FormatsUtcIso) {
  EXPECT_EQ(utc_iso(1614265330), "2021-02-25T15:02:10Z");
}

}  // namespace
}  // namespace civishare
