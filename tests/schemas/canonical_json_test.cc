#include "schemas/canonical_json.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

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

// A random JSON value: strings of arbitrary bytes (every control character, quotes, backslashes,
// UTF-8 and invalid UTF-8), integers at their limits, doubles, nesting.
boost::json::value random_value(std::mt19937_64& rng, int depth) {
  std::uniform_int_distribution<int> pick(0, depth > 0 ? 7 : 5);
  switch (pick(rng)) {
    case 0:
      return nullptr;
    case 1:
      return rng() % 2 == 0;
    case 2: {
      const std::int64_t edges[] = {0, -1, std::numeric_limits<std::int64_t>::min(),
                                    std::numeric_limits<std::int64_t>::max()};
      return rng() % 3 == 0 ? edges[rng() % 4] : static_cast<std::int64_t>(rng());
    }
    case 3:
      return rng() % 2 == 0 ? boost::json::value(std::numeric_limits<std::uint64_t>::max())
                            : boost::json::value(std::ldexp(static_cast<double>(rng() % 100000),
                                                            static_cast<int>(rng() % 80) - 40));
    case 4:
    case 5: {
      std::string s(rng() % 24, '\0');
      for (auto& c : s) c = static_cast<char>(rng() % 3 == 0 ? rng() % 0x40 : rng() % 256);
      return boost::json::string(s);
    }
    case 6: {
      boost::json::array a;
      for (std::size_t n = rng() % 5; n > 0; --n) a.push_back(random_value(rng, depth - 1));
      return a;
    }
    default: {
      boost::json::object o;
      for (std::size_t n = rng() % 6; n > 0; --n) {
        o[std::string(1, static_cast<char>('a' + rng() % 26)) + std::to_string(rng() % 100)] =
            random_value(rng, depth - 1);
      }
      return o;
    }
  }
}

TEST(JsonText, WritesExactlyWhatBoostSerializeWrites) {
  std::mt19937_64 rng(20261128);
  for (int i = 0; i < 20000; ++i) {
    auto v = random_value(rng, 3);
    std::string out;
    append_json(out, v);
    ASSERT_EQ(out, boost::json::serialize(v));
  }
}

// Long runs of text that needs no escape are skipped 8 bytes at a time: one character to escape at
// every position of a long string (and bytes that look like one in their low 7 bits: 0xa2, 0xdc,
// 0x9f) must come out as boost writes it.
TEST(JsonText, EscapesOneCharacterAtAnyPositionOfALongString) {
  const std::string plain = "Ma\xc3\xbcller-Lüdenscheid 0123456789 abcdefghij \xa2\xdc\x9f\xff xyz";
  for (const char special : {'"', '\\', '\n', '\x01', '\x1f', '\0', '\x7f', ' '}) {
    for (std::size_t at = 0; at <= plain.size(); ++at) {
      std::string s = plain;
      s.insert(at, 1, special);
      std::string out;
      append_json_string(out, s);
      ASSERT_EQ(out, boost::json::serialize(boost::json::string(s))) << "at " << at;
    }
  }
}

// Canonical JSON sorts each object's keys; with the keys inserted in sorted order boost's own
// serializer must give the same bytes.
boost::json::value sorted_copy(const boost::json::value& v) {
  if (v.is_array()) {
    boost::json::array a;
    for (const auto& item : v.get_array()) a.push_back(sorted_copy(item));
    return a;
  }
  if (!v.is_object()) return v;
  std::vector<std::string> keys;
  for (const auto& kv : v.get_object()) keys.emplace_back(kv.key());
  std::sort(keys.begin(), keys.end());
  boost::json::object o;
  for (const auto& k : keys) o[k] = sorted_copy(v.get_object().at(k));
  return o;
}

TEST(CanonicalJson, EqualsBoostSerializeOfTheKeySortedValue) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 20000; ++i) {
    auto v = random_value(rng, 3);
    ASSERT_EQ(canonical_json(v), boost::json::serialize(sorted_copy(v)));
  }
}

}  // namespace
}  // namespace civishare
