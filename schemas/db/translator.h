// Translates per-instance ids to portable names and back, for the columns a type definition marks
// as `option` (civicrm_option_value.value within a group, by option name) or `lookup` (a reference
// table's id, by a name column such as civicrm_location_type.name or civicrm_country.iso_code).
// Caches each mapping for its lifetime and reloads a mapping once on a miss (sites add options).
// Not thread-safe: one per connection.
#pragma once

#include <boost/json.hpp>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>

#include "schemas/db/mariadb.h"
#include "schemas/result.h"
#include "schemas/type_definition.h"

namespace civishare::db {

// to_wire for the columns that need no look-up (string, date, integer, boolean); pure.
// Option and lookup columns: Errc::invalid_input (they need a Translator).
Status plain_to_wire(const ColumnDefinition& column, const Cell& stored, std::string& out);

class Translator {
 public:
  explicit Translator(Connection& connection) : db_(connection) {}

  // A stored column value (text from MariaDB, nullopt = NULL) as the JSON value on the wire,
  // appended to `out` as canonical JSON text (what append_json writes; nothing on an error).
  // An option/lookup id with no row is an error naming the column and id.
  Status to_wire(const ColumnDefinition& column, const Cell& stored, std::string& out);
  // A wire value back to the SQL literal to store (already quoted, or NULL). An unknown name is
  // an error that names the reference table and the name.
  Result<std::string> to_sql(const ColumnDefinition& column, const boost::json::value& wire);

 private:
  struct Mapping {
    std::map<std::string, std::string> id_to_name;
    std::map<std::string, std::string> name_to_id;
  };
  Result<Mapping*> mapping(const ColumnDefinition& column, bool reload);
  Connection& db_;
  std::map<std::string, Mapping> cache_;
  // The mapping of each column seen, found without building its cache key (a reload refreshes
  // the mapping in place). The column's names are kept to check that the address still means
  // the same column.
  struct ByColumn {
    ColumnKind kind;
    std::string option_group, lookup_table, lookup_name;
    Mapping* mapping;
  };
  std::unordered_map<const ColumnDefinition*, ByColumn> by_column_;
};

}  // namespace civishare::db
