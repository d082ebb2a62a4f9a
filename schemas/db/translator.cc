#include "schemas/db/translator.h"

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

Result<json::value> plain_to_wire(const ColumnDefinition& column, const Cell& stored) {
  if (!stored) return json::value(nullptr);
  const std::string& s = *stored;
  switch (column.kind) {
    case ColumnKind::string:
    case ColumnKind::date:
      return json::value(json::string(s));
    case ColumnKind::integer:
      try {
        return json::value(static_cast<std::int64_t>(std::stoll(s)));
      } catch (const std::exception&) {
        return make_error(Errc::invalid_input, column.column + ": `" + s + "` is not an integer");
      }
    case ColumnKind::boolean:
      return json::value(s != "0" && !s.empty());
    case ColumnKind::option:
    case ColumnKind::lookup:
      break;
  }
  return make_error(Errc::invalid_input, column.column + " needs an id-to-name look-up");
}

Result<json::value> Translator::to_wire(const ColumnDefinition& column, const Cell& stored) {
  if (!stored) return json::value(nullptr);
  const std::string& s = *stored;
  switch (column.kind) {
    case ColumnKind::string:
    case ColumnKind::date:
    case ColumnKind::integer:
    case ColumnKind::boolean:
      return plain_to_wire(column, stored);
    case ColumnKind::option:
    case ColumnKind::lookup: {
      for (bool reload : {false, true}) {
        auto m = mapping(column, reload);
        if (!m) return m.error();
        auto it = (*m)->id_to_name.find(s);
        if (it != (*m)->id_to_name.end()) return json::value(json::string(it->second));
      }
      return make_error(Errc::not_found, column.column + " = " + s + " has no row in " +
                                             (column.kind == ColumnKind::option
                                                  ? "option group " + column.option_group
                                                  : column.lookup_table));
    }
  }
  return json::value(nullptr);
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
