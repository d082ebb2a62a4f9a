#include "schemas/type_definition.h"

#include <stdexcept>

#include "schemas/builtin_types.h"

namespace civishare {
namespace json = boost::json;

void ColumnDefinition::name_on_wire() {
  switch (kind) {
    case ColumnKind::option:
      wire_ = column + ":name";
      break;
    case ColumnKind::lookup:
      wire_ = column + ":" + lookup_name;
      break;
    default:
      wire_ = column;
  }
}

const ColumnDefinition* TypeDefinition::find_column(std::string_view column) const {
  for (const auto& c : columns) {
    if (c.column == column) return &c;
  }
  return nullptr;
}

const ColumnDefinition* TypeDefinition::find_wire(std::string_view wire_name) const {
  for (const auto& c : columns) {
    if (c.wire_name() == wire_name) return &c;
  }
  return nullptr;
}

namespace {

Error bad(const std::string& type, const std::string& what) {
  return make_error(Errc::invalid_config, "type definition `" + type + "`: " + what);
}

std::string get_string(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

bool is_identifier(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) {
      return false;
    }
  }
  return true;
}

}  // namespace

Result<TypeDefinition> parse_type_definition(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return bad("?", "not a JSON object");
  const auto& o = v.get_object();
  TypeDefinition t;
  t.type = get_string(o, "type");
  t.entity = get_string(o, "entity");
  t.table = get_string(o, "table");
  if (t.type.empty()) return bad("?", "`type` is missing");
  if (t.entity.empty()) return bad(t.type, "`entity` is missing");
  if (!is_identifier(t.table)) return bad(t.type, "`table` must be a table name");
  if (auto k = get_string(o, "key"); !k.empty()) t.key = k;
  if (auto* p = o.if_contains("parent"); p && p->is_object()) {
    ParentReference ref;
    ref.column = get_string(p->get_object(), "column");
    ref.type = get_string(p->get_object(), "type");
    ref.context_key = get_string(p->get_object(), "context_key");
    if (!is_identifier(ref.column) || ref.type.empty() || ref.context_key.empty()) {
      return bad(t.type, "`parent` needs `column`, `type` and `context_key`");
    }
    t.parent = ref;
  }
  auto* cols = o.if_contains("columns");
  if (!cols || !cols->is_array() || cols->get_array().empty()) {
    return bad(t.type, "`columns` must be a non-empty array");
  }
  for (const auto& c : cols->get_array()) {
    if (!c.is_object()) return bad(t.type, "each column must be an object");
    const auto& co = c.get_object();
    ColumnDefinition col;
    col.column = get_string(co, "column");
    if (!is_identifier(col.column)) return bad(t.type, "a column has no valid `column` name");
    std::string kind = get_string(co, "kind");
    if (kind == "string")
      col.kind = ColumnKind::string;
    else if (kind == "integer")
      col.kind = ColumnKind::integer;
    else if (kind == "boolean")
      col.kind = ColumnKind::boolean;
    else if (kind == "date")
      col.kind = ColumnKind::date;
    else if (kind == "option") {
      col.kind = ColumnKind::option;
      col.option_group = get_string(co, "option_group");
      if (col.option_group.empty()) return bad(t.type, col.column + ": `option_group` is missing");
    } else if (kind == "lookup") {
      col.kind = ColumnKind::lookup;
      col.lookup_table = get_string(co, "table");
      col.lookup_name = get_string(co, "name");
      if (!is_identifier(col.lookup_table) || !is_identifier(col.lookup_name)) {
        return bad(t.type, col.column + ": a lookup needs `table` and `name`");
      }
    } else {
      return bad(t.type, col.column + ": unknown kind `" + kind +
                             "` (string, integer, boolean, date, option, lookup)");
    }
    if (t.find_column(col.column)) return bad(t.type, col.column + " is listed twice");
    col.name_on_wire();
    t.columns.push_back(std::move(col));
  }
  if (auto* d = o.if_contains("derived"); d && d->is_array()) {
    for (const auto& item : d->get_array()) {
      if (!item.is_object()) return bad(t.type, "each `derived` entry must be an object");
      std::string column = get_string(item.get_object(), "column");
      std::string sql = get_string(item.get_object(), "sql");
      if (!is_identifier(column) || sql.empty()) {
        return bad(t.type, "a `derived` entry needs `column` and `sql`");
      }
      t.derived.emplace_back(column, sql);
    }
  }
  return t;
}

Result<TypeRegistry> TypeRegistry::from_texts(const std::vector<std::string>& texts) {
  TypeRegistry r;
  for (const auto& text : texts) {
    auto t = parse_type_definition(text);
    if (!t) return t.error();
    if (r.find(t->type)) return bad(t->type, "defined twice");
    r.types_.push_back(std::move(*t));
  }
  for (const auto& t : r.types_) {
    if (t.parent && !r.find(t.parent->type)) {
      return bad(t.type, "parent type `" + t.parent->type + "` is not defined");
    }
  }
  return r;
}

const TypeRegistry& TypeRegistry::builtin() {
  static const TypeRegistry registry = [] {
    auto r = from_texts(builtin_type_texts());
    if (!r) throw std::logic_error("built-in type definitions are broken: " + r.error().message);
    return std::move(*r);
  }();
  return registry;
}

const TypeDefinition* TypeRegistry::find(std::string_view type) const {
  for (const auto& t : types_) {
    if (t.type == type) return &t;
  }
  return nullptr;
}

const TypeDefinition* TypeRegistry::find_by_table(std::string_view table) const {
  for (const auto& t : types_) {
    if (t.table == table) return &t;
  }
  return nullptr;
}

}  // namespace civishare
