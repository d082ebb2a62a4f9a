// The binlog row decoder against a recorded binlog (tests/data/binlog, made by record.cc on a real
// MariaDB): every column type, NULLs, negative numbers and extremes, utf8mb4; write, update
// (before and after images) and delete. Each decoded value must equal what a '+00:00' session
// SELECTed for the same row image when the binlog was recorded.
#include "capture/binlog_rows.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

namespace civishare::binlog {
namespace {

const std::string kDir = std::string(CIVISHARE_SOURCE_DIR) + "/tests/data/binlog/";

std::string unhex(const std::string& h) {
  std::string out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16)));
  }
  return out;
}

// (kind, image) per line of all_types.expected.
std::vector<std::pair<std::string, RowImage>> expected() {
  std::ifstream in(kDir + "all_types.expected");
  std::vector<std::pair<std::string, RowImage>> out;
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> fields;  // keeps empty fields (an empty value is an empty field)
    for (std::size_t at = 0;;) {
      auto tab = line.find('\t', at);
      fields.push_back(line.substr(at, tab == std::string::npos ? std::string::npos : tab - at));
      if (tab == std::string::npos) break;
      at = tab + 1;
    }
    RowImage row;
    for (std::size_t i = 1; i < fields.size(); ++i) {
      if (fields[i] == "\\N")
        row.emplace_back(std::nullopt);
      else
        row.emplace_back(unhex(fields[i]));
    }
    out.emplace_back(fields[0], std::move(row));
  }
  return out;
}

TEST(BinlogRows, EveryColumnTypeDecodesToWhatMariaDbShows) {
  auto events = read_binlog_file(kDir + "all_types.binlog");
  ASSERT_TRUE(events.ok()) << events.error().message;
  std::map<std::uint64_t, TableMap> maps;
  std::vector<std::pair<std::string, RowImage>> decoded;
  for (const auto& e : *events) {
    if (e.type == kTableMap) {
      auto m = parse_table_map(e.body);
      ASSERT_TRUE(m.ok()) << m.error().message;
      maps[m->table_id] = *m;
    } else if (e.type == kWriteRowsV1 || e.type == kUpdateRowsV1 || e.type == kDeleteRowsV1) {
      auto id = rows_table_id(e.body);
      ASSERT_TRUE(id.ok());
      ASSERT_TRUE(maps.count(*id)) << "rows event before its table map";
      auto rows = parse_rows(e.type, e.body, maps.at(*id));
      ASSERT_TRUE(rows.ok()) << rows.error().message;
      for (std::size_t i = 0; i < rows->rows.size(); ++i) {
        std::string kind = e.type == kWriteRowsV1    ? "write"
                           : e.type == kDeleteRowsV1 ? "delete"
                           : i % 2 == 0              ? "update_before"
                                                     : "update_after";
        decoded.emplace_back(kind, rows->rows[i]);
      }
    }
  }
  ASSERT_EQ(maps.size(), 1u);
  const TableMap& m = maps.begin()->second;
  EXPECT_EQ(m.schema, "t");
  EXPECT_EQ(m.table, "all_types");
  ASSERT_EQ(m.columns.size(), 38u);
  EXPECT_EQ(m.columns[0].name, "id");
  EXPECT_EQ(m.columns[33].name, "e");
  EXPECT_EQ(m.columns[33].values, (std::vector<std::string>{"Insert", "Update", "Delete"}));
  EXPECT_EQ(m.columns[34].values, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_FALSE(m.columns[1].is_unsigned);  // ti
  EXPECT_TRUE(m.columns[2].is_unsigned);   // tiu

  const auto want = expected();
  ASSERT_EQ(decoded.size(), want.size());
  for (std::size_t r = 0; r < want.size(); ++r) {
    EXPECT_EQ(decoded[r].first, want[r].first) << "image " << r;
    ASSERT_EQ(decoded[r].second.size(), want[r].second.size());
    for (std::size_t c = 0; c < want[r].second.size(); ++c) {
      EXPECT_EQ(decoded[r].second[c], want[r].second[c])
          << want[r].first << " image " << r << ", column " << m.columns[c].name;
    }
  }
}

TEST(BinlogRows, ATableMapWithoutColumnNamesSaysWhichSettingToChange) {
  // table id 7, flags, schema "t", table "x", one INT column, no metadata, null bitmap: MINIMAL.
  const std::string body = std::string("\x07\0\0\0\0\0\0\0", 8) + std::string("\x01t\0", 3) +
                           std::string("\x01x\0", 3) + std::string("\x01\x03\x00\x01", 4);
  auto m = parse_table_map(body);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message.find("binlog_row_metadata=FULL"), std::string::npos)
      << m.error().message;
}

TEST(BinlogRows, EveryTruncationOfARecordedEventIsAnErrorNotACrash) {
  auto events = read_binlog_file(kDir + "all_types.binlog");
  ASSERT_TRUE(events.ok());
  std::map<std::uint64_t, TableMap> maps;
  int checked = 0;
  for (const auto& e : *events) {
    if (e.type == kTableMap) {
      // Every cut returns (the sanitizer build checks that nothing is read out of bounds); a
      // map that parses always has its column names.
      for (std::size_t n = 0; n < e.body.size(); ++n) {
        auto cut = parse_table_map(e.body.substr(0, n));
        if (cut.ok()) {
          EXPECT_FALSE(cut->columns.empty() || cut->columns.back().name.empty()) << "cut at " << n;
        }
      }
      maps.emplace(parse_table_map(e.body)->table_id, *parse_table_map(e.body));
    } else if (e.type == kWriteRowsV1 || e.type == kUpdateRowsV1 || e.type == kDeleteRowsV1) {
      const TableMap& m = maps.at(*rows_table_id(e.body));
      const auto full = parse_rows(e.type, e.body, m);
      ASSERT_TRUE(full.ok());
      for (std::size_t n = 0; n < e.body.size(); ++n) {
        auto cut = parse_rows(e.type, e.body.substr(0, n), m);
        // Cut inside a row: an error; cut between rows: fewer rows, never invented values.
        if (cut.ok()) {
          EXPECT_LT(cut->rows.size(), full->rows.size()) << "cut at " << n;
        }
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 100);
}

}  // namespace
}  // namespace civishare::binlog
