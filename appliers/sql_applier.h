// Applies received changes to the local CiviCRM database with SQL, one database transaction per
// change. The transaction also writes the change's row in civishare_applied (unique by the
// sender's signature), so a crash between the commit and the inbox cleanup never applies a change
// twice, and sets @uniqueID to the applier marker so that capture recognises the rows it wrote.
// Not thread-safe: one applier thread.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

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

  // Applies up to `max` entries in one database transaction (one savepoint per change, so a
  // refused change is undone alone); the inbox entries go only after the COMMIT.
  Result<std::size_t> apply_pending(std::size_t max = 200) override;
  Result<ApplyOutcome> apply(const InboxEntry& entry) override;

 protected:
  void observe(const InboxEntry& e, ApplyOutcome o) override {
    if (options_.on_outcome) options_.on_outcome(e, o);
  }

 private:
  // Applies `entries` in one transaction: every outcome (with its detail for the log) after the
  // COMMIT, or the error that rolled all of them back.
  Result<std::vector<std::pair<ApplyOutcome, std::string>>> apply_together(
      std::span<const InboxEntry> entries);
  // One change inside an open transaction, under a savepoint; `detail` for the log.
  Result<ApplyOutcome> apply_one(const InboxEntry& entry, std::string* detail);
  void log_outcome(const InboxEntry& entry, ApplyOutcome outcome, const std::string& detail);
  Result<ApplyOutcome> apply_in_transaction(const InboxEntry& entry, std::uint64_t apply_id,
                                            std::string* detail);
  Status record_refusal(const InboxEntry& entry, const std::string& why);
  // Decides one conflicting attribute by the policy and records it in civishare_conflict.
  // true = write the incoming value.
  Result<bool> resolve_conflict(const InboxEntry& e, const TypeDefinition& def,
                                const std::string& id, const AttributeChange& a,
                                const std::string& column, const std::string& from_where,
                                std::uint64_t apply_id);

  // db::local_id with a memory of the idmap rows seen or written (foreign references only: they
  // change only through this applier). Forgotten on any rollback.
  Result<std::optional<std::string>> local_id(const std::string& table,
                                              const std::string& reference);
  Status map_reference(const std::string& table, const std::string& reference,
                       const std::string& id);

  SqlApplierOptions options_;
  db::Connection db_;
  std::unordered_map<std::string, std::string> idmap_cache_;  // table '\n' reference -> local id
  db::Translator translator_;
  const TypeRegistry& types_;
};

}  // namespace civishare
