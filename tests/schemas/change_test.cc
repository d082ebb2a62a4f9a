#include "schemas/change.h"

#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "schemas/canonical_json.h"
#include "schemas/crypto.h"

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

TEST(Crypto, Sha512MatchesTheStandardVectorOnEveryThreadAndCall) {
  // FIPS 180-2, "abc"; each thread reuses its hashing context between calls.
  const std::string abc =
      "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
      "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f";
  auto hex = [](const std::string& raw) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned char c : raw) {
      out.push_back(digits[c >> 4]);
      out.push_back(digits[c & 15]);
    }
    return out;
  };
  std::vector<std::string> got(4);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < got.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) (void)sha512(std::string(i * 7, 'x'));
      got[t] = hex(sha512("abc"));
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& g : got) EXPECT_EQ(g, abc);
  EXPECT_EQ(hex(sha512("abc")), abc);
  EXPECT_NE(hex(sha512("abd")), abc);
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

// A captured change's id names its origin node (a receiver drops a change whose id names itself):
// the node is everything before the last '-' and 24 lowercase hex digits, so node names with '-'
// work, and ids of any other form name no origin.
TEST(Change, IdsNameTheirOriginNode) {
  const std::string hex = "0123456789abcdef01234567";
  EXPECT_EQ(change_id("civi1", hex), "civi1-" + hex);
  EXPECT_EQ(origin_of_change_id(change_id("civi1", hex)), "civi1");
  EXPECT_EQ(origin_of_change_id(change_id("north-east-2", hex)), "north-east-2");
  EXPECT_EQ(origin_of_change_id("civi1-0123456789ABCDEF01234567"), "");  // not lowercase
  EXPECT_EQ(origin_of_change_id("civi1-0123456789abcdef0123456"), "");   // 23 digits
  EXPECT_EQ(origin_of_change_id("civi1_" + hex), "");
  EXPECT_EQ(origin_of_change_id("-" + hex), "");  // no node
  EXPECT_EQ(origin_of_change_id("civi1-42"), "");
  EXPECT_EQ(origin_of_change_id(""), "");
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

std::string random_text(std::mt19937_64& rng) {
  std::string s(rng() % 12, '\0');
  for (auto& c : s) c = static_cast<char>(rng() % 4 == 0 ? rng() % 0x30 : 'a' + rng() % 26);
  return s;
}

json::value random_scalar(std::mt19937_64& rng) {
  switch (rng() % 5) {
    case 0:
      return nullptr;
    case 1:
      return rng() % 2 == 0;
    case 2:
      return static_cast<std::int64_t>(rng());
    case 3:
      return static_cast<double>(rng() % 1000) / 8;
    default:
      return json::string(random_text(rng));
  }
}

Change random_change(std::mt19937_64& rng) {
  Change c;
  c.id = random_text(rng);
  c.type = random_text(rng);
  c.timestamp = random_text(rng);
  c.entity = random_text(rng);
  c.entity_reference = random_text(rng);
  c.operation = static_cast<Operation>(rng() % 3);
  for (std::size_t n = rng() % 3; n > 0; --n) c.context[random_text(rng)] = random_text(rng);
  for (std::size_t n = rng() % 8; n > 0; --n) {
    AttributeChange a;
    a.name = rng() % 4 == 0 ? std::string("dup") : random_text(rng);  // equal names happen
    if (rng() % 2) a.from = random_scalar(rng);
    a.to = random_scalar(rng);
    c.attribute_changes.push_back(std::move(a));
  }
  for (std::size_t n = rng() % 3; n > 0; --n) c.loop_detection.push_back(random_text(rng));
  return c;
}

// The signature as first defined: canonical JSON of a boost::json tree (the contract).
std::string signature_from_tree(const Change& c, std::string_view node) {
  json::object content;
  content["type"] = c.type;
  content["entity"] = c.entity;
  content["entity_reference"] = c.entity_reference;
  content["operation"] = to_string(c.operation);
  content["timestamp"] = c.timestamp;
  content["sender"] = node;
  json::object to;
  for (const auto& a : c.attribute_changes) to[a.name] = a.to;
  content["attributes"] = std::move(to);
  return base64_encode(sha512(canonical_json(content)));
}

TEST(Change, DirectlyWrittenTextEqualsTheTreeSerialisedAndSigned) {
  std::mt19937_64 rng(11);
  for (int i = 0; i < 5000; ++i) {
    Change c = random_change(rng);
    std::string text;
    append_json(text, c);
    ASSERT_EQ(text, json::serialize(to_json(c)));
    ASSERT_EQ(change_signature(c, "civi1"), signature_from_tree(c, "civi1"));
  }
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
