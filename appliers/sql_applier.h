// Applies received changes to the local CiviCRM database with SQL, one database transaction per
// change. The transaction also writes the change's row in civishare_applied (unique by the
// sender's signature), so a crash between the commit and the inbox cleanup never applies a change
// twice, and sets @uniqueID to the applier marker so that capture recognises the rows it wrote.
// Not thread-safe: one applier thread.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include "schemas/db/mariadb.h"
#include "schemas/db/translator.h"
#include "schemas/result.h"
#include "schemas/type_definition.h"
#include "transport/queue/store.h"

namespace civishare {

enum class ApplyOutcome { applied, unchanged, refused, already_applied };

enum class ConflictPolicy {
  newer_wins,  // the later change wins (change timestamp vs the contact's modified_date; ties by node name)
  keep_local,  // the local value stays
  review,      // the local value stays and the conflict waits in civishare_conflict for a person
};

struct SqlApplierOptions {
  std::string node;  // this node's name
  ConflictPolicy conflict_policy = ConflictPolicy::newer_wins;
  // Before creating a contact whose reference is unknown here, look for an existing one with the
  // same external_identifier (and no mapping yet) and map it instead of creating a duplicate.
  bool match_external_identifier = true;
  // Called for each entry taken off the inbox (metrics).
  std::function<void(const InboxEntry&, ApplyOutcome)> on_outcome;
};
const char* to_string(ApplyOutcome outcome);

class SqlApplier {
 public:
  SqlApplier(SqlApplierOptions options, db::Connection connection, Store& store,
             const TypeRegistry& types);

  // Applies up to `max` inbox entries in order. Returns how many were taken off the inbox.
  // A database error stops the step and leaves the entry in the inbox (retried later).
  Result<std::size_t> apply_pending(std::size_t max = 100);

  // Applies one entry; exposed for tests.
  Result<ApplyOutcome> apply(const InboxEntry& entry);

 private:
  Result<ApplyOutcome> apply_in_transaction(const InboxEntry& entry, std::uint64_t apply_id,
                                            std::string* detail);
  Status record_refusal(const InboxEntry& entry, const std::string& why);
  // Decides one conflicting attribute by the policy and records it in civishare_conflict.
  // true = write the incoming value.
  Result<bool> resolve_conflict(const InboxEntry& e, const TypeDefinition& def, const std::string& id,
                                const AttributeChange& a, const std::string& column,
                                const std::string& from_where, std::uint64_t apply_id);

  SqlApplierOptions options_;
  db::Connection db_;
  db::Translator translator_;
  Store& store_;
  const TypeRegistry& types_;
};

}  // namespace civishare
