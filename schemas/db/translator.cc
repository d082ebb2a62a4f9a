#include "schemas/db/translator.h"

#include <charconv>

#include "schemas/canonical_json.h"

namespace civishare::db {
namespace json = boost::json;

Result<Translator::Mapping*> Translator::mapping(const ColumnDefinition& column, bool reload) {
  const std::string key = column.kind == ColumnKind::option
                              ? "option:" + column.option_group
                              : "lookup:" + column.lookup_table + ":" + column.lookup_name;
  auto it = cache_.find(key);
  if (it != cache_.end() && !reload) return &it->second;
  std::string sql;
  if (column.kind == ColumnKind::option) {
    sql =
        "SELECT v.value, v.name FROM civicrm_option_value v JOIN civicrm_option_group g ON "
        "g.id = v.option_group_id WHERE g.name = " +
        db_.quote(column.option_group);
  } else {
    sql = "SELECT id, " + Connection::quote_identifier(column.lookup_name) + " FROM " +
          Connection::quote_identifier(column.lookup_table);
  }
  auto rows = db_.query(sql);
  if (!rows) return rows.error();
  Mapping m;
  for (const auto& r : rows->rows) {
    if (!r[0] || !r[1]) continue;
    m.id_to_name[*r[0]] = *r[1];
    m.name_to_id[*r[1]] = *r[0];
  }
  auto& slot = cache_[key];
  slot = std::move(m);
  return &slot;
}

Status plain_to_wire(const ColumnDefinition& column, const Cell& stored, std::string& out) {
  if (!stored) {
    out += "null";
    return ok_status();
  }
  const std::string& s = *stored;
  switch (column.kind) {
    case ColumnKind::string:
    case ColumnKind::date:
      append_json_string(out, s);
      return ok_status();
    case ColumnKind::integer:
      try {
        const long long n = std::stoll(s);
        char buf[24];
        auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
        out.append(buf, end);
        return ok_status();
      } catch (const std::exception&) {
        return make_error(Errc::invalid_input, column.column + ": `" + s + "` is not an integer");
      }
    case ColumnKind::boolean:
      out += s != "0" && !s.empty() ? "true" : "false";
      return ok_status();
    case ColumnKind::option:
    case ColumnKind::lookup:
      break;
  }
  return make_error(Errc::invalid_input, column.column + " needs an id-to-name look-up");
}

Status Translator::to_wire(const ColumnDefinition& column, const Cell& stored, std::string& out) {
  if (column.kind != ColumnKind::option && column.kind != ColumnKind::lookup)
    return plain_to_wire(column, stored, out);
  if (!stored) {
    out += "null";
    return ok_status();
  }
  const std::string& s = *stored;
  for (bool reload : {false, true}) {
    Mapping* m = nullptr;
    if (auto it = by_column_.find(&column); it != by_column_.end() && !reload &&
                                            it->second.kind == column.kind &&
                                            it->second.option_group == column.option_group &&
                                            it->second.lookup_table == column.lookup_table &&
                                            it->second.lookup_name == column.lookup_name) {
      m = it->second.mapping;
    } else {
      auto got = mapping(column, reload);
      if (!got) return got.error();
      m = *got;
      by_column_[&column] = {column.kind, column.option_group, column.lookup_table,
                             column.lookup_name, m};
    }
    auto it = m->id_to_name.find(s);
    if (it != m->id_to_name.end()) {
      append_json_string(out, it->second);
      return ok_status();
    }
  }
  return make_error(Errc::not_found,
                    column.column + " = " + s + " has no row in " +
                        (column.kind == ColumnKind::option ? "option group " + column.option_group
                                                           : column.lookup_table));
}

Result<std::string> Translator::to_sql(const ColumnDefinition& column, const json::value& wire) {
  if (wire.is_null()) return std::string("NULL");
  switch (column.kind) {
    case ColumnKind::string:
    case ColumnKind::date:
      if (!wire.is_string()) {
        return make_error(Errc::invalid_input, column.column + " must be a string");
      }
      return db_.quote(wire.get_string());
    case ColumnKind::integer:
      if (!wire.is_int64() && !wire.is_uint64()) {
        return make_error(Errc::invalid_input, column.column + " must be an integer");
      }
      return json::serialize(wire);
    case ColumnKind::boolean:
      if (!wire.is_bool())
        return make_error(Errc::invalid_input, column.column + " must be true/false");
      return std::string(wire.get_bool() ? "1" : "0");
    case ColumnKind::option:
    case ColumnKind::lookup: {
      if (!wire.is_string()) {
        return make_error(Errc::invalid_input, column.wire_name() + " must be a name");
      }
      const std::string name(wire.get_string());
      for (bool reload : {false, true}) {
        auto m = mapping(column, reload);
        if (!m) return m.error();
        auto it = (*m)->name_to_id.find(name);
        if (it != (*m)->name_to_id.end()) return db_.quote(it->second);
      }
      return make_error(
          Errc::not_found,
          "`" + name + "` is not known here (" +
              (column.kind == ColumnKind::option ? "option group " + column.option_group
                                                 : column.lookup_table + "." + column.lookup_name) +
              "); add it on this instance or drop it from the shared columns");
    }
  }
  return std::string("NULL");
}

}  // namespace civishare::db
