#include "schemas/canonical_json.h"

#include <gtest/gtest.h>

namespace civishare {
namespace {

TEST(CanonicalJson, SortsKeysAtEveryLevelAndDropsWhiteSpace) {
  auto v = boost::json::parse(R"({ "b": 1, "a": {"z": [3, {"y": null, "x": true}], "c": "s"} })");
  EXPECT_EQ(canonical_json(v), R"({"a":{"c":"s","z":[3,{"x":true,"y":null}]},"b":1})");
}

TEST(CanonicalJson, SameValueSameBytesWhateverTheInputOrder) {
  auto a = boost::json::parse(R"({"first_name":"Karl","last_name":"Müller","id":7})");
  auto b = boost::json::parse(R"({"id":7,"last_name":"Müller","first_name":"Karl"})");
  EXPECT_EQ(canonical_json(a), canonical_json(b));
}

TEST(CanonicalJson, KeysSortByBytesNotLocale) {
  auto v = boost::json::parse(R"({"a":1,"B":2,"_":3})");
  EXPECT_EQ(canonical_json(v), R"({"B":2,"_":3,"a":1})");
}

TEST(CanonicalJson, EscapesStrings) {
  auto v = boost::json::parse(R"({"q":"say \"hi\"\n"})");
  EXPECT_EQ(canonical_json(v), R"({"q":"say \"hi\"\n"})");
}

}  // namespace
}  // namespace civishare
