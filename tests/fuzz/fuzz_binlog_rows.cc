// libFuzzer target: the binlog row decoder (capture/binlog_rows.h), which reads bytes a server
// (or anything pretending to be one) sends. Input: a 2-byte little-endian length L, a TABLE_MAP
// body of L bytes, one byte choosing the rows event type (write/update/delete, plain or
// compressed), then the rows event body. Must never crash, hang or read out of bounds.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "capture/binlog_rows.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace civishare::binlog;
  if (size < 3) return 0;
  const std::size_t len = data[0] | (static_cast<std::size_t>(data[1]) << 8);
  if (size < 2 + len + 1) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  auto map = parse_table_map(input.substr(2, len));
  static constexpr std::uint8_t kTypes[] = {
      kWriteRowsV1,           kUpdateRowsV1,           kDeleteRowsV1,
      kWriteRowsCompressedV1, kUpdateRowsCompressedV1, kDeleteRowsCompressedV1};
  const std::uint8_t type = kTypes[data[2 + len] % 6];
  const std::string_view rows = input.substr(2 + len + 1);
  (void)rows_table_id(rows);
  if (!map) return 0;
  TableMap m = *map;
  if (rows.size() >= 6) {  // point the rows at this map, as the source does by table id
    std::uint64_t id = 0;
    for (int i = 0; i < 6; ++i)
      id |= static_cast<std::uint64_t>(static_cast<unsigned char>(rows[i])) << (8 * i);
    m.table_id = id;
  }
  (void)parse_rows(type, rows, m);
  return 0;
}
