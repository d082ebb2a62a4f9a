// What every applier does: take received changes off the inbox and make them true in the local
// CiviCRM, once each. Implementations: SqlApplier (direct SQL), Apiv4Applier (CiviCRM's REST API).
// One applier per thread.
#pragma once

#include <cstddef>

#include "schemas/result.h"
#include "schemas/type_definition.h"
#include "transport/queue/store.h"

namespace civishare {

enum class ApplyOutcome { applied, unchanged, refused, already_applied };
const char* to_string(ApplyOutcome outcome);

enum class ConflictPolicy {
  newer_wins,  // the later change wins (change timestamp vs the contact's modified_date; ties by
               // node name)
  keep_local,  // the local value stays
  review,      // the local value stays and the conflict waits for a person
};

// The parent a child change names: its type and the reference in the change's context.
// Errc::invalid_input when the change names none (a refusal).
struct NamedParent {
  const TypeDefinition* type = nullptr;
  std::string reference;
};
Result<NamedParent> named_parent(const Change& change, const TypeDefinition& def,
                                 const TypeRegistry& types);
// The refusal for a parent reference with no local counterpart (yet).
Error unknown_parent(const TypeDefinition& def, const std::string& reference);

class Applier {
 public:
  virtual ~Applier() = default;
  // Applies up to `max` inbox entries in order. Returns how many were taken off the inbox. A
  // failure of the target (database or API down) stops the step and leaves the entry in the inbox.
  virtual Result<std::size_t> apply_pending(std::size_t max = 200);
  // Applies one entry. Errors: the target failed (retry later). A change that cannot be applied
  // here is not an error but ApplyOutcome::refused (recorded, logged).
  virtual Result<ApplyOutcome> apply(const InboxEntry& entry) = 0;

 protected:
  explicit Applier(Store& store) : store_(store) {}
  virtual void observe(const InboxEntry&, ApplyOutcome) {}
  Store& store_;
};

}  // namespace civishare
