// The database objects CiviShare keeps in the CiviCRM schema (contract names, prefix civishare_ so
// CiviCRM's logging never picks them up) and the queries capture and appliers share on them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "schemas/db/mariadb.h"
#include "schemas/result.h"

namespace civishare::db {

// CREATE TABLE IF NOT EXISTS statements for civishare_idmap and civishare_applied.
const std::vector<std::string>& civishare_table_ddl();

// The marker the SQL applier puts into @uniqueID (CiviCRM copies it into log_conn_id,
// VARCHAR(17)): "cs" + the civishare_applied.apply_id. Returns the apply id for a marker.
std::string applier_marker(std::uint64_t apply_id);
std::optional<std::uint64_t> apply_id_from_marker(const std::string& log_conn_id);

// Global reference of a local entity: the idmap's entry if it has one, else "<node>-<id>".
Result<std::string> global_reference(Connection& db, const std::string& node,
                                     const std::string& table, const std::string& local_id);
// Local id for a global reference: "<node>-<id>" of this node is the id itself; others come from
// the idmap. nullopt = not known here.
Result<std::optional<std::string>> local_id(Connection& db, const std::string& node,
                                            const std::string& table, const std::string& reference);

}  // namespace civishare::db
