#include "transport/webhook.h"

#include <charconv>

#include "schemas/crypto.h"

namespace civishare::webhook {

Result<std::string> key_from_secret(std::string_view secret) {
  constexpr std::string_view prefix = "whsec_";
  if (secret.substr(0, prefix.size()) == prefix) secret.remove_prefix(prefix.size());
  auto key = base64_decode(secret);
  if (!key || key->size() < 16) {
    return make_error(Errc::invalid_config,
                      "a link secret must look like `whsec_<base64 of at least 16 bytes>`; "
                      "make one with `civishare secret`");
  }
  return *key;
}

std::string new_secret() {
  return "whsec_" + base64_encode(random_bytes(32));
}

std::string sign(std::string_view key, std::string_view id, std::int64_t timestamp,
                 std::string_view body) {
  std::string content;
  content.reserve(id.size() + body.size() + 24);
  content.append(id).append(".").append(std::to_string(timestamp)).append(".").append(body);
  return "v1," + base64_encode(hmac_sha256(key, content));
}

Status verify(std::string_view key, const VerifyInput& in, std::int64_t now,
              std::int64_t tolerance_s) {
  if (in.id.empty() || in.timestamp.empty() || in.signature.empty()) {
    return make_error(Errc::invalid_input,
                      "missing webhook-id, webhook-timestamp or webhook-signature header");
  }
  std::int64_t ts = 0;
  auto [ptr, ec] =
      std::from_chars(in.timestamp.data(), in.timestamp.data() + in.timestamp.size(), ts);
  if (ec != std::errc() || ptr != in.timestamp.data() + in.timestamp.size()) {
    return make_error(Errc::invalid_input, "webhook-timestamp must be integer seconds");
  }
  if (ts < now - tolerance_s || ts > now + tolerance_s) {
    return make_error(Errc::unauthorized, "webhook-timestamp is outside the " +
                                              std::to_string(tolerance_s) +
                                              " s tolerance (check both clocks)");
  }
  const std::string expected = sign(key, in.id, ts, in.body);
  bool match = false;
  std::string_view rest = in.signature;
  while (!rest.empty()) {
    auto space = rest.find(' ');
    std::string_view entry = rest.substr(0, space);
    // Compare every entry, not just until the first match, to keep timing flat.
    if (entry.substr(0, 3) == "v1," && constant_time_equal(entry, expected)) match = true;
    if (space == std::string_view::npos) break;
    rest.remove_prefix(space + 1);
  }
  if (!match) return make_error(Errc::unauthorized, "webhook-signature does not match");
  return ok_status();
}

}  // namespace civishare::webhook
