#include "schemas/db/civishare_tables.h"

#include <charconv>

namespace civishare::db {

const std::vector<std::string>& civishare_table_ddl() {
  static const std::vector<std::string> ddl = {
      "CREATE TABLE IF NOT EXISTS civishare_idmap (\n"
      "  entity_table VARCHAR(64) NOT NULL COMMENT 'CiviCRM table of the entity',\n"
      "  global_ref VARCHAR(64) NOT NULL COMMENT '<origin node>-<origin id>',\n"
      "  local_id INT UNSIGNED NOT NULL COMMENT 'id of the entity on this instance',\n"
      "  created_date TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,\n"
      "  PRIMARY KEY (entity_table, global_ref),\n"
      "  UNIQUE KEY UI_local (entity_table, local_id)\n"
      ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
      "CREATE TABLE IF NOT EXISTS civishare_applied (\n"
      "  apply_id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,\n"
      "  signature VARCHAR(100) NOT NULL COMMENT 'the sender''s signature of the change',\n"
      "  change_id VARCHAR(255) NOT NULL,\n"
      "  change_type VARCHAR(128) NOT NULL,\n"
      "  entity_reference VARCHAR(64) NOT NULL,\n"
      "  change_timestamp VARCHAR(32) NOT NULL,\n"
      "  came_from VARCHAR(16) NOT NULL COMMENT 'peer the change arrived from',\n"
      "  chain MEDIUMTEXT NOT NULL COMMENT 'loop_detection as a JSON array',\n"
      "  outcome VARCHAR(16) NOT NULL COMMENT 'applied, unchanged or refused',\n"
      "  detail VARCHAR(1000) DEFAULT NULL,\n"
      "  applied_date TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,\n"
      "  PRIMARY KEY (apply_id),\n"
      "  UNIQUE KEY UI_signature (signature)\n"
      ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
      "CREATE TABLE IF NOT EXISTS civishare_conflict (\n"
      "  conflict_id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,\n"
      "  apply_id BIGINT UNSIGNED NOT NULL COMMENT 'civishare_applied row of the change',\n"
      "  change_id VARCHAR(255) NOT NULL,\n"
      "  came_from VARCHAR(16) NOT NULL,\n"
      "  entity_table VARCHAR(64) NOT NULL,\n"
      "  local_id INT UNSIGNED NOT NULL,\n"
      "  entity_reference VARCHAR(64) NOT NULL,\n"
      "  attribute VARCHAR(128) NOT NULL,\n"
      "  local_value TEXT COMMENT 'the value here when the change arrived',\n"
      "  from_value TEXT COMMENT 'the value the sender had before (JSON)',\n"
      "  to_value TEXT COMMENT 'the value the sender sends (JSON)',\n"
      "  policy VARCHAR(16) NOT NULL,\n"
      "  resolution VARCHAR(16) NOT NULL COMMENT 'applied, kept_local or held (review)',\n"
      "  created_date TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,\n"
      "  PRIMARY KEY (conflict_id),\n"
      "  KEY index_resolution (resolution)\n"
      ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
  };
  return ddl;
}

std::string applier_marker(std::uint64_t apply_id) {
  return "cs" + std::to_string(apply_id);
}

std::optional<std::uint64_t> apply_id_from_marker(const std::string& log_conn_id) {
  if (log_conn_id.size() < 3 || log_conn_id.compare(0, 2, "cs") != 0) return std::nullopt;
  std::uint64_t id = 0;
  const char* begin = log_conn_id.data() + 2;
  const char* end = log_conn_id.data() + log_conn_id.size();
  auto [ptr, ec] = std::from_chars(begin, end, id);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return id;
}

Result<std::string> global_reference(Connection& db, const std::string& node,
                                     const std::string& table, const std::string& id) {
  auto ref =
      db.scalar("SELECT global_ref FROM civishare_idmap WHERE entity_table = " + db.quote(table) +
                " AND local_id = " + db.quote(id));
  if (!ref) return ref.error();
  if (*ref) return **ref;
  return node + "-" + id;
}

Result<std::optional<std::string>> local_id(Connection& db, const std::string& node,
                                            const std::string& table,
                                            const std::string& reference) {
  const std::string own = node + "-";
  if (reference.compare(0, own.size(), own) == 0) {
    std::string id = reference.substr(own.size());
    auto exists = db.scalar("SELECT id FROM " + Connection::quote_identifier(table) +
                            " WHERE id = " + db.quote(id));
    if (!exists) return exists.error();
    return *exists ? std::optional<std::string>(id) : std::nullopt;
  }
  auto id =
      db.scalar("SELECT local_id FROM civishare_idmap WHERE entity_table = " + db.quote(table) +
                " AND global_ref = " + db.quote(reference));
  if (!id) return id.error();
  return *id;
}

}  // namespace civishare::db
