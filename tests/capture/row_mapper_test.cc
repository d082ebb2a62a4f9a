// Diffs of wire values: each value's text read back exactly as a JSON parser reads it (the
// mapper reads plain scalars without a parser; anything else, or anything malformed, must come
// out as the parser says: the value, or null).
#include "capture/row_mapper.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <random>

#include "capture/change_mapper.h"
#include "schemas/crypto.h"
#include "transport/queue/images.h"
#include "transport/queue/store.h"

namespace civishare {
namespace {

// Value texts of every kind: plain scalars, what only a parser reads, what is not JSON at all.
const std::vector<std::string> kValueTexts = {"true",
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

// A log row's hash is kept across versions (row counts in the store, change ids at peers): it is
// the sha256 of the table, each cell after \x1f (NULL: \x1e), and \x1d with the salt if any.
TEST(RowMapper, RowHashIsTheSha256OfTheTableCellsAndSalt) {
  const TypeDefinition* def = TypeRegistry::builtin().find("civishare.change.contact.base");
  ASSERT_NE(def, nullptr);
  const ColumnIndex columns({"id", "first_name", "middle_name", "log_action"});
  const db::Row row = {std::string("7"), std::string("Ann"), std::nullopt, std::string("Insert")};
  SourceRow r;
  r.type = def;
  r.columns = &columns;
  r.row = &row;
  const std::string text =
      "civicrm_contact\x1f"
      "7\x1f"
      "Ann\x1f\x1e\x1f"
      "Insert";
  EXPECT_EQ(r.raw_hash(), sha256(text));
  auto first8 = [](const std::string& digest) {  // little-endian
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = v << 8 | static_cast<unsigned char>(digest[i]);
    return v;
  };
  EXPECT_EQ(r.hash64(), first8(sha256(text)));
  EXPECT_EQ(r.legacy_hash64(), first8(sha512(text)));
  SourceRow salted;  // (not a copy of r: that would carry r's hash, worked out once)
  salted.type = def;
  salted.columns = &columns;
  salted.row = &row;
  salted.salt = "0-1-5:2";
  EXPECT_EQ(salted.raw_hash(), sha256(text + "\x1d"
                                             "0-1-5:2"));
  EXPECT_EQ(salted.hash().size(), 24u);
}

// NULL is null in every kind of column, without asking the translation (which may have no
// name for it, or no database to ask).
TEST(RowMapper, NullCellsAreNullWithoutATranslation) {
  const TypeDefinition* def = TypeRegistry::builtin().find("civishare.change.contact.base");
  ASSERT_NE(def, nullptr);
  std::vector<std::string> names;
  db::Row row;
  for (const auto& c : def->columns) {
    names.push_back(c.column);
    row.emplace_back(std::nullopt);
  }
  const ColumnIndex columns(names);
  int asked = 0;
  ToWire refuse = [&](const ColumnDefinition& c, const db::Cell&, std::string&) -> Status {
    ++asked;
    return make_error(Errc::not_found, c.column + ": no translation");
  };
  std::vector<std::string> warnings;
  auto values = wire_values(*def, columns, row, refuse, warnings);
  ASSERT_TRUE(values) << values.error().message;
  EXPECT_EQ(asked, 0);
  EXPECT_TRUE(warnings.empty());
  ASSERT_EQ(values->size(), def->columns.size());
  for (const auto& [name, text] : *values) EXPECT_EQ(text, "null") << name;
  // A value that is there is asked for (and, refused, sent as null with a warning).
  row[0] = std::string("Individual");
  values = wire_values(*def, columns, row, refuse, warnings);
  ASSERT_TRUE(values);
  EXPECT_EQ(asked, 1);
  EXPECT_EQ(warnings.size(), 1u);
}

TEST(RowMapper, DiffReadsEveryValueTextAsAJsonParserDoes) {
  const TypeDefinition* def = TypeRegistry::builtin().find("civishare.change.contact.base");
  ASSERT_NE(def, nullptr);
  const std::string name = def->columns.front().wire_name();
  for (const auto& text : kValueTexts) {
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

// Capture hands the store its attribute changes encoded (EncodedAttributes: the images' value
// texts, not parsed): read back from the store they are exactly the changes the decoded diff
// finds, whatever each text is (a text that is not JSON is null there as well, and never makes
// the entry unreadable).
TEST(RowMapper, EncodedChangesReadBackFromTheStoreAsTheDecodedDiff) {
  const TypeDefinition* def = TypeRegistry::builtin().find("civishare.change.contact.base");
  ASSERT_NE(def, nullptr);
  const auto dir = std::filesystem::temp_directory_path() /
                   ("civishare-rowmapper-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  struct RemoveOnExit {  // also when an assertion returns early
    std::filesystem::path dir;
    ~RemoveOnExit() { std::filesystem::remove_all(dir); }
  } remove_on_exit{dir};
  auto store = Store::open(dir.string());
  ASSERT_TRUE(store.ok()) << store.error().message;
  auto image = [&](const std::string& text) {
    WireValues v;
    for (const auto& c : def->columns) v.emplace_back(c.wire_name(), "null");
    v.front().second = text;
    v.back().second = "\"x\"";
    std::string out;
    begin_image(out, 42, "civi1-1", "");
    for (const auto& [name, t] : v) append_image_value(out, t);
    return std::make_pair(v, out);
  };
  const auto [plain, plain_bytes] = image("null");
  ImageView pv;
  ASSERT_TRUE(ImageView::parse(plain_bytes, pv));
  std::vector<std::vector<AttributeChange>> want;
  CaptureBatch batch;
  for (const auto& text : kValueTexts) {
    const auto [values, bytes] = image(text);
    ImageView v;
    ASSERT_TRUE(ImageView::parse(bytes, v));
    for (bool update : {true, false}) {
      OutboxEntry e;
      e.change.id = "civi1-" + std::to_string(batch.records.size());
      ASSERT_TRUE(
          diff_encoded_values(*def, update ? &pv.values : nullptr, v.values, e.encoded_attributes))
          << text;
      want.push_back(diff_values(*def, update ? &plain : nullptr, values));
      batch.records.push_back(std::move(e));
    }
  }
  ASSERT_TRUE((*store)->commit_capture(std::move(batch)));
  auto back = (*store)->read_outbox(0, 1000);
  ASSERT_TRUE(back.ok()) << back.error().message;
  ASSERT_EQ(back->size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i)
    EXPECT_EQ((*back)[i].change.attribute_changes, want[i]) << kValueTexts[i / 2];
  store->reset();
}

// Capture compares images in their encoded form (ImageView) without decoding them: it must find
// exactly the changes diff_values finds for the same images decoded, for updates and creates,
// and refuse (nullopt, so the caller decodes) value lists that are cut short or too long.
TEST(RowMapper, EncodedDiffFindsWhatTheDecodedDiffFinds) {
  const TypeDefinition* def = TypeRegistry::builtin().find("civishare.change.contact.base");
  ASSERT_NE(def, nullptr);
  const std::vector<std::string> pool = {"null",     "true",       "false", "\"\"",
                                         "\"null\"", "0",          "12",    "\"Karl\"",
                                         "\"Carl\"", "\"a\\\"b\"", "[1]",   "1.5"};
  std::mt19937 random(7);
  auto values = [&] {
    WireValues v;
    for (const auto& c : def->columns) v.emplace_back(c.wire_name(), pool[random() % pool.size()]);
    return v;
  };
  auto encode = [](const WireValues& v, const std::string& ref) {
    std::string out;
    begin_image(out, 42, ref, "civi1-9");
    for (const auto& [name, text] : v) append_image_value(out, text);
    return out;
  };
  for (int round = 0; round < 300; ++round) {
    const WireValues before = values();
    WireValues after = before;
    for (int k = static_cast<int>(random() % 4); k > 0; --k)  // a few values change, or none
      after[random() % after.size()].second = pool[random() % pool.size()];
    const std::string b = encode(before, "civi1-1"), a = encode(after, "civi1-1");
    ImageView bv, av;
    ASSERT_TRUE(ImageView::parse(b, bv));
    ASSERT_TRUE(ImageView::parse(a, av));
    EXPECT_EQ(av.names_id, 42u);
    EXPECT_EQ(av.entity_reference, "civi1-1");
    EXPECT_EQ(av.parent_reference, "civi1-9");
    auto encoded = diff_encoded_values(*def, &bv.values, av.values);
    ASSERT_TRUE(encoded);
    EXPECT_EQ(*encoded, diff_values(*def, &before, after)) << round;
    auto created = diff_encoded_values(*def, nullptr, av.values);
    ASSERT_TRUE(created);
    EXPECT_EQ(*created, diff_values(*def, nullptr, after)) << round;
  }
  const WireValues v = values();
  std::string full = encode(v, "civi1-1");
  ImageView view;
  ASSERT_TRUE(ImageView::parse(full, view));
  const std::string_view cut = view.values.substr(0, view.values.size() - 1);
  EXPECT_FALSE(diff_encoded_values(*def, nullptr, cut));
  std::string longer(view.values);
  append_image_value(longer, "1");
  EXPECT_FALSE(diff_encoded_values(*def, &view.values, longer));
  EXPECT_FALSE(diff_encoded_values(*def, nullptr, longer));
  EXPECT_FALSE(ImageView::parse(full.substr(0, 5), view));            // header cut short
  EXPECT_FALSE(ImageView::parse(encode_image_with_names({}), view));  // another encoding
}

}  // namespace
}  // namespace civishare
