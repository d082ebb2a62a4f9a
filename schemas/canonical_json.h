// JSON text written straight into a string, without building a tree or a temporary per value (the
// capture hot path writes every change, its signature input and its image this way).
//
// Canonical JSON: object keys sorted by their UTF-8 bytes, no insignificant white space. Two equal
// JSON values always serialize to the same bytes, which is what signatures hash.
#pragma once

#include <boost/json.hpp>
#include <string>
#include <string_view>

namespace civishare {

std::string canonical_json(const boost::json::value& value);
void append_canonical_json(std::string& out, const boost::json::value& value);

// `s` as a JSON string, escaped byte for byte as boost::json::serialize escapes it.
void append_json_string(std::string& out, std::string_view s);
// `value` exactly as boost::json::serialize writes it (members in their stored order).
void append_json(std::string& out, const boost::json::value& value);

}  // namespace civishare
