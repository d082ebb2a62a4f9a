#include "schemas/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <stdexcept>

namespace civishare {

namespace {
// One digest with `md` (fetched once by the caller: OpenSSL 3's one-shot SHA512() looks the
// algorithm up on every call, which costs as much as hashing a change). One context per thread,
// reused: EVP_Digest would allocate and free one per call (a fifth of the cost of hashing a
// change).
template <typename OneShot>
std::string digest(const EVP_MD* md, std::size_t size, std::string_view data, OneShot one_shot) {
  struct Context {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Context() { EVP_MD_CTX_free(ctx); }
  };
  thread_local Context c;
  std::string out(size, '\0');
  auto* bytes = reinterpret_cast<unsigned char*>(out.data());
  if (!md || !c.ctx || !EVP_DigestInit_ex2(c.ctx, md, nullptr) ||
      !EVP_DigestUpdate(c.ctx, data.data(), data.size()) ||
      !EVP_DigestFinal_ex(c.ctx, bytes, nullptr)) {
    one_shot(reinterpret_cast<const unsigned char*>(data.data()), data.size(), bytes);
  }
  return out;
}
}  // namespace

std::string sha512(std::string_view data) {
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA512", nullptr);
  return digest(md, SHA512_DIGEST_LENGTH, data, SHA512);
}

std::string sha256(std::string_view data) {
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return digest(md, SHA256_DIGEST_LENGTH, data, SHA256);
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len);
  return std::string(reinterpret_cast<char*>(md), len);
}

std::string base64_encode(std::string_view raw) {
  std::string out(4 * ((raw.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(raw.data()),
                          static_cast<int>(raw.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  for (char c : text) {
    bool valid = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '+' || c == '/' || c == '=';
    if (!valid) return std::nullopt;
  }
  std::string out(3 * text.size() / 4, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  // EVP_DecodeBlock counts padding as zero bytes; drop them.
  std::size_t pad = 0;
  if (!text.empty() && text.back() == '=') pad++;
  if (text.size() > 1 && text[text.size() - 2] == '=') pad++;
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    throw std::runtime_error("OpenSSL RAND_bytes failed");  // no entropy: nothing sane to do
  }
  return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace civishare
