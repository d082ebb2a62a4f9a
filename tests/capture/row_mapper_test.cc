// Diffs of wire values: each value's text read back exactly as a JSON parser reads it (the
// mapper reads plain scalars without a parser; anything else, or anything malformed, must come
// out as the parser says: the value, or null).
#include "capture/row_mapper.h"

#include <gtest/gtest.h>

namespace civishare {
namespace {

TEST(RowMapper, DiffReadsEveryValueTextAsAJsonParserDoes) {
  const TypeDefinition* def = TypeRegistry::builtin().find("civishare.change.contact.base");
  ASSERT_NE(def, nullptr);
  const std::string name = def->columns.front().wire_name();
  const std::vector<std::string> texts = {"true",
                                          "false",
                                          "0",
                                          "-0",
                                          "007",
                                          "123",
                                          "-45",
                                          "9223372036854775807",
                                          "12345678901234567890",
                                          "1.5",
                                          "1e3",
                                          "-",
                                          "--1",
                                          "\"abc\"",
                                          "\"\"",
                                          "\"a\\\"b\"",
                                          "\"caf\xc3\xa9\"",
                                          "\"\xff\"",
                                          "\"tab\there\"",
                                          "\"open",
                                          "[1]",
                                          "{\"a\":1}",
                                          "nul"};
  for (const auto& text : texts) {
    boost::system::error_code ec;
    boost::json::value want = boost::json::parse(text, ec);
    if (ec) want = nullptr;
    const WireValues before = {{name, "null"}};
    const WireValues after = {{name, text}};
    auto changes = diff_values(*def, &before, after);
    ASSERT_EQ(changes.size(), 1u) << text;
    EXPECT_EQ(changes[0].to, want) << text;
    EXPECT_EQ(changes[0].from, boost::json::value(nullptr)) << text;
    // The other way round: the old value is read the same way.
    auto back = diff_values(*def, &after, before);
    ASSERT_EQ(back.size(), 1u) << text;
    EXPECT_EQ(back[0].from, want) << text;
  }
}

}  // namespace
}  // namespace civishare
