// A stand-in for CiviCRM's APIv4 REST endpoint over the test fixture's database: checks every
// request against the documented format (CIVICRM_FACTS.md section 3: POST, form-encoded
// `params=<JSON>`, X-Civi-Auth, X-Civi-Key, X-Requested-With) and answers as CiviCRM does
// (values/count envelope, 500 with error_message, 401 text/plain), writing through the real
// tables and triggers as the API contact (so log rows carry its log_user_id). Supports get,
// create, update, delete on Contact, Email, Phone, Address with `:name`/`:abbr` suffixes.
#pragma once

#include <boost/json.hpp>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tests/support/mariadb_server.h"
#include "transport/receiver.h"

namespace civishare::testing {

class CiviCrmStandIn {
 public:
  CiviCrmStandIn(MariaDbServer& server, std::string api_key, std::string site_key, int contact_id);
  std::string url() const;  // .../civicrm/ajax/api4
  // Requests that broke the documented format (each a sentence); empty when all were fine.
  std::vector<std::string> violations();
  std::size_t requests();

 private:
  HttpResponse handle(const HttpRequest& r);
  MariaDbServer& server_;
  std::string api_key_, site_key_;
  int contact_id_;
  std::mutex mu_;
  std::vector<std::string> violations_;
  std::size_t requests_ = 0;
  std::unique_ptr<HttpServer> http_;
};

}  // namespace civishare::testing
