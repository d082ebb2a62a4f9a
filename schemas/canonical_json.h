// Canonical JSON: object keys sorted by their UTF-8 bytes, no insignificant white space.
// Two equal JSON values always serialize to the same bytes, which is what signatures hash.
#pragma once

#include <boost/json.hpp>
#include <string>

namespace civishare {

std::string canonical_json(const boost::json::value& value);

}  // namespace civishare
