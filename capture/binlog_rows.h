// The binlog row decoder (for the binlog source, issue 6): TABLE_MAP events with FULL metadata
// (column names, signedness, enum/set values) and WRITE/UPDATE/DELETE_ROWS events (v1, as
// MariaDB writes them) decoded into rows of text values, the same text MariaDB's text protocol
// shows for a SELECT in a session with time_zone '+00:00', so the log-table mapping applies to both
// sources unchanged. Written here rather than taken from Connector/C 3.3's
// mariadb_rpl_extract_rows, which rejects CHAR/ENUM/SET columns, zero-extends signed integers and
// ignores the columns-present bitmaps (BINLOG_FACTS.md).
//
// Pure functions over event bytes (the body after the 19-byte common header, without the
// checksum); no connection. Tested on recorded binlogs (tests/data/binlog/).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "schemas/result.h"

namespace civishare::binlog {

// Event types this decoder knows (MariaDB numbering).
enum EventType : std::uint8_t {
  kFormatDescription = 15,
  kTableMap = 19,
  kWriteRowsV1 = 23,
  kUpdateRowsV1 = 24,
  kDeleteRowsV1 = 25,
  kGtid = 162,
  kWriteRowsCompressedV1 = 166,  // log_bin_compress: the rows part is zlib-compressed
  kUpdateRowsCompressedV1 = 167,
  kDeleteRowsCompressedV1 = 168,
};

// WRITE/UPDATE/DELETE_ROWS v1, plain or compressed: what parse_rows reads.
constexpr bool is_rows_event(std::uint8_t type) {
  return (type >= kWriteRowsV1 && type <= kDeleteRowsV1) ||
         (type >= kWriteRowsCompressedV1 && type <= kDeleteRowsCompressedV1);
}
// Its rows alternate before- and after-images.
constexpr bool is_update_rows_event(std::uint8_t type) {
  return type == kUpdateRowsV1 || type == kUpdateRowsCompressedV1;
}

struct Column {
  std::uint8_t type = 0;     // MYSQL_TYPE_* as in the binlog (real type for ENUM/SET in STRING)
  std::uint16_t meta = 0;    // the column's table-map metadata
  bool is_unsigned = false;  // from the SIGNEDNESS metadata
  std::string name;          // from COLUMN_NAME metadata (binlog_row_metadata=FULL)
  std::vector<std::string> values;  // ENUM / SET member names
  std::uint32_t collation = 0;      // character columns: from the CHARSET metadata (63 = binary)
};

struct TableMap {
  std::uint64_t table_id = 0;
  std::string schema;
  std::string table;
  std::vector<Column> columns;
};

// One row image: a text value per column in table order (nullopt = NULL or not in the image).
using RowImage = std::vector<std::optional<std::string>>;

struct RowsEvent {
  std::uint64_t table_id = 0;
  bool end_of_statement = false;
  // Write: after images; Delete: before images; Update: before, after, before, after, ...
  std::vector<RowImage> rows;
};

// Errc::invalid_input naming what is malformed, or that the metadata is not FULL (no column
// names), or a column type this decoder does not read.
Result<TableMap> parse_table_map(std::string_view body);
Result<RowsEvent> parse_rows(std::uint8_t event_type, std::string_view body, const TableMap& map);
// table_id of a rows event (to find its table map before parsing).
Result<std::uint64_t> rows_table_id(std::string_view body);

// Reads a binlog file's events: (type, body without header and checksum). For tests and tools;
// the agent reads events from the server through Connector/C.
struct FileEvent {
  std::uint8_t type = 0;
  std::string body;
  std::uint32_t timestamp = 0;  // unix seconds (the statement's start)
};
Result<std::vector<FileEvent>> read_binlog_file(const std::string& path);

}  // namespace civishare::binlog
