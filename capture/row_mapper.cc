#include "capture/row_mapper.h"

#include <algorithm>
#include <charconv>

#include "schemas/canonical_json.h"
#include "transport/queue/images.h"

namespace civishare {
namespace json = boost::json;

ColumnIndex::ColumnIndex(const std::vector<std::string>& names) {
  for (std::size_t i = 0; i < names.size(); ++i) at_.emplace(names[i], static_cast<int>(i));
}

int ColumnIndex::find(std::string_view name) const {
  auto it = at_.find(name);
  return it == at_.end() ? -1 : it->second;
}

const std::vector<int>& ColumnIndex::positions(const TypeDefinition& type) const {
  for (const auto& [t, p] : positions_) {
    if (t == &type) return p;
  }
  std::vector<int> p;
  p.reserve(type.columns.size());
  for (const auto& col : type.columns) p.push_back(find(col.column));
  positions_.emplace_back(&type, std::move(p));
  return positions_.back().second;
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

Result<WireValues> wire_values(const TypeDefinition& type, const ColumnIndex& columns,
                               const db::Row& row, const ToWire& to_wire,
                               std::vector<std::string>& warnings) {
  WireValues values;
  values.reserve(type.columns.size());
  auto s = for_each_wire_value(type, columns, row, to_wire, warnings,
                               [&](std::size_t i, std::string_view text) {
                                 values.emplace_back(type.columns[i].wire_name(), text);
                               });
  if (!s) return s.error();
  return values;
}

namespace {

// The text of `name` in `values`; `hint` is where it is when the image follows the type's order.
const std::string* find_value(const WireValues& values, const std::string& name, std::size_t hint) {
  if (hint < values.size() && values[hint].first == name) return &values[hint].second;
  for (const auto& [n, text] : values) {
    if (n == name) return &text;
  }
  return nullptr;
}

json::value parse_value(std::string_view text) {
  // What wire_values writes is nearly always a plain scalar: read those directly (a parser per
  // value costs more than the rest of a diff).
  if (text == "null") return nullptr;
  if (text == "true") return true;
  if (text == "false") return false;
  if (text.size() >= 2 && text.front() == '"' && text.back() == '"' &&
      text.find_first_of("\\\"", 1) == text.size() - 1 &&
      std::all_of(text.begin(), text.end(), [](char c) {
        return static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x80;
      })) {  // printable ASCII without escapes: valid JSON as it stands
    return json::string(text.substr(1, text.size() - 2));
  }
  const std::size_t digits = !text.empty() && text.front() == '-' ? 1 : 0;
  if (text.size() > digits && text.size() < 19 &&
      text.find_first_not_of("0123456789", digits) == std::string_view::npos &&
      (text[digits] != '0' || text == "0")) {  // no leading zero, no -0: as the parser reads it
    std::int64_t n = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec == std::errc() && p == text.data() + text.size()) return n;
  }
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  return ec ? json::value(nullptr) : v;
}

}  // namespace

std::vector<AttributeChange> diff_values(const TypeDefinition& type, const WireValues* before,
                                         const WireValues& after) {
  std::vector<AttributeChange> out;
  static const std::string null_text = "null";
  for (std::size_t i = 0; i < type.columns.size(); ++i) {
    const std::string& name = type.columns[i].wire_name();
    const std::string* now = find_value(after, name, i);
    const std::string& to = now ? *now : null_text;
    if (before) {
      const std::string* old = find_value(*before, name, i);
      const std::string& from = old ? *old : null_text;
      if (from == to) continue;
      out.push_back({name, parse_value(from), parse_value(to)});
    } else if (to != null_text) {
      out.push_back({name, std::nullopt, parse_value(to)});
    }
  }
  return out;
}

std::optional<std::vector<AttributeChange>> diff_encoded_values(const TypeDefinition& type,
                                                                const std::string_view* before,
                                                                std::string_view after) {
  std::vector<AttributeChange> out;
  std::string_view old_values = before ? *before : std::string_view();
  std::string_view from, to, old_raw, new_raw;
  for (const auto& column : type.columns) {
    if (!ImageView::next_value(after, to, new_raw)) return std::nullopt;
    if (before) {
      if (!ImageView::next_value(old_values, from, old_raw)) return std::nullopt;
      if (old_raw == new_raw) continue;
      if (out.empty()) out.reserve(4);  // an update changes a few columns, mostly
      out.push_back({column.wire_name(), parse_value(from), parse_value(to)});
    } else if (to != "null") {
      if (out.empty()) out.reserve(type.columns.size());
      out.push_back({column.wire_name(), std::nullopt, parse_value(to)});
    }
  }
  if (!after.empty() || !old_values.empty()) return std::nullopt;
  return out;
}

}  // namespace civishare
