// libFuzzer target: Standard Webhooks verification with attacker-controlled headers and body
// (the first bytes pick how the input is split into id, timestamp, signature and body), and the
// `whsec_` secret parser. Must never crash; a random input must never verify.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "transport/webhook.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace civishare;
  if (size < 3) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data + 3), size - 3);
  std::size_t a = std::min<std::size_t>(data[0], in.size());
  std::size_t b = std::min<std::size_t>(a + data[1], in.size());
  std::size_t c = std::min<std::size_t>(b + data[2] * 2u, in.size());
  webhook::VerifyInput v{in.substr(0, a), in.substr(a, b - a), in.substr(b, c - b), in.substr(c)};
  static const std::string key =
      *webhook::key_from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  if (webhook::verify(key, v, 1700000000, 300)) {
    // Only a correct HMAC may pass: recompute and compare.
    auto ts = std::strtoll(std::string(v.timestamp).c_str(), nullptr, 10);
    const std::string expected = webhook::sign(key, v.id, ts, v.body);
    if (std::string_view(v.signature).find(expected) == std::string_view::npos) std::abort();
  }
  (void)webhook::key_from_secret(in);
  return 0;
}
