#include "capture/row_mapper.h"

#include <charconv>

namespace civishare {
namespace json = boost::json;

ColumnIndex::ColumnIndex(const std::vector<std::string>& names) {
  for (std::size_t i = 0; i < names.size(); ++i) at_.emplace(names[i], static_cast<int>(i));
}

int ColumnIndex::find(std::string_view name) const {
  auto it = at_.find(name);
  return it == at_.end() ? -1 : it->second;
}

db::Cell cell(const ColumnIndex& columns, const db::Row& row, std::string_view column) {
  const int i = columns.find(column);
  if (i < 0 || static_cast<std::size_t>(i) >= row.size()) return db::Cell{};
  return row[static_cast<std::size_t>(i)];
}

Result<LogRowHeader> read_header(const ColumnIndex& columns, const db::Row& row) {
  LogRowHeader h;
  if (auto ts = cell(columns, row, "civishare_ts")) {
    const char* end = ts->data() + ts->size();
    auto [p, ec] = std::from_chars(ts->data(), end, h.ts);
    if (ec != std::errc() || p != end) {
      return make_error(Errc::invalid_input, "log row with log_date `" + *ts + "` (not a time)");
    }
  }
  h.action = cell(columns, row, "log_action").value_or("");
  return h;
}

Result<json::object> wire_values(const TypeDefinition& type, const ColumnIndex& columns,
                                 const db::Row& row, const ToWire& to_wire,
                                 std::vector<std::string>& warnings) {
  json::object values;
  for (const auto& col : type.columns) {
    auto v = to_wire(col, cell(columns, row, col.column));
    if (!v) {
      if (v.error().code == Errc::database) return v.error();
      warnings.push_back(v.error().message + "; sent as null");
      values[col.wire_name()] = nullptr;
      continue;
    }
    values[col.wire_name()] = std::move(*v);
  }
  return values;
}

std::vector<AttributeChange> diff_values(const TypeDefinition& type, const json::object* before,
                                         const json::object& after) {
  std::vector<AttributeChange> out;
  static const json::value null_value = nullptr;
  for (const auto& col : type.columns) {
    const std::string name = col.wire_name();
    const json::value* now = after.if_contains(name);
    const json::value& to = now ? *now : null_value;
    if (before) {
      const json::value* old = before->if_contains(name);
      const json::value& from = old ? *old : null_value;
      if (from == to) continue;
      out.push_back({name, from, to});
    } else if (!to.is_null()) {
      out.push_back({name, std::nullopt, to});
    }
  }
  return out;
}

}  // namespace civishare
