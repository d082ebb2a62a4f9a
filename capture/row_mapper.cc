#include "capture/row_mapper.h"

#include <algorithm>
#include <charconv>

#include "schemas/canonical_json.h"
#include "transport/queue/images.h"
#include "transport/queue/store.h"

namespace civishare {
namespace json = boost::json;

ColumnIndex::ColumnIndex(const std::vector<std::string>& names) {
  for (std::size_t i = 0; i < names.size(); ++i) at_.emplace(names[i], static_cast<int>(i));
  for (auto& [name, at] : header_) {
    auto it = at_.find(name);
    at = it == at_.end() ? -1 : it->second;
  }
}

int ColumnIndex::find(std::string_view name) const {
  for (const auto& [n, at] : header_) {
    if (n == name) return at;
  }
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

const db::Cell& cell(const ColumnIndex& columns, const db::Row& row, std::string_view column) {
  static const db::Cell absent;
  const int i = columns.find(column);
  if (i < 0 || static_cast<std::size_t>(i) >= row.size()) return absent;
  return row[static_cast<std::size_t>(i)];
}

Result<LogRowHeader> read_header(const ColumnIndex& columns, const db::Row& row) {
  LogRowHeader h;
  if (const auto& ts = cell(columns, row, "civishare_ts")) {
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

// What wire_values writes is nearly always a plain scalar, read without a parser: null, true,
// false, a string of printable ASCII without escapes, an integer of up to 18 digits without a
// leading zero (as the parser reads it). Such a text is valid JSON as it stands.
bool plain_scalar(std::string_view text, json::value* out = nullptr) {
  if (text == "null" || text == "true" || text == "false") {
    if (out) *out = text == "null" ? json::value(nullptr) : json::value(text == "true");
    return true;
  }
  if (text.size() >= 2 && text.front() == '"' && text.back() == '"' &&
      text.find_first_of("\\\"", 1) == text.size() - 1 &&
      std::all_of(text.begin(), text.end(), [](char c) {
        return static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x80;
      })) {
    if (out) *out = json::string(text.substr(1, text.size() - 2));
    return true;
  }
  const std::size_t digits = !text.empty() && text.front() == '-' ? 1 : 0;
  if (text.size() > digits && text.size() < 19 &&
      text.find_first_not_of("0123456789", digits) == std::string_view::npos &&
      (text[digits] != '0' || text == "0")) {  // no leading zero, no -0: as the parser reads it
    std::int64_t n = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec == std::errc() && p == text.data() + text.size()) {
      if (out) *out = n;
      return true;
    }
  }
  return false;
}

json::value parse_value(std::string_view text) {
  // A parser per value costs more than the rest of a diff: plain scalars are read directly.
  if (json::value v; plain_scalar(text, &v)) return v;
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

namespace {
// Walks two images' encoded values column by column and hands each difference to
// `changed(column, from, to)` (from nullptr for a new entity). False when either is malformed or
// holds another number of values than the type has columns.
template <typename Changed>
bool for_each_encoded_difference(const TypeDefinition& type, const std::string_view* before,
                                 std::string_view after, Changed&& changed) {
  std::string_view old_values = before ? *before : std::string_view();
  std::string_view from, to, old_raw, new_raw;
  for (const auto& column : type.columns) {
    if (!ImageView::next_value(after, to, new_raw)) return false;
    if (before) {
      if (!ImageView::next_value(old_values, from, old_raw)) return false;
      if (old_raw == new_raw) continue;
      changed(column, &from, to);
    } else if (to != "null") {
      changed(column, nullptr, to);
    }
  }
  return after.empty() && old_values.empty();
}
}  // namespace

std::optional<std::vector<AttributeChange>> diff_encoded_values(const TypeDefinition& type,
                                                                const std::string_view* before,
                                                                std::string_view after) {
  std::vector<AttributeChange> out;
  const bool ok = for_each_encoded_difference(
      type, before, after,
      [&](const ColumnDefinition& column, const std::string_view* from, std::string_view to) {
        // An update changes a few columns, mostly; a new entity has most of them.
        if (out.empty()) out.reserve(before ? 4 : type.columns.size());
        out.push_back({column.wire_name(),
                       from ? std::optional<json::value>(parse_value(*from)) : std::nullopt,
                       parse_value(to)});
      });
  if (!ok) return std::nullopt;
  return out;
}

bool diff_encoded_values(const TypeDefinition& type, const std::string_view* before,
                         std::string_view after, EncodedAttributes& out) {
  return for_each_encoded_difference(
      type, before, after,
      [&](const ColumnDefinition& column, const std::string_view* from, std::string_view to) {
        // A plain scalar as it stands; anything else as parse_value reads it (a text that is not
        // JSON becomes null, as in the decoded diff), so the entry always reads back.
        static thread_local std::string from_text, to_text;
        auto stored = [](std::string_view text, std::string& scratch) {
          if (plain_scalar(text)) return text;
          scratch.clear();
          append_json(scratch, parse_value(text));
          return std::string_view(scratch);
        };
        std::string_view stored_from;
        if (from) stored_from = stored(*from, from_text);
        out.add(column.wire_name(), from ? &stored_from : nullptr, stored(to, to_text));
      });
}

}  // namespace civishare
