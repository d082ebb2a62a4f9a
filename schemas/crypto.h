// Thin wrappers over OpenSSL: hashes, HMAC, base64, randomness, constant-time compare.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace civishare {

std::string sha512(std::string_view data);  // raw 64 bytes
// raw 32 bytes; more than twice as fast as sha512 where the CPU has SHA extensions (x86 SHA-NI)
std::string sha256(std::string_view data);
std::string hmac_sha256(std::string_view key, std::string_view data);  // raw 32 bytes
std::string base64_encode(std::string_view raw);
std::optional<std::string> base64_decode(std::string_view text);  // nullopt if not valid base64
std::string random_bytes(std::size_t n);
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace civishare
