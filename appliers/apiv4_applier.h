// Applies received changes through CiviCRM's APIv4 REST endpoint (CIVICRM_FACTS.md section 3):
// POST <url>/<Entity>/<action>, form-encoded `params=<JSON>`, headers X-Civi-Auth (Bearer api
// key), X-Civi-Key (site key), X-Requested-With. CiviCRM itself then computes display names,
// keeps one primary email/phone/address, and writes its log rows as the API contact.
//
// Without database access of its own, the applier keeps its idmap and its set of applied
// signatures in the agent's store, and notes what it wrote so capture can recognise the echo
// (rows whose log_user_id is the API contact). The API has no transactions: a crash between
// CiviCRM's commit and the agent's record can apply a change twice (a create then matches by
// external_identifier when the contact has one).
// Not thread-safe: one applier thread.
#pragma once

#include <boost/json.hpp>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "appliers/applier.h"
#include "schemas/type_definition.h"

namespace civishare {

struct Apiv4ApplierOptions {
  std::string node;
  std::string url;              // e.g. https://civi1.example.org/civicrm/ajax/api4
  std::string api_key;          // of the API contact
  std::string site_key;         // CIVICRM_SITE_KEY
  std::int64_t contact_id = 0;  // the API contact (its writes are logged with this log_user_id)
  std::string ca_file;
  long timeout_ms = 30000;
  ConflictPolicy conflict_policy = ConflictPolicy::newer_wins;
  bool match_external_identifier = true;
  std::map<std::string, ConflictPolicy> conflict_policy_by_type;  // over conflict_policy
  std::function<void(const InboxEntry&, ApplyOutcome)> on_outcome;
};

class Apiv4Applier : public Applier {
 public:
  Apiv4Applier(Apiv4ApplierOptions options, Store& store, const TypeRegistry& types);
  ~Apiv4Applier() override;
  Result<ApplyOutcome> apply(const InboxEntry& entry) override;

 protected:
  void observe(const InboxEntry& e, ApplyOutcome o) override {
    if (options_.on_outcome) options_.on_outcome(e, o);
  }

 private:
  // One API call. Errors: Errc::network (unreachable), Errc::unauthorized (HTTP 401/403),
  // Errc::peer_rejected (CiviCRM answered an error: the message is CiviCRM's).
  Result<boost::json::array> call(const std::string& entity, const std::string& action,
                                  const boost::json::object& params);
  Result<std::optional<std::string>> local_id(const TypeDefinition& def, const std::string& ref);
  Result<ApplyOutcome> apply_change(const InboxEntry& e, std::string* detail,
                                    std::vector<std::pair<std::string, std::string>>* record);

  Apiv4ApplierOptions options_;
  const TypeRegistry& types_;
  void* curl_ = nullptr;
};

// The APIv4 field for a wire attribute: gender_id:name stays, country_id:iso_code -> :abbr.
std::string apiv4_field(const ColumnDefinition& column);

}  // namespace civishare
