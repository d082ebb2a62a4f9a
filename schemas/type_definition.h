// Change-type definitions: which CiviCRM table a type comes from, which columns are shared, and
// how per-instance ids are translated. Each type is one JSON file in schemas/types/, compiled into
// the binary; adding a type for another table needs a new file, not new C++.
#pragma once

#include <boost/json.hpp>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "schemas/result.h"

namespace civishare {

enum class ColumnKind {
  string,   // VARCHAR/TEXT, travels as a JSON string
  integer,  // INT, travels as a JSON number
  boolean,  // TINYINT(1), travels as true/false
  date,     // DATE, travels as "YYYY-MM-DD"
  option,   // stores civicrm_option_value.value of an option group; travels as the option's name
  lookup,   // stores the id of a row in a reference table; travels as that row's name column
};

struct ColumnDefinition {
  std::string column;  // column in the CiviCRM table
  ColumnKind kind = ColumnKind::string;
  std::string option_group;  // kind == option: civicrm_option_group.name
  std::string lookup_table;  // kind == lookup: e.g. civicrm_location_type
  std::string lookup_name;   // kind == lookup: the column that names the row, e.g. name, iso_code

  // The attribute name on the wire: the column, or "<column>:<name field>" when translated.
  // Computed once by name_on_wire(), which parse_type_definition calls (the only way types are
  // made): capture asks for it for every column of every row.
  const std::string& wire_name() const { return wire_; }
  void name_on_wire();

 private:
  std::string wire_;
};

// A reference from a child entity to the entity it belongs to (email -> contact).
struct ParentReference {
  std::string column;       // e.g. contact_id
  std::string type;         // the parent's change type, e.g. civishare.change.contact.base
  std::string context_key;  // key in Change::context, e.g. contact_reference
};

struct TypeDefinition {
  std::string type;    // civishare.change.contact.base
  std::string entity;  // Contact
  std::string table;   // civicrm_contact
  std::string key = "id";
  std::optional<ParentReference> parent;
  std::vector<ColumnDefinition> columns;  // shared columns, in file order
  // Columns CiviCRM's PHP derives (display_name, sort_name ...): never shared, but a writer that
  // bypasses CiviCRM must fill them. Column name -> SQL expression over the row's columns.
  std::vector<std::pair<std::string, std::string>> derived;

  std::string log_table() const { return "log_" + table; }
  const ColumnDefinition* find_column(std::string_view column) const;
  const ColumnDefinition* find_wire(std::string_view wire_name) const;
};

Result<TypeDefinition> parse_type_definition(std::string_view json_text);

// All known types. Immutable after construction; safe to share between threads.
class TypeRegistry {
 public:
  // The types compiled into the binary from schemas/types/*.json.
  static const TypeRegistry& builtin();
  static Result<TypeRegistry> from_texts(const std::vector<std::string>& json_texts);

  const TypeDefinition* find(std::string_view type) const;
  const TypeDefinition* find_by_table(std::string_view table) const;
  const std::vector<TypeDefinition>& all() const { return types_; }

 private:
  std::vector<TypeDefinition> types_;
};

}  // namespace civishare
