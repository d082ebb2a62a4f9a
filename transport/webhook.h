// Standard Webhooks signing (https://www.standardwebhooks.com/): headers webhook-id,
// webhook-timestamp and webhook-signature = "v1,<base64 HMAC-SHA256(id.timestamp.body)>", keyed
// with the base64-decoded part of a `whsec_...` secret. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "schemas/result.h"

namespace civishare::webhook {

// The HMAC key of a `whsec_<base64>` secret; an error says how to make a valid one.
Result<std::string> key_from_secret(std::string_view secret);
// A new random secret, `whsec_` + base64 of 32 random bytes.
std::string new_secret();

std::string sign(std::string_view key, std::string_view id, std::int64_t timestamp,
                 std::string_view body);

struct VerifyInput {
  std::string_view id;
  std::string_view timestamp;
  std::string_view signature;  // may hold several space-separated "v1,<sig>" entries
  std::string_view body;
};

// Ok when one v1 signature matches (constant-time compare) and the timestamp is within
// `tolerance_s` of `now`. Errors: Errc::invalid_input for missing/malformed headers,
// Errc::unauthorized for a wrong signature or a timestamp outside the tolerance.
Status verify(std::string_view key, const VerifyInput& in, std::int64_t now,
              std::int64_t tolerance_s = 300);

}  // namespace civishare::webhook
