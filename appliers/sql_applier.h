// Applies received changes to the local CiviCRM database with SQL, one database transaction per
// change. The transaction also writes the change's row in civishare_applied (unique by the
// sender's signature), so a crash between the commit and the inbox cleanup never applies a change
// twice, and sets @uniqueID to the applier marker so that capture recognises the rows it wrote.
// Not thread-safe: one applier thread.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <string>

#include "appliers/applier.h"
#include "schemas/db/mariadb.h"
#include "schemas/db/translator.h"
#include "schemas/result.h"
#include "schemas/type_definition.h"
#include "transport/queue/store.h"

namespace civishare {

struct SqlApplierOptions {
  std::string node;  // this node's name
  ConflictPolicy conflict_policy = ConflictPolicy::newer_wins;
  // Before creating a contact whose reference is unknown here, look for an existing one with the
  // same external_identifier (and no mapping yet) and map it instead of creating a duplicate.
  bool match_external_identifier = true;
  // ... or, failing that, one with the same last name whose primary email is the change's
  // context.primary_email.
  bool match_email_last_name = false;
  // Policy per change type, over conflict_policy.
  std::map<std::string, ConflictPolicy> conflict_policy_by_type;
  // Called for each entry taken off the inbox (metrics).
  std::function<void(const InboxEntry&, ApplyOutcome)> on_outcome;
};
class SqlApplier : public Applier {
 public:
  SqlApplier(SqlApplierOptions options, db::Connection connection, Store& store,
             const TypeRegistry& types);

  Result<ApplyOutcome> apply(const InboxEntry& entry) override;

 protected:
  void observe(const InboxEntry& e, ApplyOutcome o) override {
    if (options_.on_outcome) options_.on_outcome(e, o);
  }

 private:
  Result<ApplyOutcome> apply_in_transaction(const InboxEntry& entry, std::uint64_t apply_id,
                                            std::string* detail);
  Status record_refusal(const InboxEntry& entry, const std::string& why);
  // Decides one conflicting attribute by the policy and records it in civishare_conflict.
  // true = write the incoming value.
  Result<bool> resolve_conflict(const InboxEntry& e, const TypeDefinition& def,
                                const std::string& id, const AttributeChange& a,
                                const std::string& column, const std::string& from_where,
                                std::uint64_t apply_id);

  SqlApplierOptions options_;
  db::Connection db_;
  db::Translator translator_;
  const TypeRegistry& types_;
};

}  // namespace civishare
