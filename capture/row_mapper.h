// The pure part of capture: a log row read by column name, the shared columns of its type in wire
// form, and the attribute changes between two images. No database, no store (id-to-name
// translation is passed in), so it is unit-tested and fuzzed (tests/fuzz/fuzz_log_row.cc).
#pragma once

#include <array>
#include <boost/json.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "schemas/change.h"
#include "schemas/db/mariadb.h"
#include "schemas/result.h"
#include "schemas/type_definition.h"

namespace civishare {

struct EncodedAttributes;  // transport/queue/store.h

// Column name -> position, built once per result: rows are read by name, so a column CiviCRM
// adds to a log table later (after log_action) does not move anything. Not thread-safe (it
// remembers the positions of each type's columns).
class ColumnIndex {
 public:
  ColumnIndex() = default;
  explicit ColumnIndex(const std::vector<std::string>& names);
  int find(std::string_view name) const;  // -1 when absent
  // The positions of `type`'s shared columns (-1 = absent), worked out once per type.
  const std::vector<int>& positions(const TypeDefinition& type) const;

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, int, Hash, std::equal_to<>> at_;
  // The columns read from every row (civishare_ts, log_action, log_conn_id, log_user_id) and
  // their positions, found without hashing the name.
  std::array<std::pair<std::string_view, int>, 4> header_{
      {{"civishare_ts", -1}, {"log_action", -1}, {"log_conn_id", -1}, {"log_user_id", -1}}};
  mutable std::vector<std::pair<const TypeDefinition*, std::vector<int>>> positions_;
};

// The cell of `column` in `row` (a reference into the row), an empty Cell when the column is
// absent or the row is short.
const db::Cell& cell(const ColumnIndex& columns, const db::Row& row, std::string_view column);

struct LogRowHeader {
  std::int64_t ts = 0;  // UNIX_TIMESTAMP(log_date), selected as civishare_ts
  std::string action;   // log_action: Insert, Update, Delete (Initialization for snapshots)
};
// Errors: Errc::invalid_input when civishare_ts is present but not a whole number.
Result<LogRowHeader> read_header(const ColumnIndex& columns, const db::Row& row);

// Wire value of one stored cell (ids of option/lookup columns become names).
// Appends a column's wire value as canonical JSON text to the string (nothing on an error). A
// NULL cell is null in every kind of column: the functions below do not ask for it.
using ToWire = std::function<Status(const ColumnDefinition&, const db::Cell&, std::string&)>;

// Every shared column of `type` in wire form, in the type's column order, each value as its JSON
// text. A value that cannot be translated (an id without a name, a non-number in an integer
// column) is sent as null and explained in `warnings`; Errc::database errors from `to_wire` end
// the call.
Result<WireValues> wire_values(const TypeDefinition& type, const ColumnIndex& columns,
                               const db::Row& row, const ToWire& to_wire,
                               std::vector<std::string>& warnings);

// The same values handed to `each(i, text)` (column i of the type, its JSON text, valid during
// the call) instead of collected: what capture writes straight into an encoded image.
template <typename Each>
Status for_each_wire_value(const TypeDefinition& type, const ColumnIndex& columns,
                           const db::Row& row, const ToWire& to_wire,
                           std::vector<std::string>& warnings, Each&& each) {
  const std::vector<int>& at = columns.positions(type);
  static const db::Cell absent;
  static thread_local std::string text;
  for (std::size_t i = 0; i < type.columns.size(); ++i) {
    const int p = at[i];
    const db::Cell& stored = p >= 0 && static_cast<std::size_t>(p) < row.size()
                                 ? row[static_cast<std::size_t>(p)]
                                 : absent;
    if (!stored) {  // NULL is null whatever the column (most of a CiviCRM row's cells)
      each(i, std::string_view("null"));
      continue;
    }
    text.clear();
    auto v = to_wire(type.columns[i], stored, text);
    if (!v) {
      if (v.error().code == Errc::database) return v.error();
      warnings.push_back(v.error().message + "; sent as null");
      text = "null";
    }
    each(i, std::string_view(text));
  }
  return ok_status();
}

// Attribute changes from `before` (nullptr: the entity is new) to `after`, in the type's column
// order. For a new entity only non-null values count. A wire name missing from an image counts
// as null.
std::vector<AttributeChange> diff_values(const TypeDefinition& type, const WireValues* before,
                                         const WireValues& after);

// The same between two images' encoded values (ImageView::values) that both hold one value per
// column of `type`, in its column order (the type's own list of names); `before` = nullptr for a
// new entity. nullopt when either is malformed or holds another number of values.
std::optional<std::vector<AttributeChange>> diff_encoded_values(const TypeDefinition& type,
                                                                const std::string_view* before,
                                                                std::string_view after);
// The same written into `out` in the store's encoding (the values' JSON texts as the images hold
// them, not parsed: what capture hands the store). False where the above gives nullopt (`out` may
// then hold part of the changes).
bool diff_encoded_values(const TypeDefinition& type, const std::string_view* before,
                         std::string_view after, EncodedAttributes& out);

}  // namespace civishare
